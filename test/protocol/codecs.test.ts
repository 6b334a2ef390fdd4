/**
 * The codecs' checks on their own: where a refused value sits inside a container, the edges of
 * each integer range, float16 rounding, dictionary indices running out, and that a value past
 * 2^53 is never taken as a `number`. (Per-type round trips: test/client/types-roundtrip.test.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidValueError } from "../../src/errors.js";
import { batchFromRows, rowsFromBatch } from "../../src/protocol/batch.js";
import { float16Bits } from "../../src/protocol/codecs.js";
import { type FieldSpecs, type TypeSpec, t } from "../../src/protocol/types.js";

/** The refusal of building `values` with `spec`: its type, message (without method) and row. */
function refusal(spec: TypeSpec<unknown>, values: readonly unknown[]): InvalidValueError {
  try {
    batchFromRows({ v: spec }, values.map((v) => ({ v })) as never, undefined, undefined, {
      method: "m",
      role: "parameter",
    });
  } catch (err) {
    assert.ok(err instanceof InvalidValueError, String(err));
    return err;
  }
  assert.fail(`${values.map(String).join(", ")} was not refused`);
}

test("a refused value inside containers is named by its path, and by its row in a batch of several", () => {
  const cases: Array<[TypeSpec<unknown>, unknown[], string]> = [
    [t.list(t.int8()), [[1, 2, 128]], "m() parameter 'v[2]': 128 is out of range for int8 (-128 to 127)"],
    [
      t.list(t.list(t.uint16())),
      [[[1]], [[], [2, -1]]],
      "m() parameter 'v[1][1]' (row 1): -1 is out of range for uint16 (0 to 65535)",
    ],
    [
      t.struct({ a: t.struct({ "odd name": t.int32() }) }),
      [{ a: { "odd name": 0.5 } }],
      `m() parameter 'v.a["odd name"]': 0.5 is not an integer, as int32 needs`,
    ],
    [
      t.map(t.utf8(), t.largeList(t.uint32())),
      [new Map([["k", [1, 2 ** 32]]])],
      `m() parameter 'v["k"][1]': 4294967296 is out of range for uint32 (0 to 4294967295)`,
    ],
    [
      t.map(t.int16(), t.utf8()),
      [new Map([[40_000, "a"]])],
      "m() parameter 'v key 40000': 40000 is out of range for int16 (-32768 to 32767)",
    ],
    [
      t.fixedSizeList(t.uint8(), 2),
      [
        [1, 2],
        [3, 256],
      ],
      "m() parameter 'v[1]' (row 1): 256 is out of range for uint8 (0 to 255)",
    ],
    [
      t.denseUnion({ a: t.utf8(), b: t.int64() }),
      [
        { tag: "a", value: "x" },
        { tag: "b", value: 2n ** 63n },
      ],
      "m() parameter 'v<b>' (row 1): 9223372036854775808 is out of range for int64 (-9223372036854775808 to 9223372036854775807)",
    ],
    [
      t.list(t.dictionary(t.decimal128(5, 2), t.int8())),
      [[1n, 100_000n]],
      "m() parameter 'v[1]': 100000 has more than the 5 digits of decimal128(5,2)",
    ],
    [
      t.struct({ x: t.int64() }),
      [{ x: null }],
      "m() parameter 'v.x': null, but that field of struct<x:int64> is not nullable",
    ],
    [t.utf8(), ["a", null], "m() parameter 'v' (row 1): null, but the field is not nullable"],
  ];
  for (const [spec, values, message] of cases) assert.equal(refusal(spec, values).message, message);
});

test("every integer type holds its extremes and refuses one past them, as an OverflowError", () => {
  const limits: Array<[() => TypeSpec<unknown>, number | bigint, number | bigint]> = [
    [() => t.int8(), -128, 127],
    [() => t.int16(), -32768, 32767],
    [() => t.int32(), -(2 ** 31), 2 ** 31 - 1],
    [() => t.uint8(), 0, 255],
    [() => t.uint16(), 0, 65535],
    [() => t.uint32(), 0, 2 ** 32 - 1],
    [() => t.int64(), -(2n ** 63n), 2n ** 63n - 1n],
    [() => t.uint64(), 0n, 2n ** 64n - 1n],
    [() => t.date32(), -(2 ** 31), 2 ** 31 - 1],
    [() => t.intervalMonths(), -(2 ** 31), 2 ** 31 - 1],
    [() => t.timestamp("ns"), -(2n ** 63n), 2n ** 63n - 1n],
    [() => t.duration("s"), -(2n ** 63n), 2n ** 63n - 1n],
  ];
  for (const [spec, min, max] of limits) {
    const fields: FieldSpecs = { v: spec() };
    const rows = [{ v: min }, { v: max }];
    assert.deepEqual(rowsFromBatch(fields, batchFromRows(fields, rows)), rows);
    const one = typeof max === "bigint" ? 1n : 1;
    for (const beyond of [(min as bigint) - (one as bigint), (max as bigint) + (one as bigint)]) {
      const err = refusal(spec(), [beyond]);
      assert.equal(err.type, "OverflowError", err.message);
      assert.equal(err.code, "OUT_OF_RANGE");
      assert.equal(err.value, beyond);
    }
  }
});

test("64-bit types take a number only while it is a safe integer, so no digit is ever guessed", () => {
  const fields = { v: t.int64() };
  assert.deepEqual(rowsFromBatch(fields, batchFromRows(fields, [{ v: 2 ** 53 - 1 } as never])), [
    { v: 2n ** 53n - 1n },
  ]);
  for (const v of [2 ** 53, -(2 ** 53), 2 ** 62]) {
    const err = refusal(t.int64(), [v]);
    assert.equal(err.type, "TypeError");
    assert.match(err.message, /is a number beyond 2\^53, which cannot be exact: pass a bigint for int64/);
  }
  assert.equal(refusal(t.int64(), [1e20]).type, "OverflowError");
  assert.equal(refusal(t.int64(), [Number.NaN]).type, "TypeError");
  assert.equal(refusal(t.uint64(), [Number.POSITIVE_INFINITY]).type, "OverflowError");
  // A decimal never takes a number: 5 would be ambiguous (5, or 5 / 10^scale?).
  assert.match(
    refusal(t.decimal128(10, 2), [5]).message,
    /expected a bigint \(the unscaled value, value × 10\^scale\)/,
  );
});

test("float16 rounds to nearest even and refuses a finite value past 65504 rounding", () => {
  const cases: Array<[number, number]> = [
    [0.1, 0x2e66],
    [65504, 0x7bff],
    [65519.99, 0x7bff],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000],
    [3 * 2 ** -25, 0x0002],
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [-2, 0xc000],
    [-0, 0x8000],
    [Number.POSITIVE_INFINITY, 0x7c00],
    [Number.NEGATIVE_INFINITY, 0xfc00],
  ];
  for (const [v, bits] of cases) assert.equal(float16Bits(v), bits, `float16(${v})`);
  assert.equal(float16Bits(65520), -1);
  assert.equal(refusal(t.float16(), [-70000]).type, "OverflowError");
});

test("a dictionary refuses more distinct values than its indices address, and keeps -0 apart from 0", () => {
  const fields = { v: t.dictionary(t.int64(), t.int8()) };
  const fits = Array.from({ length: 128 }, (_, i) => ({ v: BigInt(i) }));
  assert.deepEqual(rowsFromBatch(fields, batchFromRows(fields, [...fits, ...fits])), [...fits, ...fits]);
  const err = refusal(fields.v, [...fits.map((r) => r.v), 128n]);
  assert.equal(err.type, "OverflowError");
  assert.equal(
    err.message,
    "m() parameter 'v' (row 128): 128 is distinct value 129, more than the 128 indices of int8 can address",
  );
  const floats = { v: t.dictionary(t.float64(), t.uint8()) };
  const rows = [{ v: 0 }, { v: -0 }, { v: Number.NaN }, { v: Number.NaN }, { v: 0 }];
  const back = rowsFromBatch(floats, batchFromRows(floats, rows));
  assert.deepEqual(back, rows);
  assert.ok(Object.is(back[1]!.v, -0) && Object.is(back[0]!.v, 0));
});

test("strings with a lone surrogate are refused rather than written as U+FFFD; well-formed ones keep every code point", () => {
  for (const s of ["\ud800", `${"a".repeat(70)}\udfff`, "x\ud83d"]) {
    assert.equal(refusal(t.utf8(), [s]).type, "ValueError");
  }
  const fields = { v: t.utf8() };
  const rows = [{ v: "𝄞 ok" }, { v: `${"é".repeat(80)}😀` }];
  assert.deepEqual(rowsFromBatch(fields, batchFromRows(fields, rows)), rows);
});

test("a null union is a null in its first member and reads back as null; a tagged value keeps its member", () => {
  const fields = {
    d: t.denseUnion({ a: t.int64(), b: t.utf8() }).optional(),
    s: t.sparseUnion({ a: t.int64(), b: t.utf8() }, [9, 4]).optional(),
  };
  const rows = [
    { d: null, s: null },
    { d: { tag: "b" as const, value: "x" }, s: { tag: "a" as const, value: -1n } },
  ];
  const batch = batchFromRows(fields, rows);
  assert.deepEqual(rowsFromBatch(fields, batch), rows);
  assert.deepEqual([...(batch.data.children[1]!.typeIds as Int8Array)], [9, 9]);
});
