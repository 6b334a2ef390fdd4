/** Assembling record batches from column data; zero-row batches for framework messages. */
import { type Data, type DataType, type Field, makeBuilder, makeData, RecordBatch, Schema, Struct } from "apache-arrow";

/** The schema with no fields: parameterless requests, void results, producer ticks. */
export const EMPTY_SCHEMA: Schema = new Schema([]);

function emptyData(type: DataType): Data {
  return makeBuilder({ type }).finish().flush();
}

/** Assembles a batch from column data; `metadata` becomes the batch's IPC custom metadata. */
export function batchFromData(
  schema: Schema,
  children: readonly Data[],
  length: number,
  metadata?: ReadonlyMap<string, string>,
): RecordBatch {
  const data = makeData({ type: new Struct(schema.fields), length, nullCount: 0, children: [...children] });
  return new RecordBatch(schema, data, metadata ? new Map(metadata) : undefined);
}

/** A zero-row batch of `schema` (log, error, pointer, tick and cancel batches). */
export function emptyBatch(schema: Schema, metadata?: ReadonlyMap<string, string>): RecordBatch {
  return batchFromData(
    schema,
    schema.fields.map((f: Field) => emptyData(f.type)),
    0,
    metadata,
  );
}

/** The same batch carrying different custom metadata (no data is copied). */
export function withMetadata(batch: RecordBatch, metadata: ReadonlyMap<string, string>): RecordBatch {
  return new RecordBatch(batch.schema, batch.data, new Map(metadata));
}
