import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Field, Int64, type RecordBatch, Schema, Utf8 } from "apache-arrow";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, EOS, encodeStream, IpcStreamDecoder, outgoingPieces } from "../../src/wire/ipc.js";
import { classifyBatch, errorFromMetadata, readLogRecord } from "../../src/wire/messages.js";

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/wire/${name}`, import.meta.url)));

async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size);
}

interface DecodedStream {
  schema: Schema;
  batches: RecordBatch[];
}

/** Reads every IPC stream from the source, using one decoder per stream. */
async function readStreams(framer: MessageFramer): Promise<DecodedStream[]> {
  const out: DecodedStream[] = [];
  let decoder = new IpcStreamDecoder();
  let batches: RecordBatch[] = [];
  for (;;) {
    const f = await framer.next();
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

test("two requests back to back are framed as two streams, whatever the piece size", async () => {
  const bytes = fixture("two-requests.bin");
  for (const size of [1, 3, 7, 64, 4096]) {
    const streams = await readStreams(new MessageFramer(pieces(bytes, size)));
    assert.equal(streams.length, 2, `piece size ${size}`);
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
});
