/**
 * The CLI's value reading and writing: JSON whose numbers keep every digit, `k=v` text read by
 * the declared type (refused, never guessed, when it is no value of that type), and output that
 * writes integers whole at any magnitude; parameters and exchange input read by their declared
 * schemas, and `-H` headers.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type DataType, Field, Float64, List, Schema, Utf8 } from "apache-arrow";
import { parseHeader, UsageError } from "../../src/bin/cli-args.js";
import { batchOf, exchangeInputs, paramsFromArgs, paramsFromJson } from "../../src/bin/cli-input.js";
import { JsonNumber, jsonOut, parseJson, toJsonText, valueFromJson, valueFromText } from "../../src/bin/cli-values.js";
import { InvalidValueError } from "../../src/errors.js";
import { t } from "../../src/protocol/types.js";
import { encodeStream } from "../../src/wire/ipc.js";

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

const params = new Schema([
  new Field("a", new Float64(), false),
  new Field("tags", new List(new Field("item", new Utf8(), true)), true),
]);

/** The message an `InvalidValueError` was refused with (the test fails on anything else). */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof InvalidValueError, String(e));
    return e.message;
  }
  assert.fail("not refused");
}

test("parameters: every value by its declared type; missing, null, unknown and non-JSON refused naming the parameter", () => {
  assert.deepEqual(paramsFromArgs("m", ["a=1.5", 'tags=["x"]'], params), { a: 1.5, tags: ["x"] });
  assert.deepEqual(paramsFromArgs("m", ["a=2"], params), { a: 2 });
  assert.deepEqual(paramsFromJson("m", '{"a": 3, "tags": null}', params), { a: 3, tags: null });
  assert.equal(
    refusal(() => paramsFromArgs("m", [], params)),
    "m() parameter 'a': no value given, and it is not nullable (float64)",
  );
  assert.equal(
    refusal(() => paramsFromJson("m", '{"a": null}', params)),
    "m() parameter 'a': null given, but it is not nullable (float64)",
  );
  assert.match(
    refusal(() => paramsFromArgs("m", ["a=1", "tags=[x"], params)),
    /^m\(\) parameter 'tags': not JSON \(/,
  );
  assert.equal(
    refusal(() => paramsFromJson("m", '{"a": true}', params)),
    "m() parameter 'a': expected a number for float64, got true",
  );
  assert.throws(
    () => paramsFromArgs("m", ["b=1"], params),
    (e: unknown) => e instanceof UsageError && e.message === "Unknown parameter 'b'. Available: a, tags",
  );
  assert.throws(() => paramsFromArgs("m", ["a"], params), UsageError);
  assert.throws(() => paramsFromJson("m", "[1]", params), /--json takes a JSON object/);
  assert.throws(() => paramsFromJson("m", "{", params), /--json is not JSON/);
});

test("exchange input: Arrow IPC batches as they are, JSON lines by the declared schema or an inferred one", () => {
  const input = new Schema([new Field("x", new Float64(), false)]);
  const arrow = Buffer.concat(encodeStream(input, [batchOf("m", "input field", input, { x: 1 })]));
  const fromArrow = exchangeInputs("m", arrow, null, "in.arrow");
  assert.deepEqual(
    fromArrow.map((b) => [b.numRows, b.schema.fields.map((f) => f.name)]),
    [[1, ["x"]]],
  );
  assert.throws(
    () => exchangeInputs("m", arrow.subarray(0, 20), null, "in.arrow"),
    /in\.arrow is not a readable Arrow IPC stream/,
  );

  const jsonl = new TextEncoder().encode('{"x": 1}\n\n{"x": "2.5"}\n');
  const declared = exchangeInputs("m", jsonl, input, "in.jsonl");
  assert.deepEqual(
    declared.map((b) => [b.schema.fields[0]!.type.toString(), b.getChildAt(0)!.get(0)]),
    [
      ["Float64", 1],
      ["Float64", 2.5],
    ],
  );
  // Without a declared schema a column of integers is int64, as pyarrow infers it.
  const inferred = exchangeInputs("m", new TextEncoder().encode('{"x": 1}\n'), null, "stdin");
  assert.equal(inferred[0]!.schema.fields[0]!.type.toString(), "Int64");
  assert.equal(
    refusal(() => exchangeInputs("m", new TextEncoder().encode('{"x": 1}\n{}\n'), input, "in.jsonl")),
    "in.jsonl line 2: m() input field 'x': no value given, and it is not nullable (float64)",
  );
  assert.throws(
    () => exchangeInputs("m", new TextEncoder().encode("[1]\n"), input, "stdin"),
    (e: unknown) =>
      e instanceof UsageError && e.message === "stdin line 1: each input line must be a JSON object, got: [1]",
  );
});

test("headers: -H 'Name: value', trimmed; a malformed one is a usage error", () => {
  assert.deepEqual(parseHeader("Authorization:  Bearer t "), ["Authorization", "Bearer t"]);
  assert.deepEqual(parseHeader("X-Empty:"), ["X-Empty", ""]);
  for (const bad of ["no colon", ": v", "Bad Name: v", "A: b\r\nC: d"])
    assert.throws(() => parseHeader(bad), UsageError, bad);
});
