/**
 * Graceful shutdown per listener, and calls aborted when their peer goes away: closing one
 * listener leaves the others serving; a call in flight finishes within the grace; an idle stream
 * is ended with a `cancelled` error when the grace runs out; a handler sees `ctx.signal` abort
 * when its client disconnects.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, exchange, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp, HttpError, listenHttp } from "../../src/transports/http/index.js";
import { connectTcp, connectUnix, listenSocket } from "../../src/transports/socket/index.js";
import { connectWebSocketClient, listenWebSocket } from "../../src/transports/ws/index.js";
import { within } from "../client/helpers.js";

const P = defineProtocol(
  "test.Shutdown.v1",
  { version: "1.0.0" },
  {
    sleep: unary({ ms: t.int64() }, t.utf8()),
    /** Waits until its signal fires, then reports why. */
    hold: unary({}, t.utf8()),
    echo: exchange({}, { input: { x: t.float64() }, output: { x: t.float64() } }),
  },
);

function makeServer() {
  const aborted: string[] = [];
  let holding: (() => void) | null = null;
  const held = new Promise<void>((resolve) => {
    holding = resolve;
  });
  const server = createServer({
    protocols: [
      bind(P, {
        sleep: async ({ ms }) => {
          await new Promise((resolve) => setTimeout(resolve, Number(ms)));
          return "slept";
        },
        hold: async (_params, ctx) => {
          holding?.();
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
          const reason = ctx.signal.reason;
          aborted.push(reason instanceof RpcError ? reason.kind : String(reason));
          return "aborted";
        },
        echo: {
          init: () => ({}),
          process(_state, input, out) {
            out.emitColumns({ x: input.column("x") });
          },
        },
      }),
    ],
  });
  return { server, aborted, held };
}

/** Waits (up to 5 s) for the handler to record its abort. */
function untilAborted(aborted: readonly string[]): Promise<void> {
  return within(
    (async () => {
      while (aborted.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    5_000,
    "the handler's abort",
  );
}

const sockPath = () => join(mkdtempSync(join(tmpdir(), "quiver-shutdown-")), "s.sock");

describe("graceful shutdown and peers going away", () => {
  it("closing a socket listener leaves another listener of the same server serving", async () => {
    const { server } = makeServer();
    const unix = await listenSocket(server, { path: sockPath() });
    const ws = await listenWebSocket(server);
    const viaUnix = await connectUnix((unix.address as { path: string }).path);
    const viaWs = await connectWebSocketClient(ws.url);
    assert.equal(await proxy(viaUnix, P).sleep({ ms: 1n }), "slept");
    await unix.close({ graceMs: 1_000 });
    await assert.rejects(proxy(viaUnix, P).sleep({ ms: 1n }), RpcError);
    assert.equal(await proxy(viaWs, P).sleep({ ms: 1n }), "slept");
    await viaWs.close();
    await viaUnix.close().catch(() => {});
    await ws.close();
  });

  it("closing a socket listener while an HTTP listener serves the same server leaves HTTP serving", async () => {
    const { server } = makeServer();
    const tcp = await listenSocket(server, { port: 0 });
    const http = await listenHttp(server);
    const viaHttp = connectHttp(http.url);
    await tcp.close({ graceMs: 1_000 });
    assert.equal(await proxy(viaHttp, P).sleep({ ms: 1n }), "slept");
    const session = await proxy(viaHttp, P).echo();
    assert.deepEqual(await session.exchange([{ x: 3 }]), [{ x: 3 }]);
    await session.close();
    await viaHttp.close();
    await http.close();
  });

  it("an HTTP call in flight when listenHttp closes finishes within the grace; the listener then refuses", async () => {
    const { server } = makeServer();
    const http = await listenHttp(server);
    const client = connectHttp(http.url);
    const call = proxy(client, P).sleep({ ms: 200n });
    while (http.handler.activeCalls === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await within(http.close({ graceMs: 5_000 }), 10_000, "close with an HTTP call in flight");
    assert.equal(await call, "slept");
    await assert.rejects(proxy(client, P).sleep({ ms: 1n }), HttpError);
    await client.close();
  });

  it("listenHttp close({ graceMs: 500 }) with an idle exchange open resolves at once; the exchange's next turn gets a typed error", async () => {
    const { server } = makeServer();
    const http = await listenHttp(server);
    const client = connectHttp(http.url);
    const session = await proxy(client, P).echo();
    assert.deepEqual(await session.exchange([{ x: 1 }]), [{ x: 1 }]);
    const t0 = performance.now();
    await within(http.close({ graceMs: 500 }), 5_000, "close with an idle HTTP exchange");
    const tookMs = performance.now() - t0;
    assert.ok(tookMs < 600, `close took ${tookMs} ms`); // stateless streams hold nothing open
    await assert.rejects(session.exchange([{ x: 2 }]), HttpError);
    await client.close();
  });

  it("server.close() closes listenHttp too; a held HTTP call is aborted with cancelled after the grace", async () => {
    const { server, aborted, held } = makeServer();
    const http = await listenHttp(server);
    const client = connectHttp(http.url);
    const call = proxy(client, P)
      .hold()
      .then(
        () => null,
        (err: unknown) => err,
      );
    await held;
    await within(server.close({ graceMs: 100 }), 5_000, "server.close");
    const err = await call;
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.kind, "cancelled");
    assert.deepEqual(aborted, ["cancelled"]);
    assert.equal(http.server.listening, false);
    await client.close();
  });

  it("a handler sees ctx.signal abort when its HTTP client disconnects", async () => {
    const { server, aborted, held } = makeServer();
    const http = await listenHttp(server);
    const client = connectHttp(http.url);
    const call = proxy(client, P)
      .hold()
      .catch(() => "client gave up");
    await held;
    await client.close(); // aborts its request in flight
    await call;
    await untilAborted(aborted);
    assert.deepEqual(aborted, ["cancelled"]);
    await http.close();
  });

  it("a call in flight when its listener closes finishes within the grace and is answered", async () => {
    const { server } = makeServer();
    const tcp = await listenSocket(server, { port: 0 });
    const addr = tcp.address as { host: string; port: number };
    const client = await connectTcp(addr.host, addr.port);
    const call = proxy(client, P).sleep({ ms: 200n });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the call is running
    await within(tcp.close({ graceMs: 5_000 }), 10_000, "close with a call in flight");
    assert.equal(await call, "slept");
    await client.close().catch(() => {});
  });

  it("an idle exchange still open when the grace runs out ends with a cancelled error, and close resolves", async () => {
    const { server } = makeServer();
    const unix = await listenSocket(server, { path: sockPath() });
    const client = await connectUnix((unix.address as { path: string }).path);
    const session = await proxy(client, P).echo();
    assert.deepEqual(await session.exchange([{ x: 1 }]), [{ x: 1 }]);
    // The exchange now waits for its next input, which never comes.
    await within(unix.close({ graceMs: 300 }), 5_000, "close with an idle exchange");
    await assert.rejects(session.exchange([{ x: 2 }]), (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      return true;
    });
    await client.close().catch(() => {});
  });

  it("server.close() closes every listener, and a held call is aborted with cancelled after the grace", async () => {
    const { server, aborted, held } = makeServer();
    const unix = await listenSocket(server, { path: sockPath() });
    const client = await connectUnix((unix.address as { path: string }).path);
    const call = proxy(client, P).hold();
    await held;
    await within(server.close({ graceMs: 100 }), 5_000, "server.close");
    await assert.rejects(call, (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      assert.equal(err.kind, "cancelled");
      return true;
    });
    assert.deepEqual(aborted, ["cancelled"]);
    await client.close().catch(() => {});
  });

  for (const transport of ["unix", "tcp", "ws"] as const) {
    it(`a handler sees ctx.signal abort when its ${transport} client disconnects`, async () => {
      const { server, aborted, held } = makeServer();
      let client: RpcClient;
      let close: () => Promise<void>;
      if (transport === "ws") {
        const ws = await listenWebSocket(server);
        client = await connectWebSocketClient(ws.url);
        close = () => ws.close();
      } else {
        const listener = await listenSocket(server, transport === "unix" ? { path: sockPath() } : { port: 0 });
        const addr = listener.address as { path: string } & { host: string; port: number };
        client = transport === "unix" ? await connectUnix(addr.path) : await connectTcp(addr.host, addr.port);
        close = () => listener.close();
      }
      const call = proxy(client, P)
        .hold()
        .catch(() => "client gave up");
      await held;
      await client.close();
      await call;
      await untilAborted(aborted);
      assert.deepEqual(aborted, ["cancelled"]);
      await close();
    });
  }
});

describe("connections the peer leaves half-open", () => {
  it("are dropped closeLingerMs after the server ended them, not held forever", async () => {
    const { createConnection } = await import("node:net");
    const { server } = makeServer();
    const listener = await listenSocket(server, { path: sockPath(), closeLingerMs: 100 });
    const sock = createConnection({ path: (listener.address as { path: string }).path, allowHalfOpen: true });
    sock.on("error", () => {});
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    const ended = new Promise<void>((resolve) => sock.once("end", () => resolve()));
    sock.resume();
    sock.write(Buffer.from("not vgi-rpc at all, but long enough to frame"));
    await within(ended, 5_000, "the server's end of the connection");
    // Our side stays open (half-open). Once the server dropped its socket after the linger, a
    // write of ours fails (EPIPE) and closes our socket; were it held open, the write would sit there.
    await new Promise((resolve) => setTimeout(resolve, 500));
    sock.write(Buffer.from("still there?"));
    await within(closed, 5_000, "our socket closed by the failed write");
    await listener.close();
  });
});
