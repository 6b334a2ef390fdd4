/**
 * The Unix and TCP socket server reads each accepted connection through `socketSource` (the
 * accepted socket's handle moves to a socket created with `onread`): large input batches land in
 * buffers of their own and stay right after later reads, small calls interleave with them, the
 * connection limit holds, and `close` ends idle connections.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { createConnection } from "node:net";
import { test } from "node:test";
import { makeData, type RecordBatch } from "apache-arrow";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { batchFromData, EMPTY_SCHEMA, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectTcp, connectUnix } from "../../src/transports/socket/client.js";
import { listenSocket, type SocketServeOptions } from "../../src/transports/socket/server.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import { rejection, socketPath } from "../client/helpers.js";
import { readStream } from "../helpers/raw-peer.js";

const Keep = defineProtocol(
  "test.SocketServer.v1",
  {},
  {
    keep: exchange({}, { input: { v: t.float64() }, output: { n: t.int64() } }),
    echo: exchange({}, { input: { v: t.float64() }, output: { v: t.float64() } }),
    head: exchange({}, { input: { v: t.float64() }, output: { v: t.float64() } }),
    sums: unary({}, t.list(t.float64())),
    ping: unary({}, t.int64()),
  },
);
const V = schemaOf({ v: t.float64() });

/** `rows` values k * 1e7 + i. */
function batchOf(k: number, rows: number): RecordBatch {
  const v = new Float64Array(rows);
  for (let i = 0; i < rows; i++) v[i] = k * 1e7 + i;
  return batchFromData(V, [makeData({ type: V.fields[0]!.type, length: rows, nullCount: 0, data: v })], rows);
}

function sum(b: RecordBatch): number {
  let s = 0;
  for (const x of b.getChild("v")!.data[0]!.values as Float64Array) s += x;
  return s;
}

const HEAD_ROWS = 1000;

/** The memory each `echo` input's values were read into, in order. */
const echoed: ArrayBufferLike[] = [];

/**
 * A server that keeps every input batch it is handed and sums them all later, and echoes each
 * `echo` input back as its answer, borrowing the inputs.
 */
function keepingServer() {
  const kept: RecordBatch[] = [];
  const server = createServer({
    protocols: [
      bind(Keep, {
        keep: {
          init: () => ({}),
          process: (_s, input, out) => {
            kept.push(input.batch);
            out.emit([{ n: BigInt(input.batch.numRows) }]);
          },
        },
        echo: {
          init: () => ({}),
          process: (_s, input, out) => {
            echoed.push((input.batch.getChild("v")!.data[0]!.values as Float64Array).buffer);
            out.emitBatch(input.batch);
          },
          borrowInput: true,
        },
        // Answers each input with a view of its first 1000 values.
        head: {
          init: () => ({}),
          process: (_s, input, out) => out.emitBatch(input.batch.slice(0, HEAD_ROWS)),
          borrowInput: true,
        },
        sums: () => kept.map(sum),
        ping: () => 1n,
      }),
    ],
  });
  return server;
}

async function listen(over: "unix" | "tcp", opts: SocketServeOptions = {}) {
  const server = keepingServer();
  const listener =
    over === "unix"
      ? await listenSocket(server, { ...opts, path: socketPath("server.sock") })
      : await listenSocket(server, { ...opts, port: 0 });
  const connect = (): Promise<RpcClient> =>
    "path" in listener.address
      ? connectUnix(listener.address.path, { timeoutMs: 30_000 })
      : connectTcp(listener.address.host, listener.address.port, { timeoutMs: 30_000 });
  return { listener, connect };
}

for (const over of ["unix", "tcp"] as const) {
  test(`a ${over} server keeps every input batch it read, large and small, intact after later reads`, async () => {
    const { listener, connect } = await listen(over);
    const client = await connect();
    try {
      const api = proxy(client, Keep);
      // Bodies from 8 bytes to 9.6 MB: small ones share the read slab, large ones (from 64 KiB)
      // are read in place, those from 1 MiB into pooled buffers.
      const sizes = [1, 300_000, 7, 1_200_000, 40_000, 300_000, 2];
      const session = await api.keep({});
      for (const [k, rows] of sizes.entries()) {
        const answer = await session.exchange(batchOf(k, rows));
        assert.deepEqual(answer, [{ n: BigInt(rows) }]);
      }
      await session.close();
      assert.equal(await api.ping(), 1n, "the connection serves the next call");
      const expected = sizes.map((rows, k) => sum(batchOf(k, rows)));
      assert.deepEqual(await api.sums(), expected);
    } finally {
      await client.close();
      await listener.close();
    }
  });
}

for (const over of ["unix", "tcp", "ws"] as const) {
  test(`a ${over} server reads borrowed inputs into one reused buffer, and each answer viewing its input arrives whole`, async () => {
    const { listener, connect } =
      over === "ws"
        ? await (async () => {
            const l = await listenWebSocket(keepingServer());
            return { listener: l, connect: () => connectWebSocketClient(l.url, { timeoutMs: 30_000 }) };
          })()
        : await listen(over);
    const client = await connect();
    echoed.length = 0;
    try {
      const api = proxy(client, Keep);
      const session = await api.echo({});
      // 2.4 MB bodies (borrowed) with one small one (8 bytes: never borrowed) between them.
      const sizes = [300_000, 300_000, 1, 300_000, 300_000];
      for (const [k, rows] of sizes.entries()) {
        const input = batchOf(k, rows);
        const answer = await session.exchangeBatch(input);
        assert.equal(answer.numRows, rows);
        assert.equal(sum(answer), sum(input), `answer ${k} is its own input's values`);
      }
      await session.close();
      assert.equal(await api.ping(), 1n, "the connection serves the next call");
      const large = echoed.filter((_, k) => sizes[k]! > 1);
      assert.equal(large.length, 4);
      assert.ok(
        large.every((b) => b === large[0]),
        "every large input was read into the same buffer",
      );
    } finally {
      await client.close();
      await listener.close();
    }
  });
}

test("a client that sends its inputs ahead gets every answer intact: a borrowed input is not read over an answer still queued", async () => {
  const { listener } = await listen("unix");
  const path = (listener.address as { path: string }).path;
  const socket = createConnection(path);
  await once(socket, "connect");
  try {
    // One call and all its inputs at once (160 KB each, so borrowed), then nothing read for a
    // while: the server's answers (8 KB views of their inputs, under the write high-water mark)
    // fill the socket's buffer and wait in the write queue while later inputs are there to read.
    const md = new Map([
      ["vgi_rpc.method", "head"],
      ["vgi_rpc.request_version", "1"],
      ["vgi_rpc.protocol", "test.SocketServer.v1"],
    ]);
    const inputs = Array.from({ length: 60 }, (_, k) => batchOf(k, 20_000));
    socket.pause();
    socket.write(
      concatBytes([
        ...encodeStream(EMPTY_SCHEMA, [batchFromData(EMPTY_SCHEMA, [], 0, md)]),
        ...encodeStream(V, inputs),
      ]),
    );
    await new Promise((r) => setTimeout(r, 300));
    const framer = new MessageFramer(socket[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>);
    const answer = await readStream(framer);
    assert.ok(answer !== null);
    assert.equal(answer.batches.length, inputs.length);
    for (const [k, b] of answer.batches.entries()) {
      assert.equal(b.numRows, HEAD_ROWS);
      const got = b.getChild("v")!.toArray() as Float64Array;
      const bad = got.findIndex((x, i) => x !== k * 1e7 + i);
      assert.equal(bad, -1, `answer ${k} value ${bad} is ${got[bad]}, not from input ${k}`);
    }
  } finally {
    socket.destroy();
    await listener.close();
  }
});

test("the connection limit holds: a connection past it is closed unserved, and one is served once a place frees", async () => {
  const { listener, connect } = await listen("unix", { maxConnections: 1 });
  const first = await connect();
  try {
    assert.equal(await proxy(first, Keep).ping(), 1n);
    const second = await connect();
    const err = await rejection(proxy(second, Keep).ping());
    assert.equal(err.kind, "transport_error");
    await second.close();
    await first.close();
    // The server sees the first connection go; then a new one is served.
    let served = false;
    for (let attempt = 0; attempt < 50 && !served; attempt++) {
      const third = await connect();
      try {
        served = (await proxy(third, Keep).ping()) === 1n;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        await third.close();
      }
    }
    assert.ok(served, "a connection is served once the first one closed");
  } finally {
    await first.close();
    await listener.close();
  }
});

for (const over of ["unix", "tcp"] as const) {
  test(`closing a ${over} server ends its idle connections`, async () => {
    const { listener, connect } = await listen(over);
    const client = await connect();
    try {
      assert.equal(await proxy(client, Keep).ping(), 1n);
      await listener.close();
      const err = await rejection(proxy(client, Keep).ping());
      assert.equal(err.kind, "transport_error");
    } finally {
      await client.close();
    }
  });
}

test("with idleTimeoutMs a listener closes itself once it has had no connection that long, and runs onIdle", async () => {
  let idled = 0;
  const started = performance.now();
  const { listener, connect } = await listen("unix", {
    idleTimeoutMs: 300,
    startupGraceMs: 600,
    onIdle: () => idled++,
  });
  const path = (listener.address as { path: string }).path;
  // Within the startup grace: still there.
  await new Promise((r) => setTimeout(r, 400));
  const client = await connect();
  try {
    // An open connection keeps it alive past the idle timeout.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await proxy(client, Keep).ping(), 1n);
    assert.equal(idled, 0);
  } finally {
    await client.close();
  }
  const closedAt = performance.now();
  while (idled === 0 && performance.now() - closedAt < 5_000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(idled, 1);
  assert.ok(performance.now() - closedAt >= 250, "not before the idle timeout");
  assert.ok(performance.now() - started >= 1_150);
  assert.equal(existsSync(path), false, "the socket path is removed");
  await rejection(connect());
  await listener.close();
});
