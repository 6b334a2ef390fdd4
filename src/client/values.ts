/**
 * Schema-driven conversions where no declaration is at hand: decoding any batch to plain rows
 * (dynamic stream outputs, reflection payloads, the CLI), building a parameter or input batch
 * from JSON values by Arrow type (the CLI), and pyarrow-style type names (for `describe`).
 */
import {
  type Data,
  DataType,
  type Field,
  MapRow,
  type RecordBatch,
  type Schema,
  StructRow,
  Type,
  type Vector,
} from "apache-arrow";
import { t } from "../protocol/types.js";
import { batchFromData } from "../wire/batches.js";

function isVector(v: unknown): v is Vector {
  return (
    typeof v === "object" &&
    v !== null &&
    "isValid" in v &&
    "get" in v &&
    "length" in v &&
    "data" in v &&
    typeof (v as Vector).isValid === "function"
  );
}

/** An Arrow value (as arrow-js `get` returns it) as a plain JS value. */
export function plainValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof MapRow) {
    const m = new Map<unknown, unknown>();
    for (const [k, val] of v as Iterable<[unknown, unknown]>) m.set(plainValue(k), plainValue(val));
    return m;
  }
  if (v instanceof StructRow) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v.toJSON() as Record<string, unknown>)) o[k] = plainValue(val);
    return o;
  }
  if (isVector(v)) {
    const out: unknown[] = [];
    for (let i = 0; i < v.length; i++) out.push(v.isValid(i) ? plainValue(v.get(i)) : null);
    return out;
  }
  return v;
}

/** Every row of `batch` as a plain object (column order kept). */
export function plainRows(batch: RecordBatch): Record<string, unknown>[] {
  const cols = batch.schema.fields.map((f, i) => ({ name: f.name, vec: batch.getChildAt(i)! }));
  const rows: Record<string, unknown>[] = [];
  for (let r = 0; r < batch.numRows; r++) {
    const row: Record<string, unknown> = {};
    for (const { name, vec } of cols) row[name] = vec.isValid(r) ? plainValue(vec.get(r)) : null;
    rows.push(row);
  }
  return rows;
}

/** A plain value made JSON-ready: bigints as numbers when safe (else strings), maps as objects, bytes as text. */
export function jsonReady(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  }
  if (v instanceof Uint8Array) return bytesText(v);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(jsonReady(k))] = jsonReady(val);
    return o;
  }
  if (Array.isArray(v)) return v.map(jsonReady);
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (typeof v === "object" && v !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) o[k] = jsonReady(val);
    return o;
  }
  return v;
}

/** Bytes shown as Python shows them under `json.dumps(default=str)`: `b'...'`. */
function bytesText(b: Uint8Array): string {
  let s = "b'";
  for (const c of b) {
    if (c === 0x5c) s += "\\\\";
    else if (c === 0x27) s += "\\'";
    else if (c === 0x0a) s += "\\n";
    else if (c === 0x0d) s += "\\r";
    else if (c === 0x09) s += "\\t";
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return `${s}'`;
}

// ---------------------------------------------------------------------------------------------
// JSON → Arrow (by type)

const INTEGER_TEXT = /^[+-]?\d+$/;
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Converts a JSON value to the JS value of `type` (see docs/types.md) where the conversion is
 * exact; anything else is passed on as it is, for the type's codec to refuse.
 */
export function coerceJson(type: DataType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (type.typeId) {
    case Type.Int:
    case Type.Int64:
    case Type.Uint64: {
      const bits = (type as DataType & { bitWidth?: number }).bitWidth ?? 64;
      if (typeof v === "string" && INTEGER_TEXT.test(v.trim())) v = BigInt(v.trim());
      if (bits === 64) return typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : v;
      return typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v)
        : v;
    }
    case Type.Float:
    case Type.Float64:
    case Type.Float32:
    case Type.Float16:
      return typeof v === "string" && NUMBER_TEXT.test(v.trim()) ? Number(v) : v;
    case Type.Bool:
      return v;
    case Type.Utf8:
    case Type.LargeUtf8:
    case Type.Dictionary:
      return typeof v === "string" ? v : JSON.stringify(v);
    case Type.Binary:
    case Type.LargeBinary:
    case Type.FixedSizeBinary:
      return v instanceof Uint8Array ? v : new TextEncoder().encode(String(v));
    case Type.List:
    case Type.FixedSizeList: {
      const child = type.children?.[0] as Field | undefined;
      const arr = typeof v === "string" ? (JSON.parse(v) as unknown) : v;
      if (!Array.isArray(arr)) throw new TypeError(`expected a JSON array for ${typeName(type)}`);
      return child ? arr.map((x) => coerceJson(child.type, x)) : arr;
    }
    case Type.Struct: {
      const obj = (typeof v === "string" ? JSON.parse(v) : v) as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of type.children as Field[]) out[f.name] = coerceJson(f.type, obj[f.name]);
      return out;
    }
    case Type.Map: {
      const entries = (type.children[0] as Field).type.children as Field[];
      const obj = (typeof v === "string" ? JSON.parse(v) : v) as unknown;
      const pairs: [unknown, unknown][] =
        obj instanceof Map ? [...obj] : Object.entries((obj ?? {}) as Record<string, unknown>);
      return new Map(pairs.map(([k, val]) => [coerceJson(entries[0]!.type, k), coerceJson(entries[1]!.type, val)]));
    }
    case Type.Timestamp:
    case Type.Date:
    case Type.Time:
    case Type.Duration: {
      // Integers in the type's unit; 32-bit ones (date32, time32) as numbers.
      const narrow = DataType.isDate(type) ? type.unit === 0 : DataType.isTime(type) && type.bitWidth === 32;
      const b = typeof v === "string" && INTEGER_TEXT.test(v.trim()) ? BigInt(v.trim()) : v;
      if (narrow) return typeof b === "bigint" ? Number(b) : b;
      return typeof b === "number" && Number.isSafeInteger(b) ? BigInt(b) : b;
    }
    default:
      return v;
  }
}

/**
 * Builds one column from JSON values through the type's codec, which refuses a value outside the
 * type (an `InvalidValueError`) instead of wrapping or rounding it.
 */
export function columnFromJson(type: DataType, values: readonly unknown[]): Data {
  return t.fromArrow(type, true).codec.build(values.map((v) => coerceJson(type, v)));
}

/** Builds a batch on `schema` from JSON rows (missing keys are null). */
export function batchFromJsonRows(schema: Schema, rows: readonly Readonly<Record<string, unknown>>[]): RecordBatch {
  const children = schema.fields.map((f) =>
    columnFromJson(
      f.type,
      rows.map((r) => r[f.name]),
    ),
  );
  return batchFromData(schema, children, schema.fields.length === 0 ? 0 : rows.length);
}

// ---------------------------------------------------------------------------------------------
// pyarrow-style type names

/** The type as pyarrow prints it (`int64`, `string`, `list<item: double>`, ...). */
export function typeName(type: DataType): string {
  const t = type as DataType & {
    bitWidth?: number;
    isSigned?: boolean;
    precision?: number;
    scale?: number;
    unit?: number;
    timezone?: string | null;
    byteWidth?: number;
    dictionary?: DataType;
    indices?: DataType;
    isOrdered?: boolean;
  };
  const units = ["s", "ms", "us", "ns"];
  switch (type.typeId) {
    case Type.Null:
      return "null";
    case Type.Bool:
      return "bool";
    case Type.Int:
      return `${t.isSigned ? "int" : "uint"}${t.bitWidth}`;
    case Type.Float: {
      const p = (type as DataType & { precision: number }).precision;
      return p === 0 ? "halffloat" : p === 1 ? "float" : "double";
    }
    case Type.Utf8:
      return "string";
    case Type.LargeUtf8:
      return "large_string";
    case Type.Binary:
      return "binary";
    case Type.LargeBinary:
      return "large_binary";
    case Type.FixedSizeBinary:
      return `fixed_size_binary[${t.byteWidth}]`;
    case Type.Date:
      return t.unit === 0 ? "date32[day]" : "date64[ms]";
    case Type.Timestamp:
      return `timestamp[${units[t.unit ?? 0]}${t.timezone ? `, tz=${t.timezone}` : ""}]`;
    case Type.Time:
      return `time${t.bitWidth}[${units[t.unit ?? 0]}]`;
    case Type.Duration:
      return `duration[${units[t.unit ?? 0]}]`;
    case Type.Decimal:
      return `decimal${t.bitWidth}(${t.precision}, ${t.scale})`;
    case Type.List:
      return `list<${fieldText(type.children[0] as Field)}>`;
    case Type.Struct:
      return `struct<${(type.children as Field[]).map(fieldText).join(", ")}>`;
    case Type.Map: {
      const [k, v] = (type.children[0] as Field).type.children as Field[];
      return `map<${typeName(k!.type)}, ${typeName(v!.type)}${v!.nullable ? "" : " not null"}>`;
    }
    case Type.Dictionary:
      return `dictionary<values=${typeName(t.dictionary!)}, indices=${typeName(t.indices!)}, ordered=${t.isOrdered ? 1 : 0}>`;
    default:
      return String(type);
  }
}

function fieldText(f: Field): string {
  return `${f.name}: ${typeName(f.type)}${f.nullable ? "" : " not null"}`;
}

/** A schema as pyarrow's `str(schema)` prints it: one `name: type` line per field. */
export function schemaText(schema: Schema): string {
  return schema.fields.map(fieldText).join("\n");
}
