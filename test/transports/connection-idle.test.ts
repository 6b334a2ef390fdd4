/**
 * `connectionIdleTimeoutMs` on the socket and WebSocket listeners: a connection whose next request
 * has not arrived whole within it is closed (one that sends nothing, one that stops inside a
 * request), which frees its place under `maxConnections`; calls, however long, and requests made
 * in time are not affected; the client's next call after the close is a transport error.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { test } from "node:test";
import { pino } from "pino";
import { WebSocket } from "ws";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectTcp, connectUnix } from "../../src/transports/socket/client.js";
import { listenSocket, type SocketServeOptions } from "../../src/transports/socket/server.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { rejection, socketPath, within } from "../client/helpers.js";
import { requestBytes } from "../helpers/raw-peer.js";

const Idle = defineProtocol(
  "test.ConnectionIdle.v1",
  {},
  {
    ping: unary({}, t.int64()),
    nap: unary({ ms: t.int64() }, t.int64()),
    echo: unary({ s: t.utf8() }, t.utf8()),
  },
);

const IDLE_MS = 1_000;
/** Far longer than any close the tests wait for should take. */
const BOUND_MS = 10_000;

/** A server answering `ping`, `nap` (sleeps `ms`) and `echo`, logging at info into `logs`; requests up to 4 KiB. */
function idleServer(logs: Record<string, unknown>[] = []) {
  return createServer({
    maxMessageBytes: 4096,
    protocols: [
      bind(Idle, {
        ping: () => 1n,
        nap: async ({ ms }) => {
          await new Promise((r) => setTimeout(r, Number(ms)));
          return ms;
        },
        echo: ({ s }) => s,
      }),
    ],
    logger: pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
  });
}

/** A request's bytes cut short: inside its schema message, inside its batch, or before its end-of-stream. */
function partialRequests(): Record<string, Uint8Array> {
  const whole = concatBytes(requestBytes("ping", {}, {}, {}, "test.ConnectionIdle.v1", null));
  // Over maxMessageBytes: refused, and the rest of its stream (the end-of-stream) is waited for.
  const tooLarge = concatBytes(
    requestBytes("echo", { s: t.utf8() }, { s: ["x".repeat(20_000)] }, {}, "test.ConnectionIdle.v1", null),
  );
  return {
    "nothing at all": new Uint8Array(0),
    "the start of its schema": whole.subarray(0, 6),
    "all but the end of its batch": whole.subarray(0, whole.byteLength - 12),
    "all but its end-of-stream": whole.subarray(0, whole.byteLength - 8),
    "a request too large, all but its end-of-stream": tooLarge.subarray(0, tooLarge.byteLength - 8),
  };
}

async function listenOver(over: "unix" | "tcp", opts: SocketServeOptions, logs?: Record<string, unknown>[]) {
  const server = idleServer(logs);
  const listener =
    over === "unix"
      ? await listenSocket(server, { ...opts, path: socketPath(`idle-${over}.sock`) })
      : await listenSocket(server, { ...opts, port: 0 });
  const raw = (): Socket =>
    "path" in listener.address
      ? createConnection(listener.address.path)
      : createConnection(listener.address.port, listener.address.host);
  const connect = (): Promise<RpcClient> =>
    "path" in listener.address
      ? connectUnix(listener.address.path, { timeoutMs: 30_000 })
      : connectTcp(listener.address.host, listener.address.port, { timeoutMs: 30_000 });
  return { listener, raw, connect };
}

/**
 * Requests in time are served, and so is a call running far longer than the deadline (it is for the
 * next request only); a client then idle past it gets `transport_error`.
 */
async function callsAcrossTheDeadline(client: RpcClient): Promise<void> {
  const api = proxy(client, Idle);
  for (let i = 0; i < 4; i++) {
    assert.equal(await api.ping(), 1n);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await api.nap({ ms: BigInt(2 * IDLE_MS) }), BigInt(2 * IDLE_MS));
  assert.equal(await api.ping(), 1n);
  await new Promise((r) => setTimeout(r, 2 * IDLE_MS));
  const err = await rejection(api.ping());
  assert.equal(err.kind, "transport_error");
}

for (const over of ["unix", "tcp"] as const) {
  for (const [what, bytes] of Object.entries(partialRequests())) {
    test(`${over}: a connection that sends ${what} is closed after connectionIdleTimeoutMs, and logged`, async () => {
      const logs: Record<string, unknown>[] = [];
      const { listener, raw } = await listenOver(over, { connectionIdleTimeoutMs: IDLE_MS }, logs);
      const socket = raw();
      try {
        await once(socket, "connect");
        if (bytes.byteLength > 0) socket.write(bytes);
        socket.resume();
        await within(once(socket, "close"), BOUND_MS, "the server closing an idle connection");
        const line = logs.find((l) => l.msg === "Connection closed: no request within its idle timeout");
        assert.ok(line, `logged: ${JSON.stringify(logs)}`);
        assert.equal(line.transport, over);
        assert.equal(line.idle_timeout_ms, IDLE_MS);
      } finally {
        socket.destroy();
        await listener.close();
      }
    });
  }

  test(`${over}: calls in time and calls longer than connectionIdleTimeoutMs are served; a client idle past it gets transport_error`, async () => {
    const { listener, connect } = await listenOver(over, { connectionIdleTimeoutMs: IDLE_MS });
    const client = await connect();
    try {
      await callsAcrossTheDeadline(client);
    } finally {
      await client.close();
      await listener.close();
    }
  });
}

test("silent connections filling maxConnections are closed after connectionIdleTimeoutMs, and a caller is served", async () => {
  const { listener, raw, connect } = await listenOver("unix", { maxConnections: 2, connectionIdleTimeoutMs: IDLE_MS });
  const silent = [raw(), raw()];
  try {
    await Promise.all(silent.map((s) => once(s, "connect")));
    for (const s of silent) s.resume();
    await within(Promise.all(silent.map((s) => once(s, "close"))), BOUND_MS, "the silent connections closing");
    const client = await connect();
    try {
      assert.equal(await proxy(client, Idle).ping(), 1n);
    } finally {
      await client.close();
    }
  } finally {
    for (const s of silent) s.destroy();
    await listener.close();
  }
});

test("connectionIdleTimeoutMs must be a positive number", async () => {
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(listenSocket(idleServer(), { port: 0, connectionIdleTimeoutMs: bad }), RangeError);
    await assert.rejects(listenWebSocket(idleServer(), { port: 0, connectionIdleTimeoutMs: bad }), RangeError);
  }
});

test("ws: an idle connection is closed with 1000 `idle timeout`; calls in time and long calls are served", async () => {
  const listener = await listenWebSocket(idleServer(), { port: 0, connectionIdleTimeoutMs: IDLE_MS });
  try {
    // Silent, then stopping inside a request: both closed.
    for (const bytes of Object.values(partialRequests()).slice(0, 3)) {
      const ws = new WebSocket(listener.url);
      await once(ws, "open");
      if (bytes.byteLength > 0) ws.send(bytes);
      const [code, reason] = (await within(once(ws, "close"), BOUND_MS, "the server closing")) as [number, Buffer];
      assert.deepEqual([code, reason.toString()], [1000, "idle timeout"]);
    }
    const client = await connectWebSocketClient(listener.url, { timeoutMs: 30_000 });
    try {
      await callsAcrossTheDeadline(client);
    } finally {
      await client.close();
    }
  } finally {
    await listener.close();
  }
});
