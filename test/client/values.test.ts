/**
 * Building batches from JSON values by Arrow type (`batchFromJsonRows`): values are converted to
 * their type's JS value only where that is exact, and the type's codec refuses the rest.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Field, Float64, Int32, Schema, Uint8, Uint64 } from "apache-arrow";
import { batchFromJsonRows } from "../../src/client/values.js";
import { InvalidValueError } from "../../src/errors.js";
import { rowsFromBatch } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";

const schema = new Schema([
  new Field("u8", new Uint8(), true),
  new Field("i32", new Int32(), true),
  new Field("u64", new Uint64(), true),
  new Field("f", new Float64(), true),
]);
const fields = {
  u8: t.uint8().optional(),
  i32: t.int32().optional(),
  u64: t.uint64().optional(),
  f: t.float64().optional(),
};

test("JSON rows become a batch with every value exact, 64-bit integers given as text included", () => {
  const batch = batchFromJsonRows(schema, [{ u8: 255, i32: "-7", u64: "18446744073709551615", f: "1e3" }]);
  assert.deepEqual(rowsFromBatch(fields, batch), [{ u8: 255, i32: -7, u64: 2n ** 64n - 1n, f: 1000 }]);
});

test("JSON values outside their column's type are refused, not wrapped or turned into NaN", () => {
  const refused = (row: Record<string, unknown>, type: string) =>
    assert.throws(
      () => batchFromJsonRows(schema, [row]),
      (e: unknown) => e instanceof InvalidValueError && e.type === type,
      JSON.stringify(row),
    );
  refused({ u8: 300 }, "OverflowError");
  refused({ u8: -1 }, "OverflowError");
  refused({ i32: 1.9 }, "TypeError");
  refused({ u64: 2 ** 64 }, "OverflowError");
  refused({ u64: 2 ** 60 }, "TypeError");
  refused({ f: "one" }, "TypeError");
});
