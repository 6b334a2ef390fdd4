#!/usr/bin/env node
/**
 * `quiver`: call and describe any vgi-rpc service from the command line, like the reference's
 * `vgi-rpc` CLI.
 *
 *   quiver --cmd "python -m my_worker" describe
 *   quiver --unix /tmp/svc.sock call add a=1 b=2
 *   quiver --tcp 127.0.0.1:9000 call generate --json '{"count": 3}'
 *   echo '{"value": 1.5}' | quiver --cmd "./worker" call scale factor=2
 *
 * Output: JSON lines (default when stdout is not a terminal), pretty JSON on a terminal, or a
 * column-aligned table with `--format table`. Errors go to stderr as `{"error": {...}}`, exit 1.
 */
import {
  Bool,
  type DataType,
  Field,
  Float64,
  Int64,
  List,
  Null,
  type RecordBatch,
  Schema,
  Struct,
  Utf8,
} from "apache-arrow";
import type { RpcClient } from "../client/client.js";
import type { MethodDescription, ServiceDescription } from "../client/describe.js";
import { schemaText } from "../client/values.js";
import { InvalidValueError, locateInvalidValue, RpcError } from "../errors.js";
import { batchFromRows } from "../protocol/batch.js";
import { type FieldSpecs, t } from "../protocol/types.js";
import { connectHttp, type HttpClient } from "../transports/http/client.js";
import { connectTcp, connectUnix } from "../transports/socket/client.js";
import { connectSubprocess } from "../transports/stdio/client.js";
import { JsonNumber, jsonOut, parseJson, toJsonText, valueFromJson, valueFromText } from "./cli-values.js";

const USAGE = `usage: quiver (--cmd "<worker command>" | --unix PATH | --tcp HOST:PORT | --url URL) [options] COMMAND
       quiver bridge --ws URL        relay the pipe protocol on stdin/stdout to a WebSocket server

commands:
  describe                       list the methods of the service's protocol
  call METHOD [k=v ...]          call a method (--json '{...}' for params as JSON);
                                 an exchange reads its input rows as JSON lines from stdin

options:
  --prefix PATH                  URL path prefix with --url (default: none)
  --protocol NAME                protocol to address (default: the first non-vgi_rpc. one listed)
  --format auto|json|table       output format (default: auto: JSON lines, pretty on a terminal)
  --json '{...}'                 call parameters as one JSON object
  --no-stdin                     never read exchange input from stdin (producer mode)
  --timeout SECONDS              longest wait for any server message (default 120)
  -v, --verbose                  print server log records on stderr
  -h, --help                     this help
`;

interface Config {
  cmd?: string;
  unix?: string;
  tcp?: string;
  url?: string;
  prefix?: string;
  protocol?: string;
  format: "auto" | "json" | "table";
  json?: string;
  noStdin: boolean;
  timeoutMs: number;
  verbose: boolean;
  positional: string[];
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Config {
  const cfg: Config = { format: "auto", noStdin: false, timeoutMs: 120_000, verbose: false, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--cmd":
      case "-c":
        cfg.cmd = value();
        break;
      case "--url":
        cfg.url = value();
        break;
      case "--prefix":
        cfg.prefix = value();
        break;
      case "--unix":
        cfg.unix = value();
        break;
      case "--tcp":
        cfg.tcp = value();
        break;
      case "--protocol":
        cfg.protocol = value();
        break;
      case "--format":
      case "-f": {
        const f = value();
        if (f !== "auto" && f !== "json" && f !== "table") throw new UsageError(`unknown format '${f}'`);
        cfg.format = f;
        break;
      }
      case "--json":
      case "-j":
        cfg.json = value();
        break;
      case "--no-stdin":
        cfg.noStdin = true;
        break;
      case "--timeout":
        cfg.timeoutMs = Number(value()) * 1000;
        if (!Number.isFinite(cfg.timeoutMs) || cfg.timeoutMs <= 0) throw new UsageError("--timeout must be > 0");
        break;
      case "--verbose":
      case "-v":
        cfg.verbose = true;
        break;
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      default:
        if (a.startsWith("--")) throw new UsageError(`unknown option ${a}`);
        cfg.positional.push(a);
    }
  }
  const transports = [cfg.cmd, cfg.unix, cfg.tcp, cfg.url].filter((x) => x !== undefined).length;
  if (transports === 0) throw new UsageError("Either --cmd, --unix, --tcp or --url is required");
  if (transports > 1) throw new UsageError("--cmd, --unix, --tcp and --url are mutually exclusive");
  return cfg;
}

/** Splits a command line as a POSIX shell would (quotes and backslashes; no expansion). */
export function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new UsageError("unterminated quote in --cmd");
  if (has || cur) out.push(cur);
  return out;
}

/** A connected client of any transport: the CLI needs only describe, unary, streams and close. */
type AnyClient = RpcClient | HttpClient;

async function connect(cfg: Config): Promise<AnyClient> {
  const opts = {
    timeoutMs: cfg.timeoutMs,
    ...(cfg.verbose
      ? { onLog: (r: { level: string; message: string }) => process.stderr.write(`[${r.level}] ${r.message}\n`) }
      : {}),
  };
  if (cfg.cmd !== undefined) {
    const [cmd, ...args] = shellSplit(cfg.cmd);
    if (cmd === undefined) throw new UsageError("--cmd is empty");
    return connectSubprocess(cmd, args, opts);
  }
  if (cfg.unix !== undefined) return connectUnix(cfg.unix, opts);
  if (cfg.url !== undefined) return connectHttp(cfg.url, { ...opts, ...(cfg.prefix ? { prefix: cfg.prefix } : {}) });
  const m = /^(.*):(\d+)$/.exec(cfg.tcp!);
  if (!m) throw new UsageError("--tcp takes HOST:PORT");
  return connectTcp(m[1] || "127.0.0.1", Number(m[2]), opts);
}

// ---------------------------------------------------------------------------------------------
// Output

const pretty = (cfg: Config) => cfg.format === "auto" && process.stdout.isTTY === true;

/** Prints a JSON-ready value (see `rowsOf`): integers whole at any magnitude. */
function printJson(cfg: Config, v: unknown): void {
  process.stdout.write(`${toJsonText(v, pretty(cfg) ? 2 : undefined)}\n`);
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "string") return v;
  return toJsonText(v);
}

/** Each answer schema's specs (schemas are decoded once per distinct message, so this stays small). */
const answerSpecs = new WeakMap<
  Schema,
  readonly { readonly name: string; readonly type: DataType; readonly spec: ReturnType<typeof t.fromArrow> }[]
>();

/** Every row of an answer batch, each value decoded by its type's codec and made JSON-ready. */
function rowsOf(batch: RecordBatch): Record<string, unknown>[] {
  let specs = answerSpecs.get(batch.schema);
  if (specs === undefined) {
    specs = batch.schema.fields.map((f) => ({ name: f.name, type: f.type, spec: t.fromArrow(f.type, f.nullable) }));
    answerSpecs.set(batch.schema, specs);
  }
  const rows: Record<string, unknown>[] = [];
  for (let r = 0; r < batch.numRows; r++) {
    const row: Record<string, unknown> = {};
    specs.forEach(({ name, type, spec }, i) => {
      const data = batch.data.children[i]!;
      row[name] = data.getValid(r) ? jsonOut(type, spec.codec.get(data, r)) : null;
    });
    rows.push(row);
  }
  return rows;
}

/** The reference CLI's table: padded columns, a dashed rule under the header. */
export function formatTable(rows: readonly Record<string, unknown>[]): string {
  if (rows.length === 0) return "(empty)";
  const cols = Object.keys(rows[0]!);
  const widths = new Map(cols.map((c) => [c, c.length]));
  const text = rows.map((r) =>
    cols.map((c) => {
      const s = cellText(r[c]);
      widths.set(c, Math.max(widths.get(c)!, s.length));
      return s;
    }),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((s, i) => s.padEnd(widths.get(cols[i]!)!))
      .join("  ")
      .trimEnd();
  return [line(cols), line(cols.map((c) => "-".repeat(widths.get(c)!))), ...text.map(line)].join("\n");
}

function describeText(d: ServiceDescription): string {
  const lines = [
    `RPC Service: ${d.protocolName}`,
    `  server_id: ${d.serverId}`,
    `  request_version: ${d.requestVersion}`,
    `  describe_version: ${d.describeVersion}`,
    `  protocol_hash: ${d.protocolHash}`,
  ];
  if (d.protocolVersion) lines.push(`  protocol_version: ${d.protocolVersion}`);
  lines.push("");
  for (const m of d.methods.values()) {
    lines.push(`  ${m.name}(${m.methodType})`);
    if (m.paramsSchema.fields.length > 0) lines.push(`    params: ${schemaText(m.paramsSchema).replace(/\n/g, "\n")}`);
    if (m.hasReturn) lines.push(`    returns: ${schemaText(m.resultSchema)}`);
    if (m.security !== null) {
      const any = Object.entries(m.security).map(([s, scopes]) => (scopes.length ? `${s} [${scopes.join(", ")}]` : s));
      lines.push(`    security: ${any.join(" | ")}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

function describeJson(d: ServiceDescription): Record<string, unknown> {
  const methods: Record<string, unknown> = {};
  for (const m of d.methods.values()) {
    methods[m.name] = {
      method_type: m.methodType,
      has_return: m.hasReturn,
      params_schema: schemaText(m.paramsSchema),
      result_schema: schemaText(m.resultSchema),
      ...(m.methodType === "stream"
        ? {
            has_header: m.hasHeader,
            stream_kind: m.isExchange === null ? "unknown" : m.isExchange ? "exchange" : "producer",
          }
        : {}),
      ...(m.security !== null ? { security: m.security } : {}),
    };
  }
  return {
    protocol_name: d.protocolName,
    server_id: d.serverId,
    request_version: d.requestVersion,
    describe_version: d.describeVersion,
    protocol_hash: d.protocolHash,
    protocol_version: d.protocolVersion,
    methods,
    ...(Object.keys(d.securitySchemes).length > 0 ? { security_schemes: d.securitySchemes } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Parameters and exchange input

/**
 * `k=v` arguments, each value read by its parameter's declared type (numbers, booleans, strings,
 * enums, decimals and dates as text; other types as JSON), refused with an `InvalidValueError`
 * naming the parameter when the text is no value of that type.
 */
function parseKeyValues(method: string, args: readonly string[], schema: Schema): Record<string, unknown> {
  const fields = new Map(schema.fields.map((f) => [f.name, f]));
  const out: Record<string, unknown> = {};
  for (const a of args) {
    const eq = a.indexOf("=");
    if (eq < 0) throw new UsageError(`Expected key=value, got: ${a}`);
    const key = a.slice(0, eq);
    const raw = a.slice(eq + 1);
    const f = fields.get(key);
    if (f === undefined) {
      throw new UsageError(`Unknown parameter '${key}'. Available: ${[...fields.keys()].sort().join(", ")}`);
    }
    out[key] = named(method, "parameter", key, () => valueFromText(f.type, raw));
  }
  return out;
}

/** Parameters given as one JSON object (`--json`), each read by its declared type. */
function parseJsonParams(method: string, text: string, schema: Schema): Record<string, unknown> {
  const json = parseJson(text);
  if (json === null || typeof json !== "object" || Array.isArray(json) || json instanceof JsonNumber) {
    throw new UsageError("--json takes a JSON object of parameters");
  }
  const fields = new Map(schema.fields.map((f) => [f.name, f]));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(json)) {
    const f = fields.get(key);
    if (f === undefined) {
      throw new UsageError(`Unknown parameter '${key}'. Available: ${[...fields.keys()].sort().join(", ")}`);
    }
    out[key] = named(method, "parameter", key, () => valueFromJson(f.type, v));
  }
  return out;
}

/** Runs `convert`, naming the method, role and field in the `InvalidValueError` it may throw. */
function named<T>(method: string, role: string, field: string, convert: () => T): T {
  try {
    return convert();
  } catch (err) {
    if (err instanceof InvalidValueError) throw locateInvalidValue(err, method, role, field);
    throw err;
  }
}

/**
 * A batch on `schema` holding `rows`, each value checked by its declared type's codec (refused
 * values name the method, the role and the field). Missing values are sent as nulls: a server
 * answers a null for a non-optional parameter as the reference does.
 */
function batchOf(method: string, role: string, schema: Schema, rows: readonly Record<string, unknown>[]): RecordBatch {
  const specs: Record<string, ReturnType<typeof t.fromArrow>> = {};
  for (const f of schema.fields) specs[f.name] = t.fromArrow(f.type, true);
  if (Object.keys(specs).join("\0") !== schema.fields.map((f) => f.name).join("\0")) {
    throw new UsageError("the method's fields cannot be written in their declared order");
  }
  return batchFromRows(specs as FieldSpecs, rows as never, undefined, schema, { method, role });
}

/** Reads all of stdin, or null when there is none (a terminal, or nothing within the probe). */
async function readStdin(cfg: Config, mustWait: boolean): Promise<string | null> {
  if (cfg.noStdin || process.stdin.isTTY) return null;
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    process.stdin.on("data", (c: Buffer) => chunks.push(c));
    process.stdin.once("end", () => resolve());
    process.stdin.once("error", () => resolve());
  });
  if (!mustWait) {
    // As the reference: a short probe so an inherited, idle stdin does not hang a producer call.
    const first = await Promise.race([
      done.then(() => "end" as const),
      new Promise<"data">((r) => process.stdin.once("data", () => r("data"))),
      new Promise<"idle">((r) => setTimeout(() => r("idle"), 100).unref()),
    ]);
    if (first === "idle") {
      process.stdin.pause();
      process.stdin.destroy();
      return null;
    }
  }
  await done;
  const text = Buffer.concat(chunks).toString("utf8");
  return text.trim() === "" ? null : text;
}

function inferType(v: unknown): DataType {
  if (typeof v === "boolean") return new Bool();
  if (v instanceof JsonNumber) return v.integral ? new Int64() : new Float64();
  if (typeof v === "string") return new Utf8();
  if (Array.isArray(v)) {
    const first = v.find((x) => x !== null);
    return new List(new Field("item", first === undefined ? new Null() : inferType(first), true));
  }
  if (v !== null && typeof v === "object") {
    return new Struct(Object.entries(v as Record<string, unknown>).map(([k, x]) => new Field(k, inferType(x), true)));
  }
  return new Null();
}

/**
 * The input schema for JSON rows, inferred as pyarrow's `from_pydict` infers a column, over every
 * row (one IPC stream carries one schema): a column of integers and floats is double.
 */
function inferSchema(rows: readonly Record<string, unknown>[]): Schema {
  const names: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!names.includes(k)) names.push(k);
  return new Schema(
    names.map((k) => {
      const values = rows.map((r) => r[k]).filter((v) => v !== null && v !== undefined);
      if (values.length > 0 && values.every((v) => v instanceof JsonNumber)) {
        const type = values.every((v) => (v as JsonNumber).integral) ? new Int64() : new Float64();
        return new Field(k, type, true);
      }
      return new Field(k, values.length === 0 ? new Null() : inferType(values[0]), true);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Commands

async function describeCmd(cfg: Config, client: AnyClient): Promise<void> {
  const d = await client.describe(cfg.protocol);
  if (cfg.format === "table" || pretty(cfg)) process.stdout.write(`${describeText(d)}\n`);
  else printJson(cfg, describeJson(d));
}

async function callCmd(cfg: Config, client: AnyClient, method: string, args: readonly string[]): Promise<void> {
  const d = await client.describe(cfg.protocol);
  const md: MethodDescription | undefined = d.methods.get(method);
  if (md === undefined) {
    throw new UsageError(`Unknown method '${method}'. Available: ${[...d.methods.keys()].join(", ")}`);
  }
  if (cfg.json !== undefined && args.length > 0)
    throw new UsageError("--json and key=value args are mutually exclusive");
  const params =
    cfg.json !== undefined
      ? parseJsonParams(method, cfg.json, md.paramsSchema)
      : parseKeyValues(method, args, md.paramsSchema);
  const request = batchOf(method, "parameter", md.paramsSchema, [params]);
  const target = {
    protocol: d.protocolName,
    method,
    ...(d.protocolVersion ? { protocolVersion: d.protocolVersion } : {}),
  };

  if (md.methodType === "unary") {
    const batch = await client.unaryBatch(target, request);
    if (!md.hasReturn) return printJson(cfg, null);
    const rows = rowsOf(batch);
    if (cfg.format === "table") process.stdout.write(`${formatTable(rows)}\n`);
    else for (const r of rows) printJson(cfg, r);
    return;
  }

  const stream = await client.openStream(target, request, { hasHeader: md.hasHeader });
  try {
    if (stream.header !== null) {
      const h = rowsOf(stream.header)[0] ?? {};
      if (cfg.format === "table") {
        process.stdout.write("Header:\n");
        for (const [k, v] of Object.entries(h)) process.stdout.write(`  ${k}: ${cellText(v)}\n`);
        process.stdout.write("\n");
      } else printJson(cfg, { __header__: h });
    }
    const input = md.isExchange === false ? null : await readStdin(cfg, md.isExchange === true);
    if (input === null) {
      const table: Record<string, unknown>[] = [];
      for (;;) {
        const b = await stream.tick();
        if (b === null) break;
        const rows = rowsOf(b);
        if (cfg.format === "table") table.push(...rows);
        else for (const r of rows) printJson(cfg, r);
      }
      if (cfg.format === "table" && table.length > 0) process.stdout.write(`${formatTable(table)}\n`);
    } else {
      const rows = input
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => {
          const row = parseJson(l);
          if (row === null || typeof row !== "object" || Array.isArray(row) || row instanceof JsonNumber) {
            throw new UsageError(`each input line must be a JSON object, got: ${l}`);
          }
          return row as Record<string, unknown>;
        });
      const schema = inferSchema(rows);
      for (const row of rows) {
        const values: Record<string, unknown> = {};
        for (const f of schema.fields)
          values[f.name] = named(method, "input field", f.name, () => valueFromJson(f.type, row[f.name]));
        const out = await stream.send(batchOf(method, "input field", schema, [values]));
        if (out === null) break;
        for (const r of rowsOf(out)) printJson(cfg, r);
      }
    }
  } finally {
    await stream.close().catch(() => {});
  }
}

function emitError(e: RpcError): void {
  const err: Record<string, unknown> = { type: e.type, message: e.message };
  if (e.kind) err.kind = e.kind;
  if (e.remoteTraceback) err.traceback = e.remoteTraceback;
  process.stderr.write(`${JSON.stringify({ error: err })}\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "bridge") return (await import("../transports/ws/bridge.js")).bridgeMain(argv.slice(1));
  let cfg: Config;
  try {
    cfg = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`Error: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [command, ...rest] = cfg.positional;
  if (command !== "describe" && command !== "call") {
    process.stderr.write(`Error: expected a command (describe, call)\n\n${USAGE}`);
    return 2;
  }
  let client: AnyClient | null = null;
  try {
    client = await connect(cfg);
    if (command === "describe") await describeCmd(cfg, client);
    else {
      const [method, ...args] = rest;
      if (method === undefined) throw new UsageError("call needs a METHOD");
      await callCmd(cfg, client, method, args);
    }
    return 0;
  } catch (e) {
    if (e instanceof RpcError) emitError(e);
    else process.stderr.write(`Error: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await client?.close().catch(() => {});
  }
}

process.exitCode = await main(process.argv.slice(2));
