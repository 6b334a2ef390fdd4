/**
 * Values on the command line: JSON read and written without losing an integer's digits, and
 * `k=v` text or JSON turned into each declared type's JS value (the mapping of `docs/types.md`)
 * before the type's codec checks it. Nothing is guessed: text that is not a value of the declared
 * type (`a=one` for a float, `n=1.5` for an integer) is refused with an `InvalidValueError`, and
 * a value outside the type's range is refused by the codec as it would be in typed code.
 */
import { DataType, type Field, Int32, IntervalUnit, TimeUnit, Type } from "apache-arrow";
import { parse as parseLossless } from "lossless-json";
import { InvalidValueError, type InvalidValueType, nestInvalidValue } from "../errors.js";
import { showValue } from "../protocol/codecs.js";
import { typeText } from "../protocol/type-tokens.js";

// ---------------------------------------------------------------------------------------------
// JSON with exact numbers

/** A JSON number as written: its text, so that no digit is lost before its type is known. */
export class JsonNumber {
  constructor(readonly text: string) {}
  /** Whether the literal has no fraction and no exponent. */
  get integral(): boolean {
    return /^-?\d+$/.test(this.text);
  }
}

/**
 * Parses JSON as `JSON.parse` does, except that every number is a `JsonNumber` holding its
 * literal (so `99999999999999999999` stays exact) and a `__proto__` key is an ordinary property.
 */
export function parseJson(text: string): unknown {
  return parseLossless(text, undefined, (literal) => new JsonNumber(literal));
}

/**
 * JSON text for a value: bigints and `JsonNumber`s as integer (or number) literals at any
 * magnitude, non-finite numbers as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
 */
export function toJsonText(v: unknown, indent?: number): string {
  const pad = (depth: number) => (indent === undefined ? "" : `\n${" ".repeat(indent * depth)}`);
  const sep = indent === undefined ? ":" : ": ";
  const write = (x: unknown, depth: number): string => {
    if (x === null || x === undefined) return "null";
    if (typeof x === "bigint") return x.toString();
    if (x instanceof JsonNumber) return x.text;
    if (typeof x === "number") return Number.isFinite(x) ? JSON.stringify(x) : JSON.stringify(String(x));
    if (typeof x === "string" || typeof x === "boolean") return JSON.stringify(x);
    if (Array.isArray(x)) {
      if (x.length === 0) return "[]";
      return `[${x.map((item) => pad(depth + 1) + write(item, depth + 1)).join(",")}${pad(depth)}]`;
    }
    if (typeof x === "object") {
      const entries = Object.entries(x as Record<string, unknown>);
      if (entries.length === 0) return "{}";
      const body = entries.map(([k, item]) => `${pad(depth + 1)}${JSON.stringify(k)}${sep}${write(item, depth + 1)}`);
      return `{${body.join(",")}${pad(depth)}}`;
    }
    return JSON.stringify(String(x));
  };
  return write(v, 0);
}

// ---------------------------------------------------------------------------------------------
// Input: text and JSON → JS values

function refuse(type: InvalidValueType, problem: string, value: unknown, dataType: DataType, path: string): never {
  const err = new InvalidValueError(type, problem, value, typeText(dataType), 0);
  throw path === "" ? err : nestInvalidValue(err, path, 0);
}

function shown(v: unknown): string {
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) return "an array";
  if (v !== null && typeof v === "object") return "an object";
  return showValue(v);
}

function expected(what: string, v: unknown, type: DataType, path: string): never {
  return refuse("TypeError", `expected ${what} for ${typeText(type)}, got ${shown(v)}`, v, type, path);
}

const INTEGER = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const FLOAT_WORDS: Readonly<Record<string, number>> = {
  nan: Number.NaN,
  inf: Number.POSITIVE_INFINITY,
  infinity: Number.POSITIVE_INFINITY,
};

/** A number literal as an exact integer, "huge" past MOST_DIGITS, or null when it has a fraction (or is not a number). */
function exactInteger(text: string): bigint | "huge" | null {
  const t = text.trim();
  if (INTEGER.test(t) && t.length <= MOST_DIGITS) return BigInt(t);
  const scaled = scaledDecimal(t, 0);
  return scaled === "fraction" ? null : scaled;
}

/** More digits than this is past every type's range (decimal256 holds 76), and not worth computing. */
const MOST_DIGITS = 400;

/**
 * `text` (a decimal literal, exponent allowed) times 10^scale as an exact bigint; "fraction"
 * when that leaves a fraction, "huge" when it has more than MOST_DIGITS digits (so `1e999999999`
 * costs nothing), null when it is not a literal.
 */
function scaledDecimal(text: string, scale: number): bigint | "fraction" | "huge" | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
  if (m === null || (m[2] === "" && (m[3] ?? "") === "")) return null;
  const [, sign, whole = "", fraction = "", exponent = "0"] = m;
  const significant = `${whole}${fraction}`.replace(/^0+/, "");
  if (significant === "") return 0n;
  const shift = Number(exponent) + scale - fraction.length;
  let digits = BigInt(significant);
  if (shift >= 0) {
    if (significant.length + shift > MOST_DIGITS) return "huge";
    digits *= 10n ** BigInt(shift);
  } else {
    // Dividing by more digits than the literal has cannot come out whole.
    if (-shift > significant.length) return "fraction";
    const unit = 10n ** BigInt(-shift);
    if (digits % unit !== 0n) return "fraction";
    digits /= unit;
  }
  return sign === "-" ? -digits : digits;
}

function integerOf(v: unknown, type: DataType, path: string, text: string | null): bigint {
  const literal = text ?? (v instanceof JsonNumber ? v.text : null);
  if (literal === null) return expected("an integer", v, type, path);
  const exact = exactInteger(literal);
  if (exact === "huge") {
    return refuse("OverflowError", `${literal.trim()} is out of range for ${typeText(type)}`, v, type, path);
  }
  if (exact === null) {
    if (FLOAT.test(literal.trim()) || text === null) {
      return refuse("TypeError", `${literal.trim()} is not an integer, as ${typeText(type)} needs`, v, type, path);
    }
    return expected("an integer", v, type, path);
  }
  return exact;
}

/** An integer for a `number`-valued type: a number when exact, else the bigint (which the codec refuses as out of range). */
function smallInteger(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function floatOf(v: unknown, type: DataType, path: string, text: string | null): number {
  const literal = text ?? (v instanceof JsonNumber ? v.text : typeof v === "string" ? v : null);
  if (literal === null) return expected("a number", v, type, path);
  const t = literal.trim();
  if (FLOAT.test(t)) return Number(t);
  const word = FLOAT_WORDS[t.replace(/^[+-]/, "").toLowerCase()];
  if (word !== undefined) return t.startsWith("-") ? -word : word;
  return expected("a number", literal, type, path);
}

const TRUE = new Set(["true", "1", "yes"]);
const FALSE = new Set(["false", "0", "no"]);

const PER_SECOND: Readonly<Record<number, bigint>> = {
  [TimeUnit.SECOND]: 1n,
  [TimeUnit.MILLISECOND]: 1_000n,
  [TimeUnit.MICROSECOND]: 1_000_000n,
  [TimeUnit.NANOSECOND]: 1_000_000_000n,
};

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const ISO_TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/;

/** Days since the epoch of a `YYYY-MM-DD` date, or null. */
function isoDays(s: string): bigint | null {
  const m = ISO_DATE.exec(s);
  if (m === null) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const back = new Date(ms);
  if (back.getUTCDate() !== Number(m[3]) || back.getUTCMonth() !== Number(m[2]) - 1) return null;
  return BigInt(ms / 86_400_000);
}

/** A timestamp with an explicit zone (`2024-05-01T12:00:00.5Z`) in `unit`, "fraction" when finer than it, or null. */
function isoTimestamp(s: string, unit: TimeUnit): bigint | "fraction" | null {
  const m = ISO_TIMESTAMP.exec(s);
  if (m === null) return null;
  const [, day = "", hh = "0", mm = "0", ss = "0", fraction = "", zone = "Z"] = m;
  const days = isoDays(day);
  if (days === null || Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 59) return null;
  let seconds = days * 86_400n + BigInt(Number(hh) * 3600 + Number(mm) * 60 + Number(ss));
  if (zone !== "Z") {
    const offset = BigInt(Number(zone.slice(1, 3)) * 3600 + Number(zone.slice(4, 6)) * 60);
    seconds -= zone.startsWith("-") ? -offset : offset;
  }
  const per = PER_SECOND[unit]!;
  const nanos = BigInt(fraction.padEnd(9, "0") || "0");
  const step = 1_000_000_000n / per;
  if (nanos % step !== 0n) return "fraction";
  return seconds * per + nanos / step;
}

function temporalOf(v: unknown, type: DataType, path: string, text: string | null): bigint {
  const s = text ?? (typeof v === "string" ? v : null);
  if (s !== null && !INTEGER.test(s.trim())) {
    const t = s.trim();
    if (DataType.isDate(type)) {
      const days = isoDays(t);
      if (days !== null) return type.unit === 0 ? days : days * 86_400_000n;
    }
    if (DataType.isTimestamp(type)) {
      const at = isoTimestamp(t, type.unit);
      if (at === "fraction") {
        return refuse("ValueError", `${JSON.stringify(t)} is finer than ${typeText(type)} can hold`, v, type, path);
      }
      if (at !== null) return at;
    }
    const forms = DataType.isDate(type)
      ? "an integer or a YYYY-MM-DD date"
      : DataType.isTimestamp(type)
        ? "an integer or an ISO 8601 timestamp with a zone"
        : "an integer";
    return expected(forms, v, type, path);
  }
  return integerOf(v, type, path, s);
}

function recordOf(v: unknown, type: DataType, path: string, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
    return expected(what, v, type, path);
  }
  return v as Record<string, unknown>;
}

function fieldsOf(type: DataType): readonly Field[] {
  return type.children as Field[];
}

/**
 * The JS value for a parameter given as `k=v` text: integers, floats, booleans, strings, enums
 * and dates as text, anything else as JSON.
 */
export function valueFromText(type: DataType, text: string): unknown {
  switch (type.typeId) {
    case Type.Int:
    case Type.Float:
    case Type.Bool:
    case Type.Utf8:
    case Type.LargeUtf8:
    case Type.Utf8View:
    case Type.Binary:
    case Type.LargeBinary:
    case Type.BinaryView:
    case Type.FixedSizeBinary:
    case Type.Decimal:
    case Type.Date:
    case Type.Time:
    case Type.Timestamp:
    case Type.Duration:
      return convert(type, text, "", text);
    case Type.Dictionary: {
      const values = (type as DataType & { readonly dictionary: DataType }).dictionary;
      return DataType.isDictionary(values) ? convert(type, parseJson(text), "", null) : valueFromText(values, text);
    }
    case Type.Interval:
      if ((type as DataType & { readonly unit: IntervalUnit }).unit === IntervalUnit.YEAR_MONTH) {
        return convert(type, text, "", text);
      }
      return convert(type, parseJson(text), "", null);
    default:
      return convert(type, parseJson(text), "", null);
  }
}

/** The JS value for a parameter or input value given as JSON (from `parseJson`). */
export function valueFromJson(type: DataType, json: unknown): unknown {
  return convert(type, json, "", null);
}

function convert(type: DataType, v: unknown, path: string, text: string | null): unknown {
  if (v === null || v === undefined) return null;
  switch (type.typeId) {
    case Type.Null:
      return expected("null", v, type, path);
    case Type.Int: {
      const b = integerOf(v, type, path, text);
      return (type as DataType & { readonly bitWidth: number }).bitWidth === 64 ? b : smallInteger(b);
    }
    case Type.Float:
      return floatOf(v, type, path, text);
    case Type.Bool: {
      if (typeof v === "boolean") return v;
      if (text !== null) {
        const t = text.trim().toLowerCase();
        if (TRUE.has(t)) return true;
        if (FALSE.has(t)) return false;
      }
      return expected(text === null ? "true or false" : "true, false, 1, 0, yes or no", v, type, path);
    }
    case Type.Utf8:
    case Type.LargeUtf8:
    case Type.Utf8View:
      return typeof v === "string" ? v : expected("a string", v, type, path);
    case Type.Binary:
    case Type.LargeBinary:
    case Type.BinaryView:
    case Type.FixedSizeBinary:
      // Bytes are given as text and sent as its UTF-8 bytes.
      return typeof v === "string"
        ? new TextEncoder().encode(v)
        : expected("a string (sent as its UTF-8 bytes)", v, type, path);
    case Type.Decimal: {
      const literal = text ?? (v instanceof JsonNumber ? v.text : typeof v === "string" ? v : null);
      const scale = (type as DataType & { readonly scale: number }).scale;
      const scaled = literal === null ? null : scaledDecimal(literal, scale);
      if (scaled === "fraction") {
        return refuse(
          "ValueError",
          `${literal} has more fractional digits than the scale of ${typeText(type)}`,
          v,
          type,
          path,
        );
      }
      if (scaled === "huge") {
        return refuse("OverflowError", `${literal} has more digits than ${typeText(type)} holds`, v, type, path);
      }
      return scaled ?? expected("a decimal number", v, type, path);
    }
    case Type.Date: {
      const days = temporalOf(v, type, path, text);
      return (type as DataType & { readonly unit: number }).unit === 0 ? smallInteger(days) : days;
    }
    case Type.Time: {
      const b = temporalOf(v, type, path, text);
      return (type as DataType & { readonly bitWidth: number }).bitWidth === 32 ? smallInteger(b) : b;
    }
    case Type.Timestamp:
    case Type.Duration:
      return temporalOf(v, type, path, text);
    case Type.Interval: {
      const unit = (type as DataType & { readonly unit: IntervalUnit }).unit;
      if (unit === IntervalUnit.YEAR_MONTH) return smallInteger(integerOf(v, type, path, text));
      if (unit === IntervalUnit.DAY_TIME) {
        const r = recordOf(v, type, path, "{ days, milliseconds }");
        return {
          days: convert(INT32, r.days, `${path}.days`, null),
          milliseconds: convert(INT32, r.milliseconds, `${path}.milliseconds`, null),
        };
      }
      const r = recordOf(v, type, path, "{ months, days, nanoseconds }");
      return {
        months: convert(INT32, r.months, `${path}.months`, null),
        days: convert(INT32, r.days, `${path}.days`, null),
        nanoseconds:
          r.nanoseconds === undefined ? undefined : integerOf(r.nanoseconds, type, `${path}.nanoseconds`, null),
      };
    }
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList: {
      if (!Array.isArray(v)) return expected("a JSON array", v, type, path);
      const item = fieldsOf(type)[0]!.type;
      return v.map((x, i) => convert(item, x, `${path}[${i}]`, null));
    }
    case Type.Struct: {
      const r = recordOf(v, type, path, "a JSON object");
      const fields = fieldsOf(type);
      for (const k of Object.keys(r)) {
        if (!fields.some((f) => f.name === k)) {
          refuse("TypeError", `${JSON.stringify(k)} is not a field of ${typeText(type)}`, v, type, path);
        }
      }
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = convert(f.type, r[f.name], `${path}.${f.name}`, null);
      return out;
    }
    case Type.Map: {
      const [key, value] = fieldsOf(fieldsOf(type)[0]!.type) as [Field, Field];
      const stringKeys = DataType.isUtf8(key.type) || DataType.isLargeUtf8(key.type) || DataType.isUtf8View(key.type);
      // An object's keys are text: converted as `k=v` text would be; [key, value] pairs hold JSON keys.
      const entries: Array<[unknown, unknown]> = Array.isArray(v)
        ? v.map((p): [unknown, unknown] => {
            if (!Array.isArray(p) || p.length !== 2) return expected("[key, value] pairs", p, type, path);
            return [convert(key.type, p[0], `${path} key`, null), p[1]];
          })
        : Object.entries(recordOf(v, type, path, "a JSON object or [key, value] pairs")).map(([k, x]) => [
            stringKeys ? k : convert(key.type, k, `${path} key`, k),
            x,
          ]);
      return new Map(entries.map(([k, x]) => [k, convert(value.type, x, `${path}[${shown(k)}]`, null)]));
    }
    case Type.Union: {
      const r = recordOf(v, type, path, "{ tag, value }");
      const member = fieldsOf(type).find((f) => f.name === r.tag);
      if (member === undefined) return { tag: r.tag, value: r.value };
      return { tag: r.tag, value: convert(member.type, r.value, `${path}<${member.name}>`, null) };
    }
    case Type.Dictionary:
      return convert((type as DataType & { readonly dictionary: DataType }).dictionary, v, path, text);
    default:
      return v;
  }
}

/** An interval's int32 parts (their errors name the interval's path). */
const INT32 = new Int32();

// ---------------------------------------------------------------------------------------------
// Output: JS values → JSON-ready values

/** Bytes as Python shows them under `json.dumps(default=str)`: `b'...'`. */
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

/** An unscaled decimal as its exact decimal text (`12.3400`), as Python's `str(Decimal)` writes it. */
function decimalText(unscaled: bigint, scale: number): string {
  if (scale <= 0) return (unscaled * 10n ** BigInt(-scale)).toString();
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/**
 * A decoded value (from its type's codec) ready for `toJsonText`: integers stay bigints (written
 * whole), decimals become their exact text, maps objects, bytes `b'...'` text.
 */
export function jsonOut(type: DataType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (type.typeId) {
    case Type.Decimal:
      return decimalText(v as bigint, (type as DataType & { readonly scale: number }).scale);
    case Type.Binary:
    case Type.LargeBinary:
    case Type.BinaryView:
    case Type.FixedSizeBinary:
      return bytesText(v as Uint8Array);
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList: {
      const item = fieldsOf(type)[0]!.type;
      return (v as unknown[]).map((x) => jsonOut(item, x));
    }
    case Type.Struct: {
      const out: Record<string, unknown> = {};
      for (const f of fieldsOf(type)) out[f.name] = jsonOut(f.type, (v as Record<string, unknown>)[f.name]);
      return out;
    }
    case Type.Map: {
      const [key, value] = fieldsOf(fieldsOf(type)[0]!.type) as [Field, Field];
      const out: Record<string, unknown> = {};
      for (const [k, x] of v as Map<unknown, unknown>) {
        const shownKey = jsonOut(key.type, k);
        out[typeof shownKey === "string" ? shownKey : toJsonText(shownKey)] = jsonOut(value.type, x);
      }
      return out;
    }
    case Type.Union: {
      const { tag, value } = v as { tag: string; value: unknown };
      const member = fieldsOf(type).find((f) => f.name === tag);
      return { tag, value: member === undefined ? value : jsonOut(member.type, value) };
    }
    case Type.Dictionary:
      return jsonOut((type as DataType & { readonly dictionary: DataType }).dictionary, v);
    default:
      return v;
  }
}
