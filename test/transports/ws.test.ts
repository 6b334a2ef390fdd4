/** The WebSocket transport: our client and server over real sockets on port 0. */
import assert from "node:assert/strict";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createWebSocketStream, WebSocket, WebSocketServer } from "ws";
import { AuthFailure, authenticated } from "../../src/auth/types.js";
import { RpcClient } from "../../src/client/client.js";
import type { ClientTransport } from "../../src/client/transport.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { createHttpHandler, listenHttp } from "../../src/transports/http/server.js";
import { pipeTransport } from "../../src/transports/stdio/client.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import {
  attachWebSocket,
  listenWebSocket,
  type WebSocketListener,
  type WebSocketListenOptions,
} from "../../src/transports/ws/server.js";

const Svc = defineProtocol(
  "test.Ws.v1",
  {},
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    whoami: unary({}, t.utf8()),
    echo: unary({ data: t.binary() }, t.int64()),
    big: unary({ size: t.int64() }, t.binary()),
    cookie: unary({}, t.utf8()),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
    forever: producer({ size: t.int64() }, { output: { blob: t.binary() }, state: { size: t.int64() } }),
  },
);

let produced = 0;
let bigCalls = 0;

function makeServer(): RpcServer {
  return createServer({
    protocols: [
      bind(Svc, {
        add: ({ a, b }) => a + b,
        whoami: (_p, ctx) =>
          JSON.stringify({
            principal: ctx.auth.principal,
            transport: ctx.transport,
            ...ctx.transportMetadata,
          }),
        echo: ({ data }) => BigInt(data.byteLength),
        big: ({ size }) => {
          bigCalls++;
          return new Uint8Array(Number(size));
        },
        cookie: (_p, ctx) => {
          ctx.setCookie("session", "abc");
          return "set";
        },
        count: {
          init: ({ n }) => ({ state: { i: 0n, n } }),
          produce: (s, out) => {
            if (s.i < s.n) out.emit([{ i: s.i++ }]);
            else out.finish();
          },
        },
        forever: {
          init: ({ size }) => ({ state: { size } }),
          produce: (s, out) => {
            produced++;
            out.emit([{ blob: new Uint8Array(Number(s.size)) }]);
          },
        },
      }),
    ],
  });
}

async function withServer(
  opts: WebSocketListenOptions,
  fn: (listener: WebSocketListener, server: RpcServer) => Promise<void>,
): Promise<void> {
  const server = makeServer();
  const listener = await listenWebSocket(server, opts);
  try {
    await fn(listener, server);
  } finally {
    await within(listener.close(), 5000, "server close");
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A client over a raw `ws` socket, so a test can make it vanish (`terminate`) or stop reading. */
async function rawClient(
  url: string,
  opts: { autoPong?: boolean } = {},
): Promise<{ ws: WebSocket; client: RpcClient }> {
  const ws = new WebSocket(url, { autoPong: opts.autoPong ?? true });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const duplex = createWebSocketStream(ws);
  duplex.on("error", () => {});
  return { ws, client: new RpcClient(pipeTransport(duplex, duplex, "ws"), { timeoutMs: 5000 }) };
}

/** A client over a `ws` socket whose reading the test pauses at the socket (`ws.pause()`). */
async function pausableClient(url: string): Promise<{ ws: WebSocket; client: RpcClient }> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const queue: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  ws.on("message", (data: Buffer) => {
    queue.push(data);
    wake?.();
  });
  ws.on("close", () => {
    ended = true;
    wake?.();
  });
  const input = (async function* () {
    for (;;) {
      const c = queue.shift();
      if (c !== undefined) yield c;
      else if (ended) return;
      else await new Promise<void>((r) => (wake = r));
    }
  })();
  const transport: ClientTransport = {
    name: "ws",
    input,
    write: async (chunks) => {
      for (const c of chunks) ws.send(c);
    },
    close: () => ws.close(),
  };
  return { ws, client: new RpcClient(transport, { timeoutMs: 5000 }) };
}

/** Sends an upgrade request by hand; resolves to the HTTP status and headers of the answer. */
function upgrade(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
    });
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("error", reject);
    req.end();
  });
}

const bearer = (req: { headers: Headers }) => {
  const h = req.headers.get("authorization");
  if (h === null) throw new AuthFailure("missing_credential", "no token");
  if (h !== "Bearer good") throw new AuthFailure("invalid_credential", "bad token");
  return authenticated("test", "alice");
};

test("an authenticated upgrade reaches the handler with its principal, remote_addr and user_agent", async () => {
  await withServer({ authenticate: bearer }, async (listener) => {
    const client = await connectWebSocketClient(listener.url, {
      headers: { Authorization: "Bearer good", "User-Agent": "quiver-ws-test/1" },
    });
    const who = JSON.parse(await proxy(client, Svc).whoami());
    assert.equal(who.principal, "alice");
    assert.equal(who.transport, "ws");
    assert.equal(who.user_agent, "quiver-ws-test/1");
    assert.match(who.remote_addr, /127\.0\.0\.1/);
    assert.equal(await proxy(client, Svc).add({ a: 1, b: 2 }), 3);
    await client.close();
  });
});

test("a refused upgrade is answered 401 with the reason, and no socket is opened", async () => {
  await withServer({ authenticate: bearer }, async (listener) => {
    const raw = await upgrade(listener.port, "/ws", { Authorization: "Bearer bad" });
    assert.equal(raw.status, 401);
    assert.equal(raw.headers["vgi-auth-reason"], "invalid_credential");
    await assert.rejects(connectWebSocketClient(listener.url), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.kind, "transport_error");
      assert.equal(e.code, "UNAUTHENTICATED");
      assert.match(e.message, /401 \(missing_credential\)/);
      return true;
    });
    assert.equal(listener.connections, 0);
    assert.equal((await upgrade(listener.port, "/elsewhere")).status, 404);
  });
});

test("a client that vanishes mid-stream is cleaned up and the server keeps serving others", async () => {
  await withServer({}, async (listener, server) => {
    const { ws, client } = await rawClient(listener.url);
    const stream = await proxy(client, Svc).forever({ size: 1024n });
    let rows = 0;
    for await (const _ of stream) if (++rows === 5) break;
    const other = await connectWebSocketClient(listener.url);
    await until(() => listener.connections === 2, 2000, "two connections");
    ws.terminate();
    await until(() => listener.connections === 1, 3000, "vanished connection removed");
    assert.equal(await proxy(other, Svc).add({ a: 2, b: 3 }), 5);
    assert.deepEqual(
      (await (await proxy(other, Svc).count({ n: 3n })).toArray()).map((r) => r.i),
      [0n, 1n, 2n],
    );
    await other.close();
    await within(server.drain(), 2000, "no call left running");
  });
});

test("a message over maxPayload closes the connection with 1009 and a typed error; others are unaffected", async () => {
  await withServer({ maxPayload: 64 * 1024 }, async (listener) => {
    const { ws } = await rawClient(listener.url);
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.send(new Uint8Array(100 * 1024));
    assert.equal(await within(closed, 3000, "close"), 1009);

    const client = await connectWebSocketClient(listener.url, { maxSendBytes: 1024 * 1024 });
    await assert.rejects(proxy(client, Svc).echo({ data: new Uint8Array(256 * 1024) }), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.kind, "transport_error");
      const cause = e.cause as RpcError;
      assert.ok(cause instanceof RpcError);
      assert.equal(cause.kind, "message_too_large");
      assert.equal(cause.code, "RESOURCE_EXHAUSTED");
      assert.equal(cause.details[0]?.code, 1009);
      return true;
    });
    // The default client splits its writes into messages the server accepts.
    const ok = await connectWebSocketClient(listener.url, { maxSendBytes: 16 * 1024 });
    assert.equal(await proxy(ok, Svc).echo({ data: new Uint8Array(256 * 1024) }), 256n * 1024n);
    await ok.close();
    await client.close();
  });
});

test("100 concurrent connections each run a stream to the end", async () => {
  await withServer({}, async (listener) => {
    const one = async (k: number) => {
      const client = await connectWebSocketClient(listener.url);
      const rows = await (await proxy(client, Svc).count({ n: BigInt(10 + (k % 7)) })).toArray();
      assert.equal(rows.length, 10 + (k % 7));
      assert.equal(rows.at(-1)?.i, BigInt(9 + (k % 7)));
      await client.close();
    };
    await within(Promise.all(Array.from({ length: 100 }, (_, k) => one(k))), 15_000, "100 streams");
    await until(() => listener.connections === 0, 3000, "all connections closed");
  });
});

test("a producer with ticks in flight (prefetch) delivers every batch in order, and a break leaves the connection usable", async () => {
  await withServer({}, async (listener) => {
    const client = await connectWebSocketClient(listener.url);
    const svc = proxy(client, Svc);
    const rows = await (await svc.count({ n: 50n }, { prefetch: 8 })).toArray();
    assert.deepEqual(
      rows.map((r) => r.i),
      Array.from({ length: 50 }, (_, i) => BigInt(i)),
    );
    produced = 0;
    let seen = 0;
    for await (const _ of await svc.forever({ size: 16n }, { prefetch: 8 })) if (++seen === 3) break;
    // Three consumed, eight ticks kept in flight: ten ticks preceded the cancel.
    assert.equal(produced, 10);
    assert.equal(await svc.add({ a: 2, b: 3 }), 5);
    await client.close();
  });
});

test("setCookie over WebSocket fails with cookie_not_allowed and the connection stays usable", async () => {
  await withServer({}, async (listener) => {
    const client = await connectWebSocketClient(listener.url);
    await assert.rejects(
      proxy(client, Svc).cookie(),
      (e: unknown) => e instanceof RpcError && e.kind === "cookie_not_allowed",
    );
    assert.equal(await proxy(client, Svc).add({ a: 1, b: 1 }), 2);
    await client.close();
  });
});

test("a reader that stops reading holds the producer back instead of growing server buffers", async () => {
  await withServer({ writeHighWaterMark: 256 * 1024, readHighWaterMark: 256 * 1024 }, async (listener) => {
    const { ws, client } = await rawClient(listener.url);
    const stream = await proxy(client, Svc).forever({ size: 64n * 1024n });
    let rows = 0;
    for await (const _ of stream) if (++rows === 2) break;
    ws.pause();
    produced = 0;
    await new Promise((r) => setTimeout(r, 500));
    // Lockstep: the client sends one tick per batch it wants, so a stopped reader stops the
    // producer within what fits in socket and `ws` buffers.
    assert.ok(produced < 50, `produced ${produced} batches for a reader that stopped`);
    ws.terminate();
    await until(() => listener.connections === 0, 3000, "connection removed");
  });
});

test("a peer that stops reading makes the server's write wait instead of buffering the whole answer", async () => {
  await withServer({ writeHighWaterMark: 256 * 1024 }, async (listener, server) => {
    const { ws, client } = await pausableClient(listener.url);
    ws.pause();
    bigCalls = 0;
    const answer = proxy(client, Svc).big({ size: 48n * 1024n * 1024n });
    answer.catch(() => {});
    await until(() => bigCalls === 1, 2000, "handler ran");
    // The call (its answer's write included) stays in progress while the peer reads nothing.
    let settled = false;
    const drained = server.drain().then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(settled, false, "the write finished although the peer read nothing");
    ws.resume();
    assert.equal((await within(answer, 5000, "answer")).byteLength, 48 * 1024 * 1024);
    await within(drained, 3000, "call end");
    await client.close();
  });
});

test("a peer that stops answering pings is dropped", async () => {
  await withServer({ pingIntervalMs: 50, pongTimeoutMs: 100 }, async (listener) => {
    const { ws } = await rawClient(listener.url, { autoPong: false });
    const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
    await until(() => listener.connections === 1, 2000, "connected");
    await within(closed, 3000, "dropped");
    await until(() => listener.connections === 0, 2000, "connection removed");
  });
});

test("one port serves HTTP and WebSocket when attached to the HTTP listener", async () => {
  const server = makeServer();
  const http = await listenHttp(server);
  const endpoint = attachWebSocket(http.server, server, { path: "/rpc/ws" });
  try {
    assert.equal((await fetch(`${http.url}/health`)).status, 200);
    const client = await connectWebSocketClient(`ws://127.0.0.1:${http.port}/rpc/ws`);
    assert.equal(await proxy(client, Svc).add({ a: 20, b: 22 }), 42);
    await client.close();
  } finally {
    await endpoint.close();
    await http.close();
  }
});

test("listenWebSocket with onRequest serves HTTP on its port as well", async () => {
  const server = makeServer();
  const listener = await listenWebSocket(server, { onRequest: createHttpHandler(server) });
  try {
    assert.equal((await fetch(`http://127.0.0.1:${listener.port}/health`)).status, 200);
    const client = await connectWebSocketClient(listener.url);
    assert.equal(await proxy(client, Svc).add({ a: 1, b: 1 }), 2);
    await client.close();
  } finally {
    await listener.close();
  }
});

test("the global-WebSocket path (browsers, Node 22+) runs calls and streams over a WHATWG-style socket", async () => {
  const g = globalThis as { WebSocket?: unknown };
  const before = g.WebSocket;
  g.WebSocket = WebSocket;
  try {
    await withServer({}, async (listener) => {
      const client = await connectWebSocketClient(listener.url, { implementation: "global" });
      assert.equal(await proxy(client, Svc).add({ a: 2, b: 2 }), 4);
      assert.equal(await proxy(client, Svc).echo({ data: new Uint8Array(3 * 1024 * 1024) }), 3n * 1024n * 1024n);
      assert.equal((await (await proxy(client, Svc).count({ n: 4n })).toArray()).length, 4);
      await client.close();
      await until(() => listener.connections === 0, 2000, "closed");
    });
  } finally {
    g.WebSocket = before;
  }
});

test("a server shutting down closes idle connections with 1001", async () => {
  const server = makeServer();
  const listener = await listenWebSocket(server);
  const { ws } = await rawClient(listener.url);
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  await within(listener.close(), 5000, "server close");
  assert.equal(await within(closed, 2000, "client sees close"), 1001);
});

test("the client pings: a server that stops answering is dropped after pongTimeoutMs; one that answers is kept", {
  timeout: 20_000,
}, async () => {
  // A server that accepts the upgrade and then answers nothing, not even pings.
  const mute = new WebSocketServer({ port: 0, host: "127.0.0.1", autoPong: false });
  await new Promise<void>((resolve) => mute.once("listening", () => resolve()));
  const { port } = mute.address() as AddressInfo;
  const client = await connectWebSocketClient(`ws://127.0.0.1:${port}/ws`, {
    implementation: "ws",
    pingIntervalMs: 100,
    pongTimeoutMs: 100,
  });
  try {
    const err = await proxy(client, Svc)
      .add({ a: 1, b: 2 })
      .catch((e: unknown) => e);
    assert.ok(err instanceof RpcError && err.kind === "transport_error", String(err));
  } finally {
    await client.close();
    await new Promise<void>((resolve) => mute.close(() => resolve()));
  }
  // A live server answers its pings: an idle connection outlives many intervals.
  await withServer({}, async (listener) => {
    const live = await connectWebSocketClient(listener.url, {
      implementation: "ws",
      pingIntervalMs: 20,
      pongTimeoutMs: 2_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await proxy(live, Svc).add({ a: 1, b: 2 }), 3);
    await live.close();
  });
});
