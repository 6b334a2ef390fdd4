/**
 * What `quiver` writes: answer batches as JSON lines, a table, or an Arrow IPC stream, to stdout
 * or a file (`-o`), and a service's description as JSON or text.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { DataType, RecordBatch, Schema } from "apache-arrow";
import type { MethodDescription, ServiceDescription } from "../client/describe.js";
import { schemaText } from "../client/values.js";
import { t } from "../protocol/types.js";
import { batchFromData, EMPTY_SCHEMA } from "../wire/batches.js";
import { EOS, IpcStreamEncoder } from "../wire/ipc.js";
import type { Config } from "./cli-args.js";
import { jsonOut, toJsonText } from "./cli-values.js";

/** Where output goes: stdout, or a file opened at the first write (so a call failing first leaves none). */
export class Sink {
  private fd: number | null = null;

  constructor(private readonly path: string | undefined) {}

  /** True when the output is a terminal (stdout on a TTY, no `-o`). */
  get terminal(): boolean {
    return this.path === undefined && process.stdout.isTTY === true;
  }

  write(chunk: string | Uint8Array): void {
    if (this.path === undefined) {
      process.stdout.write(chunk);
      return;
    }
    this.fd ??= openSync(this.path, "w");
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let at = 0; at < bytes.byteLength; ) at += writeSync(this.fd, bytes, at);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
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
export function rowsOf(batch: RecordBatch): Record<string, unknown>[] {
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

/**
 * A call's answers as the chosen format writes them. `header` takes a stream's header, `batch`
 * each result or output batch, `end` finishes (`ok`: the call succeeded).
 */
export interface AnswerWriter {
  header(batch: RecordBatch): void;
  batch(batch: RecordBatch): void;
  /** A unary call without a result. */
  none(): void;
  end(ok: boolean): void;
}

/** JSON lines (pretty on a terminal in `auto`): one object a row, `{"__header__": {...}}` first for a header. */
function jsonWriter(cfg: Config, sink: Sink): AnswerWriter {
  const indent = cfg.format === "auto" && sink.terminal ? 2 : undefined;
  const print = (v: unknown) => sink.write(`${toJsonText(v, indent)}\n`);
  return {
    header: (b) => print({ __header__: rowsOf(b)[0] ?? {} }),
    batch: (b) => {
      for (const r of rowsOf(b)) print(r);
    },
    none: () => print(null),
    end: () => sink.close(),
  };
}

/** A table of every row, written at the end (after the header's `Header:` block). */
function tableWriter(sink: Sink): AnswerWriter {
  const rows: Record<string, unknown>[] = [];
  let any = false;
  return {
    header: (b) => {
      sink.write("Header:\n");
      for (const [k, v] of Object.entries(rowsOf(b)[0] ?? {})) sink.write(`  ${k}: ${cellText(v)}\n`);
      sink.write("\n");
    },
    batch: (b) => {
      any = true;
      rows.push(...rowsOf(b));
    },
    none: () => sink.write("null\n"),
    end: (ok) => {
      if (ok && any) sink.write(`${formatTable(rows)}\n`);
      sink.close();
    },
  };
}

/** A batch without its custom metadata (the framework's keys are not the data). */
function dataOnly(b: RecordBatch): RecordBatch {
  return b.metadata.size === 0 ? b : batchFromData(b.schema, b.data.children, b.numRows);
}

/**
 * An Arrow IPC stream of the result or output batches, as the reference CLI writes it: a stream's
 * header first as an IPC stream of its own, then the rows' stream. A stream that produced no
 * batch is written with `outputSchema` (the empty schema when the server did not describe it).
 * A failed call still ends its stream, so what was written reads back.
 */
function arrowWriter(sink: Sink, outputSchema: Schema | null): AnswerWriter {
  let enc: IpcStreamEncoder | null = null;
  const write = (chunks: readonly Uint8Array[]) => {
    for (const c of chunks) sink.write(c);
  };
  const batch = (b: RecordBatch) => {
    enc ??= new IpcStreamEncoder(b.schema);
    write(enc.batch(dataOnly(b)));
  };
  return {
    header: (b) => {
      const h = new IpcStreamEncoder(b.schema);
      write([...h.batch(dataOnly(b)), EOS]);
    },
    batch,
    none: () => batch(batchFromData(EMPTY_SCHEMA, [], 0)),
    end: () => {
      enc ??= new IpcStreamEncoder(outputSchema ?? EMPTY_SCHEMA);
      write([...enc.begin(), EOS]);
      sink.close();
    },
  };
}

/** The writer for `cfg.format` (`outputSchema`: what an Arrow stream with no batch is written with). */
export function answerWriter(cfg: Config, sink: Sink, outputSchema: Schema | null): AnswerWriter {
  if (cfg.format === "arrow") return arrowWriter(sink, outputSchema);
  if (cfg.format === "table") return tableWriter(sink);
  return jsonWriter(cfg, sink);
}

// ---------------------------------------------------------------------------------------------
// describe

/** A schema's text with its continuation lines indented by `pad` (one field a line). */
function indented(schema: Schema, pad: string): string {
  return schemaText(schema).replace(/\n/g, `\n${pad}`);
}

function streamKind(m: MethodDescription): string {
  return m.isExchange === null ? "unknown" : m.isExchange ? "exchange" : "producer";
}

export function describeText(d: ServiceDescription): string {
  const lines = [
    `RPC Service: ${d.protocolName}`,
    `  server_id: ${d.serverId}`,
    `  request_version: ${d.requestVersion}`,
    `  describe_version: ${d.describeVersion}`,
    `  protocol_hash: ${d.protocolHash}`,
  ];
  if (d.protocolVersion) lines.push(`  protocol_version: ${d.protocolVersion}`);
  lines.push("");
  const field = (label: string, schema: Schema | null) =>
    lines.push(`    ${label}: ${schema === null ? "(not described)" : indented(schema, " ".repeat(label.length + 6))}`);
  for (const m of d.methods.values()) {
    lines.push(`  ${m.name}(${m.methodType})`);
    if (m.paramsSchema.fields.length > 0) field("params", m.paramsSchema);
    if (m.hasReturn) field("returns", m.resultSchema);
    if (m.methodType === "stream") {
      lines.push(`    kind: ${streamKind(m)}`);
      if (m.headerSchema !== null) field("header", m.headerSchema);
      if (m.isExchange !== false) field("input", m.inputSchema);
      field("output", m.outputSchema);
    }
    if (m.security !== null) {
      const any = Object.entries(m.security).map(([s, scopes]) => (scopes.length ? `${s} [${scopes.join(", ")}]` : s));
      lines.push(`    security: ${any.join(" | ")}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

export function describeJson(d: ServiceDescription): Record<string, unknown> {
  const text = (s: Schema | null) => (s === null ? null : schemaText(s));
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
            stream_kind: streamKind(m),
            ...(m.headerSchema !== null ? { header_schema: schemaText(m.headerSchema) } : {}),
            ...(m.isExchange !== false ? { input_schema: text(m.inputSchema) } : {}),
            output_schema: text(m.outputSchema),
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
