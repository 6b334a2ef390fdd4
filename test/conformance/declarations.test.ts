/**
 * The conformance declarations against the reference's own dump of every method
 * (`test/fixtures/reference-protocols.json`), and the implementation's behaviour driven directly
 * (no wire): reference strings, log messages, stream turns, headers and errors.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import {
  type DataType,
  Decimal,
  Dictionary,
  type Field,
  FixedSizeBinary,
  Float,
  Int,
  List,
  Map_,
  type RecordBatch,
  type Schema,
  Struct,
  Table,
  Time,
  Timestamp,
  TimeUnit,
  tableFromIPC,
  tableToIPC,
} from "apache-arrow";
import { pino } from "pino";
import { compareCodePoints, pyFloatRepr, pyMod, pyRstrip, pyStrRepr } from "../../src/conformance/pyrepr.js";
import {
  createSecondaryImplementation,
  expectedFailDetails,
  SECONDARY_ECHO_PREFIX,
  SECONDARY_PROTOCOL_HASH,
  SecondaryProtocol,
} from "../../src/conformance/secondary.js";
import {
  arrowSumFloat64,
  buildRichHeader,
  ConformanceService,
  cancelProbe,
  createConformanceImplementation,
  INPUT_METADATA_KEY,
  TICK_METADATA_KEY,
} from "../../src/conformance/service.js";
import { DATACLASSES, decodeDataclass, encodeDataclass, toStatus } from "../../src/conformance/types.js";
import { RpcError, RuntimeError } from "../../src/errors.js";
import { batchFromRows, rowsFromBatch, schemaOf } from "../../src/protocol/batch.js";
import { ANONYMOUS, type CallContext, type LogExtra, type LogLevel } from "../../src/protocol/context.js";
import {
  type ExchangeDecl,
  type ExchangeHandler,
  type InputBatch,
  type MethodDecl,
  methodSchemas,
  type OutputCollector,
  type OutputSpec,
  type OutRow,
  type ParamsOf,
  type ProducerDecl,
  type ProducerHandler,
  type ProtocolDecl,
  type StreamInit,
} from "../../src/protocol/methods.js";
import type { FieldToken } from "../../src/protocol/type-tokens.js";
import type { FieldSpecs, RowOf, ValueOf } from "../../src/protocol/types.js";
import { type FixtureProtocol, referenceProtocol, schemaFromBase64 } from "../helpers/reference.js";

// ---------------------------------------------------------------------------------------------
// The reference dump

/** Decodes a fixture schema; `""` (no schema) is null. */
function decodeSchema(b64: string): Schema | null {
  return b64 === "" ? null : schemaFromBase64(b64);
}

/** Everything about a type that makes it a different wire type, recursively with child nullability. */
function describeType(type: DataType): string {
  let extra = "";
  if (type instanceof Decimal) extra = `{bits=${type.bitWidth}}`;
  if (type instanceof Dictionary) {
    extra = `{indices=${describeType(type.indices)},values=${describeType(type.dictionary)},ordered=${type.isOrdered}}`;
  }
  if (type instanceof Map_) extra = `{keysSorted=${type.keysSorted}}`;
  const children = type instanceof Dictionary ? [] : (type.children ?? []);
  const kids = children.length === 0 ? "" : `<${children.map(describeField).join(",")}>`;
  return `${String(type)}${extra}${kids}`;
}

function describeField(field: Field): string {
  return `${field.name}${field.nullable ? "?" : ""}:${describeType(field.type)}`;
}

function describeSchema(schema: Schema | null): string[] | null {
  return schema === null ? null : schema.fields.map(describeField);
}

/** The reference's canonical type tokens (`rpc/_type_tokens.py`), for the types these protocols use. */
function typeToken(type: DataType): string {
  const child = (f: Field, name = f.name) => `${name}${f.nullable ? "?" : ""}:${typeToken(f.type)}`;
  if (type instanceof Dictionary)
    return `dictionary<index:${typeToken(type.indices)},value:${typeToken(type.dictionary)}>`;
  if (type instanceof Int) return `${type.isSigned ? "" : "u"}int${type.bitWidth}`;
  if (type instanceof Float) return `float${[16, 32, 64][type.precision]}`;
  if (type instanceof Decimal) return `decimal${type.bitWidth}(${type.precision},${type.scale})`;
  if (type instanceof FixedSizeBinary) return `fixed_size_binary(${type.byteWidth})`;
  const unit = (u: TimeUnit) =>
    ({
      [TimeUnit.SECOND]: "s",
      [TimeUnit.MILLISECOND]: "ms",
      [TimeUnit.MICROSECOND]: "us",
      [TimeUnit.NANOSECOND]: "ns",
    })[u];
  if (type instanceof Timestamp)
    return type.timezone ? `timestamp(${unit(type.unit)},tz=${type.timezone})` : `timestamp(${unit(type.unit)})`;
  if (type instanceof Time) return `time${type.bitWidth}(${unit(type.unit)})`;
  if (String(type).startsWith("Duration<")) return `duration(${unit((type as unknown as { unit: TimeUnit }).unit)})`;
  if (type instanceof List) return `list<${child(type.children[0]!, "item")}>`;
  if (type instanceof Map_) {
    const entries = type.children[0]!.type as Struct;
    return `map<${child(entries.children[0]!, "key")},${child(entries.children[1]!, "value")}>`;
  }
  if (type instanceof Struct) return `struct<${type.children.map((f) => child(f)).join(",")}>`;
  const simple: Record<string, string> = {
    Bool: "bool",
    Utf8: "utf8",
    LargeUtf8: "large_utf8",
    Binary: "binary",
    LargeBinary: "large_binary",
    "Date32<DAY>": "date32",
  };
  const token = simple[String(type)];
  assert.ok(token, `no token for ${String(type)}`);
  return token;
}

function schemaTokens(schema: Schema | null): FieldToken[] | null {
  return schema === null
    ? null
    : schema.fields.map((f) => ({ name: f.name, nullable: f.nullable, type: typeToken(f.type) }));
}

function jsonDefault(value: unknown): unknown {
  return typeof value === "bigint" ? Number(value) : value;
}

/** RFC 8785 canonical JSON for the preimage's objects, arrays, strings and booleans. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  assert.ok(typeof value === "string" || typeof value === "boolean", "no numbers in the preimage");
  return JSON.stringify(value);
}

/** The reference's protocol hash (`rpc/_protocol_hash.py`), computed from our declarations. */
function protocolHash(decl: ProtocolDecl): string {
  const methods = Object.entries(decl.methods)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, d]) => {
      const s = methodSchemas(d);
      const entry: Record<string, unknown> = {
        name,
        type: d.kind === "unary" ? "unary" : "stream",
        has_return: s.hasReturn,
        has_header: s.header !== null,
        params: schemaTokens(s.params),
      };
      if (s.hasReturn) entry.result = schemaTokens(s.result);
      if (s.header !== null) entry.header = schemaTokens(s.header);
      return entry;
    });
  const preimage = canonicalJson({ protocol: decl.name, methods });
  return createHash("sha256").update(`vgi_rpc.protocol_hash.v1|${preimage}`, "utf8").digest("hex");
}

function checkProtocol(decl: ProtocolDecl, ref: FixtureProtocol): void {
  test("protocol hash equals the reference's", () => {
    assert.equal(protocolHash(decl), ref.protocol_hash);
  });
  test("name, version and method set", () => {
    assert.equal(decl.name, ref.name);
    assert.equal(decl.version, ref.version);
    assert.deepEqual(Object.keys(decl.methods).sort(), ref.methods.map((m) => m.name).sort());
  });
  for (const m of ref.methods) {
    test(m.name, () => {
      const d: MethodDecl | undefined = decl.methods[m.name];
      assert.ok(d, `${m.name} is declared`);
      const kind = m.method_type === "unary" ? "unary" : m.is_exchange ? "exchange" : "producer";
      assert.equal(d.kind, kind);
      const ours = methodSchemas(d);
      assert.equal(ours.hasReturn, m.has_return, "has_return");
      for (const [what, refB64, mine] of [
        ["params", m.params_schema, ours.params],
        ["result", m.result_schema, ours.result],
        ["header", m.header_schema, ours.header],
      ] as const) {
        const theirs = decodeSchema(refB64);
        assert.deepEqual(describeSchema(mine), describeSchema(theirs), `${what} schema`);
      }
      assert.deepEqual(schemaTokens(ours.params), m.params_tokens, "params tokens");
      assert.deepEqual(schemaTokens(ours.result), m.result_tokens, "result tokens");
      assert.deepEqual(schemaTokens(ours.header), m.header_tokens, "header tokens");
      const defaults = Object.fromEntries(
        Object.entries(d.params)
          .filter(([, spec]) => spec.hasDefault)
          .map(([name, spec]) => [name, jsonDefault(spec.defaultValue)]),
      );
      assert.deepEqual(defaults, m.param_defaults, "param defaults");
    });
  }
}

describe("ConformanceService matches the reference dump", () => {
  checkProtocol(ConformanceService, referenceProtocol("ConformanceService"));
  test("90 methods", () => assert.equal(Object.keys(ConformanceService.methods).length, 90));
});

describe("conformance.Secondary.v1 matches the reference dump", () => {
  checkProtocol(SecondaryProtocol, referenceProtocol("conformance.Secondary.v1"));
  test("the pinned hash constant", () => {
    assert.equal(SECONDARY_PROTOCOL_HASH, referenceProtocol("conformance.Secondary.v1").protocol_hash);
  });
});

// ---------------------------------------------------------------------------------------------
// Fakes for driving handlers directly

interface LogRecord {
  readonly level: LogLevel;
  readonly message: string;
  readonly extra?: LogExtra;
}

function fakeContext(logs: LogRecord[] = []): CallContext {
  return {
    auth: ANONYMOUS,
    signal: new AbortController().signal,
    requestId: "0123456789abcdef",
    idempotencyKey: null,
    requireIdempotencyKey: () => assert.fail("conformance handlers need no idempotency key"),
    injected: {},
    serverId: "0123456789ab",
    protocol: "ConformanceService",
    method: "test",
    transport: "pipe",
    transportMetadata: {},
    requestMetadata: new Map(),
    logger: pino({ level: "silent" }),
    clientLog(level, message, extra) {
      logs.push(extra === undefined ? { level, message } : { level, message, extra });
    },
    cookies: new Map(),
    csrfVerified: true,
    setCookie() {
      assert.fail("conformance handlers set no cookies");
    },
    deleteCookie() {
      assert.fail("conformance handlers set no cookies");
    },
    // As on a pipe: no session, and opening one is refused.
    session: null,
    sessionId: null,
    openSession() {
      throw new RuntimeError("sticky sessions not available on this transport");
    },
    closeSession() {
      throw new RuntimeError("sticky sessions not available on this transport");
    },
  };
}

/** `fakeContext` with a sticky session that `openSession` binds and `closeSession` ends (calling `close()`). */
function sessionContext(): CallContext {
  let state: unknown = null;
  return {
    ...fakeContext(),
    get session() {
      return state;
    },
    get sessionId() {
      return state === null ? null : "00112233445566778899aabb";
    },
    openSession(value) {
      assert.equal(state, null, "one session per request");
      state = value;
    },
    closeSession() {
      (state as { close?: () => void } | null)?.close?.();
      state = null;
    },
  };
}

/** A turn's output: log records and data batches in the order written. */
type Written = { readonly log: LogRecord } | { readonly batch: RecordBatch };

class FakeOut<O extends OutputSpec> implements OutputCollector<O> {
  readonly written: Written[] = [];
  finishedFlag = false;

  constructor(
    readonly schema: Schema,
    private readonly fields: FieldSpecs | null,
    readonly inputMetadata: ReadonlyMap<string, string> = new Map(),
  ) {}

  get finished(): boolean {
    return this.finishedFlag;
  }

  emit(rows: readonly OutRow<O>[], metadata?: ReadonlyMap<string, string>): void {
    assert.ok(this.fields, "emit(rows) needs declared fields");
    this.emitBatch(batchFromRows(this.fields, rows as readonly RowOf<FieldSpecs>[], metadata, this.schema));
  }

  emitColumns(columns: Readonly<Record<string, readonly unknown[]>>, metadata?: ReadonlyMap<string, string>): void {
    assert.ok(this.fields, "emitColumns needs declared fields");
    const rows = Array.from({ length: Object.values(columns)[0]?.length ?? 0 }, (_, i) =>
      Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, v[i]])),
    );
    this.emitBatch(batchFromRows(this.fields, rows, metadata, this.schema));
  }

  emitBatch(batch: RecordBatch, metadata?: ReadonlyMap<string, string>): void {
    assert.equal(this.batches().length, 0, "one data batch per turn");
    assert.deepEqual(describeSchema(batch.schema), describeSchema(this.schema), "emitted batch has the output schema");
    this.written.push({ batch: metadata === undefined ? batch : withMeta(batch, metadata) });
  }

  finish(): void {
    this.finishedFlag = true;
  }

  clientLog(level: LogLevel, message: string, extra?: LogExtra): void {
    this.written.push({ log: extra === undefined ? { level, message } : { level, message, extra } });
  }

  batches(): RecordBatch[] {
    return this.written.flatMap((w) => ("batch" in w ? [w.batch] : []));
  }

  logs(): LogRecord[] {
    return this.written.flatMap((w) => ("log" in w ? [w.log] : []));
  }
}

function withMeta(batch: RecordBatch, metadata: ReadonlyMap<string, string>): RecordBatch {
  const copy = batch.slice(0, batch.numRows);
  for (const [k, v] of metadata) copy.metadata.set(k, v);
  return copy;
}

function outFor<O extends OutputSpec>(
  output: O,
  schema?: Schema,
  inputMetadata?: ReadonlyMap<string, string>,
): FakeOut<O> {
  const spec: OutputSpec = output;
  const fields: FieldSpecs | null = spec === "dynamic" ? null : spec;
  const s = schema ?? (fields === null ? null : schemaOf(fields));
  assert.ok(s, "a schema");
  return new FakeOut<O>(s, fields, inputMetadata);
}

function inputOf<I extends FieldSpecs>(
  fields: I,
  rows: readonly RowOf<I>[],
  metadata: ReadonlyMap<string, string> = new Map(),
): InputBatch<I> {
  const batch = batchFromRows(fields, rows);
  return {
    batch,
    numRows: batch.numRows,
    metadata,
    rows: () => rowsFromBatch(fields, batch),
    column<K extends keyof I & string>(name: K): ValueOf<I[K]>[] {
      return rowsFromBatch(fields, batch).map((r) => r[name]);
    },
  };
}

/**
 * A stream's state as the next turn receives it over HTTP: encoded as a one-row batch of the
 * declared state schema, through IPC, and decoded again. Keys outside the declaration would be
 * lost on the way, so the state must have exactly the declared keys.
 */
function carry<S extends FieldSpecs>(fields: S, state: RowOf<S> | undefined): RowOf<S> {
  const row: Record<string, unknown> = state ?? {};
  assert.deepEqual(Object.keys(row).sort(), Object.keys(fields).sort(), "state has exactly the declared fields");
  const batch = batchFromRows(fields, [row as RowOf<S>]);
  const [back] = tableFromIPC(tableToIPC(new Table(batch), "stream")).batches;
  assert.ok(back);
  const rows = rowsFromBatch(fields, back);
  assert.equal(rows.length, 1);
  return rows[0]!;
}

/** Runs a producer's `init`, then each turn on the state rebuilt from its serialized form. */
async function openProducer<
  P extends FieldSpecs,
  O extends OutputSpec,
  H extends FieldSpecs | null,
  S extends FieldSpecs,
>(decl: ProducerDecl<P, O, H, S>, handler: ProducerHandler<P, O, H, S>, params: ParamsOf<P>, c: CallContext) {
  const init: StreamInit<O, H, S> = await handler.init(params, c);
  let state = carry(decl.state, init.state);
  return {
    init,
    async produce(out: OutputCollector<O>, turnCtx: CallContext): Promise<void> {
      const next = carry(decl.state, state);
      await handler.produce(next, out, turnCtx);
      state = next;
    },
    onCancel(turnCtx: CallContext): void {
      handler.onCancel?.(carry(decl.state, state), turnCtx);
    },
  };
}

/** Runs an exchange's `init`, then each turn on the state rebuilt from its serialized form. */
async function openExchange<
  P extends FieldSpecs,
  I extends FieldSpecs,
  O extends OutputSpec,
  H extends FieldSpecs | null,
  S extends FieldSpecs,
>(decl: ExchangeDecl<P, I, O, H, S>, handler: ExchangeHandler<P, I, O, H, S>, params: ParamsOf<P>, c: CallContext) {
  const init: StreamInit<O, H, S> = await handler.init(params, c);
  let state = carry(decl.state, init.state);
  return {
    init,
    async process(input: InputBatch<I>, out: OutputCollector<O>, turnCtx: CallContext): Promise<void> {
      const next = carry(decl.state, state);
      await handler.process(next, input, out, turnCtx);
      state = next;
    },
    onCancel(turnCtx: CallContext): void {
      handler.onCancel?.(carry(decl.state, state), turnCtx);
    },
  };
}

function rowsOf(batch: RecordBatch | undefined): Record<string, unknown>[] {
  assert.ok(batch);
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    const row: Record<string, unknown> = {};
    batch.schema.fields.forEach((f, k) => {
      row[f.name] = batch.getChildAt(k)?.get(i);
    });
    out.push(row);
  }
  return out;
}

const impl = createConformanceImplementation();
const M = ConformanceService.methods;

async function expectError(fn: () => unknown, name: string, message: string | RegExp): Promise<unknown> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, "threw an Error");
  assert.equal(caught.name, name);
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

// ---------------------------------------------------------------------------------------------
// Python formatting

describe("Python formatting", () => {
  test("pyFloatRepr", () => {
    const cases: [number, string][] = [
      [2, "2.0"],
      [2.5, "2.5"],
      [0.1, "0.1"],
      [1e16, "1e+16"],
      [1e15, "1000000000000000.0"],
      [1.5e300, "1.5e+300"],
      [1e-5, "1e-05"],
      [1e-4, "0.0001"],
      [-0.00012345, "-0.00012345"],
      [-0, "-0.0"],
      [0, "0.0"],
      [Number.NaN, "nan"],
      [Number.POSITIVE_INFINITY, "inf"],
      [Number.NEGATIVE_INFINITY, "-inf"],
      [1 / 3, "0.3333333333333333"],
      [1.2345678901234568e17, "1.2345678901234568e+17"],
      [5e-324, "5e-324"],
      [9999999999999998, "9999999999999998.0"],
    ];
    for (const [x, want] of cases) assert.equal(pyFloatRepr(x), want, String(x));
  });

  test("pyStrRepr", () => {
    assert.equal(pyStrRepr("OK"), "'OK'");
    assert.equal(pyStrRepr("it's"), `"it's"`);
    assert.equal(pyStrRepr('a"b'), `'a"b'`);
    assert.equal(pyStrRepr(`x'y"z`), `'x\\'y"z'`);
    assert.equal(pyStrRepr("tab\tnl\n"), "'tab\\tnl\\n'");
    assert.equal(pyStrRepr("\x00\x7f\x85\u200b"), "'\\x00\\x7f\\x85\\u200b'");
    assert.equal(pyStrRepr("é😀"), "'é😀'");
    assert.equal(pyStrRepr("back\\slash"), "'back\\\\slash'");
  });

  test("pyRstrip, pyMod, code-point order", () => {
    assert.equal(pyRstrip("a b \t\n\x1f"), "a b");
    assert.equal(pyRstrip("a\ufeff"), "a\ufeff");
    assert.equal(pyMod(-1n, 256n), 255n);
    assert.equal(pyMod(-4n, 3n), 2n);
    assert.equal(pyMod(7n, 3n), 1n);
    assert.deepEqual(["\uffff", "\u{1f600}", "a"].sort(compareCodePoints), ["a", "\uffff", "\u{1f600}"]);
  });

  test("Arrow's pairwise float sum", () => {
    assert.equal(arrowSumFloat64([]), null);
    assert.equal(arrowSumFloat64([null, null]), null);
    assert.equal(arrowSumFloat64([1.5, null, 2.5]), 4);
    // 0.1 × 40: pairwise over blocks of 16 differs from a left-to-right sum.
    const tenths = Array.from({ length: 40 }, () => 0.1);
    let naive = 0;
    for (const v of tenths) naive += v;
    let b1 = 0;
    let b2 = 0;
    let b3 = 0;
    for (let i = 0; i < 16; i++) b1 += 0.1;
    for (let i = 0; i < 16; i++) b2 += 0.1;
    for (let i = 0; i < 8; i++) b3 += 0.1;
    assert.equal(arrowSumFloat64(tenths), b1 + b2 + b3);
    assert.notEqual(arrowSumFloat64(tenths), naive);
  });
});

// ---------------------------------------------------------------------------------------------
// Unary behaviour

/** `Point(x=1.5, y=2.5).serialize_to_bytes()` from the reference. */
const PY_POINT =
  "/////6AAAAAQAAAAAAAKAAwABgAFAAgACgAAAAABBAAMAAAACAAIAAAABAAIAAAABAAAAAIAAABAAAAABAAAANj///8AAAADEAAAABQAAAAEAAAAAAAAAAEAAAB5AAAAyv///wAAAgAQABQACAAAAAcADAAAABAAEAAAAAAAAAMQAAAAGAAAAAQAAAAAAAAAAQAAAHgABgAIAAYABgAAAAAAAgAAAAAA/////7gAAAAUAAAAAAAAAAwAFgAGAAUACAAMAAwAAAAAAwQAGAAAABAAAAAAAAAAAAAKABgADAAEAAgACgAAAFwAAAAQAAAAAQAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAAAAAACAAAAAAAAAAAAAAAAAAAAAgAAAAAAAAACAAAAAAAAAAAAAAAAgAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAA+D8AAAAAAAAEQP////8AAAAA";

describe("unary methods", () => {
  const ctx = fakeContext();

  test("inspect_point formats floats as Python does", async () => {
    assert.equal(await impl.inspect_point({ point: Buffer.from(PY_POINT, "base64") }, ctx), "Point(1.5, 2.5)");
    const mine = encodeDataclass(DATACLASSES.Point, { x: 2, y: 1e16 });
    assert.equal(await impl.inspect_point({ point: mine }, ctx), "Point(2.0, 1e+16)");
  });

  test("dataclass payloads are checked as the reference deserializer checks them", async () => {
    const bbox = encodeDataclass(DATACLASSES.ConformanceHeader, { total_expected: 1n, description: "d" });
    await expectError(
      () => impl.inspect_point({ point: bbox }, ctx),
      "ValueError",
      "Missing fields in Point RecordBatch: ['x', 'y']. Found: ['description', 'total_expected']",
    );
    const two = tableFromIPC(encodeDataclass(DATACLASSES.Point, { x: 1, y: 2 }));
    assert.equal(two.numRows, 1);
    await expectError(
      () => impl.echo_point({ point: new Uint8Array() }, ctx),
      "TypeError",
      "Point.__init__() missing 2 required positional arguments: 'x' and 'y'",
    );
    const point = Buffer.from(PY_POINT, "base64");
    assert.equal(await impl.echo_point({ point }, ctx), point);
    assert.equal(await impl.echo_optional_point({ point: null }, ctx), null);
  });

  test("defaults and formatting", async () => {
    assert.equal(
      await impl.with_defaults({ required: 7n, optional_str: "default", optional_int: 42n }, ctx),
      "required=7, optional_str=default, optional_int=42",
    );
    assert.equal(M.with_defaults.params.optional_int.defaultValue, 42n);
    assert.equal(await impl.concatenate({ prefix: "a", suffix: "b", separator: "-" }, ctx), "a-b");
    assert.equal(await impl.add_floats({ a: 0.1, b: 0.2 }, ctx), 0.1 + 0.2);
  });

  test("oversized_unary", async () => {
    assert.equal((await impl.oversized_unary({ target_bytes: 1000n }, ctx)).byteLength, 1000);
    await expectError(
      () => impl.oversized_unary({ target_bytes: -1n }, ctx),
      "ValueError",
      "target_bytes must be non-negative",
    );
  });

  test("errors carry the Python exception type", async () => {
    await expectError(() => impl.raise_value_error({ message: "bad" }, ctx), "ValueError", "bad");
    await expectError(() => impl.raise_runtime_error({ message: "boom" }, ctx), "RuntimeError", "boom");
    await expectError(() => impl.raise_type_error({ message: "wrong" }, ctx), "TypeError", "wrong");
    await expectError(
      () => impl.published_string({ value: "v", include_sha256: false }, ctx),
      "RuntimeError",
      "published_string requires external storage",
    );
    await expectError(
      () => impl.open_counter({ initial: 1n }, ctx),
      "RuntimeError",
      "sticky sessions not available on this transport",
    );
    await expectError(
      () => impl.increment_counter({ by: 1n }, ctx),
      "RuntimeError",
      "no sticky counter bound to this request",
    );
    await expectError(() => impl.close_counter({}, ctx), "RuntimeError", "no sticky counter bound to this request");
  });

  test("client logs", async () => {
    const logs: LogRecord[] = [];
    const c = fakeContext(logs);
    assert.equal(await impl.echo_with_info_log({ value: "v" }, c), "v");
    assert.equal(await impl.echo_with_multi_logs({ value: "v" }, c), "v");
    assert.equal(await impl.echo_with_log_extras({ value: "v" }, c), "v");
    assert.equal(await impl.echo_with_all_log_levels({ value: "v" }, c), "v");
    assert.deepEqual(logs, [
      { level: "INFO", message: "info: v" },
      { level: "DEBUG", message: "debug: v" },
      { level: "INFO", message: "info: v" },
      { level: "WARN", message: "warn: v" },
      { level: "INFO", message: "info: v", extra: { source: "conformance", detail: "v" } },
      { level: "TRACE", message: "trace: v" },
      { level: "DEBUG", message: "debug: v" },
      { level: "INFO", message: "info: v" },
      { level: "WARN", message: "warn: v" },
      { level: "ERROR", message: "error: v" },
    ]);
  });

  test("enums resolve by name, then by legacy value", async () => {
    assert.equal(await impl.echo_enum({ status: "ACTIVE" }, ctx), "ACTIVE");
    assert.equal(toStatus("closed"), "CLOSED");
    await expectError(() => toStatus("nope"), "KeyError", "'nope' is not a valid Status name or value");
    assert.deepEqual(await impl.echo_status_list({ statuses: ["ACTIVE", "CLOSED"] }, ctx), ["ACTIVE", "CLOSED"]);
    await expectError(
      () => impl.echo_status_list({ statuses: ["ACTIVE", null] as never }, ctx),
      "TypeError",
      "statuses were not reconstructed as Status members",
    );
  });

  test("pack_nested_containers builds the reference's NestedContainers", async () => {
    const bytes = await impl.pack_nested_containers(
      {
        statuses: ["ACTIVE", "CLOSED"],
        points: [
          { x: 1, y: 2 },
          { x: 3, y: 4 },
        ],
        status_by_name: new Map([
          ["a", "ACTIVE"],
          ["c", "CLOSED"],
        ]),
      },
      ctx,
    );
    const table = tableFromIPC(bytes);
    // NestedContainers.ARROW_SCHEMA, as pyarrow prints it.
    assert.deepEqual(
      table.schema.fields.map((f) => `${f.name}${f.nullable ? "?" : ""}:${typeToken(f.type)}`),
      [
        "statuses:list<item?:dictionary<index:int16,value:utf8>>",
        "points:list<item?:struct<x:float64,y:float64>>",
        "status_by_name:map<key:utf8,value?:dictionary<index:int16,value:utf8>>",
        "frozen_statuses:list<item?:dictionary<index:int16,value:utf8>>",
        "tagged_status?:dictionary<index:int16,value:utf8>",
        "tagged_point?:struct<x:float64,y:float64>",
        "tagged_batch?:binary",
      ],
    );
    const value = decodeDataclass(DATACLASSES.NestedContainers, bytes);
    assert.deepEqual(value.statuses, ["ACTIVE", "CLOSED"]);
    assert.deepEqual(value.points, [
      { x: 1, y: 2 },
      { x: 3, y: 4 },
    ]);
    assert.deepEqual(
      [...value.status_by_name],
      [
        ["a", "ACTIVE"],
        ["c", "CLOSED"],
      ],
    );
    assert.deepEqual(new Set(value.frozen_statuses), new Set(["ACTIVE", "CLOSED"]));
    assert.equal(value.tagged_status, "ACTIVE");
    assert.deepEqual(value.tagged_point, { x: 1, y: 2 });
    assert.ok(value.tagged_batch);
    const tagged = tableFromIPC(value.tagged_batch);
    assert.deepEqual(
      tagged.schema.fields.map((f) => `${f.name}${f.nullable ? "?" : ""}:${typeToken(f.type)}`),
      ["value?:int64"],
    );
    assert.deepEqual(rowsOf(tagged.batches[0]), [{ value: 1n }, { value: 2n }]);

    const empty = decodeDataclass(
      DATACLASSES.NestedContainers,
      await impl.pack_nested_containers({ statuses: [], points: [], status_by_name: new Map() }, ctx),
    );
    assert.equal(empty.tagged_status, null);
    assert.equal(empty.tagged_point, null);
  });

  test("Python enum echo of a list keeps order", async () => {
    assert.deepEqual(await impl.echo_list({ values: ["b", "a"] }, ctx), ["b", "a"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Streams

describe("producer streams", () => {
  const ctx = fakeContext();

  async function drain<O extends OutputSpec>(
    stream: { produce(out: OutputCollector<O>, ctx: CallContext): unknown },
    make: () => FakeOut<O>,
    maxTurns = 100,
  ): Promise<FakeOut<O>[]> {
    const turns: FakeOut<O>[] = [];
    for (let i = 0; i < maxTurns; i++) {
      const out = make();
      await stream.produce(out, ctx);
      turns.push(out);
      if (out.finished) return turns;
    }
    assert.fail("stream did not finish");
  }

  test("produce_n", async () => {
    const stream = await openProducer(M.produce_n, impl.produce_n, { count: 3n }, ctx);
    const turns = await drain(stream, () => outFor(M.produce_n.output));
    assert.equal(turns.length, 4);
    assert.deepEqual(
      turns.flatMap((t) => t.batches().flatMap(rowsOf)),
      [
        { index: 0n, value: 0n },
        { index: 1n, value: 10n },
        { index: 2n, value: 20n },
      ],
    );
    assert.equal(turns[3]!.batches().length, 0);
  });

  test("output schemas are the reference's nullable fields", () => {
    assert.deepEqual(describeSchema(schemaOf(M.produce_n.output)), ["index?:Int64", "value?:Int64"]);
    assert.deepEqual(describeSchema(schemaOf(M.exchange_scale.input)), ["value?:Float64"]);
    assert.deepEqual(describeSchema(schemaOf(M.exchange_accumulate.output)), [
      "running_sum?:Float64",
      "exchange_count?:Int64",
    ]);
  });

  test("produce_tick_metadata reads each tick's metadata and finishes at count", async () => {
    const stream = await openProducer(M.produce_tick_metadata, impl.produce_tick_metadata, { count: 2n }, ctx);
    const first = outFor(M.produce_tick_metadata.output, undefined, new Map([[TICK_METADATA_KEY, "updated"]]));
    await stream.produce(first, ctx);
    assert.deepEqual(rowsOf(first.batches()[0]), [{ index: 0n, seen: "updated" }]);
    assert.equal(first.finished, false);
    const second = outFor(M.produce_tick_metadata.output);
    await stream.produce(second, ctx);
    assert.deepEqual(rowsOf(second.batches()[0]), [{ index: 1n, seen: "" }]);
    assert.equal(second.finished, true);
  });

  test("produce_empty, produce_single, produce_large_batches", async () => {
    assert.equal(
      (
        await drain(await openProducer(M.produce_empty, impl.produce_empty, {}, ctx), () =>
          outFor(M.produce_empty.output),
        )
      ).length,
      1,
    );
    const single = await drain(await openProducer(M.produce_single, impl.produce_single, {}, ctx), () =>
      outFor(M.produce_single.output),
    );
    assert.deepEqual(
      single.flatMap((t) => t.batches().flatMap(rowsOf)),
      [{ index: 0n, value: 0n }],
    );
    const large = await drain(
      await openProducer(
        M.produce_large_batches,
        impl.produce_large_batches,
        { rows_per_batch: 3n, batch_count: 2n },
        ctx,
      ),
      () => outFor(M.produce_large_batches.output),
    );
    assert.deepEqual(
      large.map((t) =>
        t
          .batches()
          .flatMap(rowsOf)
          .map((r) => r.index),
      ),
      [[0n, 1n, 2n], [3n, 4n, 5n], []],
    );
  });

  test("produce_annotated_batches carries per-emit metadata", async () => {
    const turns = await drain(
      await openProducer(
        M.produce_annotated_batches,
        impl.produce_annotated_batches,
        { count: 2n, rows_per_batch: 2n },
        ctx,
      ),
      () => outFor(M.produce_annotated_batches.output),
    );
    const batches = turns.flatMap((t) => t.batches());
    assert.deepEqual(batches.map(rowsOf), [
      [{ value: 0n }, { value: 1n }],
      [{ value: 1000000n }, { value: 1000001n }],
    ]);
    assert.deepEqual(Object.fromEntries(batches[1]!.metadata), {
      "conformance.batch_index": "1",
      "conformance.batch_total": "2",
      "conformance.emit_label": "ünïcode-λ",
    });
  });

  test("produce_with_logs logs before each batch", async () => {
    const turns = await drain(await openProducer(M.produce_with_logs, impl.produce_with_logs, { count: 2n }, ctx), () =>
      outFor(M.produce_with_logs.output),
    );
    assert.deepEqual(
      turns.map((t) => t.written.map((w) => ("log" in w ? w.log.message : "data"))),
      [["producing batch 0", "data"], ["producing batch 1", "data"], []],
    );
  });

  test("errors: mid-stream and on init", async () => {
    const stream = await openProducer(
      M.produce_error_mid_stream,
      impl.produce_error_mid_stream,
      { emit_before_error: 1n },
      ctx,
    );
    await stream.produce(outFor(M.produce_error_mid_stream.output), ctx);
    await expectError(
      () => stream.produce(outFor(M.produce_error_mid_stream.output), ctx),
      "RuntimeError",
      "intentional error after 1 batches",
    );
    await expectError(() => impl.produce_error_on_init.init({}, ctx), "RuntimeError", "intentional init error");
    await expectError(
      () => impl.exchange_error_on_init.init({}, ctx),
      "RuntimeError",
      "intentional exchange init error",
    );
  });

  test("headers", async () => {
    const logs: LogRecord[] = [];
    const h1 = await openProducer(M.produce_with_header, impl.produce_with_header, { count: 3n }, ctx);
    assert.deepEqual(h1.init.header, { total_expected: 3n, description: "producing 3 batches" });
    const h2 = await openProducer(
      M.produce_with_header_and_logs,
      impl.produce_with_header_and_logs,
      { count: 2n },
      fakeContext(logs),
    );
    assert.deepEqual(h2.init.header, { total_expected: 2n, description: "producing 2 with logs" });
    assert.deepEqual(logs, [{ level: "INFO", message: "stream init log" }]);
    const h3 = await openExchange(M.exchange_with_header, impl.exchange_with_header, { factor: 2 }, ctx);
    assert.deepEqual(h3.init.header, { total_expected: 0n, description: "scale by 2.0" });
  });

  test("rich header follows build_rich_header", () => {
    const five = buildRichHeader(5n);
    assert.deepEqual(
      { ...five, bytes_field: [...five.bytes_field] },
      {
        str_field: "seed-5",
        bytes_field: [5, 6, 7],
        int_field: 35n,
        float_field: 7.5,
        bool_field: false,
        list_of_int: [5n, 6n, 7n],
        list_of_str: ["item-5", "item-6"],
        dict_field: new Map([
          ["a", 5n],
          ["b", 6n],
        ]),
        enum_field: "CLOSED",
        nested_point: { x: 5, y: 10 },
        optional_str: null,
        optional_int: 15n,
        optional_nested: null,
        list_of_nested: [{ x: 5, y: 6 }],
        nested_list: [[5n, 6n], [7n]],
        annotated_int32: 5,
        annotated_float32: 5 / 3,
        dict_str_str: new Map([["key", "val-5"]]),
      },
    );
    const neg = buildRichHeader(-4n);
    assert.deepEqual([...neg.bytes_field], [252, 253, 254]);
    assert.equal(neg.enum_field, "CLOSED");
    assert.equal(neg.optional_nested, null);
    assert.equal(neg.bool_field, true);
    assert.equal(neg.optional_str, "opt--4");
    assert.equal(neg.optional_int, null);
    assert.equal(neg.annotated_int32, 996);
    assert.equal(buildRichHeader(3n).optional_nested?.x, 3);
    // The header encodes as a one-row batch of RichHeader's schema.
    const batch = batchFromRows(DATACLASSES.RichHeader.fields, [five]);
    assert.equal(batch.numRows, 1);
  });

  test("produce_dynamic_schema", async () => {
    const stream = await openProducer(
      M.produce_dynamic_schema,
      impl.produce_dynamic_schema,
      { seed: 1n, count: 2n, include_strings: true, include_floats: false },
      ctx,
    );
    assert.deepEqual(describeSchema(stream.init.outputSchema), ["index?:Int64", "label?:Utf8"]);
    const turns = await drain(stream, () => outFor("dynamic", stream.init.outputSchema));
    assert.deepEqual(
      turns.flatMap((t) => t.batches().flatMap(rowsOf)),
      [
        { index: 0n, label: "row-0" },
        { index: 1n, label: "row-1" },
      ],
    );
    const floats = await openProducer(
      M.produce_dynamic_schema,
      impl.produce_dynamic_schema,
      { seed: 1n, count: 2n, include_strings: false, include_floats: true },
      ctx,
    );
    const fturns = await drain(floats, () => outFor("dynamic", floats.init.outputSchema));
    assert.deepEqual(
      fturns.flatMap((t) => t.batches().flatMap(rowsOf)).map((r) => r.score),
      [0, 1.5],
    );
  });

  test("produce_oversized_batch and produce_with_rich_header", async () => {
    const big = await drain(
      await openProducer(M.produce_oversized_batch, impl.produce_oversized_batch, { rows_per_batch: 4n }, ctx),
      () => outFor(M.produce_oversized_batch.output),
    );
    assert.deepEqual(
      big.map((t) => t.batches().flatMap(rowsOf).length),
      [4, 0],
    );
    const rich = await openProducer(
      M.produce_with_rich_header,
      impl.produce_with_rich_header,
      { seed: 5n, count: 1n },
      ctx,
    );
    assert.deepEqual(rich.init.header, buildRichHeader(5n));
    const turns = await drain(rich, () => outFor(M.produce_with_rich_header.output));
    assert.deepEqual(
      turns.flatMap((t) => t.batches().flatMap(rowsOf)),
      [{ index: 0n, value: 0n }],
    );
  });

  test("interleaved streams of one method keep their own state", async () => {
    const a = await openProducer(M.produce_n, impl.produce_n, { count: 2n }, ctx);
    const b = await openProducer(M.produce_n, impl.produce_n, { count: 1n }, ctx);
    const order: [typeof a, string][] = [
      [a, "a"],
      [b, "b"],
      [a, "a"],
      [b, "b"],
      [a, "a"],
    ];
    const seen: string[] = [];
    for (const [stream, name] of order) {
      const out = outFor(M.produce_n.output);
      await stream.produce(out, ctx);
      const rows = out.batches().flatMap(rowsOf);
      seen.push(out.finished ? `${name}:done` : `${name}:${rows.map((r) => r.index).join(",")}`);
    }
    assert.deepEqual(seen, ["a:0", "b:0", "a:1", "b:done", "a:done"]);
  });

  test("the sticky counter is shared by the unary methods and both streams, and closed with its session", async () => {
    const sctx = sessionContext();
    assert.equal(await impl.open_counter({ initial: 10n }, sctx), 10n);
    const counter = sctx.session;
    assert.equal(await impl.increment_counter({ by: 5n }, sctx), 15n);
    const producer = await openProducer(M.stream_session_counter, impl.stream_session_counter, { count: 2n }, sctx);
    const values: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const out = outFor(M.stream_session_counter.output);
      await producer.produce(out, sctx);
      if (out.finished) break;
      values.push(...rowsFromBatch(M.stream_session_counter.output, out.batches()[0]!).map((r) => r.value));
    }
    assert.deepEqual(values, [16n, 17n]);
    const exchange = await openExchange(M.exchange_session_counter, impl.exchange_session_counter, {}, sctx);
    const out = outFor(M.exchange_session_counter.output);
    await exchange.process(
      inputOf(M.exchange_session_counter.input, [{ by: 2n }, { by: null }, { by: 1n }]),
      out,
      sctx,
    );
    assert.deepEqual(
      rowsFromBatch(M.exchange_session_counter.output, out.batches()[0]!).map((r) => r.value),
      [20n],
    );
    assert.equal((counter as { closed: boolean }).closed, false);
    assert.equal(await impl.close_counter({}, sctx), 20n);
    assert.equal(
      (counter as { closed: boolean }).closed,
      true,
      "close_counter closes the session, which closes the state",
    );
    assert.equal(sctx.session, null);
  });

  test("stream_session_counter without sessions", async () => {
    const empty = await openProducer(M.stream_session_counter, impl.stream_session_counter, { count: 0n }, ctx);
    const out = outFor(M.stream_session_counter.output);
    await empty.produce(out, ctx);
    assert.equal(out.finished, true);
    const one = await openProducer(M.stream_session_counter, impl.stream_session_counter, { count: 1n }, ctx);
    await expectError(
      () => one.produce(outFor(M.stream_session_counter.output), ctx),
      "RuntimeError",
      "no sticky counter bound to this request",
    );
  });
});

describe("exchange streams", () => {
  const ctx = fakeContext();
  const scaleIn = M.exchange_scale.input;

  test("exchange_scale keeps nulls", async () => {
    const s = await openExchange(M.exchange_scale, impl.exchange_scale, { factor: 2 }, ctx);
    const out = outFor(M.exchange_scale.output);
    await s.process(inputOf(scaleIn, [{ value: 1.5 }, { value: null }]), out, ctx);
    assert.deepEqual(rowsOf(out.batches()[0]), [{ value: 3 }, { value: null }]);
  });

  test("exchange_accumulate", async () => {
    const s = await openExchange(M.exchange_accumulate, impl.exchange_accumulate, {}, ctx);
    const a = outFor(M.exchange_accumulate.output);
    await s.process(inputOf(scaleIn, [{ value: 1 }, { value: 2 }]), a, ctx);
    const b = outFor(M.exchange_accumulate.output);
    await s.process(inputOf(scaleIn, [{ value: 0.5 }, { value: null }]), b, ctx);
    assert.deepEqual(rowsOf(a.batches()[0]), [{ running_sum: 3, exchange_count: 1n }]);
    assert.deepEqual(rowsOf(b.batches()[0]), [{ running_sum: 3.5, exchange_count: 2n }]);
    await expectError(
      () => s.process(inputOf(scaleIn, []), outFor(M.exchange_accumulate.output), ctx),
      "TypeError",
      "unsupported operand type(s) for +=: 'float' and 'NoneType'",
    );
  });

  test("exchange_with_logs echoes after two logs", async () => {
    const s = await openExchange(M.exchange_with_logs, impl.exchange_with_logs, {}, ctx);
    const out = outFor(M.exchange_with_logs.output);
    await s.process(inputOf(scaleIn, [{ value: 4 }], new Map([["k", "v"]])), out, ctx);
    assert.deepEqual(out.logs(), [
      { level: "INFO", message: "exchange processing" },
      { level: "DEBUG", message: "exchange debug" },
    ]);
    assert.deepEqual(rowsOf(out.batches()[0]), [{ value: 4 }]);
    assert.equal(out.batches()[0]!.metadata.size, 0, "the input's metadata is not echoed");
  });

  test("exchange_error_on_nth", async () => {
    const s = await openExchange(M.exchange_error_on_nth, impl.exchange_error_on_nth, { fail_on: 2n }, ctx);
    await s.process(inputOf(scaleIn, [{ value: 1 }]), outFor(M.exchange_error_on_nth.output), ctx);
    await expectError(
      () => s.process(inputOf(scaleIn, [{ value: 1 }]), outFor(M.exchange_error_on_nth.output), ctx),
      "RuntimeError",
      "intentional error on exchange 2",
    );
  });

  test("exchange_cast_compatible and exchange_with_rich_header", async () => {
    const c = await openExchange(M.exchange_cast_compatible, impl.exchange_cast_compatible, {}, ctx);
    const out = outFor(M.exchange_cast_compatible.output);
    await c.process(inputOf(scaleIn, [{ value: 2.5 }, { value: null }]), out, ctx);
    assert.deepEqual(rowsOf(out.batches()[0]), [{ value: 2.5 }, { value: null }]);
    const r = await openExchange(
      M.exchange_with_rich_header,
      impl.exchange_with_rich_header,
      { seed: 2n, factor: 3 },
      ctx,
    );
    assert.deepEqual(r.init.header, buildRichHeader(2n));
    for (const v of [1, 2]) {
      const o = outFor(M.exchange_with_rich_header.output);
      await r.process(inputOf(scaleIn, [{ value: v }]), o, ctx);
      assert.deepEqual(rowsOf(o.batches()[0]), [{ value: v * 3 }]);
    }
  });

  test("exchange_zero_columns and exchange_oversized", async () => {
    const z = await openExchange(M.exchange_zero_columns, impl.exchange_zero_columns, {}, ctx);
    const out = outFor(M.exchange_zero_columns.output);
    await z.process(inputOf({}, []), out, ctx);
    assert.equal(out.batches()[0]!.numRows, 0);
    assert.equal(out.batches()[0]!.numCols, 0);
    const o = await openExchange(M.exchange_oversized, impl.exchange_oversized, { rows_per_batch: 5n }, ctx);
    const big = outFor(M.exchange_oversized.output);
    await o.process(inputOf(scaleIn, [{ value: 1 }]), big, ctx);
    assert.deepEqual(rowsOf(big.batches()[0]).at(-1), { index: 4n, value: 40n });
  });

  test("exchange_input_metadata reports the turn's own metadata", async () => {
    const s = await openExchange(M.exchange_input_metadata, impl.exchange_input_metadata, {}, ctx);
    const a = outFor(M.exchange_input_metadata.output);
    await s.process(
      inputOf(
        scaleIn,
        [{ value: 0 }],
        new Map([
          [INPUT_METADATA_KEY, "first"],
          ["app.b", "1"],
        ]),
      ),
      a,
      ctx,
    );
    const b = outFor(M.exchange_input_metadata.output);
    await s.process(inputOf(scaleIn, [{ value: 1 }]), b, ctx);
    assert.deepEqual(rowsOf(a.batches()[0]), [{ seen: "first", keys: "app.b,vgi.conformance.input" }]);
    assert.deepEqual(rowsOf(b.batches()[0]), [{ seen: "", keys: "" }]);
  });

  test("cancel probe counters", async () => {
    await impl.reset_cancel_probe({}, ctx);
    assert.deepEqual(await impl.cancel_probe_counters({}, ctx), [0n, 0n, 0n]);
    const p = await openProducer(M.cancellable_producer, impl.cancellable_producer, {}, ctx);
    await p.produce(outFor(M.cancellable_producer.output), ctx);
    await p.produce(outFor(M.cancellable_producer.output), ctx);
    p.onCancel(ctx);
    const e = await openExchange(M.cancellable_exchange, impl.cancellable_exchange, {}, ctx);
    const out = outFor(M.cancellable_exchange.output);
    await e.process(inputOf(scaleIn, [{ value: 7 }]), out, ctx);
    assert.deepEqual(rowsOf(out.batches()[0]), [{ value: 7 }]);
    assert.deepEqual(await impl.cancel_probe_counters({}, ctx), [2n, 1n, 1n]);
    assert.deepEqual(cancelProbe.snapshot(), [2, 1, 1]);
    await impl.reset_cancel_probe({}, ctx);
    assert.deepEqual(await impl.cancel_probe_counters({}, ctx), [0n, 0n, 0n]);
  });

  test("exchange_session_counter without sessions", async () => {
    const s = await openExchange(M.exchange_session_counter, impl.exchange_session_counter, {}, ctx);
    await expectError(
      () =>
        s.process(
          inputOf(M.exchange_session_counter.input, [{ by: 1n }]),
          outFor(M.exchange_session_counter.output),
          ctx,
        ),
      "RuntimeError",
      "no sticky counter bound to this request",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Secondary

describe("conformance.Secondary.v1", () => {
  const secondary = createSecondaryImplementation();
  const ctx = fakeContext();

  async function failure(fn: () => unknown): Promise<RpcError> {
    const err = await expectError(fn, "RpcError", /./);
    assert.ok(err instanceof RpcError);
    assert.equal(err.type, "StatusError");
    return err;
  }

  test("echo_string is prefixed", async () => {
    assert.equal(await secondary.echo_string({ value: "hi" }, ctx), `${SECONDARY_ECHO_PREFIX}hi`);
  });

  test("fail raises the named code and kind with the fixed details", async () => {
    const err = await failure(() =>
      secondary.fail({ code: "UNAVAILABLE", kind: "maintenance", retry_delay_seconds: 7 }, ctx),
    );
    assert.equal(err.message, "conformance.Secondary.v1 fail: UNAVAILABLE maintenance");
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.kind, "maintenance");
    assert.deepEqual(err.details, [
      { "@type": "vgi_rpc.ErrorInfo", metadata: { fixture: "conformance.Secondary.v1" } },
      { "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 7 },
      { "@type": "conformance.Secondary.v1.Probe", note: "clients ignore detail types they do not know" },
    ]);
    const noKind = await failure(() => secondary.fail({ code: "ABORTED", kind: "", retry_delay_seconds: 0 }, ctx));
    assert.equal(noKind.message, "conformance.Secondary.v1 fail: ABORTED");
    assert.equal(noKind.kind, "");
    assert.deepEqual(noKind.details, expectedFailDetails(0));
    assert.equal(noKind.details.length, 2);
  });

  test("fail refuses a code outside the closed set", async () => {
    const err = await failure(() => secondary.fail({ code: "OK", kind: "x", retry_delay_seconds: 0 }, ctx));
    assert.equal(err.message, "'OK' is not a canonical error code");
    assert.equal(err.code, "INVALID_ARGUMENT");
    assert.equal(err.kind, "invalid_code");
    assert.deepEqual(err.details, [
      {
        "@type": "vgi_rpc.BadRequest",
        field_violations: [{ field: "code", description: "must be a canonical code name" }],
      },
    ]);
  });

  test("fail_oversized", async () => {
    const err = await failure(() => secondary.fail_oversized({}, ctx));
    assert.equal(err.message, "conformance.Secondary.v1 fail_oversized: details exceed 4 KiB");
    assert.equal(err.code, "RESOURCE_EXHAUSTED");
    assert.equal(err.kind, "details_oversized");
    assert.deepEqual(err.details[0], { "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 1 });
    assert.equal(
      JSON.stringify(err.details[1]),
      JSON.stringify({ "@type": "vgi_rpc.ErrorInfo", metadata: { padding: "x".repeat(5000) } }),
    );
  });
});
