/** The OutputCollector handed to stream turns, and the log sink used by unary calls and inits. */
import type { RecordBatch, Schema } from "apache-arrow";
import { batchFromColumns, batchFromRows, type ValueContext } from "../protocol/batch.js";
import type { LogExtra, LogLevel } from "../protocol/context.js";
import type { OutputCollector, OutputSpec, OutRow } from "../protocol/methods.js";
import { typeText } from "../protocol/type-tokens.js";
import type { FieldSpecs } from "../protocol/types.js";
import { batchFromData, emptyBatch, withMetadata } from "../wire/batches.js";
import { logMetadata, type Origin } from "../wire/messages.js";
import { sameFields } from "./validate.js";

/** Log batches waiting for the response stream to open (unary calls and stream inits). */
export class LogBuffer {
  private readonly pending: Map<string, string>[] = [];
  /** `call.origin` is read when a record is added (a call that logs nothing never draws a request id). */
  constructor(private readonly call: { readonly origin: Origin }) {}

  add(level: LogLevel, message: string, extra: LogExtra | undefined): void {
    // Encoded now so a non-serializable extra fails inside the handler, as its own error.
    this.pending.push(logMetadata(level, message, extra, this.call.origin));
  }

  /** Takes the buffered records as zero-row batches on `schema`. */
  drain(schema: Schema): RecordBatch[] {
    const out = this.pending.map((md) => emptyBatch(schema, md));
    this.pending.length = 0;
    return out;
  }
}

/** Collects one turn's batches in order; dispatch validates and writes them. */
export class TurnCollector<O extends OutputSpec> implements OutputCollector<O> {
  readonly batches: RecordBatch[] = [];
  private dataIndex = -1;
  private finishedFlag = false;

  constructor(
    readonly schema: Schema,
    private readonly fields: FieldSpecs | null,
    private readonly origin: Origin,
    private readonly producer: boolean,
    /** The metadata of the input batch (or tick) that started this turn. */
    readonly inputMetadata: ReadonlyMap<string, string>,
    /** The method, named by the errors that refuse an emitted value. */
    private readonly method = "",
  ) {}

  get finished(): boolean {
    return this.finishedFlag;
  }

  get hasData(): boolean {
    return this.dataIndex >= 0;
  }

  emitBatch(batch: RecordBatch, metadata?: ReadonlyMap<string, string>): void {
    if (this.dataIndex >= 0) throw new Error("Only one data batch may be emitted per call");
    let out = batch;
    if (batch.schema !== this.schema) {
      // Re-wrapped on the output schema even when equal in type, so that dictionary ids match
      // the schema message already written for this stream.
      out = sameFields(batch.schema, this.schema)
        ? batchFromData(this.schema, batch.data.children, batch.numRows, batch.metadata)
        : this.project(batch);
    }
    if (metadata !== undefined && metadata.size > 0) out = withMetadata(out, new Map([...out.metadata, ...metadata]));
    this.dataIndex = this.batches.length;
    this.batches.push(out);
  }

  emit(rows: readonly OutRow<O>[], metadata?: ReadonlyMap<string, string>): void {
    if (this.fields === null) throw new TypeError("emit(rows) needs declared output fields; use emitBatch()");
    this.emitBatch(batchFromRows(this.fields, rows as never, metadata, this.schema, this.context()));
  }

  emitColumns(columns: Readonly<Record<string, readonly unknown[]>>, metadata?: ReadonlyMap<string, string>): void {
    if (this.fields === null) throw new TypeError("emitColumns() needs declared output fields; use emitBatch()");
    this.emitBatch(batchFromColumns(this.fields, columns as never, metadata, this.schema, this.context()));
  }

  private context(): ValueContext {
    return { method: this.method, role: "output field" };
  }

  finish(): void {
    if (!this.producer)
      throw new Error("finish() is only for producer streams; an exchange ends when the client closes");
    this.finishedFlag = true;
  }

  clientLog(level: LogLevel, message: string, extra?: LogExtra): void {
    this.batches.push(emptyBatch(this.schema, logMetadata(level, message, extra, this.origin)));
  }

  /** Checks the lockstep rule: a turn that did not finish must have emitted exactly one batch. */
  validate(): void {
    if (!this.finishedFlag && this.dataIndex < 0) throw new Error("No data batch was emitted");
  }

  /** Selects the output columns by name from a superset batch (the reference's projection). */
  private project(batch: RecordBatch): RecordBatch {
    const children = this.schema.fields.map((want) => {
      const i = batch.schema.fields.findIndex((f) => f.name === want.name);
      if (i < 0) {
        throw new Error(
          `emitted batch is missing column(s) required by output_schema: batch has [${batch.schema.fields
            .map((f) => f.name)
            .join(", ")}], output_schema needs [${this.schema.fields.map((f) => f.name).join(", ")}]`,
        );
      }
      const got = batch.schema.fields[i]!;
      if (typeText(got.type) !== typeText(want.type)) {
        throw new TypeError(
          `emitted column '${want.name}' is ${String(got.type)}, output_schema declares ${String(want.type)}`,
        );
      }
      return batch.data.children[i]!;
    });
    return batchFromData(this.schema, children, batch.numRows, batch.metadata);
  }
}
