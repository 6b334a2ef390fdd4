/**
 * What `quiver call` sends: parameters from `k=v` arguments or `--json`, and an exchange's input
 * from `--input FILE` or stdin. Every value is read by its declared type; a value the type refuses,
 * a required parameter left out and an unknown name are refused before anything is sent (exit 2).
 *
 * Exchange input is an Arrow IPC stream (or file), each batch one turn, sent as it is (the server
 * casts it to the exchange's input schema as it would any client's batch); or JSON lines, each
 * line one row and one turn, read by the declared input schema when the server describes it (a
 * quiver server does), else by a schema inferred from all the rows as pyarrow's `from_pydict`
 * infers it.
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
  RecordBatchReader,
  Schema,
  Struct,
  Utf8,
} from "apache-arrow";
import { InvalidValueError, locateInvalidValue } from "../errors.js";
import { batchFromRows } from "../protocol/batch.js";
import { typeText } from "../protocol/type-tokens.js";
import { type FieldSpecs, t } from "../protocol/types.js";
import { UsageError } from "./cli-args.js";
import { JsonNumber, parseJson, valueFromJson, valueFromText } from "./cli-values.js";

/**
 * Runs `convert`, naming the method, role and field in the `InvalidValueError` it may throw (text
 * that should have been JSON, for a list, map or struct, is one too).
 */
function named<T>(method: string, role: string, field: string, type: DataType, convert: () => T): T {
  try {
    return convert();
  } catch (err) {
    if (err instanceof InvalidValueError) throw locateInvalidValue(err, method, role, field);
    if (err instanceof SyntaxError) {
      const refused = new InvalidValueError("ValueError", `not JSON (${err.message})`, null, typeText(type), 0);
      throw locateInvalidValue(refused, method, role, field);
    }
    throw err;
  }
}

/** The refusal of a missing or null value for a field that is not nullable. */
function notNullable(method: string, role: string, f: Field, given: boolean): InvalidValueError {
  const problem = given
    ? `null given, but it is not nullable (${typeText(f.type)})`
    : `no value given, and it is not nullable (${typeText(f.type)})`;
  return locateInvalidValue(
    new InvalidValueError("TypeError", problem, null, typeText(f.type), 0),
    method,
    role,
    f.name,
  );
}

/** The field of `schema` named `name`, refused when there is none (`role` names it in the message). */
function field(schema: Schema, name: string, role: string): Field {
  const f = schema.fields.find((x) => x.name === name);
  if (f !== undefined) return f;
  const available =
    schema.fields
      .map((x) => x.name)
      .sort()
      .join(", ") || "none";
  throw new UsageError(`Unknown ${role} '${name}'. Available: ${available}`);
}

/**
 * `values` keyed by `schema`'s fields (the method's parameters, or an exchange's input fields, as
 * `role` says): names the schema lacks are refused, and a missing or null value for a field that
 * is not nullable.
 */
function checkedRow(
  method: string,
  role: string,
  schema: Schema,
  values: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  for (const key of Object.keys(values)) field(schema, key, role);
  for (const f of schema.fields) {
    const v = values[f.name];
    if ((v === null || v === undefined) && !f.nullable) throw notNullable(method, role, f, v === null);
  }
  return { ...values };
}

/** `k=v` arguments, each value read by its parameter's declared type (see `valueFromText`). */
export function paramsFromArgs(method: string, args: readonly string[], schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args) {
    const eq = a.indexOf("=");
    if (eq < 0) throw new UsageError(`Expected key=value, got: ${a}`);
    const f = field(schema, a.slice(0, eq), "parameter");
    out[f.name] = named(method, "parameter", f.name, f.type, () => valueFromText(f.type, a.slice(eq + 1)));
  }
  return checkedRow(method, "parameter", schema, out);
}

/** Parameters given as one JSON object (`--json`), each read by its declared type. */
export function paramsFromJson(method: string, text: string, schema: Schema): Record<string, unknown> {
  return jsonRow(method, "parameter", schema, jsonObject(text, "--json is not JSON", "--json takes a JSON object"));
}

/** `text` as a JSON object, refused (`notJson`, `notObject` as the messages) when it is none. */
function jsonObject(text: string, notJson: string, notObject: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = parseJson(text);
  } catch (err) {
    throw new UsageError(`${notJson}: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json) || json instanceof JsonNumber) {
    throw new UsageError(`${notObject}, got: ${text}`);
  }
  return json as Record<string, unknown>;
}

/** A JSON object's values read by `schema`'s types. */
function jsonRow(
  method: string,
  role: string,
  schema: Schema,
  json: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const checked = checkedRow(method, role, schema, json);
  const out: Record<string, unknown> = {};
  for (const f of schema.fields)
    out[f.name] = named(method, role, f.name, f.type, () => valueFromJson(f.type, checked[f.name]));
  return out;
}

/**
 * A one-row batch on `schema` holding `row` (values already read by their types; the codecs check
 * ranges, naming the method, the role and the field).
 */
export function batchOf(
  method: string,
  role: string,
  schema: Schema,
  row: Readonly<Record<string, unknown>>,
): RecordBatch {
  const specs: Record<string, ReturnType<typeof t.fromArrow>> = {};
  for (const f of schema.fields) specs[f.name] = t.fromArrow(f.type, true);
  if (Object.keys(specs).join("\0") !== schema.fields.map((f) => f.name).join("\0")) {
    throw new UsageError("the method's fields cannot be written in their declared order");
  }
  return batchFromRows(specs as FieldSpecs, [row] as never, undefined, schema, { method, role });
}

// ---------------------------------------------------------------------------------------------
// Exchange input

/** True when `bytes` start an Arrow IPC stream (a continuation marker) or file (`ARROW1`). */
function isArrow(bytes: Uint8Array): boolean {
  if (bytes.byteLength >= 4 && bytes[0] === 0xff && bytes[1] === 0xff && bytes[2] === 0xff && bytes[3] === 0xff) {
    return true;
  }
  return bytes.byteLength >= 6 && new TextDecoder().decode(bytes.subarray(0, 6)) === "ARROW1";
}

function arrowBatches(bytes: Uint8Array, source: string): RecordBatch[] {
  try {
    return [...RecordBatchReader.from(bytes)];
  } catch (err) {
    throw new UsageError(`${source} is not a readable Arrow IPC stream: ${(err as Error).message}`);
  }
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

/** Prefixes an error's message with where its input came from (`--input rows.jsonl line 3`). */
function at<T>(where: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof InvalidValueError) {
      err.message = `${where}: ${err.message}`;
      throw err;
    }
    if (err instanceof UsageError) throw new UsageError(`${where}: ${err.message}`);
    throw err;
  }
}

/** JSON lines as one-row batches, read by `declared` (the exchange's input schema) or an inferred one. */
function jsonLineBatches(method: string, text: string, declared: Schema | null, source: string): RecordBatch[] {
  const lines = text
    .split("\n")
    .flatMap((line, i) => (line.trim() === "" ? [] : [{ line, where: `${source} line ${i + 1}` }]));
  const rows = lines.map(({ line, where }) =>
    at(where, () => jsonObject(line, "not JSON", "each input line must be a JSON object")),
  );
  const schema = declared ?? inferSchema(rows);
  return rows.map((row, i) =>
    at(lines[i]!.where, () => batchOf(method, "input field", schema, jsonRow(method, "input field", schema, row))),
  );
}

/**
 * An exchange's input batches from `bytes` (read from `source`, named in errors): Arrow IPC when
 * they start like it, JSON lines otherwise.
 */
export function exchangeInputs(
  method: string,
  bytes: Uint8Array,
  declared: Schema | null,
  source: string,
): RecordBatch[] {
  if (isArrow(bytes)) return arrowBatches(bytes, source);
  return jsonLineBatches(method, new TextDecoder().decode(bytes), declared, source);
}
