/**
 * `authTimeoutMs` on the HTTP, WebSocket and socket listeners: an authenticator that does not answer
 * in time is an `AuthUnavailableError` (503 with `Retry-After: 1` over HTTP and WebSocket; over a
 * socket the connection is closed unserved), and its place under `maxConnections` is freed. A
 * WebSocket upgrade whose authenticator throws `AuthUnavailableError` is answered 503, as over HTTP,
 * not 401.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection } from "node:net";
import { test } from "node:test";
import { pino } from "pino";
import { WebSocket } from "ws";
import { AuthUnavailableError, authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { listenHttp } from "../../src/transports/http/listen.js";
import { connectUnix } from "../../src/transports/socket/client.js";
import { listenSocket } from "../../src/transports/socket/server.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { socketPath, within } from "../client/helpers.js";

const Who = defineProtocol("test.AuthTimeout.v1", {}, { who: unary({}, t.utf8()) });

const AUTH_MS = 200;
const BOUND_MS = 10_000;

function whoServer(logs: Record<string, unknown>[] = []) {
  return createServer({
    protocols: [bind(Who, { who: (_p, ctx) => ctx.auth.principal ?? "" })],
    logger: pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
  });
}

const alice = authenticated("test", "alice", {});
/** Never answers. */
const silent = () => new Promise<never>(() => {});

test("http: an authenticator that does not answer within authTimeoutMs is answered 503 with Retry-After: 1", async () => {
  const logs: Record<string, unknown>[] = [];
  const listener = await listenHttp(whoServer(logs), { authenticate: silent, authTimeoutMs: AUTH_MS });
  try {
    // The landing page is authenticated as every route but /health is.
    const res = await within(fetch(`${listener.url}/`), BOUND_MS, "the 503");
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    await res.arrayBuffer();
    assert.ok(logs.some((l) => l.msg === "Authentication unavailable"));
  } finally {
    await listener.close();
  }
});

test("ws: a silent authenticator and one throwing AuthUnavailableError are answered 503; the upgrade's place is freed", async () => {
  let calls = 0;
  const listener = await listenWebSocket(whoServer(), {
    port: 0,
    maxConnections: 1,
    authTimeoutMs: AUTH_MS,
    authenticate: () => {
      calls++;
      if (calls === 1) return silent();
      if (calls === 2) throw new AuthUnavailableError("the directory is down", { retryAfterSeconds: 7 });
      return alice;
    },
  });
  try {
    for (const retryAfter of ["1", "7"]) {
      const ws = new WebSocket(listener.url);
      ws.on("error", () => {});
      const [, res] = (await within(once(ws, "unexpected-response"), BOUND_MS, "the refusal")) as [
        unknown,
        import("node:http").IncomingMessage,
      ];
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers["retry-after"], retryAfter);
      res.resume();
      ws.terminate();
    }
    // maxConnections is 1: the timed-out upgrade no longer holds it.
    const client = await connectWebSocketClient(listener.url, { timeoutMs: 30_000 });
    try {
      assert.equal(await proxy(client, Who).who(), "alice");
    } finally {
      await client.close();
    }
  } finally {
    await listener.close();
  }
});

test("socket: a connection whose authenticator does not answer within authTimeoutMs is closed and logged", async () => {
  const logs: Record<string, unknown>[] = [];
  let calls = 0;
  const listener = await listenSocket(whoServer(logs), {
    path: socketPath("auth-timeout.sock"),
    maxConnections: 1,
    authTimeoutMs: AUTH_MS,
    authenticate: () => (++calls === 1 ? silent() : alice),
  });
  const path = (listener.address as { path: string }).path;
  const socket = createConnection(path);
  try {
    socket.resume();
    await within(once(socket, "close"), BOUND_MS, "the server closing the connection");
    assert.ok(logs.some((l) => l.msg === "Connection closed: authentication unavailable"));
    const client = await connectUnix(path, { timeoutMs: 30_000 });
    try {
      assert.equal(await proxy(client, Who).who(), "alice");
    } finally {
      await client.close();
    }
  } finally {
    socket.destroy();
    await listener.close();
  }
});

test("authTimeoutMs must be a positive number", async () => {
  for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(listenHttp(whoServer(), { authTimeoutMs: bad }), RangeError);
    await assert.rejects(listenWebSocket(whoServer(), { port: 0, authTimeoutMs: bad }), RangeError);
    await assert.rejects(listenSocket(whoServer(), { port: 0, authTimeoutMs: bad }), RangeError);
  }
});
