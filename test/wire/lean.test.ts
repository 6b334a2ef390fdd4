import assert from "node:assert/strict";
import { test } from "node:test";
import { type RecordBatch, vectorFromArray } from "apache-arrow";
import { batchFromColumns, batchFromData, EMPTY_SCHEMA, emptyBatch, schemaOf } from "../../src/protocol/batch.js";
import { type FieldSpecs, t } from "../../src/protocol/types.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeRecordBatchGeneral, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";
import { decodeRecordBatchLean, encodeRecordBatchLean, LeanMessage, templateCount } from "../../src/wire/lean.js";

/** Deterministic pseudo-random numbers (xorshift), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

const SPECS: Record<string, () => FieldSpecs[string]> = {
  bool: () => t.bool(),
  int8: () => t.int8(),
  int16: () => t.int16(),
  int32: () => t.int32(),
  int64: () => t.int64(),
  uint8: () => t.uint8(),
  uint32: () => t.uint32(),
  uint64: () => t.uint64(),
  float32: () => t.float32(),
  float64: () => t.float64(),
  utf8: () => t.utf8(),
  binary: () => t.binary(),
  fixed3: () => t.fixedBinary(3),
  date32: () => t.date32(),
  ts: () => t.timestampUs("UTC"),
  time: () => t.time64Us(),
  duration: () => t.durationUs(),
  decimal: () => t.decimal128(10, 2),
};

function value(kind: string, r: () => number): unknown {
  const n = Math.floor(r() * 2000) - 1000;
  switch (kind) {
    case "bool":
      return r() < 0.5;
    case "int8":
      return n % 100;
    case "int16":
    case "int32":
    case "date32":
      return n;
    case "uint8":
      return Math.abs(n) % 200;
    case "uint32":
      return Math.abs(n) * 7;
    case "int64":
    case "ts":
    case "duration":
    case "decimal":
      return BigInt(n) * 1_000_003n;
    case "time":
    case "uint64":
      return BigInt(Math.abs(n)) * 1_000_003n;
    case "float32":
      return n / 4;
    case "float64":
      return n / 3;
    case "utf8":
      return ["", "a", "héllo wörld", "row-7", "x".repeat(Math.abs(n) % 90), "日本語"][Math.abs(n) % 6];
    case "binary":
      return new Uint8Array(Math.abs(n) % 13).fill(Math.abs(n) % 256);
    case "fixed3":
      return new Uint8Array([1, 2, Math.abs(n) % 256]);
    default:
      throw new Error(kind);
  }
}

function randomBatch(r: () => number): RecordBatch {
  const kinds = Object.keys(SPECS);
  const fields: Record<string, FieldSpecs[string]> = {};
  const ncols = Math.floor(r() * 5);
  const names: string[] = [];
  for (let c = 0; c < ncols; c++) {
    const kind = kinds[Math.floor(r() * kinds.length)]!;
    const spec = SPECS[kind]!();
    const name = `${kind}_${c}`;
    fields[name] = r() < 0.4 ? spec.optional() : spec;
    names.push(name);
  }
  const rows = [0, 1, 1, 2, 3, 9, 64, 200][Math.floor(r() * 8)]!;
  const columns: Record<string, unknown[]> = {};
  for (const name of names) {
    const kind = name.slice(0, name.lastIndexOf("_"));
    const nullable = (fields[name] as { nullable: boolean }).nullable;
    const nullRate = nullable ? [0, 0.3, 1][Math.floor(r() * 3)]! : 0;
    columns[name] = Array.from({ length: rows }, () => (r() < nullRate ? null : value(kind, r)));
  }
  const md = new Map<string, string>();
  const nmd = Math.floor(r() * 4);
  for (let i = 0; i < nmd; i++) md.set(`vgi_rpc.key${i}`, ["", "v", "日本", "x".repeat(Math.floor(r() * 40))][i]!);
  return batchFromColumns(fields, columns as never, nmd > 0 ? md : undefined);
}

test("the lean record-batch encoder writes the general encoder's bytes, for hundreds of schemas and values", () => {
  const r = rng(12345);
  let lean = 0;
  for (let i = 0; i < 600; i++) {
    const batch = randomBatch(r);
    const general = concatBytes(encodeRecordBatchGeneral(batch));
    const chunks = encodeRecordBatchLean(batch);
    if (chunks === null) continue;
    lean++;
    assert.deepEqual(concatBytes(chunks), general, `batch ${i}: ${batch.schema.fields.map((f) => String(f.type))}`);
  }
  assert.ok(lean > 500, `only ${lean} batches took the lean path`);
});

test("batches of one schema reuse a written message and still match the general encoder byte for byte", () => {
  // One schema and a few metadata sets: after the first batch of each shape the encoder patches a
  // template, so every later batch checks the row count, nodes, regions and body length it writes.
  const fields = { i: t.int64(), f: t.float64().optional(), s: t.utf8().optional(), b: t.binary(), ok: t.bool() };
  const schema = schemaOf(fields);
  const metadataSets = [
    undefined,
    new Map([
      ["vgi_rpc.method", "three"],
      ["vgi_rpc.request_version", "1"],
    ]),
    new Map([["vgi_rpc.method", "other"]]),
    new Map([["vgi_rpc.log_message", "日本語 ".repeat(3)]]),
  ];
  const r = rng(777);
  for (let n = 0; n < 400; n++) {
    const rows = [0, 1, 1, 2, 5, 17, 300][Math.floor(r() * 7)]!;
    const nullRate = [0, 0.5, 1][Math.floor(r() * 3)]!;
    const columns = {
      i: Array.from({ length: rows }, () => BigInt(Math.floor(r() * 1e6))),
      f: Array.from({ length: rows }, () => (r() < nullRate ? null : r())),
      s: Array.from({ length: rows }, () => (r() < nullRate ? null : "x".repeat(Math.floor(r() * 40)))),
      b: Array.from({ length: rows }, () => new Uint8Array(Math.floor(r() * 20)).fill(n & 0xff)),
      ok: Array.from({ length: rows }, () => r() < 0.5),
    };
    const batch = batchFromColumns(fields, columns, metadataSets[Math.floor(r() * metadataSets.length)]);
    assert.equal(batch.schema, schema);
    const chunks = encodeRecordBatchLean(batch);
    assert.ok(chunks !== null);
    assert.deepEqual(concatBytes(chunks), concatBytes(encodeRecordBatchGeneral(batch)), `batch ${n}: ${rows} rows`);
    // Each message is the caller's own: a reused template is copied, not handed out, so scribbling
    // over this one leaves the next batch's bytes right.
    chunks[0]!.fill(0xee);
  }
  assert.ok(templateCount(schema) <= 8);
  // A batch of a shape seen before reuses its template (one kept), with other values written in.
  const small = { n: t.int64(), s: t.utf8() };
  const md = new Map([["vgi_rpc.method", "m"]]);
  for (const [n, text] of [
    [1n, "a"],
    [2n, "bbbbbbbbbbbb"],
    [3n, ""],
  ] as const) {
    const batch = batchFromColumns(small, { n: [n], s: [text] }, md);
    assert.deepEqual(concatBytes(encodeRecordBatchLean(batch)!), concatBytes(encodeRecordBatchGeneral(batch)));
    assert.equal(templateCount(schemaOf(small)), 1);
  }
});

test("the lean encoder matches for empty, zero-row, metadata-only and long-metadata batches", () => {
  const fields = { i: t.int64(), s: t.utf8().optional() };
  const schema = schemaOf(fields);
  const big = new Map([
    ["vgi_rpc.a", "y".repeat(5000)],
    ["vgi_rpc.b", "ü".repeat(700)],
  ]);
  const batches = [
    emptyBatch(schema),
    emptyBatch(schema, new Map([["vgi_rpc.log_level", "INFO"]])),
    emptyBatch(EMPTY_SCHEMA, new Map([["k", "v"]])),
    batchFromColumns(fields, { i: [1n, 2n], s: ["a", null] }, big),
  ];
  for (const batch of batches) {
    const chunks = encodeRecordBatchLean(batch);
    assert.ok(chunks !== null);
    assert.deepEqual(concatBytes(chunks), concatBytes(encodeRecordBatchGeneral(batch)));
  }
});

test("the lean encoder declines nested, dictionary and sliced columns", () => {
  const nested = batchFromColumns({ l: t.list(t.int32()) }, { l: [[1, 2]] });
  assert.equal(encodeRecordBatchLean(nested), null);
  const dict = batchFromColumns({ e: t.dictUtf8() }, { e: ["a", "b"] });
  assert.equal(encodeRecordBatchLean(dict), null);
  const schema = schemaOf({ i: t.int32() });
  const sliced = batchFromData(schema, [vectorFromArray([1, 2, 3], schema.fields[0]!.type).data[0]!.slice(1, 2)], 2);
  assert.equal(encodeRecordBatchLean(sliced), null);
});

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function decodeAll(bytes: Uint8Array): Promise<{ batches: RecordBatch[]; lean: number }> {
  const framer = new MessageFramer(once(bytes));
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  let lean = 0;
  for (;;) {
    const f = await framer.next();
    if (f === "end" || f === "eos") break;
    if (f.message instanceof LeanMessage) lean++;
    const got = decoder.accept(f);
    if (got !== null && "numRows" in got) batches.push(got);
  }
  return { batches, lean };
}

test("the lean reader yields the same values, null counts and metadata as arrow-js's reader", async () => {
  const r = rng(777);
  for (let i = 0; i < 300; i++) {
    const batch = randomBatch(r);
    const bytes = concatBytes(encodeStream(batch.schema, [batch]));
    const { batches, lean } = await decodeAll(bytes);
    const got = batches[0]!;
    assert.equal(got.numRows, batch.numRows);
    assert.deepEqual([...got.metadata], [...batch.metadata]);
    for (let c = 0; c < batch.numCols; c++) {
      const a = batch.getChildAt(c)!;
      const b = got.getChildAt(c)!;
      assert.equal(b.nullCount, a.nullCount);
      assert.deepEqual(b.toArray(), a.toArray(), `batch ${i} column ${c}`);
    }
    const simple = batch.schema.fields.every(
      (f) => !["Decimal", "FixedSizeBinary"].some((n) => String(f.type).startsWith(n)),
    );
    if (simple && batch.schema.fields.length > 0) assert.equal(lean, 1, `batch ${i} was read the general way`);
  }
});

test("a lean message's arrow-js header matches the general decoder's", () => {
  const batch = batchFromColumns(
    { i: t.int64(), s: t.utf8().optional() },
    { i: [1n, 2n, 3n], s: ["a", null, "ccc"] },
    new Map([["k", "v"]]),
  );
  const message = concatBytes(encodeRecordBatchGeneral(batch));
  const length = new DataView(message.buffer).getInt32(4, true);
  const lean = decodeRecordBatchLean(message.subarray(8, 8 + length));
  assert.ok(lean !== null);
  const header = lean.header();
  assert.equal(header.length, 3);
  assert.deepEqual(
    header.nodes.map((n) => [n.length, n.nullCount]),
    [
      [3, 0],
      [3, 1],
    ],
  );
  assert.deepEqual(
    header.buffers.map((b) => [b.offset, b.length]),
    [
      [0, 0],
      [0, 24],
      [24, 8],
      [32, 16],
      [48, 8],
    ],
  );
  assert.equal(lean.bodyLength, 56);
  assert.deepEqual([...lean.metadata], [["k", "v"]]);
});

test("a schema message seen before decodes to the same Schema, whose cached message does not re-read the wire bytes", async () => {
  const fields = { i: t.int64(), s: t.utf8().optional() };
  const batch = batchFromColumns(fields, { i: [1n], s: ["x"] });
  const wire = concatBytes(encodeStream(batch.schema, [batch]));
  const first = new Uint8Array(wire);
  const a = new MessageFramer(once(first));
  const fa = await a.next();
  assert.ok(typeof fa === "object" && fa.schema !== undefined);
  // The reader's buffer is reused for other bytes after the message was decoded.
  first.fill(0);
  const b = new MessageFramer(once(new Uint8Array(wire)));
  const fb = await b.next();
  assert.ok(typeof fb === "object" && fb.schema !== undefined);
  assert.equal(fb.schema, fa.schema);
  assert.equal(fb.message.header(), fa.schema);
  assert.deepEqual(
    fa.schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
    [
      ["i", "Int64", false],
      ["s", "Utf8", true],
    ],
  );
});

test("two schema messages of the same length that differ in one byte decode to their own schemas", async () => {
  const schemaOfWire = async (fields: FieldSpecs) => {
    const batch = batchFromColumns(fields, Object.fromEntries(Object.keys(fields).map((k) => [k, [1n]])));
    const framer = new MessageFramer(once(new Uint8Array(concatBytes(encodeStream(batch.schema, [batch])))));
    const first = await framer.next();
    assert.ok(typeof first === "object" && first.schema !== undefined);
    return first.schema;
  };
  // Names of one length: the messages differ only in the name's bytes.
  for (let round = 0; round < 2; round++) {
    assert.deepEqual(
      (await schemaOfWire({ aaaa: t.int64() })).fields.map((f) => f.name),
      ["aaaa"],
    );
    assert.deepEqual(
      (await schemaOfWire({ aaab: t.int64() })).fields.map((f) => f.name),
      ["aaab"],
    );
    assert.deepEqual(
      (await schemaOfWire({ baaa: t.int64() })).fields.map((f) => f.name),
      ["baaa"],
    );
  }
});

test("metadata strings read back exactly, however many repeat or share a slot of the recent-string table", () => {
  const next = rng(17);
  const word = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(0x20 + Math.floor(next() * 95))).join("");
  // Many distinct keys and values of a few lengths: far more than the table holds, so slots are
  // shared and overwritten; some values repeat, one is not ASCII, one is long.
  const entries: [string, string][] = [];
  for (let i = 0; i < 600; i++) entries.push([`k${word(1 + (i % 5))}${i}`, i % 3 === 0 ? "same" : word(i % 7)]);
  entries.push(["naïve", "größe"], ["long", word(200)], ["", ""]);
  const decode = (md: Map<string, string>) => {
    const message = concatBytes(encodeRecordBatchGeneral(emptyBatch(EMPTY_SCHEMA, md)));
    const length = new DataView(message.buffer, message.byteOffset).getInt32(4, true);
    const lean = decodeRecordBatchLean(message.subarray(8, 8 + length));
    assert.ok(lean !== null);
    return lean.metadata;
  };
  for (let round = 0; round < 3; round++) {
    for (let at = 0; at < entries.length; at += 50) {
      const md = new Map(entries.slice(at, at + 50));
      assert.deepEqual([...decode(md)], [...md]);
    }
  }
});
