import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Binary,
  type DataType,
  Decimal,
  Dictionary,
  Float16,
  Float32,
  Int32,
  makeBuilder,
  Utf8,
  vectorFromArray,
} from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { InvalidValueError } from "../../src/errors.js";
import { batchFromData, batchFromRows, rowsFromBatch, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { typeText, UnsupportedArrowTypeError } from "../../src/protocol/type-tokens.js";
import { type FieldSpecs, t } from "../../src/protocol/types.js";
import { bind } from "../../src/server/server.js";
import { batchBytes } from "../../src/server/stats.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import { readStream } from "../helpers/raw-peer.js";

const everything = {
  b: t.bool(),
  i8: t.int8(),
  i16: t.int16(),
  i32: t.int32(),
  i64: t.int64(),
  u8: t.uint8(),
  u16: t.uint16(),
  u32: t.uint32(),
  u64: t.uint64(),
  f32: t.float32(),
  f64: t.float64(),
  s: t.utf8(),
  ls: t.largeUtf8(),
  bin: t.binary(),
  lbin: t.largeBinary(),
  fixed: t.fixedBinary(4),
  day: t.date32(),
  ts: t.timestampUs(),
  tsUtc: t.timestampUs("UTC"),
  time: t.time64Us(),
  dur: t.durationUs(),
  dec: t.decimal128(20, 4),
  status: t.enumOf("PENDING", "ACTIVE", "CLOSED"),
  dict: t.dictUtf8(),
  list: t.list(t.utf8()),
  nested: t.list(t.list(t.int64())),
  map: t.map(t.utf8(), t.int64()),
  point: t.struct({ x: t.float64(), y: t.float64() }),
  maybe: t.int64().optional(),
};

test("every type spec round-trips its JS values through Arrow IPC bytes", async () => {
  const rows = [
    {
      b: true,
      i8: -128,
      i16: -32768,
      i32: -2147483648,
      i64: -(2n ** 63n),
      u8: 255,
      u16: 65535,
      u32: 4294967295,
      u64: 2n ** 64n - 1n,
      f32: 1.5,
      f64: -0.1,
      s: "héllo",
      ls: "large",
      bin: new Uint8Array([0, 1, 2]),
      lbin: new Uint8Array([255]),
      fixed: new Uint8Array([1, 2, 3, 4]),
      day: 19_000,
      ts: 1_700_000_000_123_456n,
      tsUtc: -1n,
      time: 86_399_999_999n,
      dur: -5n,
      dec: -12_345_678_901_234_567_890n,
      status: "ACTIVE" as const,
      dict: "x",
      list: ["a", "b"],
      nested: [[1n], [], [2n, 3n]],
      map: new Map([
        ["z", 1n],
        ["a", 2n],
      ]),
      point: { x: 1.5, y: 2.5 },
      maybe: null,
    },
    {
      b: false,
      i8: 127,
      i16: 1,
      i32: 2147483647,
      i64: 2n ** 63n - 1n,
      u8: 0,
      u16: 0,
      u32: 0,
      u64: 0n,
      f32: 0,
      f64: Number.POSITIVE_INFINITY,
      s: "",
      ls: "",
      bin: new Uint8Array(),
      lbin: new Uint8Array(),
      fixed: new Uint8Array([9, 9, 9, 9]),
      day: -1,
      ts: 0n,
      tsUtc: 0n,
      time: 0n,
      dur: 0n,
      dec: 10_000n,
      status: "CLOSED" as const,
      dict: "y",
      list: [],
      nested: [],
      map: new Map<string, bigint>(),
      point: { x: -0, y: 0 },
      maybe: 42n,
    },
  ];
  const batch = batchFromRows(everything, rows);
  const bytes = concatBytes(encodeStream(schemaOf(everything), [batch]));
  async function* once() {
    yield bytes;
  }
  const decoded = await readStream(new MessageFramer(once()));
  assert.deepEqual(rowsFromBatch(everything, decoded!.batches[0]!), rows);
});

// Compile-time checks: each @ts-expect-error must be an error, or `tsc --noEmit` (part of
// `npm test`) fails. The function is never called.
export function typeLevelChecks(): void {
  const P = defineProtocol(
    "test.Types.v1",
    {},
    {
      add: unary({ a: t.float64(), b: t.int64() }, t.float64()),
      maybe: unary({ s: t.utf8().optional() }, t.utf8().optional()),
      gen: producer(
        { n: t.int64() },
        { output: { i: t.int64() }, header: { total: t.int64() }, state: { left: t.int64() } },
      ),
      xch: exchange({}, { input: { x: t.float64() }, output: { y: t.utf8() } }),
    },
  );
  const gen = {
    init: ({ n }: { n: bigint }) => ({ header: { total: n }, state: { left: n } }),
    produce: (state: { left: bigint }, out: { finish(): void }) => {
      state.left -= 1n;
      if (state.left < 0n) out.finish();
    },
  };
  const xch = { init: () => ({}), process: (_s: unknown, _i: unknown, out: { emit(rows: []): void }) => out.emit([]) };
  bind(P, {
    add: ({ a, b }) => a + Number(b),
    maybe: ({ s }) => (s === null ? null : s.toUpperCase()),
    gen: {
      init: ({ n }) => ({ header: { total: n }, state: { left: n } }),
      produce: (state, out) => (state.left-- > 0n ? out.emit([{ i: state.left }]) : out.finish()),
    },
    xch: {
      init: () => ({}),
      process: (_state, input, out) => out.emit(input.column("x").map((x) => ({ y: x.toFixed(1) }))),
    },
  });
  bind(P, {
    // @ts-expect-error int64 params are bigint, so `b` cannot be added to a number
    add: ({ a, b }) => a + b,
    maybe: () => null,
    gen,
    xch,
  });
  bind(P, {
    // @ts-expect-error the result is float64 (number), not a string
    add: () => "three",
    maybe: () => null,
    gen,
    xch,
  });
  // @ts-expect-error a handler is missing (`xch`)
  bind(P, { add: () => 1, maybe: () => null, gen });
  bind(P, {
    add: () => 1,
    maybe: () => null,
    gen: {
      // @ts-expect-error a declared header must be returned
      init: ({ n }) => ({ state: { left: n } }),
      produce: (_state, out) => out.finish(),
    },
    xch,
  });
  bind(P, {
    add: () => 1,
    maybe: () => null,
    gen: {
      // @ts-expect-error the declared state must be returned, with its declared types
      init: ({ n }) => ({ header: { total: n }, state: { left: Number(n) } }),
      produce: (_state, out) => out.finish(),
    },
    xch,
  });
  bind(P, {
    add: () => 1,
    maybe: () => null,
    gen,
    xch: {
      init: () => ({}),
      // @ts-expect-error output rows are { y: string }
      process: (_state, _input, out) => out.emit([{ y: 1 }]),
    },
  });
}

test("string and binary columns build the data, and write the IPC bytes, of arrow-js's own builder", async () => {
  const long = `${"x".repeat(70)}é`;
  const cases: Array<[string, FieldSpecs[string], unknown[]]> = [
    ["utf8, one short ASCII value", t.utf8(), ["row-7"]],
    ["utf8, one non-ASCII value", t.utf8(), ["héllo wörld ✓"]],
    ["utf8, long values either side of 64 chars", t.utf8(), ["a".repeat(63), "b".repeat(64), long, ""]],
    ["utf8, nulls among values", t.utf8().optional(), [null, "a", undefined, "ü", null, "", "zz"]],
    ["utf8, all null", t.utf8().optional(), [null, null, null]],
    ["utf8, none", t.utf8(), []],
    ["large utf8", t.largeUtf8().optional(), ["a", null, long, "b"]],
    ["binary, one value", t.binary(), [new Uint8Array([0, 255, 7])]],
    [
      "binary, several with nulls",
      t.binary().optional(),
      [new Uint8Array([1]), null, new Uint8Array(0), new Uint8Array([2, 3])],
    ],
    ["large binary", t.largeBinary(), [new Uint8Array([9, 8]), new Uint8Array(300).fill(4)]],
  ];
  for (const [name, spec, values] of cases) {
    const fields = { v: spec };
    const schema = schemaOf(fields);
    const ours = spec.codec.build(values);
    const builder = makeBuilder({ type: spec.arrowType, nullValues: [null, undefined] });
    for (const v of values) builder.append(v);
    const theirs = builder.finish().flush();
    assert.equal(ours.length, theirs.length, name);
    assert.equal(ours.nullCount, theirs.nullCount, name);
    for (let i = 0; i < values.length; i++) {
      assert.equal(ours.getValid(i), theirs.getValid(i), `${name}: validity of ${i}`);
      if (ours.getValid(i))
        assert.deepEqual(spec.codec.get(ours, i), getVisitor.visit(theirs, i), `${name}: value ${i}`);
    }
    const bytes = (d: typeof ours) => concatBytes(encodeStream(schema, [batchFromData(schema, [d], values.length)]));
    // The builder's validity bitmap is a 64-byte allocation, which the encoder writes whole; with
    // no nulls neither writes one, and then the messages are identical.
    if (ours.nullCount === 0) assert.deepEqual(bytes(ours), bytes(theirs), `${name}: IPC bytes`);
    const wire = bytes(ours);
    const decoded = await readStream(
      new MessageFramer(
        (async function* () {
          yield wire;
        })(),
      ),
    );
    assert.deepEqual(
      rowsFromBatch(fields, decoded!.batches[0]!),
      rowsFromBatch(fields, batchFromData(schema, [theirs], values.length)),
      name,
    );
  }
  assert.throws(
    () => t.binary().codec.build(["not bytes"]),
    (e: unknown) => e instanceof InvalidValueError && e.type === "TypeError",
  );
});

test("int64, float64 and string values read directly are the values written", () => {
  const strings = ["", "row-7", "héllo", "x".repeat(63), "y".repeat(64), "日本語", "\ufeffkept", "\ufeff"];
  const cases: Array<[FieldSpecs[string], unknown[]]> = [
    [t.int64(), [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n)]],
    [t.uint64(), [0n, 2n ** 64n - 1n]],
    [t.float64(), [0, -0, 1.5, Number.NaN, Number.NEGATIVE_INFINITY]],
    [t.utf8(), strings],
    [t.largeUtf8(), strings],
  ];
  for (const [spec, values] of cases) {
    const builder = makeBuilder({ type: spec.arrowType, nullValues: [null, undefined] });
    for (const v of values) builder.append(v);
    const data = builder.finish().flush();
    for (let i = 0; i < values.length; i++) {
      const what = `${String(spec.arrowType)} value ${i}`;
      assert.deepEqual(spec.codec.get(data, i), values[i], what);
      // arrow-js's own getter agrees, except that it drops a leading U+FEFF.
      if (!String(values[i]).startsWith("\ufeff"))
        assert.deepEqual(spec.codec.get(data, i), getVisitor.visit(data, i), what);
    }
  }
});

test("a column of another type than declared is read as arrow-js reads its own type", () => {
  // A peer may answer with another type than the client declared: the direct reads apply only to
  // their own types, everything else goes through arrow-js's getter as before.
  const cases: Array<[FieldSpecs[string], DataType, unknown[]]> = [
    [t.float64(), new Float16(), [1, -2.5]],
    [t.float64(), new Float32(), [0.5, 3]],
    [t.int64(), new Int32(), [7, -1]],
    [t.utf8(), new Binary(), [new Uint8Array([104, 105])]],
    [t.utf8(), new Dictionary(new Utf8(), new Int32()), ["a", "b", "a"]],
  ];
  for (const [spec, type, values] of cases) {
    const data = vectorFromArray(values, type).data[0]!;
    for (let i = 0; i < values.length; i++) {
      assert.deepEqual(spec.codec.get(data, i), getVisitor.visit(data, i), `${String(type)} value ${i}`);
    }
  }
  // A lone binary value is kept as a plain Uint8Array view, even when given as a Node Buffer.
  const built = t.binary().codec.build([Buffer.from("ab")]);
  assert.equal((built.values as Uint8Array).constructor, Uint8Array);
  assert.deepEqual(t.binary().codec.get(built, 0), new Uint8Array([97, 98]));
});

test("a sliced batch reads as its rows, and its statistics count only them", () => {
  const fields = {
    ts: t.timestampUs(),
    day: t.date32(),
    dec: t.decimal128(20, 4),
    list: t.list(t.utf8()),
    map: t.map(t.utf8(), t.int64()),
    status: t.enumOf("A", "B", "C"),
    s: t.utf8().optional(),
    point: t.struct({ x: t.float64() }),
  };
  const rows = [0, 1, 2, 3].map((k) => ({
    ts: BigInt(k) * 1_000_000n,
    day: 19_000 + k,
    dec: BigInt(k) * -12_345n,
    list: Array.from({ length: k }, (_, j) => `v${k}.${j}`),
    map: new Map([[`k${k}`, BigInt(k)]]),
    status: (["A", "B", "C"] as const)[k % 3]!,
    s: k === 2 ? null : `row-${k}`,
    point: { x: k / 2 },
  }));
  const batch = batchFromRows(fields, rows);
  const sliced = batch.slice(1, 3);
  assert.equal(sliced.numRows, 2);
  assert.deepEqual(rowsFromBatch(fields, sliced), rows.slice(1, 3));
  // Logical bytes of the slice: those of the same two rows built on their own (utf8 and int64
  // columns; a sliced dictionary keeps its whole dictionary, so enums are left out here).
  const plain = { s: t.utf8().optional(), n: t.int64() };
  const plainRows = [
    { s: "a", n: 1n },
    { s: "bbbb", n: 2n },
    { s: null, n: 3n },
    { s: "dd", n: 4n },
  ];
  const whole = batchFromRows(plain, plainRows);
  assert.equal(batchBytes(whole.slice(1, 3)), batchBytes(batchFromRows(plain, plainRows.slice(1, 3))));
});

test("types apache-arrow cannot carry, and decimal32/64, are refused where they are declared", () => {
  const unsupported = (f: () => unknown, message: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof UnsupportedArrowTypeError && message.test(e.message));
  unsupported(() => t.listView(t.int64()), /list_view cannot be declared: apache-arrow 21 cannot read or write it/);
  unsupported(() => t.largeListView(t.int64()), /large_list_view cannot be declared/);
  unsupported(() => t.runEndEncoded(t.int32(), t.utf8()), /run_end_encoded cannot be declared/);
  unsupported(() => t.decimal32(5, 2), /decimal32\(5, 2\) cannot be declared: the reference .* has no canonical token/);
  unsupported(() => t.decimal64(12, 2), /decimal64/);
  unsupported(() => t.fromArrow(new Decimal(2, 9, 32)), /decimal32/);
  unsupported(() => t.dictionary(t.dictUtf8(), t.int8()), /dictionary of dictionary-encoded values/);
  assert.throws(() => t.dictionary(t.utf8(), t.float32() as never), /dictionary index type should be integer/);
  assert.throws(() => t.decimal128(39, 0), /precision should be between 1 and 38/);
  assert.throws(() => t.decimal256(0, 0), /precision should be between 1 and 76/);
  assert.throws(() => t.timestamp("minutes" as "s"), /timestamp takes the unit/);
  assert.throws(() => t.time32("us" as "s"), /time32 takes the unit "s" or "ms"/);
  assert.throws(() => t.fixedSizeList(t.int8(), -1), /size must be a non-negative 32-bit integer/);
  assert.throws(() => t.denseUnion({ a: t.int8() }, [200]), /type ids must be distinct integers from 0 to 127/);
  assert.throws(() => t.enumOf(), /at least one member/);
  // The reference's own words for a non-nullable null column.
  assert.throws(() => t.null().withNullable(false), /^ValueError: A null type field may not be non-nullable$/);
  // A default outside its type is refused where it is declared.
  assert.throws(
    () => t.int8().default(300),
    (e: unknown) =>
      e instanceof InvalidValueError && e.type === "OverflowError" && /300 is out of range/.test(e.message),
  );
  assert.throws(() => t.int64().default(1.5 as never), /1.5 is not an integer/);
});

test("t.fromArrow gives every Arrow type apache-arrow carries a spec that reads and writes that very type", () => {
  const declared = [
    t.null(),
    t.date64(),
    t.timestamp("ns", "UTC"),
    t.time32("ms"),
    t.duration("ms"),
    t.intervalDayTime(),
    t.intervalMonthDayNano(),
    t.decimal256(60, 3),
    t.utf8View(),
    t.binaryView(),
    t.largeList(t.float16()),
    t.fixedSizeList(t.bool(), 3),
    t.sparseUnion({ a: t.int8().optional(), b: t.utf8().optional() }, [4, 2]),
    t.dictionary(t.binary(), t.uint16(), { ordered: true }),
    t.map(t.int64(), t.struct({ x: t.utf8().optional() })),
  ];
  for (const spec of declared) {
    const again = t.fromArrow(spec.arrowType, spec.nullable);
    assert.equal(again.arrowType, spec.arrowType);
    assert.equal(typeText(again.arrowType), typeText(spec.arrowType));
  }
  const everyValue = {
    u: t.fromArrow(declared[12]!.arrowType, false),
    d: t.fromArrow(declared[13]!.arrowType, false),
    m: t.fromArrow(declared[14]!.arrowType, false),
  };
  const rows = [
    {
      u: { tag: "b", value: "x" },
      d: new Uint8Array([1]),
      m: new Map([[-(2n ** 63n), { x: null }]]),
    },
  ];
  assert.deepEqual(rowsFromBatch(everyValue, batchFromRows(everyValue, rows as never)), rows);
});
