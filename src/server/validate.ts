/**
 * Request contract checks and exchange-input coercion, as the reference applies them: the
 * parameter schema must match exactly (count, order, names, types, top-level nullability); an
 * exchange input must carry the declared field set, and may be reordered and cast as pyarrow casts.
 */
import { type RecordBatch, Schema } from "apache-arrow";
import { ValueError } from "../errors.js";
import { pyarrowSchemaText } from "../protocol/pyarrow-names.js";
import { pyStrRepr } from "../protocol/python-text.js";
import { typeText } from "../protocol/type-tokens.js";
import { batchFromData } from "../wire/batches.js";
import { castColumn } from "./casts.js";

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

/** Python's `KeyError`: `str()` of one shows its argument's repr. */
class KeyError extends Error {
  constructor(key: string) {
    super(pyStrRepr(key));
    this.name = "KeyError";
  }
}

/** The reference's refusal: both schemas as pyarrow prints them, one field a line. */
function mismatch(target: Schema, got: Schema, cause?: unknown): TypeError {
  return new TypeError(
    `Input schema mismatch: expected ${pyarrowSchemaText(target)}, got ${pyarrowSchemaText(got)}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Reconciles an exchange input batch with the declared input schema, as the reference's
 * `_coerce_input_batch` does: the same schema passes untouched; otherwise the field names must be
 * the same set (else TypeError "Input schema mismatch"), a different order is selected into the
 * declared one (a name the batch repeats is a KeyError there), and each column is cast to its
 * declared type with pyarrow's safe cast (see `casts.ts`). A declared non-nullable field refuses
 * nulls. Any refusal is the same TypeError, with pyarrow's reason as its cause.
 *
 * The common case — the declared schema itself, or one already matched — is an identity check
 * (see `sameFields`); everything else is per-turn work only for batches that need it.
 */
export function coerceInput(batch: RecordBatch, target: Schema): RecordBatch {
  if (sameFields(batch.schema, target)) return batch;
  return reconcile(batch, target);
}

function reconcile(batch: RecordBatch, target: Schema): RecordBatch {
  const names = batch.schema.fields.map((f) => f.name);
  const wanted = target.fields.map((f) => f.name);
  const nameSet = new Set(names);
  const wantedSet = new Set(wanted);
  if (nameSet.size !== wantedSet.size || ![...nameSet].every((n) => wantedSet.has(n))) {
    throw mismatch(target, batch.schema);
  }
  let schema = batch.schema;
  let columns = batch.data.children;
  if (names.length !== wanted.length || names.some((n, i) => n !== wanted[i])) {
    // RecordBatch.select(target names): the batch's schema metadata stays, fields follow the names.
    const order = wanted.map((name) => {
      const at = names.flatMap((n, i) => (n === name ? [i] : []));
      if (at.length > 1) throw new KeyError(`Field "${name}" exists ${at.length} times in schema`);
      return at[0]!;
    });
    schema = new Schema(
      order.map((i) => batch.schema.fields[i]!),
      batch.schema.metadata,
    );
    columns = order.map((i) => batch.data.children[i]!);
  }
  const children = target.fields.map((want, i) => {
    const got = schema.fields[i]!;
    const data = columns[i]!;
    if (!want.nullable && data.nullCount > 0) {
      throw mismatch(
        target,
        schema,
        new ValueError(`Casting field ${pyStrRepr(want.name)} with null values to non-nullable`),
      );
    }
    try {
      return castColumn(data, got, want.type);
    } catch (err) {
      throw mismatch(target, schema, err);
    }
  });
  return batchFromData(target, children, batch.numRows, batch.metadata);
}
