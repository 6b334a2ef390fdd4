/**
 * Borrowed answer batches (`StreamOptions.borrowBatches`): large bodies go into one buffer the
 * client reuses (over a Unix socket, WebSocket and HTTP), every batch is correct while it is current, and nothing else is
 * borrowed (dictionary batches, small bodies, streams that did not ask, an HTTP stream's /init answer).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { makeData, type RecordBatch, tableFromArrays } from "apache-arrow";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { proxy } from "../../src/client/typed.js";
import { batchFromData, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { listenHttp } from "../../src/transports/http/server.js";
import { connectUnix } from "../../src/transports/socket/client.js";
import { listenSocket } from "../../src/transports/socket/server.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { type DirectByteSource, MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream, type Frame, IpcStreamDecoder } from "../../src/wire/ipc.js";
import { socketPath } from "./helpers.js";

const ROWS = 300_000; // 2.4 MB bodies: read straight into their buffer
const Big = defineProtocol(
  "test.Borrow.v1",
  {},
  {
    count: producer({ n: t.int64() }, { output: { v: t.float64() }, state: { k: t.int64(), n: t.int64() } }),
    echo: exchange({}, { input: { v: t.float64() }, output: { v: t.float64() } }),
  },
);
const V = schemaOf({ v: t.float64() });

/** Batch k: v[i] = k * 1e6 + i. */
function big(k: number): RecordBatch {
  const v = new Float64Array(ROWS);
  for (let i = 0; i < ROWS; i++) v[i] = k * 1e6 + i;
  return batchFromData(V, [makeData({ type: V.fields[0]!.type, length: ROWS, nullCount: 0, data: v })], ROWS);
}

function sum(b: RecordBatch): number {
  const v = b.getChild("v")!.data[0]!.values as Float64Array;
  let s = 0;
  for (const x of v) s += x;
  return s;
}
const expected = (k: number) => k * 1e6 * ROWS + (ROWS * (ROWS - 1)) / 2;
const bufferOf = (b: RecordBatch) => (b.getChild("v")!.data[0]!.values as Float64Array).buffer;

async function serve(over: "unix" | "ws" | "http" = "unix") {
  const server = createServer({
    protocols: [
      bind(Big, {
        count: {
          init: ({ n }) => ({ state: { k: 0n, n } }),
          produce: (s, out) => {
            if (s.k >= s.n) return out.finish();
            s.k += 1n;
            out.emitBatch(big(Number(s.k)));
          },
        },
        echo: { init: () => ({}), process: (_s, input, out) => out.emitBatch(input.batch) },
      }),
    ],
  });
  if (over === "http") {
    const listener = await listenHttp(server);
    const client = connectHttp(listener.url, { timeoutMs: 30_000 });
    const close = async () => {
      await client.close();
      await listener.close();
    };
    return { client, close };
  }
  if (over === "ws") {
    const listener = await listenWebSocket(server);
    const client = await connectWebSocketClient(listener.url, { timeoutMs: 30_000 });
    const close = async () => {
      await client.close();
      await listener.close();
    };
    return { client, close };
  }
  const path = socketPath("borrow");
  const listening = await listenSocket(server, { path });
  const client = await connectUnix(path, { timeoutMs: 30_000 });
  const close = async () => {
    await client.close();
    await listening.close();
  };
  return { client, close };
}

for (const over of ["unix", "ws", "http"] as const) {
  test(`a borrowing producer (${over}) reuses one buffer and every batch is right while current`, async () => {
    const { client, close } = await serve(over);
    try {
      const b = proxy(client, Big);
      const seen: ArrayBufferLike[] = [];
      const sums: number[] = [];
      for await (const batch of (await b.count({ n: 4n }, { borrowBatches: true })).batches()) {
        sums.push(sum(batch));
        seen.push(bufferOf(batch));
      }
      assert.deepEqual(sums, [1, 2, 3, 4].map(expected));
      if (over === "http") {
        // The first batch comes with the /init answer, owned; every later turn's in the one buffer.
        assert.equal(new Set(seen.slice(1)).size, 1, "every borrowed batch is read into the same buffer");
        assert.notEqual(seen[0], seen[1]);
      } else assert.equal(new Set(seen).size, 1, "every borrowed batch is read into the same buffer");
      // The buffer is not kept once the stream ends: the next borrowing stream reads into a new one.
      const next = [];
      for await (const batch of (await b.count({ n: 1n }, { borrowBatches: true })).batches())
        next.push(bufferOf(batch));
      assert.notEqual(next[0], seen[0]);

      // Without the option each batch owns its memory, and all stay right after the stream.
      const owned: RecordBatch[] = [];
      for await (const batch of (await b.count({ n: 3n })).batches()) owned.push(batch);
      assert.equal(new Set(owned.map(bufferOf)).size, 3);
      assert.deepEqual(owned.map(sum), [1, 2, 3].map(expected));

      // Rows are decoded before the next batch is read, so row iteration stays right.
      let rows = 0;
      let total = 0;
      for await (const r of await b.count({ n: 2n }, { borrowBatches: true })) {
        rows++;
        total += r.v;
      }
      assert.equal(rows, 2 * ROWS);
      assert.equal(total, expected(1) + expected(2));
    } finally {
      await close();
    }
  });
}

for (const over of ["unix", "http"] as const)
  test(`a borrowing exchange (${over}) echoes every batch right, each answer in the reused buffer`, async () => {
    const { client, close } = await serve(over);
    try {
      const session = await proxy(client, Big).echo({}, { borrowBatches: true });
      const buffers = new Set<ArrayBufferLike>();
      for (const k of [5, 6, 7]) {
        const out = await session.exchangeBatch(big(k));
        assert.equal(sum(out), expected(k));
        buffers.add(bufferOf(out));
      }
      assert.equal(buffers.size, 1);
      await session.close();
    } finally {
      await close();
    }
  });

test("a body that arrives in pieces from a plain source is copied into the reused buffer when borrowing", async () => {
  // 25k rows: 200 KB bodies in 64 KiB pieces, so each is assembled; a third batch is small enough
  // to sit in one piece and stays a view of it.
  const mid = (k: number) => big(k).slice(0, 25_000);
  const bytes = concatBytes(encodeStream(V, [mid(1), mid(2), big(3).slice(0, 100)]));
  const read = async (borrow: boolean) => {
    const framer = new MessageFramer(
      (async function* () {
        for (let at = 0; at < bytes.byteLength; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024);
      })(),
    );
    const decoder = new IpcStreamDecoder();
    const out: Array<{ frame: Frame; sum: number }> = [];
    for (;;) {
      const f = framer.poll() ?? (await framer.next(borrow));
      if (f === "eos" || f === "end") return out;
      const r = decoder.accept(f);
      // Summed while current: a borrowed body is only valid until the next read.
      if (r !== null && "numRows" in r) out.push({ frame: f, sum: sum(r) });
    }
  };
  const head = (k: number) => k * 1e6 * 25_000 + (25_000 * 24_999) / 2;
  const small = 3 * 1e6 * 100 + (100 * 99) / 2;
  const borrowed = await read(true);
  assert.deepEqual(
    borrowed.map((b) => b.sum),
    [head(1), head(2), small],
  );
  assert.deepEqual(
    borrowed.map((b) => b.frame.borrowed === true),
    [true, true, false],
  );
  assert.equal(borrowed[0]!.frame.body.buffer, borrowed[1]!.frame.body.buffer);
  const owned = await read(false);
  assert.deepEqual(
    owned.map((b) => b.sum),
    [head(1), head(2), small],
  );
  assert.ok(owned.every((b) => b.frame.borrowed !== true));
  assert.notEqual(owned[0]!.frame.body.buffer, owned[1]!.frame.body.buffer);
});

/** A direct source over fixed bytes, as a socket source would be. */
function directSource(bytes: Uint8Array): DirectByteSource {
  let at = 0;
  const step = 64 * 1024;
  return {
    async next() {
      if (at >= bytes.byteLength) return { done: true, value: undefined };
      const c = bytes.subarray(at, Math.min(at + step, bytes.byteLength));
      at += c.byteLength;
      return { done: false, value: c };
    },
    async readInto(target) {
      const n = Math.min(target.byteLength, bytes.byteLength - at);
      target.set(bytes.subarray(at, at + n));
      at += n;
      return n;
    },
  };
}

/** Every frame's header type and body buffer, reading with or without `borrow`. */
async function frames(bytes: Uint8Array, borrow: boolean) {
  const framer = new MessageFramer(directSource(bytes));
  const out: Array<{ type: number; body: Uint8Array; frame: Frame }> = [];
  for (;;) {
    const f = await framer.next(borrow);
    if (f === "eos" || f === "end") return out;
    out.push({ type: f.message.headerType, body: f.body, frame: f });
  }
}

test("the framer borrows only large record-batch bodies, and only when asked", async () => {
  const bytes = concatBytes(encodeStream(V, [big(1), big(2)]));
  const borrowed = (await frames(bytes, true)).filter((f) => f.type === MessageHeader.RecordBatch);
  assert.equal(borrowed.length, 2);
  assert.equal(borrowed[0]!.body.buffer, borrowed[1]!.body.buffer);
  const owned = (await frames(bytes, false)).filter((f) => f.type === MessageHeader.RecordBatch);
  assert.notEqual(owned[0]!.body.buffer, owned[1]!.body.buffer);

  // A large dictionary (arrow-js dictionary-encodes a string[] column) stays owned: later batches
  // refer to it after the borrowed buffer has moved on.
  const words = Array.from({ length: 120_000 }, (_, i) => `word-${i}`);
  const table = tableFromArrays({ d: words });
  const dictBytes = concatBytes(encodeStream(table.schema, [table.batches[0]!, table.batches[0]!]));
  const all = await frames(dictBytes, true);
  const dict = all.find((f) => f.type === MessageHeader.DictionaryBatch)!;
  const records = all.filter((f) => f.type === MessageHeader.RecordBatch);
  assert.ok(dict.body.byteLength > 1024 * 1024, `dictionary body ${dict.body.byteLength} bytes`);
  assert.equal(records.length, 2);
  assert.equal(records[0]!.body.buffer, records[1]!.body.buffer, "record bodies are borrowed");
  assert.notEqual(dict.body.buffer, records[0]!.body.buffer, "the dictionary is not");
  const decoder = new IpcStreamDecoder();
  let last: RecordBatch | null = null;
  for (const f of all) {
    const r = decoder.accept(f.frame);
    if (r !== null && "numRows" in r) last = r;
  }
  assert.equal(last!.getChild("d")!.get(119_999), "word-119999");
});
