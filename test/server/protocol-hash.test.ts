import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { Decimal, Field, Int32, Schema } from "apache-arrow";
import { type FieldToken, schemaTokens, typeToken, UnsupportedArrowTypeError } from "../../src/protocol/type-tokens.js";
import {
  canonicalJson,
  computeProtocolHash,
  type MethodShape,
  protocolDescription,
} from "../../src/server/protocol-hash.js";

function shapes(p: FixtureProtocol): MethodShape[] {
  return p.methods.map((m) => ({
    name: m.name,
    methodType: m.method_type,
    hasReturn: m.has_return,
    paramsSchema: schemaFromBase64(m.params_schema),
    resultSchema: m.has_return ? schemaFromBase64(m.result_schema) : null,
    headerSchema: m.header_schema === "" ? null : schemaFromBase64(m.header_schema),
  }));
}

test("fixture covers the three reference protocols", () => {
  assert.deepEqual(
    REFERENCE.protocols.map((p) => p.name),
    ["ConformanceService", "conformance.Secondary.v1", "vgi_rpc.Reflection.v1"],
  );
});

for (const p of REFERENCE.protocols) {
  test(`type tokens match the reference: ${p.name}`, () => {
    let checked = 0;
    for (const m of p.methods) {
      assert.deepEqual(schemaTokens(schemaFromBase64(m.params_schema)), m.params_tokens, `${m.name} params`);
      if (m.result_schema !== "") {
        assert.deepEqual(schemaTokens(schemaFromBase64(m.result_schema)), m.result_tokens, `${m.name} result`);
      }
      if (m.header_schema !== "") {
        assert.deepEqual(schemaTokens(schemaFromBase64(m.header_schema)), m.header_tokens, `${m.name} header`);
      } else {
        assert.equal(m.header_tokens, null);
      }
      checked++;
    }
    assert.equal(checked, p.methods.length);
    assert.ok(checked > 0);
  });

  test(`protocol hash matches the reference: ${p.name}`, () => {
    assert.equal(computeProtocolHash(p.name, shapes(p)), p.protocol_hash);
    // Method order in the input does not matter.
    assert.equal(computeProtocolHash(p.name, shapes(p).reverse()), p.protocol_hash);
  });
}

test("protocol hash is sensitive to the protocol name, has_return and header presence", () => {
  const p = REFERENCE.protocols.find((x) => x.name === "conformance.Secondary.v1");
  assert.ok(p);
  const base = shapes(p);
  assert.notEqual(computeProtocolHash("conformance.Secondary.v2", base), p.protocol_hash);
  const flipped = base.map((m) => (m.name === "fail" ? { ...m, hasReturn: true, resultSchema: new Schema([]) } : m));
  assert.notEqual(computeProtocolHash(p.name, flipped), p.protocol_hash);
  const withHeader = base.map((m) => (m.name === "fail" ? { ...m, headerSchema: new Schema([]) } : m));
  assert.notEqual(computeProtocolHash(p.name, withHeader), p.protocol_hash);
  assert.throws(() => computeProtocolHash(p.name, [...base, base[0] as MethodShape]), TypeError);
});

test("protocolDescription omits result when there is no return and sorts methods", () => {
  const d = protocolDescription("P", [
    {
      name: "b",
      methodType: "unary",
      hasReturn: false,
      paramsSchema: new Schema([]),
      resultSchema: null,
      headerSchema: null,
    },
    {
      name: "a",
      methodType: "stream",
      hasReturn: false,
      paramsSchema: new Schema([new Field("x", new Int32(), true)]),
      resultSchema: new Schema([]),
      headerSchema: new Schema([]),
    },
  ]);
  assert.deepEqual(d, {
    protocol: "P",
    methods: [
      {
        name: "a",
        type: "stream",
        has_return: false,
        has_header: true,
        params: [{ name: "x", nullable: true, type: "int32" }],
        header: [],
      },
      { name: "b", type: "unary", has_return: false, has_header: false, params: [] },
    ],
  });
});

test("canonicalJson matches the reference's canonical_json byte for byte", () => {
  const value = {
    b: '\u0001\u007f é\n"\\\t\b\f\r\u001f😀/<',
    a: [true, null, false, {}],
    "\ue000": "x",
    "😀": "y",
    A: [],
  };
  // Output of vgi_rpc.rpc._protocol_hash.canonical_json(value).decode() for the same value:
  // keys in code point order (U+E000 before U+1F600, unlike a UTF-16 sort), C0 controls as
  // lowercase \u00xx, U+007F and non-ASCII verbatim, '/' unescaped.
  const expected =
    '{"A":[],"a":[true,null,false,{}],"b":"\\u0001\u007f é\\n\\"\\\\\\t\\b\\f\\r\\u001f😀/<","\ue000":"x","😀":"y"}';
  assert.equal(canonicalJson(value), expected);
});

test("canonicalJson refuses numbers and non-JSON values", () => {
  assert.throws(() => canonicalJson({ a: 1 }), TypeError);
  assert.throws(() => canonicalJson([1.5]), TypeError);
  assert.throws(() => canonicalJson(1n), TypeError);
  assert.throws(() => canonicalJson({ a: undefined }), TypeError);
  assert.throws(() => canonicalJson(new Map()), TypeError);
  assert.throws(() => canonicalJson("\ud800"), TypeError);
});

test("unsupported types throw UnsupportedArrowTypeError (a TypeError)", () => {
  assert.throws(() => typeToken(new Decimal(2, 9, 64)), UnsupportedArrowTypeError);
  assert.throws(() => typeToken(new Decimal(2, 9, 32)), TypeError);
  assert.equal(typeToken(new Decimal(9, 38, 128)), "decimal128(38,9)");
});

/** Types beyond the fixture, built by pyarrow, tokenised by the reference, decoded by arrow-js. */
const WIDE_SCHEMA_SCRIPT = `
import base64, json, pyarrow as pa
from vgi_rpc.rpc._type_tokens import schema_tokens
f = pa.field
s = pa.schema([
  f("n", pa.null()), f("b", pa.bool_()), f("h", pa.float16()), f("d64", pa.date64()),
  f("t32s", pa.time32("s"), False), f("t32ms", pa.time32("ms")), f("t64ns", pa.time64("ns")),
  f("ts", pa.timestamp("ns", tz="+00:00")), f("tsms", pa.timestamp("ms", tz="America/New_York")),
  f("dur", pa.duration("s")), f("ival", pa.month_day_nano_interval()),
  f("dec256", pa.decimal256(76, 10)), f("fsb", pa.binary(3)),
  f("ll", pa.large_list(pa.field("element", pa.int8(), False))),
  f("fsl", pa.list_(pa.field("v", pa.float32()), 3)),
  f("le", pa.list_(pa.field("element", pa.utf8(), False))),
  f("m", pa.map_(pa.utf8(), pa.field("vv", pa.int64(), False), keys_sorted=True)),
  f("st", pa.struct([f("z", pa.list_(pa.int32()), False), f("y", pa.struct([f("q", pa.bool_())]))])),
  f("su", pa.sparse_union([f("i", pa.int32()), f("s", pa.utf8(), False)], type_codes=[5, 2])),
  f("du", pa.dense_union([f("a", pa.float64())])),
  f("dict", pa.dictionary(pa.uint8(), pa.large_utf8(), ordered=True)),
  f("uuid", pa.uuid(), False), f("json", pa.json_()), f("bool8", pa.bool8()),
  f("luuid", pa.list_(pa.field("item", pa.uuid(), False))),
  f("other_ext", pa.int32(), metadata={"ARROW:extension:name": "my.ext", "ARROW:extension:metadata": ""}),
  f("sv", pa.string_view()), f("bv", pa.binary_view()),
])
print(json.dumps({"schema": base64.b64encode(s.serialize().to_pybytes()).decode(), "tokens": schema_tokens(s)}))
`;

import { type FixtureProtocol, PYTHON, REFERENCE, schemaFromBase64 } from "../helpers/reference.js";

test("type tokens match the reference beyond the fixture (pyarrow-built schema)", (t) => {
  if (!existsSync(PYTHON)) {
    t.skip(`no python (${PYTHON} does not exist; set VGI_PYTHON)`);
    return;
  }
  const run = spawnSync(PYTHON, ["-c", WIDE_SCHEMA_SCRIPT], { encoding: "utf8", timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { schema: string; tokens: FieldToken[] };
  const ours = schemaTokens(schemaFromBase64(out.schema));
  for (let i = 0; i < out.tokens.length; i++) {
    assert.deepEqual(ours[i], out.tokens[i], `field ${out.tokens[i]?.name ?? i}`);
  }
  assert.equal(ours.length, out.tokens.length);
});
