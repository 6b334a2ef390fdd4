import assert from "node:assert/strict";
import { test } from "node:test";
import { Field, Float64, Int64, LargeUtf8, makeData, RecordBatch, Schema, Struct, Utf8 } from "apache-arrow";
import { batchBytes } from "../../src/server/stats.js";

/** A batch whose columns are exactly `columns` (the same Data object may appear twice). */
function batchOf(columns: { name: string; data: ReturnType<typeof makeData> }[]): RecordBatch {
  const fields = columns.map((c) => new Field(c.name, c.data.type, false));
  const length = columns[0]!.data.length;
  const data = makeData({ type: new Struct(fields), length, nullCount: 0, children: columns.map((c) => c.data) });
  return new RecordBatch(new Schema(fields), data);
}

const ints = makeData({ type: new Int64(), length: 3, nullCount: 0, data: new BigInt64Array([1n, 2n, 3n]) });
const text = makeData({
  type: new Utf8(),
  length: 3,
  nullCount: 0,
  valueOffsets: new Int32Array([0, 1, 3, 6]),
  data: new TextEncoder().encode("abbccc"),
});

test("a batch's logical bytes: each column's buffers for its rows", () => {
  // int64: 3 x 8; utf8: 4 offsets x 4 + 6 bytes of text.
  assert.equal(batchBytes(batchOf([{ name: "i", data: ints }])), 24);
  assert.equal(batchBytes(batchOf([{ name: "s", data: text }])), 22);
  assert.equal(
    batchBytes(
      batchOf([
        { name: "i", data: ints },
        { name: "s", data: text },
      ]),
    ),
    46,
  );
});

test("an array two columns share counts once, on the short path and past it", () => {
  const shared = batchOf([
    { name: "a", data: ints },
    { name: "s", data: text },
    { name: "b", data: ints },
  ]);
  assert.equal(batchBytes(shared), 46);
  // More columns than the short path takes: the set of counted arrays decides.
  const wide = Array.from({ length: 20 }, (_, k) => ({ name: `c${k}`, data: k % 2 === 0 ? ints : text }));
  assert.equal(batchBytes(batchOf(wide)), 46);
  const distinct = Array.from({ length: 20 }, (_, k) => ({ name: `c${k}`, data: ints.slice(0, 3) }));
  assert.equal(batchBytes(batchOf(distinct)), 20 * 24);
});

test("validity counts when a column has nulls; wide offsets count 8 bytes each", () => {
  const floats = makeData({
    type: new Float64(),
    length: 10,
    nullCount: 2,
    nullBitmap: new Uint8Array([0b1111_1100, 0b11]),
    data: new Float64Array(10),
  });
  // 2 bytes of validity + 10 x 8.
  assert.equal(batchBytes(batchOf([{ name: "f", data: floats }])), 82);
  const wide = makeData({
    type: new LargeUtf8(),
    length: 2,
    nullCount: 0,
    valueOffsets: new BigInt64Array([0n, 2n, 5n]),
    data: new TextEncoder().encode("ab cd"),
  });
  // 3 offsets x 8 + 5 bytes.
  assert.equal(batchBytes(batchOf([{ name: "w", data: wide }])), 29);
});
