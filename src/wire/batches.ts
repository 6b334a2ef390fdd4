/** Assembling record batches from column data; zero-row batches for framework messages. */
import { Data, type DataType, type Field, makeBuilder, RecordBatch, Schema, Struct } from "apache-arrow";

/** The schema with no fields: parameterless requests, void results, producer ticks. */
export const EMPTY_SCHEMA: Schema = new Schema([]);

function emptyData(type: DataType): Data {
  return makeBuilder({ type }).finish().flush();
}

/**
 * `new RecordBatch(schema, data, metadata)` without the constructor's per-call rebuilding when
 * every column already has the batch's length: arrow-js then copies the schema (`schema.assign`)
 * and re-makes the struct data, to the same content, on every batch. The batch keeps `schema`
 * itself, so it stays identical to the declared schema it was built or decoded on. Columns of
 * another length go through the constructor (which pads them with nulls).
 */
export function recordBatch(schema: Schema, data: Data<Struct>, metadata?: Map<string, string>): RecordBatch {
  const children = data.children;
  let same = children.length === schema.fields.length;
  for (let i = 0; same && i < children.length; i++) same = children[i]!.length === data.length;
  if (!same) return new RecordBatch(schema, data, metadata);
  // The constructor's own fields, in its order (schema, data, _metadata), so the shape matches.
  const batch = Object.create(RecordBatch.prototype) as RecordBatch;
  Object.assign(batch, { schema, data, _metadata: metadata ?? new Map<string, string>() });
  return batch;
}

/**
 * The buffers argument of a struct `Data` with no validity: one array shared by every batch (the
 * `Data` constructor only reads it; the empty bitmap has no bytes to change). An array like the
 * ones arrow-js passes itself, so the constructor's reads of it stay monomorphic.
 */
export const STRUCT_BUFFERS = [undefined, undefined, new Uint8Array(0)] as unknown as ConstructorParameters<
  typeof Data<Struct>
>[4];

/** Assembles a batch from column data; `metadata` becomes the batch's IPC custom metadata. */
export function batchFromData(
  schema: Schema,
  children: readonly Data[],
  length: number,
  metadata?: ReadonlyMap<string, string>,
): RecordBatch {
  // What makeData builds for a struct with no validity, without its visitor dispatch.
  const data = new Data(structOf(schema), 0, length, 0, STRUCT_BUFFERS, [...children]);
  return recordBatch(schema, data, metadata ? new Map(metadata) : undefined);
}

/** The struct type of a schema's batches, made once per schema (types are immutable). */
const structs = new WeakMap<Schema, Struct>();

/** The struct type of `schema`'s batches (one object per schema). */
export function structOf(schema: Schema): Struct {
  let struct = structs.get(schema);
  if (struct === undefined) {
    struct = new Struct(schema.fields);
    structs.set(schema, struct);
  }
  return struct;
}

/**
 * Each schema's zero-length columns, built once: a builder per column per batch cost a
 * three-column schema ~9 us, and every log, error, cursor and pointer batch needs them. Sharing
 * is safe: a zero-length column has no values to change.
 */
const emptyColumns = new WeakMap<Schema, readonly Data[]>();

/** A zero-row batch of `schema` (log, error, pointer, tick and cancel batches). */
export function emptyBatch(schema: Schema, metadata?: ReadonlyMap<string, string>): RecordBatch {
  let columns = emptyColumns.get(schema);
  if (columns === undefined) {
    columns = schema.fields.map((f: Field) => emptyData(f.type));
    emptyColumns.set(schema, columns);
  }
  return batchFromData(schema, columns, 0, metadata);
}

/** The same batch carrying different custom metadata (no data is copied). */
export function withMetadata(batch: RecordBatch, metadata: ReadonlyMap<string, string>): RecordBatch {
  return recordBatch(batch.schema, batch.data, new Map(metadata));
}
