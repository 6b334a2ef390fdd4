/**
 * Building and reading record batches from specs: rows ↔ Arrow, schemas from field specs.
 */
import { Data, DataType, Precision, type RecordBatch, Schema } from "apache-arrow";
import { InvalidValueError, locateInvalidValue } from "../errors.js";
import { batchFromData } from "../wire/batches.js";
import { smallArray } from "../wire/slab.js";

export { batchFromData, EMPTY_SCHEMA, emptyBatch } from "../wire/batches.js";

import { firstNull } from "./codecs.js";
import { typeText } from "./type-tokens.js";
import { type FieldSpecs, fieldOf, type RowOf, type TypeSpec } from "./types.js";

/**
 * Whose values a batch holds, for the errors that refuse one: the method, and what the columns
 * are to it (`parameter`, `result`, `header field`, `output field`, `input field`).
 */
export interface ValueContext {
  readonly method: string;
  readonly role: string;
}

/** Schemas by spec record: declared specs are long-lived, and callers treat schemas as immutable. */
const schemas = new WeakMap<FieldSpecs, Schema>();

/** The Arrow schema for a record of specs, in declaration order (one object per spec record). */
export function schemaOf(fields: FieldSpecs): Schema {
  let schema = schemas.get(fields);
  if (schema === undefined) {
    schema = new Schema(Object.entries(fields).map(([name, spec]) => fieldOf(name, spec)));
    schemas.set(fields, schema);
  }
  return schema;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/**
 * int64 and float64 columns with no nulls, written straight into their typed array (and Data,
 * as makeData would build it for these types, without its visitor): the same data and wire bytes
 * as the codec, without its null tracking. Null when a value is not of the exact JS type or in
 * range (the codec then handles them, nulls and refusals included).
 */
function directColumn(type: DataType | undefined, values: readonly unknown[]): Data | null {
  if (type === undefined) return null;
  if (DataType.isInt(type) && type.bitWidth === 64 && type.isSigned) {
    const out = smallArray(BigInt64Array, values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "bigint" || v < I64_MIN || v > I64_MAX) return null;
      out[i] = v;
    }
    return new Data(type, 0, values.length, 0, [undefined, out, new Uint8Array(0)]);
  }
  if (DataType.isFloat(type) && type.precision === Precision.DOUBLE) {
    const out = smallArray(Float64Array, values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number") return null;
      out[i] = v;
    }
    return new Data(type, 0, values.length, 0, [undefined, out, new Uint8Array(0)]);
  }
  return null;
}

/** The Arrow type `schema` declares for column `index` when it is the spec named `name`. */
function declaredType(schema: Schema, index: number, name: string): DataType | undefined {
  const field = schema.fields[index];
  return field !== undefined && field.name === name ? field.type : undefined;
}

/**
 * One column's data from its values: the direct path for int64 and float64 without nulls, else the
 * spec's codec, which refuses a value outside the type's domain with an `InvalidValueError`, here
 * given the column's name (and the method and role from `context`), as is a null in a column
 * the spec makes not nullable.
 */
function buildColumn(
  spec: TypeSpec,
  values: readonly unknown[],
  type: DataType | undefined,
  name: string,
  context: ValueContext | undefined,
): Data {
  try {
    const direct = directColumn(type, values);
    if (direct !== null) return direct;
    const data = spec.codec.build(values);
    if (!spec.nullable && data.nullCount > 0) {
      const row = firstNull(values);
      if (row >= 0) {
        const v = values[row];
        const problem = `${v === null ? "null" : "undefined"}, but the field is not nullable`;
        throw new InvalidValueError("TypeError", problem, v, typeText(spec.arrowType), row);
      }
    }
    return data;
  } catch (err) {
    if (err instanceof InvalidValueError)
      throw locateInvalidValue(err, context?.method ?? "", context?.role ?? "field", name, values.length);
    throw err;
  }
}

/**
 * Builds one batch from rows, column by column through each spec's codec. A value its spec's type
 * cannot hold exactly is refused with an `InvalidValueError` naming the column (and `context`'s
 * method and role).
 */
export function batchFromRows<F extends FieldSpecs>(
  fields: F,
  rows: readonly RowOf<F>[],
  metadata?: ReadonlyMap<string, string>,
  schema: Schema = schemaOf(fields),
  context?: ValueContext,
): RecordBatch {
  const children = Object.entries(fields).map(([name, spec], index) => {
    const values = rows.map((r) => (r as Record<string, unknown>)[name]);
    return buildColumn(spec, values, declaredType(schema, index, name), name, context);
  });
  return batchFromData(schema, children, rows.length, metadata);
}

/** A one-row batch of `schema`'s single column holding `value`: what batchFromRows builds for it. */
export function oneValueBatch(
  spec: TypeSpec,
  value: unknown,
  schema: Schema,
  name = "result",
  context?: ValueContext,
): RecordBatch {
  if (schema.fields.length !== 1) {
    return batchFromRows({ [name]: spec }, [{ [name]: value }], undefined, schema, context);
  }
  return batchFromData(schema, [buildColumn(spec, [value], declaredType(schema, 0, name), name, context)], 1);
}

/** The first row's value of the column named `name`, read through `spec` (null when null). */
export function oneValue(spec: TypeSpec, batch: RecordBatch, name = "result"): unknown {
  const fields = batch.schema.fields;
  const index = fields.length === 1 && fields[0]!.name === name ? 0 : fields.findIndex((f) => f.name === name);
  if (index < 0) throw new TypeError(`batch has no column '${name}'`);
  const data = batch.data.children[index]!;
  return data.getValid(0) ? spec.codec.get(data, 0) : null;
}

/** Builds one batch from whole columns (values refused as `batchFromRows` refuses them). */
export function batchFromColumns<F extends FieldSpecs>(
  fields: F,
  columns: { readonly [K in keyof F]: readonly RowOf<F>[K][] },
  metadata?: ReadonlyMap<string, string>,
  schema: Schema = schemaOf(fields),
  context?: ValueContext,
): RecordBatch {
  let length = -1;
  const children = Object.entries(fields).map(([name, spec], index) => {
    const values = (columns as Record<string, readonly unknown[]>)[name];
    if (values === undefined) throw new TypeError(`column '${name}' is missing`);
    if (length === -1) length = values.length;
    else if (values.length !== length) {
      throw new TypeError(`column '${name}' has ${values.length} values, expected ${length}`);
    }
    return buildColumn(spec, values, declaredType(schema, index, name), name, context);
  });
  return batchFromData(schema, children, Math.max(length, 0), metadata);
}

/** Reads one column of `batch` through its spec. */
export function columnFromBatch<F extends FieldSpecs, K extends keyof F & string>(
  fields: F,
  batch: RecordBatch,
  name: K,
): RowOf<F>[K][] {
  const spec = fields[name];
  const index = batch.schema.fields.findIndex((f) => f.name === name);
  if (spec === undefined || index < 0) throw new TypeError(`batch has no column '${name}'`);
  const data = batch.data.children[index]!;
  const out: unknown[] = new Array(batch.numRows);
  for (let i = 0; i < batch.numRows; i++) out[i] = data.getValid(i) ? spec.codec.get(data, i) : null;
  return out as RowOf<F>[K][];
}

/** Reads every row of `batch` through the specs, matching columns by name. */
export function rowsFromBatch<F extends FieldSpecs>(fields: F, batch: RecordBatch): RowOf<F>[] {
  const readers = Object.entries(fields).map(([name, spec]) => {
    const index = batch.schema.fields.findIndex((f) => f.name === name);
    if (index < 0) throw new TypeError(`batch has no column '${name}'`);
    return { name, spec, data: batch.data.children[index]! };
  });
  const rows: RowOf<F>[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (const { name, spec, data } of readers) {
      row[name] = data.getValid(i) ? spec.codec.get(data, i) : null;
    }
    rows.push(row as RowOf<F>);
  }
  return rows;
}
