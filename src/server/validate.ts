/**
 * Request contract checks and exchange-input coercion, as the reference applies them: the
 * parameter schema must match exactly (count, order, names, types, top-level nullability); an
 * exchange input must carry the declared field set, and may be reordered and numerically cast.
 */
import { type Data, type DataType, makeBuilder, type RecordBatch, type Schema, Type } from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { typeText } from "../protocol/type-tokens.js";
import { batchFromData } from "../wire/batches.js";

/** The last schema each schema matched (schemas are never mutated, so a match holds). */
const matched = new WeakMap<Schema, Schema>();

/** Same field names, order, top-level nullability and types (metadata ignored). */
export function sameFields(a: Schema, b: Schema): boolean {
  if (a === b || matched.get(a) === b) return true;
  if (a.fields.length !== b.fields.length) return false;
  const same = a.fields.every((f, i) => {
    const g = b.fields[i]!;
    return f.name === g.name && f.nullable === g.nullable && typeText(f.type) === typeText(g.type);
  });
  if (same) matched.set(a, b);
  return same;
}

/**
 * Throws a TypeError (as the reference does) when `actual` does not match the declared params.
 * Decoded schemas are shared per distinct schema message, so after the first call of a kind the
 * match is a map lookup (see `sameFields`).
 */
export function checkParamsContract(method: string, actual: Schema, declared: Schema): void {
  if (sameFields(actual, declared)) return;
  checkFields(method, actual, declared);
}

function checkFields(method: string, actual: Schema, declared: Schema): void {
  if (actual.fields.length !== declared.fields.length) {
    throw new TypeError(
      `${method}() parameter schema expected ${declared.fields.length} fields, got ${actual.fields.length}`,
    );
  }
  declared.fields.forEach((want, i) => {
    const got = actual.fields[i]!;
    if (got.name !== want.name) {
      throw new TypeError(`${method}() parameter schema field ${i} expected name '${want.name}', got '${got.name}'`);
    }
    const wantType = typeText(want.type);
    const gotType = typeText(got.type);
    if (wantType !== gotType) {
      throw new TypeError(
        `${method}() parameter '${got.name}' expected Arrow type ${wantType} but the request batch carried ${gotType}`,
      );
    }
    if (got.nullable !== want.nullable) {
      throw new TypeError(
        `${method}() parameter '${got.name}' expected nullable=${want.nullable}, but the request batch carried nullable=${got.nullable}`,
      );
    }
  });
}

function describeSchema(schema: Schema): string {
  return schema.fields.map((f) => `${f.name}: ${typeText(f.type)}${f.nullable ? "" : " not null"}`).join(", ");
}

const NUMERIC = new Set<Type>([Type.Int, Type.Float]);

function castColumn(data: Data, to: DataType): Data {
  const builder = makeBuilder({ type: to, nullValues: [null, undefined] });
  const toBigInt = to.typeId === Type.Int && (to as DataType & { bitWidth: number }).bitWidth === 64;
  for (let i = 0; i < data.length; i++) {
    if (!data.getValid(i)) {
      builder.append(null);
      continue;
    }
    const v = getVisitor.visit(data, i) as number | bigint;
    if (toBigInt) {
      if (typeof v === "number" && !Number.isInteger(v)) throw new TypeError(`cannot cast ${v} to an integer`);
      builder.append(BigInt(v));
    } else builder.append(Number(v));
  }
  return builder.finish().flush();
}

/**
 * Reconciles an input batch with the declared input schema: same field set required; order and
 * numeric widths may differ. Throws TypeError "Input schema mismatch" otherwise.
 */
export function coerceInput(batch: RecordBatch, target: Schema): RecordBatch {
  const mismatch = () =>
    new TypeError(`Input schema mismatch: expected ${describeSchema(target)}, got ${describeSchema(batch.schema)}`);
  const src = batch.schema.fields;
  if (sameFields(batch.schema, target)) return batch;
  const names = new Set(src.map((f) => f.name));
  if (names.size !== target.fields.length || !target.fields.every((f) => names.has(f.name))) throw mismatch();
  const children = target.fields.map((want) => {
    const index = src.findIndex((f) => f.name === want.name);
    const got = src[index]!;
    const data = batch.data.children[index]!;
    if (typeText(got.type) === typeText(want.type)) return data;
    if (!NUMERIC.has(got.type.typeId) || !NUMERIC.has(want.type.typeId)) throw mismatch();
    return castColumn(data, want.type);
  });
  return batchFromData(target, children, batch.numRows, batch.metadata);
}
