/**
 * The HTTP client (`connectHttp`) end to end over real sockets (port 0): against our own server
 * in process (unary, producer with header and logs, exchange, errors mid-stream, cancel, HTTP-level
 * failures), against the Python reference's HTTP worker (`vgi-rpc-conformance --http 0 --describe`)
 * and against our conformance worker (`quiver-conformance --http`), each through
 * `proxy(client, ConformanceService)` and `describe`.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { describeProtocol, listProtocols } from "../../src/client/describe.js";
import { paramsBatch, proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import {
  authenticated,
  bearerAuthenticateStatic,
  connectHttp,
  type HttpClient,
  HttpError,
  type HttpListener,
  listenHttp,
} from "../../src/transports/http/index.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import type { LogRecord } from "../../src/wire/messages.js";
import { ourWorker, referenceWorker, within } from "../client/helpers.js";
import { breakPipelineAfterTwo, CASES, type CaseContext } from "../client/reference-cases.js";

const P = "quiver.HttpClientTest.v1";
let cancelled = 0;

const Proto = defineProtocol(
  P,
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    fail: unary({ message: t.utf8() }, t.utf8()),
    count: producer(
      { n: t.int64() },
      { output: { i: t.int64() }, header: { total: t.int64() }, state: { i: t.int64(), n: t.int64() } },
    ),
    boom: producer(
      { after: t.int64() },
      { output: { i: t.int64() }, header: null, state: { i: t.int64(), after: t.int64() } },
    ),
    ticker: producer({}, { output: { i: t.int64() }, header: null, state: { i: t.int64() } }),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64(), turns: t.int64() } },
    ),
  },
);

function makeServer() {
  return createServer({
    protocols: [
      bind(Proto, {
        add: ({ a, b }, ctx) => {
          ctx.clientLog("INFO", "adding", { a });
          return a + b;
        },
        fail: ({ message }) => {
          throw new ValueError(message);
        },
        count: {
          init: ({ n }, ctx) => {
            ctx.clientLog("INFO", "init", {});
            return { header: { total: n }, state: { i: 0n, n } };
          },
          produce: (s, out) => {
            if (s.i >= s.n) return out.finish();
            out.clientLog("DEBUG", `row ${s.i}`);
            out.emit([{ i: s.i }]);
            s.i += 1n;
          },
        },
        boom: {
          init: ({ after }) => ({ state: { i: 0n, after } }),
          produce: (s, out) => {
            if (s.i >= s.after) throw new RpcError(`boom at ${s.after}`, { type: "RuntimeError", code: "INTERNAL" });
            out.emit([{ i: s.i }]);
            s.i += 1n;
          },
        },
        ticker: {
          init: () => ({ state: { i: 0n } }),
          produce: (s, out) => {
            out.emit([{ i: s.i }]);
            s.i += 1n;
          },
          onCancel: () => {
            cancelled += 1;
          },
        },
        scale: {
          init: ({ factor }) => ({ state: { factor, turns: 0n } }),
          process: (s, input, out) => {
            s.turns += 1n;
            if (s.turns === 3n) throw new ValueError("third turn refused");
            out.emitColumns({ x: input.column("x").map((x) => x * s.factor) });
          },
          onCancel: () => {
            cancelled += 10;
          },
        },
      }),
    ],
  });
}

async function rejectsRpc(p: Promise<unknown>, check: (e: RpcError) => void): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RpcError, `expected RpcError, got ${String(e)}`);
    check(e);
    return true;
  });
}

describe("HTTP client → our server in process", () => {
  let http: HttpListener;
  let authed: HttpListener;
  let client: HttpClient;
  let logs: LogRecord[] = [];
  before(async () => {
    http = await listenHttp(makeServer(), { port: 0, prefix: "/vgi" });
    authed = await listenHttp(makeServer(), {
      port: 0,
      authenticate: bearerAuthenticateStatic({ tokens: { s3cret: authenticated("bearer", "alice") } }),
      maxRequestBytes: 4096,
    });
    client = connectHttp(http.url, { prefix: "/vgi", onLog: (r) => logs.push(r), timeoutMs: 5_000 });
  });
  after(async () => {
    await client.close();
    await http.close();
    await authed.close();
  });

  test("unary with logs", async () => {
    logs = [];
    const svc = proxy(client, Proto);
    assert.equal(await svc.add({ a: 1.5, b: 2 }), 3.5);
    assert.deepEqual(
      logs.map((l) => [l.level, l.message, l.extra.a]),
      [["INFO", "adding", 1.5]],
    );
  });

  test("server error keeps type, message and code", async () => {
    await rejectsRpc(proxy(client, Proto).fail({ message: "nope" }), (e) => {
      assert.equal(e.type, "ValueError");
      assert.equal(e.message, "nope");
    });
  });

  test("producer with header and logs", async () => {
    logs = [];
    const s = await proxy(client, Proto).count({ n: 3n });
    assert.deepEqual(s.header, { total: 3n });
    assert.deepEqual(await s.toArray(), [{ i: 0n }, { i: 1n }, { i: 2n }]);
    assert.deepEqual(
      logs.map((l) => l.message),
      ["init", "row 0", "row 1", "row 2"],
    );
    assert.equal(s.raw.ended, true);
    const empty = await proxy(client, Proto).count({ n: 0n });
    assert.deepEqual(await empty.toArray(), []);
  });

  test("producer error mid-stream ends the stream", async () => {
    const seen: bigint[] = [];
    const s = await proxy(client, Proto).boom({ after: 2n });
    await rejectsRpc(
      (async () => {
        for await (const r of s) seen.push(r.i);
      })(),
      (e) => {
        assert.equal(e.type, "RuntimeError");
        assert.equal(e.message, "boom at 2");
        assert.equal(e.code, "INTERNAL");
      },
    );
    assert.deepEqual(seen, [0n, 1n]);
    assert.equal(s.raw.ended, true);
  });

  test("exchange: state across turns, error on the third ends it", async () => {
    const s = await proxy(client, Proto).scale({ factor: 2 });
    assert.deepEqual(await s.exchange([{ x: 1 }, { x: 2.5 }]), [{ x: 2 }, { x: 5 }]);
    assert.deepEqual(await s.exchange([]), []);
    await rejectsRpc(s.exchange([{ x: 1 }]), (e) => assert.equal(e.type, "ValueError"));
    await assert.rejects(s.exchange([{ x: 1 }]), /closed or cancelled/);
  });

  test("call, stream and exchange work without a proxy, typed as on RpcClient", async () => {
    const sum: number = await client.call(Proto, "add", { a: 1, b: 2 });
    assert.equal(sum, 3);
    await rejectsRpc(client.call(Proto, "fail", { message: "direct" }), (e) => assert.equal(e.message, "direct"));
    const s = await client.stream(Proto, "count", { n: 2n });
    const total: bigint = s.header.total;
    assert.equal(total, 2n);
    assert.deepEqual(await s.toArray(), [{ i: 0n }, { i: 1n }]);
    const x = await client.exchange(Proto, "scale", { factor: 3 });
    const rows: { x: number }[] = await x.exchange([{ x: 2 }]);
    assert.deepEqual(rows, [{ x: 6 }]);
    await x.close();
    const before = cancelled;
    const ticks = await client.stream(Proto, "ticker", {}, { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    assert.ok(ticks instanceof Error, "an aborted signal refuses the stream before it opens");
    assert.equal(cancelled, before);
  });

  test("cancel: producer break and exchange cancel() reach onCancel", async () => {
    cancelled = 0;
    for await (const r of await proxy(client, Proto).ticker()) if (r.i === 2n) break;
    assert.equal(cancelled, 1);
    const ex = await proxy(client, Proto).scale({ factor: 1 });
    await ex.exchange([{ x: 1 }]);
    await ex.cancel();
    await ex.cancel();
    assert.equal(cancelled, 11);
    await assert.rejects(ex.exchange([{ x: 1 }]), /closed or cancelled/);
  });

  test("AbortSignal cancels a producer", async () => {
    cancelled = 0;
    const ac = new AbortController();
    await assert.rejects(
      (async () => {
        for await (const r of await proxy(client, Proto).ticker({}, { signal: ac.signal })) {
          if (r.i === 1n) ac.abort(new Error("stop"));
        }
      })(),
      /stop/,
    );
    assert.equal(cancelled, 1);
  });

  test("describe and listProtocols", async () => {
    const listing = await listProtocols(client);
    assert.ok(listing.protocols.some((p) => p.name === P));
    const d = await describeProtocol(client, P);
    assert.equal(d.protocolName, P);
    assert.equal(d.methods.get("count")!.hasHeader, true);
  });

  test("unknown protocol: 404 with the server's error batch", async () => {
    await rejectsRpc(client.unaryBatch({ protocol: "no.Such.v1", method: "x" }, paramsBatch("x", {}, {})), (e) =>
      assert.equal(e.kind, "protocol_not_supported"),
    );
  });

  test("wrong prefix: 404 without Arrow is an HttpError", async () => {
    const bad = connectHttp(http.url, { prefix: "/elsewhere" });
    await rejectsRpc(proxy(bad, Proto).add({ a: 1, b: 1 }), (e) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 404);
      assert.equal(e.code, "NOT_FOUND");
      assert.equal(e.kind, "protocol_error");
    });
  });

  test("401: UNAUTHENTICATED with the auth reason; a good token passes", async () => {
    await rejectsRpc(proxy(connectHttp(authed.url), Proto).add({ a: 1, b: 1 }), (e) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 401);
      assert.equal(e.type, "AuthenticationError");
      assert.equal(e.code, "UNAUTHENTICATED");
      assert.equal(e.authReason, "missing_credential");
    });
    const good = connectHttp(authed.url, { headers: { Authorization: "Bearer s3cret" } });
    assert.equal(await proxy(good, Proto).add({ a: 1, b: 1 }), 2);
    const s = await proxy(good, Proto).count({ n: 2n });
    assert.equal((await s.toArray()).length, 2);
  });

  test("a caller's own Content-Length is replaced by the body's, and its Host header is sent as given", async () => {
    // A server that keeps each request's raw headers and body size, and refuses it.
    const seen: { headers: string[]; bytes: number }[] = [];
    const raw = createHttpServer((req, res) => {
      let bytes = 0;
      req.on("data", (d: Buffer) => {
        bytes += d.byteLength;
      });
      req.on("end", () => {
        seen.push({ headers: req.rawHeaders, bytes });
        res.writeHead(500, { "content-type": "text/plain" }).end("no");
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
      const client = connectHttp(url, { headers: { "Content-Length": "3", Host: "example.test", "X-Custom": "yes" } });
      await assert.rejects(proxy(client, Proto).add({ a: 1, b: 1 }));
      await client.close();
      const { headers, bytes } = seen[0]!;
      const named = (name: string) =>
        headers.flatMap((h, i) => (i % 2 === 0 && h.toLowerCase() === name ? [headers[i + 1]!] : []));
      assert.ok(bytes > 3);
      assert.deepEqual(named("content-length"), [String(bytes)]);
      assert.deepEqual(named("host"), ["example.test"]);
      assert.deepEqual(named("x-custom"), ["yes"]);
    } finally {
      raw.close();
    }
  });

  test("413: a body over the server's cap is message_too_large", async () => {
    const good = connectHttp(authed.url, { headers: { Authorization: "Bearer s3cret" } });
    await rejectsRpc(proxy(good, Proto).fail({ message: "x".repeat(8192) }), (e) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 413);
      assert.equal(e.kind, "message_too_large");
      assert.equal(e.code, "RESOURCE_EXHAUSTED");
    });
  });

  test("network failure and timeout are transport_error", async () => {
    const dead = connectHttp("http://127.0.0.1:1", { timeoutMs: 2_000 });
    await rejectsRpc(proxy(dead, Proto).add({ a: 1, b: 1 }), (e) => {
      assert.equal(e.kind, "transport_error");
      assert.equal(e.code, "UNAVAILABLE");
    });
    const slow = connectHttp(http.url, {
      prefix: "/vgi",
      timeoutMs: 100,
      fetch: (input, init) =>
        new Promise<Response>((resolve, reject) => {
          const timer = setTimeout(() => resolve(fetch(input, init)), 1_000);
          init?.signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(init.signal?.reason);
          });
        }),
    });
    await rejectsRpc(proxy(slow, Proto).add({ a: 1, b: 1 }), (e) => {
      assert.equal(e.kind, "transport_error");
      assert.equal(e.code, "DEADLINE_EXCEEDED");
    });
  });

  test("requests in flight together each have their own deadline, and close aborts those left", async () => {
    // Each request is held back by the next of `delays` (Infinity: never sent on).
    const delays: number[] = [];
    const holding = (timeoutMs: number) =>
      connectHttp(http.url, {
        prefix: "/vgi",
        timeoutMs,
        fetch: (input, init) =>
          new Promise<Response>((resolve, reject) => {
            const ms = delays.shift() ?? 0;
            const timer = Number.isFinite(ms) ? setTimeout(() => resolve(fetch(input, init)), ms) : undefined;
            init?.signal?.addEventListener("abort", () => {
              clearTimeout(timer);
              reject(init.signal?.reason);
            });
          }),
      });
    const held = holding(400);
    const svc = proxy(held, Proto);
    delays.push(250, Number.POSITIVE_INFINITY, 250);
    const first = svc.add({ a: 1, b: 2 });
    const stalled = svc.add({ a: 0, b: 0 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Answered 450 ms after the first request started: past the first's deadline, within its own.
    const second = svc.add({ a: 2, b: 3 });
    assert.equal(await first, 3);
    await rejectsRpc(stalled, (e) => assert.equal(e.code, "DEADLINE_EXCEEDED"));
    assert.equal(await second, 5);
    // Requests that each finish in time go on however long they run back to back.
    delays.push(150, 150, 150, 150);
    for (let i = 0; i < 4; i++) assert.equal(await svc.add({ a: i, b: 1 }), i + 1);
    await held.close();
    // Without a timeout, only close ends requests that never get an answer.
    const unbounded = holding(0);
    delays.push(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
    const left = [proxy(unbounded, Proto).add({ a: 1, b: 1 }), proxy(unbounded, Proto).add({ a: 2, b: 2 })];
    await new Promise((resolve) => setTimeout(resolve, 50));
    await unbounded.close();
    for (const p of left) {
      await rejectsRpc(within(p, 5_000, "a request in flight at close"), (e) => {
        assert.equal(e.code, "UNAVAILABLE");
        assert.equal(e.message, "the client is closed");
      });
    }
  });

  test("gzip responses are decoded by fetch; custom headers and the response budget are sent", async () => {
    const seen: { encoding: string | null; budget: string | null; custom: string | null }[] = [];
    const c = connectHttp(http.url, {
      prefix: "/vgi",
      headers: { "X-Custom": "yes" },
      maxResponseBytes: 65536,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        const h = new Headers(init?.headers);
        seen.push({
          encoding: res.headers.get("content-encoding"),
          budget: h.get("VGI-Accept-Max-Response-Bytes"),
          custom: h.get("X-Custom"),
        });
        return res;
      },
    });
    assert.equal(await proxy(c, Proto).add({ a: 2, b: 3 }), 5);
    assert.deepEqual(seen, [{ encoding: "gzip", budget: "65536", custom: "yes" }]);
  });

  test("a response over maxResponseBytes is refused client-side", async () => {
    const c = connectHttp(http.url, { prefix: "/vgi", maxResponseBytes: 65536 });
    const big = "y".repeat(70_000);
    const fetchBig: typeof fetch = async () =>
      new Response(big, { status: 200, headers: { "Content-Type": "application/vnd.apache.arrow.stream" } });
    const capped = connectHttp(http.url, { prefix: "/vgi", maxResponseBytes: 65536, fetch: fetchBig });
    await rejectsRpc(proxy(capped, Proto).add({ a: 1, b: 1 }), (e) => {
      assert.equal(e.type, "ResponseTooLargeError");
      assert.equal(e.kind, "message_too_large");
    });
    assert.equal(await proxy(c, Proto).add({ a: 1, b: 1 }), 2);
  });

  test("without a fetch option, Node sends through node:http: custom headers and budget, no Accept-Encoding", async () => {
    const seen: Record<string, string | string[] | undefined>[] = [];
    const echo = createHttpServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on("end", () => {
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ reason: "unauthorized", detail: "seen" }));
      });
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const { port } = echo.address() as AddressInfo;
    try {
      const c = connectHttp(`http://127.0.0.1:${port}`, { headers: { "X-Custom": "yes" }, maxResponseBytes: 65536 });
      await rejectsRpc(proxy(c, Proto).add({ a: 1, b: 1 }), (e) => {
        assert.ok(e instanceof HttpError);
        assert.equal(e.status, 401);
        assert.equal(e.message, "seen");
      });
      await c.close();
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!["x-custom"], "yes");
      assert.equal(seen[0]!["vgi-accept-max-response-bytes"], "65536");
      assert.equal(seen[0]!["content-type"], "application/vnd.apache.arrow.stream");
      assert.equal(seen[0]!["accept-encoding"], undefined);
    } finally {
      echo.closeAllConnections();
      await new Promise((resolve) => echo.close(resolve));
    }
  });

  test("over node:http, a stalled answer times out, close aborts a call in flight, and the budget holds", async () => {
    const stall = createHttpServer((req, res) => {
      req.resume();
      if (req.url?.startsWith("/big")) {
        res.writeHead(200, { "Content-Type": "application/vnd.apache.arrow.stream" });
        res.end(Buffer.alloc(70_000, 1));
      }
      // Anything else never answers.
    });
    await new Promise<void>((resolve) => stall.listen(0, "127.0.0.1", resolve));
    const { port } = stall.address() as AddressInfo;
    try {
      const slow = connectHttp(`http://127.0.0.1:${port}`, { timeoutMs: 100 });
      await rejectsRpc(proxy(slow, Proto).add({ a: 1, b: 1 }), (e) => {
        assert.equal(e.kind, "transport_error");
        assert.equal(e.code, "DEADLINE_EXCEEDED");
      });
      const closing = connectHttp(`http://127.0.0.1:${port}`);
      const pending = proxy(closing, Proto).add({ a: 1, b: 1 });
      setTimeout(() => void closing.close(), 50);
      await rejectsRpc(pending, (e) => {
        assert.equal(e.kind, "transport_error");
        assert.equal(e.message, "the client is closed");
      });
      const capped = connectHttp(`http://127.0.0.1:${port}`, {
        prefix: "/big",
        maxResponseBytes: 65536,
        timeoutMs: 5000,
      });
      await rejectsRpc(capped.unaryBatch({ protocol: "", method: "" }, paramsBatch("x", {}, {})), (e) => {
        assert.equal(e.type, "ResponseTooLargeError");
        assert.equal(e.kind, "message_too_large");
      });
      await slow.close();
      await capped.close();
    } finally {
      stall.closeAllConnections();
      await new Promise((resolve) => stall.close(resolve));
    }
  });

  test("an answer read as it arrives: cut off mid-body is a transport error, stalled mid-body a timeout, bytes that are not Arrow a protocol error, and the client goes on", async () => {
    // A 1 MiB answer, replayed whole, or cut a quarter into its body.
    const v = Array.from({ length: 131_072 }, (_, i) => i);
    const good = concatBytes(encodeStream(schemaOf({ v: t.float64() }), [batchFromColumns({ v: t.float64() }, { v })]));
    const partial = good.subarray(0, good.byteLength - 3 * 256 * 1024);
    let mode = "cut";
    const server = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { "Content-Type": "application/vnd.apache.arrow.stream" });
      if (mode === "cut") {
        res.write(partial);
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (mode === "stall") res.write(partial);
      else if (mode === "garbage") res.end("<html>this is not arrow</html>");
      else res.end(good);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const c = connectHttp(`http://127.0.0.1:${port}`, { timeoutMs: 5000 });
    const call = () => c.unaryBatch({ protocol: P, method: "add" }, paramsBatch("add", {}, {}));
    try {
      await rejectsRpc(call(), (e) => {
        assert.equal(e.kind, "transport_error");
        assert.equal(e.code, "UNAVAILABLE");
      });
      mode = "stall";
      const impatient = connectHttp(`http://127.0.0.1:${port}`, { timeoutMs: 200 });
      await rejectsRpc(impatient.unaryBatch({ protocol: P, method: "add" }, paramsBatch("add", {}, {})), (e) => {
        assert.equal(e.kind, "transport_error");
        assert.equal(e.code, "DEADLINE_EXCEEDED");
      });
      await impatient.close();
      mode = "garbage";
      await rejectsRpc(call(), (e) => {
        assert.equal(e.kind, "protocol_error");
        assert.match(e.message, /not a valid Arrow IPC stream \(first 200 bytes: "<html>this is not arrow<\/html>"\)/);
      });
      mode = "good";
      const out = await call();
      assert.deepEqual(
        out.getChild("v")!.toArray(),
        Float64Array.from({ length: 131_072 }, (_, i) => i),
      );
    } finally {
      await c.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("a closed client refuses calls", async () => {
    const c = connectHttp(http.url, { prefix: "/vgi" });
    await c.close();
    await rejectsRpc(proxy(c, Proto).add({ a: 1, b: 1 }), (e) => assert.equal(e.kind, "transport_error"));
  });
});

// ---------------------------------------------------------------------------------------------
// Conformance workers over HTTP

interface HttpWorker {
  readonly child: ChildProcess;
  readonly port: number;
  stop(): Promise<void>;
}

async function spawnHttpWorker(cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<HttpWorker> {
  const child = spawn(cmd, [...args], { stdio: ["ignore", "pipe", "ignore"] });
  const kill = setTimeout(() => child.kill("SIGKILL"), 120_000);
  kill.unref();
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`worker did not print PORT:<n> within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString("utf8");
      const m = /^PORT:(\d+)\s*$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before printing its port`));
    });
  });
  return {
    child,
    port,
    async stop() {
      clearTimeout(kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The brief's set, spelled out (the shared interop cases follow). */
const FOCUSED: readonly { name: string; run(client: HttpClient, logs: LogRecord[]): Promise<void> }[] = [
  {
    name: "echoes of several types",
    async run(client) {
      const svc = proxy(client, ConformanceService);
      assert.equal(await svc.echo_string({ value: "héllo 𝄞" }), "héllo 𝄞");
      assert.equal(await svc.echo_int({ value: -(2n ** 63n) }), -(2n ** 63n));
      assert.equal(await svc.echo_float({ value: 0.25 }), 0.25);
      assert.equal(await svc.echo_bool({ value: false }), false);
      assert.deepEqual(await svc.echo_bytes({ data: new Uint8Array([0, 255]) }), new Uint8Array([0, 255]));
      assert.deepEqual(await svc.echo_list({ values: ["a", "b"] }), ["a", "b"]);
      assert.equal(await svc.echo_optional_string({ value: null }), null);
      assert.equal(await svc.echo_enum({ status: "ACTIVE" }), "ACTIVE");
    },
  },
  {
    name: "produce_n",
    async run(client) {
      const rows = await (await proxy(client, ConformanceService).produce_n({ count: 4n })).toArray();
      assert.deepEqual(
        rows.map((r) => r.index),
        [0n, 1n, 2n, 3n],
      );
    },
  },
  {
    name: "produce_n with prefetch (ignored: each HTTP turn chains on the previous one's token; nothing produced ahead)",
    async run(client) {
      const svc = proxy(client, ConformanceService);
      const rows = await (await svc.produce_n({ count: 4n }, { prefetch: 8 })).toArray();
      assert.deepEqual(
        rows.map((r) => r.index),
        [0n, 1n, 2n, 3n],
      );
      // Nothing is produced ahead: a break after two batches leaves exactly two produce calls.
      await svc.reset_cancel_probe();
      for await (const r of await svc.cancellable_producer({}, { prefetch: 4 })) if (r.index === 1n) break;
      const [produced, , cancels] = await svc.cancel_probe_counters();
      assert.equal(produced, 2n);
      assert.equal(cancels, 1n);
    },
  },
  {
    name: "exchange pipeline sends one input at a time; a break cancels the exchange",
    async run(client) {
      const { exchanged, cancels } = await breakPipelineAfterTwo(proxy(client, ConformanceService));
      assert.equal(exchanged, 2n);
      assert.equal(cancels, 1n);
    },
  },
  {
    name: "produce_with_header",
    async run(client) {
      const s = await proxy(client, ConformanceService).produce_with_header({ count: 3n });
      assert.deepEqual(s.header, { total_expected: 3n, description: "producing 3 batches" });
      assert.equal((await s.toArray()).length, 3);
    },
  },
  {
    name: "exchange_scale",
    async run(client) {
      const s = await proxy(client, ConformanceService).exchange_scale({ factor: 3 });
      assert.deepEqual(await s.exchange([{ value: 2 }]), [{ value: 6 }]);
      assert.deepEqual(await s.exchange([{ value: -1 }, { value: null }]), [{ value: -3 }, { value: null }]);
      await s.close();
    },
  },
  {
    name: "exchange_with_header",
    async run(client) {
      const s = await proxy(client, ConformanceService).exchange_with_header({ factor: 2 });
      assert.equal(s.header.total_expected, 0n);
      assert.deepEqual(await s.exchange([{ value: 5 }]), [{ value: 10 }]);
      await s.close();
    },
  },
  {
    name: "an error (ValueError) keeps type and message",
    async run(client) {
      await rejectsRpc(proxy(client, ConformanceService).raise_value_error({ message: "bad value" }), (e) => {
        assert.equal(e.type, "ValueError");
        assert.equal(e.message, "bad value");
      });
    },
  },
  {
    name: "describeProtocol and listProtocols",
    async run(client) {
      const listing = await listProtocols(client);
      assert.ok(listing.protocols.some((p) => p.name === "ConformanceService"));
      const d = await describeProtocol(client);
      assert.equal(d.protocolName, "ConformanceService");
      assert.equal(d.methods.size, Object.keys(ConformanceService.methods).length);
    },
  },
];

const tally = new Map<string, { passed: number; total: number }>();

function workerSuite(target: string, argv: () => [string, string[]]): void {
  describe(`HTTP client → ${target}`, () => {
    let worker: HttpWorker | undefined;
    let client: HttpClient;
    let logs: LogRecord[] = [];
    const count = { passed: 0, total: 0 };
    tally.set(target, count);
    before(async () => {
      const [cmd, args] = argv();
      worker = await spawnHttpWorker(cmd, args);
      client = connectHttp(`http://127.0.0.1:${worker.port}`, { onLog: (r) => logs.push(r), timeoutMs: 10_000 });
    });
    after(async () => {
      await client?.close();
      await worker?.stop();
    });
    const run = (name: string, fn: () => Promise<void>) =>
      test(name, async () => {
        count.total++;
        logs = [];
        await within(fn(), 20_000, name);
        count.passed++;
      });
    for (const c of FOCUSED) run(c.name, () => c.run(client, logs));
    for (const c of CASES) {
      run(`interop: ${c.name}`, () => {
        const ctx: CaseContext = {
          // The cases use `unaryBatch` and `describe` only, which HttpClient has too.
          client: client as unknown as RpcClient,
          svc: proxy(client, ConformanceService),
          get logs() {
            return logs;
          },
        };
        return c.run(ctx);
      });
    }
  });
}

workerSuite("the reference worker (vgi-rpc-conformance --http)", () => referenceWorker("--http", "0", "--describe"));
workerSuite("our worker (quiver-conformance --http)", () => ourWorker("--http"));

after(() => {
  for (const [target, c] of tally) process.stdout.write(`# HTTP client → ${target}: ${c.passed}/${c.total} passed\n`);
});
