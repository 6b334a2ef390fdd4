/**
 * Codecs between Arrow `Data` and JS values, one per Arrow type. Every `build` checks each value
 * against its type's domain in the loop that writes it (no pass of its own, no allocation per
 * value), and refuses what the type cannot hold exactly with an {@link InvalidValueError}: an
 * integer out of range, a non-integer or a `number` past 2^53 for an integer type, a finite float
 * that would round to infinity, a string with a lone surrogate, the wrong JS type. Containers
 * prefix the error's path (`[2]`, `.x`, `["key"]`) with where their child's value sat, so the
 * caller that names the method and the field (see `batch.ts`) can say exactly which value it was.
 *
 * `get` reads the value at `index` as arrow-js indexes it (a slice's buffers start at its first
 * value) and is never called for nulls.
 */
import {
  Data,
  type DataType,
  type Dictionary,
  type FixedSizeList,
  type Map_,
  makeBuilder,
  makeData,
  type Null,
  Precision,
  type Struct,
  Type,
  type Union,
  UnionMode,
  Vector,
} from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { InvalidValueError, type InvalidValueType, nestInvalidValue } from "../errors.js";
import { smallArray, smallBytes } from "../wire/slab.js";
import { typeText } from "./type-tokens.js";

/** Converts between Arrow `Data` and JS values for one type. */
export interface Codec {
  /**
   * Reads the value at `index` as arrow-js indexes it: a slice's buffers start at its first value,
   * so `index` counts from there. Never called for nulls.
   */
  readonly get: (data: Data, index: number) => unknown;
  /**
   * Builds Arrow data from JS values (`null`/`undefined` become nulls), refusing a value outside
   * the type's domain with an `InvalidValueError` whose `row` is its index in `values`.
   */
  readonly build: (values: readonly unknown[]) => Data;
}

/** What a container needs to know of a child: how to build and read it, and whether it may be null. */
export interface ChildSpec {
  readonly codec: Codec;
  readonly nullable: boolean;
}

const EMPTY_BYTES = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Refusals (only ever reached for a value that is refused: none of this runs on the fast path)

/** A value as the error message shows it (bigints as Python prints ints, strings quoted and cut short). */
export function showValue(v: unknown): string {
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "number":
      return Object.is(v, -0) ? "-0" : String(v);
    case "string":
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    case "boolean":
      return String(v);
    case "undefined":
      return "undefined";
    case "symbol":
      return v.toString();
    case "function":
      return "a function";
    default:
      return v === null ? "null" : article(v as object);
  }
}

function article(v: object): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `a ${v.constructor.name} of ${v.byteLength} bytes`;
  if (v instanceof Map) return `a Map of ${v.size}`;
  if (v instanceof Date) return "a Date";
  const name = v.constructor?.name;
  return name && name !== "Object" ? `a ${name}` : "an object";
}

/** `the string "one"`, `the bigint 5`, `an array of 3`: what a value of the wrong JS type was. */
function gotValue(v: unknown): string {
  switch (typeof v) {
    case "string":
    case "bigint":
    case "number":
    case "boolean":
      return `the ${typeof v} ${showValue(v)}`;
    default:
      return showValue(v);
  }
}

function refuse(type: InvalidValueType, problem: string, value: unknown, dataType: DataType, row: number): never {
  throw new InvalidValueError(type, problem, value, typeText(dataType), row);
}

/** A null (or undefined) where `type` holds none, at `segment` inside the value at `row`. */
function refuseNull(v: unknown, type: DataType, row: number, segment: string, whose: string): never {
  const err = new InvalidValueError(
    "TypeError",
    `${showValue(v)}, but ${whose} of ${typeText(type)} ${whose.startsWith("the") ? "are" : "is"} not nullable`,
    v,
    typeText(type),
    row,
  );
  throw nestInvalidValue(err, segment, row);
}

function wrongType(expected: string, v: unknown, type: DataType, row: number): never {
  refuse("TypeError", `expected ${expected} for ${typeText(type)}, got ${gotValue(v)}`, v, type, row);
}

function outOfRange(v: unknown, type: DataType, row: number, min: number | bigint, max: number | bigint): never {
  refuse("OverflowError", `${showValue(v)} is out of range for ${typeText(type)} (${min} to ${max})`, v, type, row);
}

/** Why a value that failed an integer column's fast check was refused. */
function refuseInteger(v: unknown, type: DataType, row: number, min: number | bigint, max: number | bigint): never {
  if (typeof v === "bigint") {
    if (v < BigInt(min) || v > BigInt(max)) outOfRange(v, type, row, min, max);
    wrongType("a number", v, type, row);
  }
  if (typeof v !== "number") wrongType(typeof min === "bigint" ? "a bigint" : "a number", v, type, row);
  if (Number.isNaN(v)) refuse("TypeError", `NaN is not an integer, as ${typeText(type)} needs`, v, type, row);
  // Compared exactly: Number(2n ** 64n - 1n) rounds up to 2 ** 64, which would then seem in range.
  const outside = Number.isInteger(v)
    ? BigInt(v) < BigInt(min) || BigInt(v) > BigInt(max)
    : v < Number(min) || v > Number(max);
  if (v === Number.POSITIVE_INFINITY || v === Number.NEGATIVE_INFINITY || outside) {
    if (!Number.isInteger(v) && Number.isFinite(v)) {
      refuse("TypeError", `${showValue(v)} is not an integer, as ${typeText(type)} needs`, v, type, row);
    }
    outOfRange(v, type, row, min, max);
  }
  if (!Number.isInteger(v)) {
    refuse("TypeError", `${showValue(v)} is not an integer, as ${typeText(type)} needs`, v, type, row);
  }
  // An integer in range that still failed: a number past 2^53 for a 64-bit type.
  refuse(
    "TypeError",
    `${showValue(v)} is a number beyond 2^53, which cannot be exact: pass a bigint for ${typeText(type)}`,
    v,
    type,
    row,
  );
}

/**
 * Builds a child's data, re-pointing an error in it at the container: `locate` maps the child's
 * index to the container's row and the path segment inside it.
 */
function buildChild(
  child: ChildSpec,
  values: readonly unknown[],
  locate: (index: number) => readonly [row: number, segment: string],
): Data {
  try {
    return child.codec.build(values);
  } catch (err) {
    if (err instanceof InvalidValueError) {
      const [row, segment] = locate(err.row);
      throw nestInvalidValue(err, segment, row);
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Validity

/**
 * A validity bitmap started at the first null: while no value is null a column needs none, so the
 * common case allocates nothing and makes no pass of its own. Rows before `upTo` were all valid.
 */
function startBitmap(n: number, upTo: number): Uint8Array {
  const bitmap = new Uint8Array(((n + 63) >> 6) << 3);
  const whole = upTo >> 3;
  bitmap.fill(0xff, 0, whole);
  for (let i = whole << 3; i < upTo; i++) bitmap[i >> 3]! |= 1 << (i & 7);
  return bitmap;
}

const isNull = (v: unknown): boolean => v === null || v === undefined;

// ---------------------------------------------------------------------------------------------
// Fixed-width numbers

interface TypedArrayOf<T> {
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** The typed arrays of integers up to 32 bits. */
type SmallIntArray =
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor
  | Uint32ArrayConstructor;

/** int8..int32, uint8..uint32, date32, time32, interval_months: `number`, an integer in [lo, hi]. */
export function smallIntCodec(
  type: DataType,
  Values: SmallIntArray,
  min: number,
  max: number,
  domain?: { readonly lo: number; readonly hi: number; readonly what: string },
): Codec {
  const lo = domain?.lo ?? min;
  const hi = domain?.hi ?? max;
  const id = type.typeId;
  const bytes = Values.BYTES_PER_ELEMENT;
  return {
    // The stored integer itself (arrow-js's getter turns date32 into milliseconds, month
    // intervals into [years, months]); a column of another type is read as arrow-js reads it.
    get: (data, index) =>
      data.type.typeId === id && (data.values as Int32Array).BYTES_PER_ELEMENT === bytes
        ? (data.values as Int32Array)[index]
        : getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const out = smallArray(Values as Int32ArrayConstructor, n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (typeof v !== "number" || !(v >= lo && v <= hi) || Math.trunc(v) !== v) {
          if (domain !== undefined && typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) {
            refuse("ValueError", `${showValue(v)} is not ${domain.what} (${lo} to ${hi})`, v, type, i);
          }
          refuseInteger(v, type, i, min, max);
        }
        out[i] = v;
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** The extra rules of an int64-backed type: a narrower domain and a step (date64's whole days). */
export interface BigIntDomain {
  readonly lo?: bigint;
  readonly hi?: bigint;
  readonly step?: bigint;
  /** `a time of day`, `a whole number of days in milliseconds`. */
  readonly what: string;
}

/**
 * int64, uint64 and the int64-backed temporal types (date64, time64, timestamp, duration):
 * a `bigint` in range, or a `number` that is a safe integer (|v| < 2^53, so it is exact).
 */
export function bigIntCodec(type: DataType, unsigned: boolean, domain?: BigIntDomain): Codec {
  const min = unsigned ? 0n : I64_MIN;
  const max = unsigned ? U64_MAX : I64_MAX;
  const lo = domain?.lo ?? min;
  const hi = domain?.hi ?? max;
  const step = domain?.step;
  const Values = unsigned ? BigUint64Array : BigInt64Array;
  const refuseValue: (v: unknown, i: number) => never = (v, i) => {
    const b = typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : null;
    if (b !== null && b >= min && b <= max && domain !== undefined) {
      const range = step === undefined ? ` (${lo} to ${hi})` : "";
      refuse("ValueError", `${showValue(v)} is not ${domain.what}${range}`, v, type, i);
    }
    refuseInteger(v, type, i, min, max);
  };
  return {
    get: int64Getter(type),
    build: (values) => {
      const n = values.length;
      const out = smallArray(Values as BigInt64ArrayConstructor, n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        let b: bigint;
        if (typeof v === "bigint") b = v;
        else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
        else refuseValue(v, i);
        if (b < lo || b > hi || (step !== undefined && b % step !== 0n)) refuseValue(v, i);
        out[i] = b;
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/**
 * Reads an int64-backed value as a bigint, straight from its values array. A column of another
 * type than the one declared (a peer may send one) is read as arrow-js reads it.
 */
function int64Getter(type: DataType): Codec["get"] {
  const id = type.typeId;
  return (data, index) =>
    data.type.typeId === id && (data.values as BigInt64Array).BYTES_PER_ELEMENT === 8
      ? (data.values as BigInt64Array)[index]
      : getVisitor.visit(data, index);
}

/** float64: any `number` (NaN and the infinities included). */
export function float64Codec(type: DataType): Codec {
  return {
    get: (data, index) =>
      data.type.typeId === Type.Float && (data.type as DataType & { precision: Precision }).precision !== Precision.HALF
        ? (data.values as Float64Array)[index]
        : getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const out = smallArray(Float64Array, n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (typeof v !== "number") wrongType("a number", v, type, i);
        out[i] = v;
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** float32 and float16: a `number`; a finite one that would round to an infinity is refused. */
export function narrowFloatCodec(type: DataType, half: boolean): Codec {
  const max = half ? 65504 : 3.4028234663852886e38;
  return {
    get: (data, index) => getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const out = half ? smallArray(Uint16Array, n) : smallArray(Float32Array, n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (typeof v !== "number") wrongType("a number", v, type, i);
        if (half) {
          const bits = float16Bits(v);
          if (bits === OVERFLOW) outOfRange(v, type, i, -max, max);
          out[i] = bits;
        } else {
          const f = Math.fround(v);
          if ((f === Number.POSITIVE_INFINITY || f === Number.NEGATIVE_INFINITY) && f !== v) {
            outOfRange(v, type, i, -max, max);
          }
          out[i] = f;
        }
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** `float16Bits` for a finite value too large for float16. */
const OVERFLOW = -1;

/** Rounds half to even. */
function roundEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  return r > 0.5 || (r === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/**
 * A float16's bits for `d`, rounded to nearest even (arrow-js's converter truncates), or -1 for a
 * finite value past float16's range.
 */
export function float16Bits(d: number): number {
  if (Number.isNaN(d)) return 0x7e00;
  const sign = d < 0 || Object.is(d, -0) ? 0x8000 : 0;
  const a = Math.abs(d);
  if (a === Number.POSITIVE_INFINITY) return sign | 0x7c00;
  if (a >= 65520) return OVERFLOW; // rounds past 65504, the largest float16
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24); // subnormal (1024 is the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let m = roundEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | m;
}

/** bool: a `boolean`. */
export function boolCodec(type: DataType): Codec {
  return {
    get: (data, index) => getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const out = smallBytes((n + 7) >> 3);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (v === true) out[i >> 3]! |= 1 << (i & 7);
        else if (v !== false) wrongType("a boolean", v, type, i);
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** decimal128/256: a `bigint`, the unscaled value (value × 10^scale), of at most `precision` digits. */
export function decimalCodec(type: DataType & { readonly bitWidth: number; readonly precision: number }): Codec {
  const words = type.bitWidth / 32;
  const bound = 10n ** BigInt(type.precision);
  return {
    get: (data, index) => {
      const base = index * words;
      const w = data.values as Uint32Array;
      let v = 0n;
      for (let k = words - 1; k >= 0; k--) v = (v << 32n) | BigInt(w[base + k]!);
      return BigInt.asIntN(type.bitWidth, v);
    },
    build: (values) => {
      const n = values.length;
      const out = new Uint32Array(n * words);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const raw = values[i];
        if (raw === null || raw === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (typeof raw !== "bigint") wrongType("a bigint (the unscaled value, value × 10^scale)", raw, type, i);
        if (raw >= bound || raw <= -bound) {
          refuse(
            "OverflowError",
            `${showValue(raw)} has more than the ${type.precision} digits of ${typeText(type)}`,
            raw,
            type,
            i,
          );
        }
        let v = BigInt.asUintN(type.bitWidth, raw);
        for (let k = 0; k < words; k++) {
          out[i * words + k] = Number(v & 0xffffffffn);
          v >>= 32n;
        }
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** Checks an int32 field of a record value (an interval's months, days, milliseconds). */
function int32Part(v: unknown, whole: unknown, part: string, type: DataType, row: number): number {
  if (typeof v === "number" && v >= -2147483648 && v <= 2147483647 && Math.trunc(v) === v) return v;
  try {
    refuseInteger(v, type, row, -2147483648, 2147483647);
  } catch (err) {
    if (err instanceof InvalidValueError) {
      refuse(err.type as InvalidValueType, `${part}: ${err.problem}`, whole, type, row);
    }
    throw err;
  }
}

function record(v: unknown, type: DataType, row: number, expected: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) wrongType(expected, v, type, row);
  return v as Record<string, unknown>;
}

/** interval_day_time: `{ days, milliseconds }`, two int32 numbers. */
export function dayTimeCodec(type: DataType): Codec {
  return {
    get: (data, index) => {
      const v = data.values as Int32Array;
      return { days: v[2 * index], milliseconds: v[2 * index + 1] };
    },
    build: (values) => {
      const n = values.length;
      const out = smallArray(Int32Array, 2 * n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        const r = record(v, type, i, "{ days, milliseconds }");
        out[2 * i] = int32Part(r.days, v, "days", type, i);
        out[2 * i + 1] = int32Part(r.milliseconds, v, "milliseconds", type, i);
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** interval_month_day_nano: `{ months, days, nanoseconds }`: two int32 numbers and an int64 bigint. */
export function monthDayNanoCodec(type: DataType): Codec {
  const nanos = bigIntCodec(type, false);
  return {
    get: (data, index) => {
      const v = data.values as Int32Array;
      const lo = BigInt(v[4 * index + 2]! >>> 0);
      const hi = BigInt(v[4 * index + 3]!);
      return { months: v[4 * index], days: v[4 * index + 1], nanoseconds: (hi << 32n) | lo };
    },
    build: (values) => {
      const n = values.length;
      const out = smallArray(Int32Array, 4 * n);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      const ns: unknown[] = new Array(1);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        const r = record(v, type, i, "{ months, days, nanoseconds }");
        out[4 * i] = int32Part(r.months, v, "months", type, i);
        out[4 * i + 1] = int32Part(r.days, v, "days", type, i);
        ns[0] = r.nanoseconds ?? Number.NaN;
        let nano: bigint;
        try {
          nano = (nanos.build(ns).values as BigInt64Array)[0]!;
        } catch (err) {
          if (err instanceof InvalidValueError) {
            refuse(err.type as InvalidValueType, `nanoseconds: ${err.problem}`, v, type, i);
          }
          throw err;
        }
        out[4 * i + 2] = Number(BigInt.asIntN(32, nano));
        out[4 * i + 3] = Number(nano >> 32n);
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** null: every value `null`. */
export function nullCodec(type: Null): Codec {
  return {
    get: () => null,
    build: (values) => {
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) wrongType("null", v, type, i);
      }
      return makeData({ type, length: values.length });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Strings and bytes

const utf8Encoder = new TextEncoder();

/** Keeps a leading U+FEFF: it is part of the value (arrow-js's getter drops it). */
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Strings shorter than this are checked for ASCII and copied by hand (TextEncoder costs more). */
const SHORT_STRING = 64;

/**
 * A utf8 or large_utf8 value (null past the offsets), short ASCII values built char by char:
 * TextDecoder costs more than the rest of reading a one-row batch's string. Unlike arrow-js's
 * getter, a value starting with U+FEFF keeps it, as the reference's (and every Arrow reader's) does.
 */
function getUtf8(data: Data, index: number): unknown {
  const id = data.type.typeId;
  if (id !== Type.Utf8 && id !== Type.LargeUtf8) return getVisitor.visit(data, index);
  const offsets = data.valueOffsets as Int32Array | BigInt64Array;
  if (index + 1 >= offsets.length) return null;
  const from = Number(offsets[index]!);
  const to = Number(offsets[index + 1]!);
  const values = data.values as Uint8Array;
  if (to - from < SHORT_STRING) {
    let s = "";
    for (let i = from; i < to; i++) {
      const c = values[i]!;
      if (c > 0x7f) return utf8Decoder.decode(values.subarray(from, to));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8Decoder.decode(values.subarray(from, to));
}

/** The lone-surrogate check (`String.prototype.isWellFormed`, Node 20+; the lib types lack it). */
const wellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * `s` when it is short and all ASCII (its UTF-8 bytes are its char codes), else its UTF-8 bytes;
 * null for a string with a lone surrogate, which UTF-8 cannot carry (TextEncoder would write
 * U+FFFD in its place).
 */
function utf8Part(s: string): string | Uint8Array | null {
  if (s.length < SHORT_STRING) {
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return s;
  }
  return wellFormed(s) ? utf8Encoder.encode(s) : null;
}

function refuseSurrogate(s: string, type: DataType, row: number): never {
  refuse("ValueError", `${showValue(s)} has a lone surrogate, which UTF-8 cannot encode`, s, type, row);
}

/**
 * Variable-width binary and string columns, written straight into one values buffer and one
 * offsets buffer (the arrow-js builder is ~20x slower for strings and doubles its buffers, which
 * cannot reach multi-GiB values), and assembled into `Data` directly, as makeData would for these
 * buffers. A single binary value is used as is, without a copy; short ASCII strings are copied
 * char by char.
 */
export function varBinaryCodec(type: DataType, large: boolean, strings: boolean): Codec {
  return {
    get: strings ? getUtf8 : (data, index) => getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const parts: Array<string | Uint8Array> = new Array(n);
      let total = 0;
      let nullCount = 0;
      let bitmap: Uint8Array | null = null;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        let part: string | Uint8Array;
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nullCount++;
          part = EMPTY_BYTES;
        } else {
          if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
          if (strings) {
            if (typeof v !== "string") wrongType("a string", v, type, i);
            const p = utf8Part(v);
            if (p === null) refuseSurrogate(v, type, i);
            part = p;
          } else if (v instanceof Uint8Array) part = v;
          else wrongType("a Uint8Array", v, type, i);
        }
        parts[i] = part;
        total += typeof part === "string" ? part.length : part.byteLength;
      }
      if (!large && total > 0x7fffffff) {
        refuse(
          "OverflowError",
          `${total} bytes exceed the 2 GiB offset range of ${typeText(type)}; use the large_ variant`,
          values,
          type,
          0,
        );
      }
      const only = n === 1 ? parts[0]! : null;
      // A lone binary value is used as is, as a plain Uint8Array view (a Node Buffer's slice() differs).
      const lone = only instanceof Uint8Array;
      const data = lone ? new Uint8Array(only.buffer, only.byteOffset, only.byteLength) : smallBytes(total);
      const offsets = large ? smallArray(BigInt64Array, n + 1) : smallArray(Int32Array, n + 1);
      let at = 0;
      for (let i = 0; i < n; i++) {
        const p = parts[i]!;
        if (typeof p === "string") {
          for (let k = 0; k < p.length; k++) data[at + k] = p.charCodeAt(k);
          at += p.length;
        } else {
          if (!lone) data.set(p, at);
          at += p.byteLength;
        }
        if (large) (offsets as BigInt64Array)[i + 1] = BigInt(at);
        else (offsets as Int32Array)[i + 1] = at;
      }
      return new Data(type, 0, n, nullCount, [offsets, data, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** fixed_size_binary(w): a `Uint8Array` of exactly w bytes. */
export function fixedBinaryCodec(type: DataType & { readonly byteWidth: number }): Codec {
  const width = type.byteWidth;
  return {
    get: (data, index) => getVisitor.visit(data, index),
    build: (values) => {
      const n = values.length;
      const out = smallBytes(n * width);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (!(v instanceof Uint8Array)) wrongType("a Uint8Array", v, type, i);
        if (v.byteLength !== width) {
          refuse("ValueError", `${showValue(v)} is not ${width} bytes long, as ${typeText(type)} needs`, v, type, i);
        }
        out.set(v, i * width);
      }
      return new Data(type, 0, n, nulls, [undefined, out, bitmap ?? EMPTY_BYTES]);
    },
  };
}

/** utf8_view and binary_view: checked here, laid out by arrow-js's view builders. */
export function viewCodec(type: DataType, strings: boolean): Codec {
  return {
    get: (data, index) => getVisitor.visit(data, index),
    build: (values) => {
      const builder = makeBuilder({ type, nullValues: [null, undefined] });
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v !== null && v !== undefined) {
          if (strings) {
            if (typeof v !== "string") wrongType("a string", v, type, i);
            if (!wellFormed(v)) refuseSurrogate(v, type, i);
          } else if (!(v instanceof Uint8Array)) wrongType("a Uint8Array", v, type, i);
        }
        builder.append(v);
      }
      return builder.finish().flush();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Containers

function isValid(data: Data, index: number): boolean {
  return data.getValid(index);
}

/** The row of a list whose items [offsets[row], offsets[row + 1]) hold flat index `j`. */
function listRowOf(offsets: Int32Array | BigInt64Array, j: number): readonly [number, string] {
  let lo = 0;
  let hi = offsets.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (Number(offsets[mid]!) <= j) lo = mid;
    else hi = mid - 1;
  }
  return [lo, `[${j - Number(offsets[lo]!)}]`];
}

/** list<T> and large_list<T>: an array. */
export function listCodec(type: DataType, item: ChildSpec, large: boolean): Codec {
  return {
    get: (data, index) => {
      const offsets = data.valueOffsets as Int32Array | BigInt64Array;
      const childData = data.children[0]!;
      const start = Number(offsets[index]!);
      const end = Number(offsets[index + 1]!);
      const out: unknown[] = [];
      for (let j = start; j < end; j++) {
        out.push(isValid(childData, j) ? item.codec.get(childData, j) : null);
      }
      return out;
    },
    build: (values) => {
      const n = values.length;
      const offsets = large ? new BigInt64Array(n + 1) : new Int32Array(n + 1);
      const flat: unknown[] = [];
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
        } else {
          if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
          if (!Array.isArray(v)) wrongType("an array", v, type, i);
          for (let k = 0; k < v.length; k++) {
            const x: unknown = v[k];
            if (!item.nullable && isNull(x))
              refuse("TypeError", `[${k}] is null, but the items of ${typeText(type)} are not nullable`, x, type, i);
            flat.push(x);
          }
          if (!large && flat.length > 0x7fffffff) {
            refuse(
              "OverflowError",
              `more than 2^31 - 1 items in all exceed ${typeText(type)}; use large_list`,
              v,
              type,
              i,
            );
          }
        }
        if (large) (offsets as BigInt64Array)[i + 1] = BigInt(flat.length);
        else (offsets as Int32Array)[i + 1] = flat.length;
      }
      const child = buildChild(item, flat, (j) => listRowOf(offsets, j));
      return makeData({
        type,
        length: n,
        nullCount: nulls,
        nullBitmap: bitmap ?? EMPTY_BYTES,
        valueOffsets: offsets,
        child,
      } as never) as Data;
    },
  };
}

/** fixed_size_list<T>[n]: an array of exactly n items. */
export function fixedSizeListCodec(type: FixedSizeList, item: ChildSpec): Codec {
  const size = type.listSize;
  return {
    get: (data, index) => {
      const childData = data.children[0]!;
      const out: unknown[] = new Array(size);
      for (let k = 0; k < size; k++) {
        const j = index * size + k;
        out[k] = isValid(childData, j) ? item.codec.get(childData, j) : null;
      }
      return out;
    },
    build: (values) => {
      const n = values.length;
      const flat: unknown[] = new Array(n * size).fill(null);
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (!Array.isArray(v)) wrongType("an array", v, type, i);
        if (v.length !== size) {
          refuse("ValueError", `${showValue(v)} has ${v.length} items, ${typeText(type)} holds ${size}`, v, type, i);
        }
        for (let k = 0; k < size; k++) {
          const x: unknown = v[k];
          if (!item.nullable && isNull(x))
            refuse("TypeError", `[${k}] is null, but the items of ${typeText(type)} are not nullable`, x, type, i);
          flat[i * size + k] = x;
        }
      }
      const child = buildChild(item, flat, (j) => [Math.floor(j / size), `[${j % size}]`]);
      return makeData({ type, length: n, nullCount: nulls, nullBitmap: bitmap ?? EMPTY_BYTES, child });
    },
  };
}

/** A property name as a path segment: `.x`, or `["odd name"]`. */
function propertySegment(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/** struct<...>: a plain object with one property per field (in the type's field order). */
export function structCodec(type: Struct, names: readonly string[], fields: readonly ChildSpec[]): Codec {
  return {
    get: (data, index) => {
      const out: Record<string, unknown> = {};
      for (let k = 0; k < names.length; k++) {
        const childData = data.children[k]!;
        out[names[k]!] = isValid(childData, index) ? fields[k]!.codec.get(childData, index) : null;
      }
      return out;
    },
    build: (values) => {
      const n = values.length;
      const columns: unknown[][] = names.map(() => new Array(n));
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          for (const column of columns) column[i] = null;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (typeof v !== "object" || Array.isArray(v) || v instanceof Map || v instanceof Uint8Array) {
          wrongType("an object", v, type, i);
        }
        for (let k = 0; k < names.length; k++) {
          const x = (v as Record<string, unknown>)[names[k]!];
          if (!fields[k]!.nullable && isNull(x)) refuseNull(x, type, i, propertySegment(names[k]!), "that field");
          columns[k]![i] = x;
        }
      }
      const children = names.map((name, k) => buildChild(fields[k]!, columns[k]!, (j) => [j, propertySegment(name)]));
      return makeData({ type, length: n, nullCount: nulls, nullBitmap: bitmap ?? EMPTY_BYTES, children });
    },
  };
}

/** map<K, V>: a `Map` (entry order kept), or a plain object when the keys are strings. */
export function mapCodec(type: Map_, key: ChildSpec, value: ChildSpec, stringKeys: boolean): Codec {
  return {
    get: (data, index) => {
      const offsets = data.valueOffsets as Int32Array;
      const entries = data.children[0]!;
      const keys = entries.children[0]!;
      const vals = entries.children[1]!;
      const out = new Map<unknown, unknown>();
      for (let j = offsets[index]!; j < offsets[index + 1]!; j++) {
        out.set(key.codec.get(keys, j), isValid(vals, j) ? value.codec.get(vals, j) : null);
      }
      return out;
    },
    build: (values) => {
      const n = values.length;
      const offsets = new Int32Array(n + 1);
      const ks: unknown[] = [];
      const vs: unknown[] = [];
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const m = values[i];
        if (m === null || m === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
        } else {
          if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
          let entries: Iterable<[unknown, unknown]>;
          if (m instanceof Map) entries = m.entries();
          else if (stringKeys && typeof m === "object" && !Array.isArray(m) && !(m instanceof Uint8Array)) {
            entries = Object.entries(m);
          } else wrongType(stringKeys ? "a Map or an object" : "a Map", m, type, i);
          for (const [k, v] of entries) {
            if (isNull(k)) refuse("TypeError", `a key is ${showValue(k)}, but map keys cannot be null`, m, type, i);
            if (!value.nullable && isNull(v)) refuseNull(v, type, i, `[${showValue(k)}]`, "the values");
            ks.push(k);
            vs.push(v);
          }
        }
        offsets[i + 1] = ks.length;
      }
      const keyData = buildChild(key, ks, (j) => {
        const [row] = listRowOf(offsets, j);
        return [row, ` key ${showValue(ks[j])}`];
      });
      const valueData = buildChild(value, vs, (j) => [listRowOf(offsets, j)[0], `[${showValue(ks[j])}]`]);
      const entriesType = type.children[0]!.type as Struct;
      const entries = makeData({ type: entriesType, length: ks.length, nullCount: 0, children: [keyData, valueData] });
      return makeData({
        type,
        length: n,
        nullCount: nulls,
        nullBitmap: bitmap ?? EMPTY_BYTES,
        valueOffsets: offsets,
        child: entries,
      });
    },
  };
}

/** Dictionary members are deduplicated by these (a -0 apart from 0, which Map keys conflate). */
const NEGATIVE_ZERO = Symbol("-0");

function memberKey(v: unknown): unknown {
  switch (typeof v) {
    case "string":
    case "bigint":
    case "boolean":
      return v;
    case "number":
      return Object.is(v, -0) ? NEGATIVE_ZERO : v;
    default:
      return undefined; // objects: one member per value
  }
}

/**
 * dictionary<index, value>: values as the value type's JS values, each build writing a fresh
 * dictionary of the distinct values (in first-seen order) and their indices. `members`, when set,
 * is the closed set an enum may hold.
 */
export function dictionaryCodec(type: Dictionary, value: ChildSpec, members?: ReadonlySet<string>): Codec {
  const indices = type.indices as DataType & { readonly bitWidth: number; readonly isSigned: boolean };
  const wide = indices.bitWidth === 64;
  const maxIndex = indices.isSigned ? 2 ** (indices.bitWidth - 1) - 1 : 2 ** indices.bitWidth - 1;
  const IndexArray = (type.indices as DataType & { ArrayType: TypedArrayOf<ArrayLike<number>> }).ArrayType;
  return {
    get: (data, index) => {
      const key = wide ? Number((data.values as BigInt64Array)[index]) : (data.values as Int32Array)[index]!;
      const chunks = data.dictionary!.data;
      let at = key;
      for (const chunk of chunks) {
        if (at < chunk.length) return isValid(chunk, at) ? value.codec.get(chunk, at) : null;
        at -= chunk.length;
      }
      return null;
    },
    build: (values) => {
      const n = values.length;
      const keys = new IndexArray(n) as unknown as { [i: number]: number | bigint };
      const distinct: unknown[] = [];
      const position = new Map<unknown, number>();
      let bitmap: Uint8Array | null = null;
      let nulls = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          bitmap ??= startBitmap(n, i);
          nulls++;
          continue;
        }
        if (bitmap !== null) bitmap[i >> 3]! |= 1 << (i & 7);
        if (members !== undefined && !members.has(v as string)) {
          if (typeof v !== "string") wrongType("a string", v, type, i);
          refuse("ValueError", `${showValue(v)} is not one of ${[...members].join(", ")}`, v, type, i);
        }
        const mk = memberKey(v);
        let k = mk === undefined ? undefined : position.get(mk);
        if (k === undefined) {
          k = distinct.length;
          if (k > maxIndex) {
            refuse(
              "OverflowError",
              `${showValue(v)} is distinct value ${k + 1}, more than the ${maxIndex + 1} indices of ${typeText(type.indices)} can address`,
              v,
              type,
              i,
            );
          }
          distinct.push(v);
          if (mk !== undefined) position.set(mk, k);
        }
        keys[i] = wide ? BigInt(k) : k;
      }
      const dictionary = buildChild(value, distinct, (m) => {
        let row = 0;
        while (row < n && Number(keys[row]) !== m) row++;
        return [row, ""];
      });
      return makeData({
        type,
        length: n,
        nullCount: nulls,
        nullBitmap: bitmap ?? EMPTY_BYTES,
        data: keys as never,
        dictionary: new Vector([dictionary]),
      });
    },
  };
}

/** A union member: its name (the value's `tag`) and its spec. */
export interface UnionMember extends ChildSpec {
  readonly name: string;
}

/**
 * dense_union and sparse_union: `{ tag, value }`, `tag` naming the member. Arrow unions have no
 * validity of their own: a null is a null in a member (the tagged one, or the first for a bare
 * `null`), and reads back as `null`. In a sparse union the other members hold nulls in that row.
 */
export function unionCodec(type: Union, members: readonly UnionMember[]): Codec {
  const dense = type.mode === UnionMode.Dense;
  const typeIds = type.typeIds;
  const byTag = new Map(members.map((m, c) => [m.name, c]));
  const tags = members.map((m) => m.name).join(", ");
  return {
    get: (data, index) => {
      const c = type.typeIdToChildIndex[data.typeIds[index]!]!;
      const child = data.children[c]!;
      const at = dense ? (data.valueOffsets as Int32Array)[index]! : index;
      return { tag: members[c]!.name, value: isValid(child, at) ? members[c]!.codec.get(child, at) : null };
    },
    build: (values) => {
      const n = values.length;
      const ids = new Int8Array(n);
      const offsets = dense ? new Int32Array(n) : null;
      const columns: unknown[][] = members.map(() => (dense ? [] : new Array(n).fill(null)));
      for (let i = 0; i < n; i++) {
        const v = values[i];
        let c = 0;
        let x: unknown = null;
        if (!isNull(v)) {
          const r = record(v, type, i, `{ tag, value } with tag one of ${tags}`);
          const found = byTag.get(r.tag as string);
          if (found === undefined) {
            refuse("ValueError", `tag ${showValue(r.tag)} is not one of ${tags}`, v, type, i);
          }
          c = found;
          x = r.value;
          if (isNull(x) && !members[c]!.nullable) refuseNull(x, type, i, `<${members[c]!.name}>`, "that member");
        }
        ids[i] = typeIds[c]!;
        if (offsets !== null) {
          offsets[i] = columns[c]!.length;
          columns[c]!.push(x);
        } else columns[c]![i] = x;
      }
      const children = members.map((m, c) =>
        buildChild(m, columns[c]!, (j) => {
          if (offsets === null) return [j, `<${m.name}>`];
          let row = 0;
          while (row < n && !(ids[row] === typeIds[c] && offsets[row] === j)) row++;
          return [row, `<${m.name}>`];
        }),
      );
      return offsets === null
        ? makeData({ type, length: n, nullCount: 0, typeIds: ids, children } as never)
        : makeData({ type, length: n, nullCount: 0, typeIds: ids, valueOffsets: offsets, children } as never);
    },
  };
}

/** The index of the first null in `values`, or -1. */
export function firstNull(values: readonly unknown[]): number {
  for (let i = 0; i < values.length; i++) if (isNull(values[i])) return i;
  return -1;
}
