import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { Field, Schema, tableFromIPC, Utf8 } from "apache-arrow";
import type { RpcClient } from "../../src/client/client.js";
import { columnFromJson, plainRows } from "../../src/client/values.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t as types } from "../../src/protocol/types.js";
import { computeProtocolHash } from "../../src/server/protocol-hash.js";
import {
  type DescribedMethod,
  type DescribedProtocol,
  describeProtocol,
  encodeProtocolList,
  encodeServiceDescription,
  PROTOCOL_LIST_SCHEMA,
  REFLECTION_PROTOCOL,
  reflectionMethodShapes,
  SERVICE_DESCRIPTION_SCHEMA,
} from "../../src/server/reflection.js";
import { bind, createServer } from "../../src/server/server.js";
import { batchFromData } from "../../src/wire/batches.js";
import { encodeSchemaMessage } from "../../src/wire/ipc.js";
import { memoryClient } from "../client/helpers.js";

const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

function streamKind(m: FixtureMethod): DescribedMethod["streamKind"] {
  if (m.method_type === "unary") return "";
  if (m.is_exchange === null) return "unknown";
  return m.is_exchange ? "exchange" : "producer";
}

function described(p: FixtureProtocol): DescribedProtocol {
  return {
    name: p.name,
    version: p.version,
    hash: p.protocol_hash,
    methods: p.methods.map((m) => ({
      name: m.name,
      methodType: m.method_type,
      hasReturn: m.has_return,
      paramsSchema: schemaFromBase64(m.params_schema),
      resultSchema: m.has_return ? schemaFromBase64(m.result_schema) : null,
      headerSchema: m.header_schema === "" ? null : schemaFromBase64(m.header_schema),
      streamKind: streamKind(m),
    })),
  };
}

/** Runs `script` under the reference's python with `input` as JSON on stdin; parses its JSON stdout. */
function runPython(script: string, input: unknown): unknown {
  const run = spawnSync(PYTHON, ["-c", script], {
    input: JSON.stringify(input),
    encoding: "utf8",
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(run.status, 0, `python failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const noPython = (): boolean => !existsSync(PYTHON);
const SKIP_MESSAGE = `no python (${PYTHON} does not exist; set VGI_PYTHON)`;

test("reflection's own methods hash to the reference's Reflection.v1 hash", () => {
  const reference = REFERENCE.protocols.find((p) => p.name === REFLECTION_PROTOCOL);
  assert.ok(reference);
  assert.equal(computeProtocolHash(REFLECTION_PROTOCOL, reflectionMethodShapes()), reference.protocol_hash);
  assert.equal(reference.protocol_hash.slice(0, 8), "3c7db4ca");
  assert.equal(describeProtocol(REFLECTION_PROTOCOL, "", reflectionMethodShapes()).hash, reference.protocol_hash);
});

test("schema messages are framed like pyarrow's Schema.serialize()", () => {
  for (const p of REFERENCE.protocols) {
    for (const m of p.methods) {
      const ours = encodeSchemaMessage(schemaFromBase64(m.params_schema));
      const view = new DataView(ours.buffer, ours.byteOffset, ours.byteLength);
      assert.equal(view.getInt32(0, true), -1);
      assert.equal(view.getInt32(4, true), ours.byteLength - 8);
      assert.equal(ours.byteLength % 8, 0);
      // Our bytes decode back to the same field tokens in arrow-js.
      assert.deepEqual(
        decodeSchemaMessage(ours).fields.map((f) => [f.name, f.nullable, String(f.type)]),
        schemaFromBase64(m.params_schema).fields.map((f) => [f.name, f.nullable, String(f.type)]),
      );
    }
  }
});

test("ServiceDescription decodes in arrow-js with the expected shape", () => {
  const p = described(REFERENCE.protocols[1] as FixtureProtocol);
  const table = tableFromIPC(encodeServiceDescription(p));
  assert.equal(table.numRows, 1);
  assert.equal(
    table.schema.fields.map((f) => f.name).join(","),
    SERVICE_DESCRIPTION_SCHEMA.fields.map((f) => f.name).join(","),
  );
  const row = table.get(0);
  assert.ok(row);
  assert.equal(row.protocol, p.name);
  assert.equal(row.protocol_hash, p.hash);
  assert.equal(row.features.length, 0);
  const names: string[] = [];
  for (const m of row.methods) names.push(String(m.name));
  assert.deepEqual(names, ["echo_string", "fail", "fail_oversized"]);
});

test("invalid stream kinds are refused", () => {
  const [m] = reflectionMethodShapes();
  assert.ok(m);
  const bad = (streamKind: DescribedMethod["streamKind"], methodType: "unary" | "stream"): DescribedProtocol => ({
    name: "P",
    version: "",
    hash: "",
    methods: [{ ...m, methodType, streamKind }],
  });
  assert.throws(() => encodeServiceDescription(bad("producer", "unary")), TypeError);
  assert.throws(() => encodeServiceDescription(bad("", "stream")), TypeError);
});

/**
 * Decodes each of our ServiceDescription payloads with the reference's own decoder, checks its
 * Arrow schema against `ServiceDescription.ARROW_SCHEMA`, and compares it field by field with
 * what the reference's `ReflectionImpl.describe` answers for the same protocol on a real
 * reference server (schemas compared as decoded pyarrow schemas, since encoder bytes may differ).
 */
const DESCRIBE_SCRIPT = `
import base64, json, sys
import pyarrow as pa
from vgi_rpc.conformance import ConformanceService, ConformanceServiceImpl
from vgi_rpc.conformance.secondary import conformance_extra_protocols
from vgi_rpc.rpc import RpcServer
from vgi_rpc.rpc._reflection import ReflectionImpl, ServiceDescription

def schema(b):
    return None if len(b) == 0 else pa.ipc.read_schema(pa.py_buffer(b))

req = json.load(sys.stdin)
server = RpcServer(ConformanceService, ConformanceServiceImpl(), enable_describe=True,
                   extra_protocols=conformance_extra_protocols())
impl = ReflectionImpl(server)
out = {}
for name, b64 in req.items():
    data = base64.b64decode(b64)
    ours = ServiceDescription.deserialize_from_bytes(data)
    ref = impl.describe(name)
    problems = []
    if not pa.ipc.open_stream(data).schema.equals(ServiceDescription.ARROW_SCHEMA, check_metadata=True):
        problems.append("arrow schema differs from ServiceDescription.ARROW_SCHEMA")
    for f in ("protocol", "protocol_version", "protocol_hash", "deprecated", "deprecation_message", "features"):
        if getattr(ours, f) != getattr(ref, f):
            problems.append(f"{f}: {getattr(ours, f)!r} != {getattr(ref, f)!r}")
    if [m.name for m in ours.methods] != [m.name for m in ref.methods]:
        problems.append("method names/order differ")
    for a, b in zip(ours.methods, ref.methods):
        for f in ("name", "method_type", "has_return", "has_header", "stream_kind", "idempotency",
                  "deprecated", "deprecation_message"):
            if getattr(a, f) != getattr(b, f):
                problems.append(f"{a.name}.{f}: {getattr(a, f)!r} != {getattr(b, f)!r}")
        for f in ("params_schema_ipc", "result_schema_ipc", "header_schema_ipc"):
            sa, sb = schema(getattr(a, f)), schema(getattr(b, f))
            if (sa is None) != (sb is None) or (sa is not None and not sa.equals(sb, check_metadata=True)):
                problems.append(f"{a.name}.{f}: {sa!r} != {sb!r}")
    out[name] = {
        "problems": problems,
        "protocol": ours.protocol,
        "protocol_version": ours.protocol_version,
        "protocol_hash": ours.protocol_hash,
        "methods": [[m.name, m.stream_kind, m.has_return, m.has_header] for m in ours.methods],
    }
print(json.dumps(out))
`;

interface DescribeResult {
  readonly problems: string[];
  readonly protocol: string;
  readonly protocol_version: string;
  readonly protocol_hash: string;
  readonly methods: [string, string, boolean, boolean][];
}

test("ServiceDescription round-trips through the reference decoder and matches its describe()", (t) => {
  if (noPython()) {
    t.skip(SKIP_MESSAGE);
    return;
  }
  const request: Record<string, string> = {};
  for (const p of REFERENCE.protocols) request[p.name] = toBase64(encodeServiceDescription(described(p)));
  const result = runPython(DESCRIBE_SCRIPT, request) as Record<string, DescribeResult>;
  for (const p of REFERENCE.protocols) {
    const r = result[p.name];
    assert.ok(r, p.name);
    assert.deepEqual(r.problems, [], p.name);
    assert.equal(r.protocol, p.name);
    assert.equal(r.protocol_version, p.version);
    assert.equal(r.protocol_hash, p.protocol_hash);
    const expected = [...p.methods]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((m) => [m.name, streamKind(m), m.has_return, m.header_schema !== ""]);
    assert.deepEqual(r.methods, expected, p.name);
  }
});

const LIST_SCRIPT = `
import base64, json, sys
import pyarrow as pa
from vgi_rpc.rpc._reflection import ProtocolList
data = base64.b64decode(json.load(sys.stdin))
pl = ProtocolList.deserialize_from_bytes(data)
print(json.dumps({
    "schema_equal": pa.ipc.open_stream(data).schema.equals(ProtocolList.ARROW_SCHEMA, check_metadata=True),
    "server_id": pl.server_id, "server_version": pl.server_version, "request_version": pl.request_version,
    "protocols": [[s.protocol, s.protocol_version, s.protocol_hash, s.deprecated, s.deprecation_message, s.features]
                  for s in pl.protocols],
}))
`;

test("ProtocolList round-trips through the reference decoder", (t) => {
  if (noPython()) {
    t.skip(SKIP_MESSAGE);
    return;
  }
  const protocols = REFERENCE.protocols.map(described);
  const bytes = encodeProtocolList("quiver-test \u00e9", "0.1.0", protocols);
  const result = runPython(LIST_SCRIPT, toBase64(bytes));
  assert.deepEqual(result, {
    schema_equal: true,
    server_id: "quiver-test \u00e9",
    server_version: "0.1.0",
    request_version: "1",
    protocols: REFERENCE.protocols.map((p) => [p.name, p.version, p.protocol_hash, false, "", []]),
  });
  // Also readable by arrow-js, on the schema we declare.
  const table = tableFromIPC(bytes);
  assert.equal(table.numRows, 1);
  assert.equal(String(table.schema.fields.at(-1)?.type), String(PROTOCOL_LIST_SCHEMA.fields.at(-1)?.type));
});

const ROUNDTRIP_SCRIPT = `
import base64, json, sys
import pyarrow as pa
pairs = json.load(sys.stdin)
bad = []
for i, (ours, ref) in enumerate(pairs):
    a = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(ours)))
    b = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(ref)))
    if not a.equals(b, check_metadata=True):
        bad.append([i, str(a), str(b)])
print(json.dumps({"checked": len(pairs), "bad": bad}))
`;

import {
  decodeSchemaMessage,
  type FixtureMethod,
  type FixtureProtocol,
  PYTHON,
  REFERENCE,
  schemaFromBase64,
} from "../helpers/reference.js";

test("our schema messages for every fixture schema read back in pyarrow as the reference schema", (t) => {
  if (noPython()) {
    t.skip(SKIP_MESSAGE);
    return;
  }
  const pairs: [string, string][] = [];
  for (const p of REFERENCE.protocols) {
    for (const m of p.methods) {
      for (const ref of [m.params_schema, m.result_schema, m.header_schema]) {
        if (ref !== "") pairs.push([toBase64(encodeSchemaMessage(schemaFromBase64(ref))), ref]);
      }
    }
  }
  const result = runPython(ROUNDTRIP_SCRIPT, pairs) as { checked: number; bad: unknown[] };
  assert.equal(result.checked, pairs.length);
  assert.deepEqual(result.bad, []);
});

/** The raw `ServiceDescription` bytes a server answers `describe(protocol)` with. */
async function describePayload(client: RpcClient, protocol: string): Promise<Uint8Array> {
  const params = batchFromData(DESCRIBE_PARAMS, [columnFromJson(new Utf8(), [protocol])], 1);
  const result = await client.unaryBatch({ protocol: REFLECTION_PROTOCOL, method: "describe" }, params);
  return plainRows(result)[0]!.result as Uint8Array;
}

const DESCRIBE_PARAMS = new Schema([new Field("protocol", new Utf8(), false)]);

test("stream-schema extension: a quiver server describes each stream's input and output schemas", async (t) => {
  const Streams = defineProtocol(
    "test.Streams.v1",
    {},
    {
      add: unary({ a: types.int64() }, types.int64()),
      rows: producer({}, { output: { i: types.int64() }, header: { total: types.int64() } }),
      scale: exchange({}, { input: { x: types.float64() }, output: { y: types.float64() } }),
      dynamic: producer({}, { output: "dynamic" }),
    },
  );
  const Unary = defineProtocol("test.UnaryOnly.v1", {}, { add: unary({ a: types.int64() }, types.int64()) });
  const server = createServer({
    protocols: [
      bind(Streams, {
        add: ({ a }) => a,
        rows: { init: () => ({ state: {}, header: { total: 0n } }), produce: (_s, out) => out.finish() },
        scale: { init: () => ({ state: {} }), process: (_s, input, out) => out.emitColumns({ y: input.column("x") }) },
        dynamic: {
          init: () => ({ state: {}, outputSchema: SERVICE_DESCRIPTION_SCHEMA }),
          produce: (_s, out) => out.finish(),
        },
      }),
      bind(Unary, { add: ({ a }) => a }),
    ],
  });
  const { client } = memoryClient(server);
  let payload: Uint8Array;
  try {
    const d = await client.describe("test.Streams.v1");
    const fields = (s: { fields: readonly { name: string; type: unknown }[] } | null | undefined) =>
      s ? s.fields.map((f) => `${f.name}: ${String(f.type)}`) : s;
    assert.deepEqual(fields(d.methods.get("add")!.inputSchema), null);
    assert.deepEqual(fields(d.methods.get("add")!.outputSchema), null);
    assert.deepEqual(fields(d.methods.get("rows")!.inputSchema), []);
    assert.deepEqual(fields(d.methods.get("rows")!.outputSchema), ["i: Int64"]);
    assert.deepEqual(fields(d.methods.get("rows")!.headerSchema), ["total: Int64"]);
    assert.deepEqual(fields(d.methods.get("scale")!.inputSchema), ["x: Float64"]);
    assert.deepEqual(fields(d.methods.get("scale")!.outputSchema), ["y: Float64"]);
    assert.equal(d.methods.get("dynamic")!.outputSchema, null);
    const u = await client.describe("test.UnaryOnly.v1");
    assert.equal(u.methods.get("add")!.inputSchema, null);
    // A protocol of unary methods is described exactly as the reference describes it.
    assert.deepEqual(
      tableFromIPC(await describePayload(client, "test.UnaryOnly.v1")).schema.fields.map((f) => String(f.type)),
      SERVICE_DESCRIPTION_SCHEMA.fields.map((f) => String(f.type)),
    );
    payload = await describePayload(client, "test.Streams.v1");
  } finally {
    await client.close();
  }
  if (noPython()) {
    t.skip(SKIP_MESSAGE);
    return;
  }
  // The reference's decoder reads the extended description (it ignores the extension columns).
  const script = `
import base64, json, sys
from vgi_rpc.rpc._reflection import ServiceDescription
d = ServiceDescription.deserialize_from_bytes(base64.b64decode(json.load(sys.stdin)))
print(json.dumps([[m.name, m.stream_kind] for m in d.methods]))
`;
  assert.deepEqual(runPython(script, toBase64(payload)), [
    ["add", ""],
    ["dynamic", "producer"],
    ["rows", "producer"],
    ["scale", "exchange"],
  ]);
});
