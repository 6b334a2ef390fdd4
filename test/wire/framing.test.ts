import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Field, Int64, type RecordBatch, Schema, Utf8 } from "apache-arrow";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { MessageFramer } from "../../src/wire/framer.js";
import {
  concatBytes,
  EOS,
  encodeStream,
  IpcStreamDecoder,
  IpcStreamEncoder,
  outgoingPieces,
} from "../../src/wire/ipc.js";
import { classifyBatch, errorFromMetadata, readLogRecord } from "../../src/wire/messages.js";
import { framedStreams } from "../helpers/framed.js";
import { fieldPosition, messageSpans, messageTable } from "../helpers/ipc-bytes.js";

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/wire/${name}`, import.meta.url)));

async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size);
}

interface DecodedStream {
  schema: Schema;
  batches: RecordBatch[];
}

/**
 * Reads every IPC stream from the source, using one decoder per stream; with `polling`, as the
 * client and server read: `poll()` first, `next()` only when it returns null.
 */
async function readStreams(framer: MessageFramer, polling = false): Promise<DecodedStream[]> {
  const out: DecodedStream[] = [];
  let decoder = new IpcStreamDecoder();
  let batches: RecordBatch[] = [];
  for (;;) {
    const f = (polling ? framer.poll() : null) ?? (await framer.next());
    if (f === "end") return out;
    if (f === "eos") {
      out.push({ schema: decoder.schema!, batches });
      decoder = new IpcStreamDecoder();
      batches = [];
      continue;
    }
    const r = decoder.accept(f);
    if (r !== null && "numRows" in r) batches.push(r);
  }
}

test("two requests back to back are framed as two streams, whatever the piece size, polled or not", async () => {
  const bytes = fixture("two-requests.bin");
  for (const [size, polling] of [1, 3, 7, 64, 4096].flatMap((n) => [[n, false] as const, [n, true] as const])) {
    const streams = await readStreams(new MessageFramer(pieces(bytes, size)), polling);
    assert.equal(streams.length, 2, `piece size ${size}, polling ${polling}`);
    const [echo, noop] = streams;
    assert.deepEqual(
      echo!.schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
      [["value", "Utf8", false]],
    );
    assert.equal(echo!.batches.length, 1);
    assert.equal(echo!.batches[0]!.getChildAt(0)!.get(0), "hello");
    assert.equal(echo!.batches[0]!.metadata.get("vgi_rpc.method"), "echo_string");
    assert.equal(echo!.batches[0]!.metadata.get("vgi_rpc.protocol"), "ConformanceService");
    assert.equal(echo!.batches[0]!.metadata.get("vgi_rpc.request_version"), "1");
    assert.equal(noop!.schema.fields.length, 0);
    assert.equal(noop!.batches[0]!.numRows, 0);
    assert.equal(noop!.batches[0]!.metadata.get("vgi_rpc.method"), "void_noop");
  }
});

test("the framer stops at EOS and leaves the next stream's bytes unread", async () => {
  const first = fixture("request-echo-string.bin");
  const bytes = concatBytes([first, new Uint8Array([1, 2, 3])]);
  const framer = new MessageFramer(pieces(bytes, bytes.byteLength));
  let f = await framer.next();
  while (f !== "eos") f = await framer.next();
  assert.equal(framer.pending, 3);
});

test("poll frames what is buffered without reading, and leaves a body still to come to next", async () => {
  const schema = new Schema([new Field("s", new Utf8(), false), new Field("n", new Int64(), false)]);
  const fields = { s: t.utf8(), n: t.int64() };
  const batch = batchFromColumns(fields, { s: ["x".repeat(1000)], n: [7n] });
  const bytes = concatBytes(encodeStream(schema, [batch]));
  let pulls = 0;
  async function* counted(size: number): AsyncGenerator<Uint8Array> {
    for await (const p of pieces(bytes, size)) {
      pulls++;
      yield p;
    }
  }
  // Everything arrives in one piece: after the schema, the batch and the EOS are polled.
  const whole = new MessageFramer(counted(bytes.byteLength));
  assert.equal(whole.poll(), null); // nothing read yet, and poll never reads
  assert.equal(pulls, 0);
  const first = await whole.next();
  assert.ok(first !== "eos" && first !== "end" && first.schema !== undefined);
  const second = whole.poll();
  assert.ok(second !== null && second !== "eos");
  const polled = new IpcStreamDecoder();
  polled.accept(first);
  const row = polled.accept(second);
  assert.ok(row !== null && "numRows" in row);
  assert.equal(row.getChildAt(1)!.get(0), 7n);
  assert.equal(whole.poll(), "eos");
  assert.equal(whole.poll(), null);
  assert.equal(await whole.next(), "end");
  assert.equal(pulls, 1);
  // The batch's header arrives before its body: poll takes the header and next reads the body.
  const schemaBytes = concatBytes(encodeStream(schema, [])).byteLength - EOS.byteLength;
  const split = new MessageFramer(counted(schemaBytes + 300));
  pulls = 0;
  await split.next(); // the schema, and the batch's first bytes
  assert.equal(split.poll(), null);
  assert.equal(split.poll(), null); // the parked header stays parked
  assert.ok(!split.exhausted);
  const frame = await split.next();
  assert.ok(frame !== "eos" && frame !== "end");
  const decoder = new IpcStreamDecoder();
  decoder.accept(first);
  const got = decoder.accept(frame);
  assert.ok(got !== null && "numRows" in got);
  assert.equal(got.getChildAt(0)!.get(0), "x".repeat(1000));
  assert.equal(got.getChildAt(1)!.get(0), 7n);
  assert.equal(await split.next(), "eos");
});

test("poll refuses what next refuses: a length that is not Arrow, a message over the limit", async () => {
  const garbage = new TextEncoder().encode("this is not arrow at all");
  const bad = new MessageFramer(pieces(garbage, garbage.byteLength));
  await assert.rejects(bad.next(), (e: Error & { kind?: string }) => e.kind === "protocol_error");
  const again = new MessageFramer(pieces(concatBytes([EOS, garbage]), 100));
  assert.equal(await again.next(), "eos");
  assert.throws(
    () => again.poll(),
    (e: Error & { kind?: string }) => e.kind === "protocol_error",
  );
  const schema = new Schema([new Field("s", new Utf8(), false)]);
  const big = batchFromColumns({ s: t.utf8() }, { s: ["x".repeat(10_000)] });
  const bytes = concatBytes([...encodeStream(schema, [big]), ...encodeStream(schema, [])]);
  const limited = new MessageFramer(pieces(bytes, bytes.byteLength), { maxMessageBytes: 4096 });
  assert.notEqual(await limited.next(), "eos"); // the schema; the rest is buffered
  assert.equal(limited.poll(), null); // over the limit: left to next, which skips the body
  await assert.rejects(limited.next(), (e: Error & { kind?: string }) => e.kind === "message_too_large");
  assert.equal(limited.poll(), "eos");
  assert.notEqual(limited.poll(), null); // the next stream's schema, framed as usual
});

test("a reference log batch and result classify as log then data", async () => {
  const [stream] = await readStreams(new MessageFramer(pieces(fixture("response-log-then-result.bin"), 5)));
  const [log, result] = stream!.batches;
  assert.equal(classifyBatch(log!), "log");
  const rec = readLogRecord(log!.metadata);
  assert.equal(rec.level, "INFO");
  assert.equal(rec.message, "info: hi");
  assert.deepEqual(rec.extra, { source: "fixture" });
  assert.equal(rec.serverId, "abcdef012345");
  assert.equal(classifyBatch(result!), "data");
  assert.equal(result!.getChildAt(0)!.get(0), "hi");
});

test("a reference error stream decodes to the RpcError it describes", async () => {
  const [stream] = await readStreams(new MessageFramer(pieces(fixture("error-value-error.bin"), 16)));
  const batch = stream!.batches[0]!;
  assert.equal(classifyBatch(batch), "error");
  const err = errorFromMetadata(batch.metadata);
  assert.equal(err.type, "ValueError");
  assert.equal(err.message, "bad value");
  assert.equal(err.code, "UNKNOWN");
  assert.match(err.remoteTraceback, /ValueError: bad value/);
});

test("dictionary batches are applied before the record batches that use them", async () => {
  const [stream] = await readStreams(new MessageFramer(pieces(fixture("dictionary-stream.bin"), 9)));
  const values = stream!.batches.flatMap((b) => [...b.getChildAt(0)!].map(String));
  assert.deepEqual(values, ["PENDING", "ACTIVE", "CLOSED"]);
  assert.equal(stream!.batches[1]!.metadata.get("k"), "v");
});

test("encoded streams decode back to the same values and metadata", async () => {
  const fields = { id: t.int64(), name: t.utf8().optional(), status: t.enumOf("A", "B") };
  const batch = batchFromColumns(
    fields,
    { id: [1n, 2n, 3n], name: ["x", null, "z"], status: ["B", "A", "B"] },
    new Map([["vgi_rpc.method", "m"]]),
  );
  const bytes = concatBytes(encodeStream(schemaOf(fields), [batch, batch]));
  const [stream] = await readStreams(new MessageFramer(pieces(bytes, 13)));
  assert.equal(stream!.batches.length, 2);
  const b = stream!.batches[1]!;
  assert.deepEqual([...b.getChildAt(0)!], [1n, 2n, 3n]);
  assert.deepEqual([...b.getChildAt(1)!], ["x", null, "z"]);
  assert.deepEqual([...b.getChildAt(2)!].map(String), ["B", "A", "B"]);
  assert.equal(b.metadata.get("vgi_rpc.method"), "m");
});

test("garbage and truncation are protocol errors, not hangs", async () => {
  const garbage = new TextEncoder().encode("this is not arrow at all");
  await assert.rejects(
    new MessageFramer(pieces(garbage, 4)).next(),
    (e: Error & { kind?: string }) => e.kind === "protocol_error",
  );
  const truncated = fixture("request-echo-string.bin").subarray(0, 100);
  const framer = new MessageFramer(pieces(truncated, 10));
  await assert.rejects(
    async () => {
      for (;;) if ((await framer.next()) === "end") return;
    },
    (e: Error & { kind?: string }) => e.kind === "protocol_error",
  );
});

test("a message over the size limit is refused after its body is skipped", async () => {
  const schema = new Schema([new Field("s", new Utf8(), false), new Field("n", new Int64(), false)]);
  const fields = { s: t.utf8(), n: t.int64() };
  const big = batchFromColumns(fields, { s: ["x".repeat(10_000)], n: [1n] });
  const small = batchFromColumns(fields, { s: ["ok"], n: [2n] });
  const bytes = concatBytes([...encodeStream(schema, [big]), ...encodeStream(schema, [small])]);
  const framer = new MessageFramer(pieces(bytes, 1000), { maxMessageBytes: 4096 });
  assert.notEqual(await framer.next(), "eos"); // schema
  await assert.rejects(framer.next(), (e: Error & { kind?: string }) => e.kind === "message_too_large");
  assert.equal(await framer.next(), "eos");
  const [next] = await readStreams(framer);
  assert.equal(next!.batches[0]!.getChildAt(0)!.get(0), "ok");
  assert.equal(EOS.byteLength, 8);
});

test("outgoing pieces join runs of small chunks and pass large ones through as the same views", () => {
  const small = (n: number, v: number) => new Uint8Array(n).fill(v);
  const large = new Uint8Array(200_000).fill(9);
  const chunks = [small(3, 1), small(5, 2), large, small(7, 3), large.subarray(10, 100_000), small(1, 4)];
  const out = outgoingPieces(chunks);
  assert.equal(out.length, 5);
  assert.deepEqual([...out[0]!], [1, 1, 1, 2, 2, 2, 2, 2]);
  assert.equal(out[1], large); // not copied
  assert.equal(out[2], chunks[3]); // a lone small chunk is kept as is
  assert.equal(out[3], chunks[4]);
  assert.deepEqual(concatBytes(out), concatBytes(chunks));
  assert.deepEqual(outgoingPieces([]), []);
  const joined: number[] = [];
  outgoingPieces([small(1, 1), small(1, 2)], (run) => {
    joined.push(run.length);
    return concatBytes(run);
  });
  assert.deepEqual(joined, [2]);
  // With a cap (a WebSocket's message size): runs stop before it, large chunks are cut at it,
  // empty chunks are dropped.
  const capped = outgoingPieces(
    [small(4, 1), new Uint8Array(0), small(4, 2), small(4, 3), small(25, 5)],
    concatBytes,
    10,
  );
  assert.deepEqual(
    capped.map((c) => c.byteLength),
    [8, 4, 10, 10, 5],
  );
  assert.deepEqual(concatBytes(capped), concatBytes([small(4, 1), small(4, 2), small(4, 3), small(25, 5)]));
  // A lower join threshold passes medium chunks through as views.
  const medium = small(5000, 6);
  const lower = outgoingPieces([small(3, 1), medium, small(2, 2), small(2, 3)], concatBytes, 1 << 30, 4096);
  assert.equal(lower.length, 3);
  assert.equal(lower[1], medium);
  assert.deepEqual([...lower[2]!], [2, 2, 3, 3]);
});

test("a body's declared length commits at most 64 MiB ahead of the bytes that arrived", async () => {
  // A record batch header claiming a 3 GiB body, then a few bytes, then the end of the stream.
  const batch = batchFromColumns({ v: t.int64() }, { v: [1n] });
  const [schemaMessage, header] = encodeStream(schemaOf({ v: t.int64() }), [batch]);
  const claimed = 3 * 1024 * 1024 * 1024;
  const patched = header!.slice();
  const view = new DataView(patched.buffer);
  // The Message table's body length (slot 3), found through its vtable.
  const span = messageSpans(patched)[0]!;
  const found = fieldPosition(patched, span.start, messageTable(patched, span), 3)!;
  assert.equal(view.getUint32(found, true), span.bodyLength);
  view.setUint32(found, claimed % 2 ** 32, true);
  view.setUint32(found + 4, Math.floor(claimed / 2 ** 32), true);
  const sizes: number[] = [];
  let sent = false;
  const source = {
    async next(): Promise<IteratorResult<Uint8Array>> {
      if (sent) return { done: true, value: undefined };
      sent = true;
      return { done: false, value: concatBytes([schemaMessage!, patched, new Uint8Array(100)]) };
    },
    // The peer sends nothing more.
    async readInto(): Promise<number> {
      return 0;
    },
    allocate(n: number): Uint8Array {
      sizes.push(n);
      return new Uint8Array(Math.min(n, 1024 * 1024 * 1024));
    },
  };
  const framer = new MessageFramer(source, { maxMessageBytes: 4 * 1024 * 1024 * 1024 });
  assert.notEqual(await framer.next(), "end"); // the schema
  await assert.rejects(framer.next(), /ended inside an IPC message body/);
  assert.deepEqual(sizes, [64 * 1024 * 1024]);
});

/**
 * A direct byte source over `wire`: `next` hands out copies of `piece` bytes at a time (kept in
 * `handed`, in order), `readInto` fills the reader's buffer in place; `rewind` starts over.
 */
function piecewise(wire: Uint8Array, piece: number) {
  let at = 0;
  const handed: Uint8Array[] = [];
  return {
    handed,
    rewind(): void {
      at = 0;
    },
    async next(): Promise<IteratorResult<Uint8Array>> {
      if (at >= wire.byteLength) return { done: true, value: undefined };
      const bytes = wire.slice(at, at + piece);
      at += bytes.byteLength;
      handed.push(bytes);
      return { done: false, value: bytes };
    },
    async readInto(into: Uint8Array): Promise<number> {
      const k = Math.min(into.byteLength, wire.byteLength - at);
      into.set(wire.subarray(at, at + k));
      at += k;
      return k;
    },
  };
}

test("borrowed bodies go into the source's large-body memory, one buffer reused until a body outgrows it", async () => {
  const schema = schemaOf({ v: t.int64() });
  const batchOf = (n: number) =>
    batchFromColumns({ v: t.int64() }, { v: Array.from({ length: n }, (_, i) => BigInt(i)) });
  // Bodies of 80 KB, 80 KB and 160 KB: each over the size read straight into its buffer.
  const wire = concatBytes(encodeStream(schema, [batchOf(10_000), batchOf(10_000), batchOf(20_000)]));
  const sizes: number[] = [];
  const source = {
    ...piecewise(wire, 512),
    allocate(n: number): Uint8Array {
      sizes.push(n);
      return new Uint8Array(n);
    },
  };
  const framer = new MessageFramer(source);
  const decoder = new IpcStreamDecoder();
  const seen: bigint[] = [];
  for (;;) {
    const frame = await framer.next(true);
    if (frame === "end" || frame === "eos") break;
    const out = decoder.accept(frame);
    if (out !== null && "numRows" in out) seen.push(out.getChild("v")!.get(out.numRows - 1) as bigint);
  }
  assert.deepEqual(seen, [9_999n, 9_999n, 19_999n]);
  assert.deepEqual(sizes, [80_000, 160_000]);
});

test("bytes the framer gives back (`recycle`) are never ones a frame it returned still views", async () => {
  // Small batches (whose bodies may stay views of what arrived), then large ones read in place.
  const sizes = [3, 20_000, 1, 2, 30_000, 5, 40, 20_000];
  const wire = framedStreams(sizes);
  const recycled: number[] = [];
  // `recycle` scribbles over the last bytes it names among the pieces `next` handed out.
  const pieces = piecewise(wire, 1000);
  const handed = pieces.handed;
  const source = {
    ...pieces,
    recycle(n: number): void {
      recycled.push(n);
      // As a source reusing that memory for the next read would.
      for (let i = handed.length - 1; i >= 0 && n > 0; i--) {
        const piece = handed[i]!;
        const k = Math.min(n, piece.byteLength);
        piece.fill(0xee, piece.byteLength - k);
        n -= k;
      }
    },
  };
  for (const borrow of [false, true]) {
    pieces.rewind();
    recycled.length = 0;
    const framer = new MessageFramer(source);
    const kept: RecordBatch[] = [];
    for (const n of sizes) {
      const decoder = new IpcStreamDecoder();
      for (;;) {
        const f = framer.poll() ?? (await framer.next(borrow));
        if (f === "end") assert.fail("the stream ended early");
        if (f === "eos") break;
        const r = decoder.accept(f);
        if (r === null || !("numRows" in r)) continue;
        assert.equal(r.numRows, n);
        if (!("borrowed" in f)) kept.push(r);
      }
    }
    assert.equal(await framer.next(borrow), "end");
    // Every large borrowed body's header and first piece were given back; owned bodies leave the
    // source's memory as it is (see MessageFramer.spent).
    assert.equal(recycled.length, borrow ? sizes.filter((n) => n >= 20_000).length : 0, `borrow=${borrow}`);
    // The batches the reader kept still read as they were sent.
    for (const b of kept) {
      const n = b.numRows;
      assert.equal(b.getChildAt(0)?.get(n - 1), BigInt(n - 1));
      assert.equal(b.getChildAt(1)?.get(n - 1), `v${n - 1}`);
      assert.equal(b.getChildAt(1)?.get(0), "v0");
    }
  }
});

test("an encoder's batches() is its batch() of each in turn, the schema first once; a refused batch leaves it unstarted", () => {
  const Row = { i: t.int64(), s: t.utf8() };
  const batchOf = (n: number) =>
    batchFromColumns(Row, {
      i: Array.from({ length: n }, (_, k) => BigInt(k)),
      s: Array.from({ length: n }, (_, k) => `v${k}`),
    });
  const batches = [batchOf(3), batchOf(0), batchOf(5)];
  const one = new IpcStreamEncoder(schemaOf(Row));
  const each = batches.flatMap((b) => one.batch(b));
  const all = new IpcStreamEncoder(schemaOf(Row));
  assert.deepEqual(concatBytes(all.batches(batches)), concatBytes(each));
  assert.deepEqual(all.batches([]), []);
  // A batch of another schema is refused before anything is written, schema message included.
  const other = new IpcStreamEncoder(schemaOf({ v: t.float64() }));
  assert.throws(() => other.batches([batches[0]!]), /does not match the stream's/);
  assert.equal(other.begin().length, 1, "the schema message is still to be written");
});
