/**
 * The CLI's value reading and writing: JSON whose numbers keep every digit, `k=v` text read by
 * the declared type (refused, never guessed, when it is no value of that type), and output that
 * writes integers whole at any magnitude.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DataType } from "apache-arrow";
import { JsonNumber, jsonOut, parseJson, toJsonText, valueFromJson, valueFromText } from "../../src/bin/cli-values.js";
import { InvalidValueError } from "../../src/errors.js";
import { t } from "../../src/protocol/types.js";

const type = (spec: { readonly arrowType: DataType }) => spec.arrowType;

test("JSON numbers keep their literal, and bigints are written back as whole integers", () => {
  const v = parseJson(
    '{"n": 99999999999999999999, "f": -1.5e3, "s": "x", "a": [true, null], "__proto__": 1}',
  ) as Record<string, unknown>;
  assert.deepEqual(v.n, new JsonNumber("99999999999999999999"));
  assert.deepEqual(v.f, new JsonNumber("-1.5e3"));
  assert.deepEqual(v.a, [true, null]);
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v), ["n", "f", "s", "a", "__proto__"]);
  assert.equal(
    toJsonText({ big: 2n ** 64n - 1n, neg: -(2n ** 63n), x: 1.5, nan: Number.NaN }),
    '{"big":18446744073709551615,"neg":-9223372036854775808,"x":1.5,"nan":"NaN"}',
  );
  assert.equal(toJsonText([1n, { a: [] }], 2), '[\n  1,\n  {\n    "a": []\n  }\n]');
  for (const bad of ["{", "[1,]", "01", "1 2", '{"a" 1}', "nul"]) assert.throws(() => parseJson(bad), SyntaxError, bad);
});

test("k=v text is read by the declared type, exactly", () => {
  assert.equal(valueFromText(type(t.int64()), "99999999999999999999"), 99999999999999999999n);
  assert.equal(valueFromText(type(t.int32()), "-7"), -7);
  assert.equal(valueFromText(type(t.float64()), "1e3"), 1000);
  assert.equal(valueFromText(type(t.float32()), "-inf"), Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(valueFromText(type(t.float64()), "nan") as number));
  assert.equal(valueFromText(type(t.bool()), "Yes"), true);
  assert.equal(valueFromText(type(t.bool()), "0"), false);
  assert.equal(valueFromText(type(t.decimal128(20, 4)), "12.34"), 123_400n);
  assert.equal(valueFromText(type(t.decimal128(20, 4)), "-1.5e-3"), -15n);
  assert.equal(valueFromText(type(t.date32()), "2024-05-01"), 19844);
  assert.equal(valueFromText(type(t.date64()), "1970-01-02"), 86_400_000n);
  assert.equal(
    valueFromText(type(t.timestamp("ns", "UTC")), "2024-05-01T12:00:00.123456789+02:00"),
    1_714_557_600_123_456_789n,
  );
  assert.equal(valueFromText(type(t.time64("us")), "5"), 5n);
  assert.equal(valueFromText(type(t.enumOf("A", "B")), "B"), "B");
  assert.deepEqual(valueFromText(type(t.list(t.int64())), "[1, 99999999999999999999]"), [1n, 99999999999999999999n]);
  assert.deepEqual(valueFromText(type(t.map(t.int32(), t.utf8())), '{"5": "a"}'), new Map([[5, "a"]]));
  assert.deepEqual(valueFromText(type(t.intervalMonthDayNano()), '{"months": 1, "days": 2, "nanoseconds": 3}'), {
    months: 1,
    days: 2,
    nanoseconds: 3n,
  });
  assert.deepEqual(valueFromJson(type(t.denseUnion({ a: t.int64() })), parseJson('{"tag": "a", "value": 7}')), {
    tag: "a",
    value: 7n,
  });
});

test("text that is no value of the declared type is refused with the type's error, not coerced", () => {
  const refused = (spec: { readonly arrowType: DataType }, text: string, kind: string, message: RegExp) =>
    assert.throws(
      () => valueFromText(spec.arrowType, text),
      (e: unknown) => e instanceof InvalidValueError && e.type === kind && message.test(e.message),
      text,
    );
  refused(t.float64(), "one", "TypeError", /expected a number for float64, got "one"/);
  refused(t.int32(), "1.9", "TypeError", /1.9 is not an integer, as int32 needs/);
  refused(t.int64(), "1e400", "OverflowError", /1e400 is out of range for int64/);
  refused(t.int64(), "1e999999999", "OverflowError", /out of range/);
  refused(t.int64(), "1e-999999999", "TypeError", /is not an integer/);
  refused(t.decimal256(76, 0), "1e999999999", "OverflowError", /more digits than decimal256/);
  refused(t.int64(), "seven", "TypeError", /expected an integer/);
  refused(t.bool(), "maybe", "TypeError", /expected true, false, 1, 0, yes or no/);
  refused(t.decimal128(20, 4), "1.00001", "ValueError", /more fractional digits than the scale/);
  refused(t.timestamp("s"), "2024-05-01T00:00:00.5Z", "ValueError", /finer than timestamp\(s\)/);
  refused(t.timestamp("us"), "2024-05-01T00:00:00", "TypeError", /ISO 8601 timestamp with a zone/);
  refused(t.date32(), "2024-02-30", "TypeError", /YYYY-MM-DD/);
  refused(t.struct({ a: t.int8() }), '{"a": 1, "b": 2}', "TypeError", /"b" is not a field/);
  refused(t.list(t.utf8()), '["a", 1]', "TypeError", /^value\[1\]: expected a string for utf8, got 1$/);
  assert.throws(() => valueFromText(t.list(t.int8()).arrowType, "[1,"), SyntaxError);
});

test("output writes decimals as their exact text and bytes as Python shows them", () => {
  assert.equal(jsonOut(type(t.decimal128(20, 4)), -123_400n), "-12.3400");
  assert.equal(jsonOut(type(t.decimal128(5, 4)), 5n), "0.0005");
  assert.equal(jsonOut(type(t.decimal128(5, -2)), 5n), "500");
  assert.equal(jsonOut(type(t.binary()), new Uint8Array([0x61, 0x27, 0])), "b'a\\'\\x00'");
  assert.deepEqual(jsonOut(type(t.map(t.int64(), t.list(t.decimal128(3, 1)))), new Map([[2n ** 63n - 1n, [15n]]])), {
    "9223372036854775807": ["1.5"],
  });
});
