/**
 * pyarrow's `Array.cast(target)` with `safe=True`, as the reference's exchange-input coercion calls
 * it (`RecordBatch.cast` → `pc.cast`): which source → target pairs have a kernel, which values make
 * a safe cast fail, the message each failure carries, and the exact bits of what comes out.
 *
 * A port of Arrow C++'s cast kernels (compute/kernels/scalar_cast_*.cc, util/value_parsing, the
 * decimal → real conversion, Float16) for the targets an exchange input is most often declared
 * with: every integer width, halffloat, float, double, bool, and null. Sources: null, bool,
 * integers, floats, decimals, the binary and string families (views included), the temporal types
 * Arrow reinterprets as int32/int64, dictionaries (the taken values are cast) and canonical
 * extensions (their storage is cast). Other targets are cast only when the types are already equal:
 * anything else is refused with {@link UnsupportedTargetError} (pyarrow may have cast it).
 *
 * Rules worth knowing, all taken from running pyarrow (test/fixtures/casts/casts.json):
 * - A zero-row column is never inspected: only a missing kernel fails it.
 * - Range checks (int → int, int → float) and truncation checks (float → int) report the first
 *   failing value; parse and decimal failures report the last one.
 * - int → float is refused past ±2^53 (double) or ±2^24 (float); int32 → halffloat uses the float
 *   bound, int64 → halffloat the double bound (then overflows to infinity).
 * - Float → int messages print the value with C's `%f` (a halffloat prints its raw bits).
 * - NaN payloads and signs are kept as x86 conversions keep them.
 */
import {
  BinaryView,
  type Bool,
  type Data,
  DataType,
  DateUnit,
  type Field,
  type Int32,
  makeData,
  Null,
  Precision,
  type Vector,
} from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { pyarrowFieldTypeName, pyarrowTypeName } from "../protocol/pyarrow-names.js";
import { EXTENSION_NAME_KEY, isRecognisedExtension, typeText } from "../protocol/type-tokens.js";

// ---------------------------------------------------------------------------------------------
// Errors

/** A cast pyarrow refuses, named as pyarrow names it (`ArrowInvalid`, `ArrowNotImplementedError`). */
export class ArrowCastError extends Error {
  constructor(
    readonly pyType: "ArrowInvalid" | "ArrowNotImplementedError",
    message: string,
  ) {
    super(message);
    this.name = pyType;
  }
}

/** A target this port does not cast to (pyarrow might): only an equal type is accepted. */
export class UnsupportedTargetError extends Error {
  override readonly name = "UnsupportedTargetError";
}

const invalid = (message: string) => new ArrowCastError("ArrowInvalid", message);

// ---------------------------------------------------------------------------------------------
// What pyarrow sees

/** A column's type as pyarrow sees it: its Arrow type and any canonical extension on its field. */
export interface ColumnType {
  readonly type: DataType;
  /** A recognised canonical extension (`arrow.uuid`, ...), or undefined. */
  readonly extension?: string | undefined;
  /** The field, for naming an extension type. */
  readonly field?: Field;
}

/** The column type of a field. */
export function columnTypeOf(field: Field): ColumnType {
  const name = field.metadata.get(EXTENSION_NAME_KEY);
  const extension = name !== undefined && isRecognisedExtension(name, field.type) ? name : undefined;
  return { type: field.type, extension, field };
}

function nameOf(t: ColumnType): string {
  return t.field !== undefined && t.extension !== undefined ? pyarrowFieldTypeName(t.field) : pyarrowTypeName(t.type);
}

// Arrow C++ type ids, as `CanCast` and kernel dispatch compare them.
type TypeId =
  | "NA"
  | "BOOL"
  | "INT"
  | "HALF_FLOAT"
  | "FLOAT"
  | "DOUBLE"
  | "DECIMAL"
  | "BASE_BINARY"
  | "BINARY_VIEW"
  | "FIXED_SIZE_BINARY"
  | "DATE32"
  | "DATE64"
  | "TIME32"
  | "TIME64"
  | "TIMESTAMP"
  | "DURATION"
  | "DICTIONARY"
  | "EXTENSION"
  | "OTHER";

function typeId(t: ColumnType): TypeId {
  if (t.extension !== undefined) return "EXTENSION";
  const type = t.type;
  if (DataType.isNull(type)) return "NA";
  if (DataType.isBool(type)) return "BOOL";
  if (DataType.isInt(type)) return "INT";
  if (DataType.isFloat(type)) {
    if (type.precision === Precision.HALF) return "HALF_FLOAT";
    return type.precision === Precision.SINGLE ? "FLOAT" : "DOUBLE";
  }
  if (DataType.isDecimal(type)) return "DECIMAL";
  if (DataType.isUtf8(type) || DataType.isLargeUtf8(type) || DataType.isBinary(type) || DataType.isLargeBinary(type)) {
    return "BASE_BINARY";
  }
  if (DataType.isUtf8View(type) || DataType.isBinaryView(type)) return "BINARY_VIEW";
  if (DataType.isFixedSizeBinary(type)) return "FIXED_SIZE_BINARY";
  if (DataType.isDate(type)) return type.unit === DateUnit.DAY ? "DATE32" : "DATE64";
  if (DataType.isTime(type)) return type.bitWidth === 32 ? "TIME32" : "TIME64";
  if (DataType.isTimestamp(type)) return "TIMESTAMP";
  if (DataType.isDuration(type)) return "DURATION";
  if (DataType.isDictionary(type)) return "DICTIONARY";
  return "OTHER";
}

/** A target this port casts to. */
type Target =
  | { readonly kind: "int"; readonly bits: 8 | 16 | 32 | 64; readonly signed: boolean }
  | { readonly kind: "half" | "float" | "double" | "bool" | "null" };

function targetOf(type: DataType): Target | undefined {
  if (DataType.isInt(type)) return { kind: "int", bits: type.bitWidth, signed: type.isSigned };
  if (DataType.isFloat(type)) {
    if (type.precision === Precision.HALF) return { kind: "half" };
    return { kind: type.precision === Precision.SINGLE ? "float" : "double" };
  }
  if (DataType.isBool(type)) return { kind: "bool" };
  if (DataType.isNull(type)) return { kind: "null" };
  return undefined;
}

/** The cast function's name and the type-id name its "Unsupported cast" message uses. */
function functionOf(target: Target): { readonly fn: string; readonly id: string } {
  switch (target.kind) {
    case "int": {
      const id = `${target.signed ? "" : "u"}int${target.bits}`;
      return { fn: `cast_${id}`, id };
    }
    case "half":
      return { fn: "func", id: "halffloat" };
    case "float":
      return { fn: "cast_float", id: "float" };
    case "double":
      return { fn: "cast_double", id: "double" };
    case "bool":
      return { fn: "cast_boolean", id: "bool" };
    case "null":
      return { fn: "cast_null", id: "null" };
  }
}

/** Whether the target's cast function has a kernel for a source type id (Arrow's `CanCast`). */
function hasKernel(target: Target, source: ColumnType): boolean {
  const id = typeId(source);
  if (target.kind === "null") {
    if (id === "DICTIONARY") return true;
    return id === "EXTENSION" && DataType.isNull(source.type);
  }
  // AddCommonCasts: null, dictionary (targets that can unpack one: all of these), extension.
  if (id === "NA" || id === "DICTIONARY" || id === "EXTENSION") return true;
  switch (target.kind) {
    case "int":
      switch (id) {
        case "INT":
        case "FLOAT":
        case "DOUBLE":
        case "HALF_FLOAT":
        case "BOOL":
        case "BASE_BINARY":
        case "BINARY_VIEW":
        case "DECIMAL":
          return true;
        case "DATE32":
        case "TIME32":
          return target.bits === 32 && target.signed;
        case "DATE64":
        case "TIME64":
        case "TIMESTAMP":
        case "DURATION":
          return target.bits === 64 && target.signed;
        default:
          return false;
      }
    case "float":
    case "double":
      return ["INT", "FLOAT", "DOUBLE", "HALF_FLOAT", "BOOL", "BASE_BINARY", "BINARY_VIEW", "DECIMAL"].includes(id);
    case "half":
      return ["INT", "FLOAT", "DOUBLE", "BASE_BINARY"].includes(id);
    case "bool":
      return ["BOOL", "INT", "FLOAT", "DOUBLE", "BASE_BINARY", "BINARY_VIEW"].includes(id);
  }
}

// ---------------------------------------------------------------------------------------------
// Rows: a column, or the values a dictionary's indices take

/** Where row `i` of a column lives (the dictionary case maps rows into dictionary chunks). */
interface Rows {
  readonly length: number;
  /** The chunk and index holding row `i`, or null for a null row. */
  at(i: number): readonly [Data, number] | null;
}

function plainRows(data: Data): Rows {
  return { length: data.length, at: (i) => (data.getValid(i) ? [data, i] : null) };
}

/** `Take(dictionary, indices)`: the rows a dictionary-encoded column stands for. */
function takenRows(data: Data, dictionary: Vector): Rows {
  const chunks = dictionary.data;
  const starts: number[] = [];
  let total = 0;
  for (const chunk of chunks) {
    starts.push(total);
    total += chunk.length;
  }
  const indices = data.values as ArrayLike<number | bigint>;
  return {
    length: data.length,
    at(i) {
      if (!data.getValid(i)) return null;
      const index = Number(indices[i]);
      let c = chunks.length - 1;
      while (c > 0 && starts[c]! > index) c--;
      const chunk = chunks[c]!;
      const local = index - starts[c]!;
      return chunk.getValid(local) ? [chunk, local] : null;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading values

const scratch = new DataView(new ArrayBuffer(8));

function f64Bits(x: number): bigint {
  scratch.setFloat64(0, x, true);
  return scratch.getBigUint64(0, true);
}

function f64FromBits(bits: bigint): number {
  scratch.setBigUint64(0, bits, true);
  return scratch.getFloat64(0, true);
}

/** An integer column's value. */
function readInt(data: Data, i: number): bigint {
  const v = (data.values as ArrayLike<number | bigint>)[i]!;
  return typeof v === "bigint" ? v : BigInt(v);
}

/** The raw bits of a float column's value (16, 32 or 64 bits wide). */
function readFloatBits(data: Data, i: number): bigint {
  const values = data.values as Uint16Array | Float32Array | Float64Array;
  if (values instanceof Uint16Array) return BigInt(values[i]!);
  const view = new DataView(values.buffer, values.byteOffset + i * values.BYTES_PER_ELEMENT, values.BYTES_PER_ELEMENT);
  return values instanceof Float32Array ? BigInt(view.getUint32(0, true)) : view.getBigUint64(0, true);
}

function readBool(data: Data, i: number): boolean {
  const idx = data.offset + i;
  return ((data.values as Uint8Array)[idx >> 3]! & (1 << (idx & 7))) !== 0;
}

/** The bytes of a binary or string value (views included). */
function readBytes(data: Data, i: number): Uint8Array {
  if (DataType.isUtf8View(data.type) || DataType.isBinaryView(data.type)) {
    return getVisitor.visit(data.clone(new BinaryView()), i) as Uint8Array;
  }
  const offsets = data.valueOffsets as ArrayLike<number | bigint>;
  return (data.values as Uint8Array).subarray(Number(offsets[i]!), Number(offsets[i + 1]!));
}

/** A decimal value's unscaled integer (two's complement over 32 to 256 bits). */
function readDecimal(data: Data, i: number, bitWidth: number): bigint {
  const words = bitWidth / 32;
  const values = data.values as Uint32Array;
  let v = 0n;
  for (let w = words - 1; w >= 0; w--) v = (v << 32n) | BigInt(values[i * words + w]!);
  return BigInt.asIntN(bitWidth, v);
}

const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
/** Status message text over raw bytes, decoded as pyarrow decodes it (invalid UTF-8 replaced). */
const bytesText = (bytes: Uint8Array) => utf8.decode(bytes);

// ---------------------------------------------------------------------------------------------
// Float bit conversions (x86 conversions; Arrow's Float16)

/** double → float bits (cvtsd2ss: round to nearest even; NaN keeps sign and top payload, quieted). */
function f64ToF32Bits(bits: bigint): number {
  const exp = Number((bits >> 52n) & 0x7ffn);
  const mant = bits & 0xfffffffffffffn;
  if (exp === 0x7ff && mant !== 0n) {
    return (Number(bits >> 63n) << 31) | 0x7fc00000 | Number((mant >> 29n) & 0x3fffffn);
  }
  scratch.setFloat32(0, Math.fround(f64FromBits(bits)), true);
  return scratch.getUint32(0, true) >>> 0;
}

/** float → double bits (exact; a NaN's payload moves up and is quieted). */
function f32ToF64Bits(bits: number): bigint {
  const b = BigInt(bits >>> 0);
  const exp = Number((b >> 23n) & 0xffn);
  const mant = b & 0x7fffffn;
  if (exp === 0xff && mant !== 0n) return ((b >> 31n) << 63n) | 0x7ff8000000000000n | (mant << 29n);
  scratch.setUint32(0, bits >>> 0, true);
  return f64Bits(scratch.getFloat32(0, true));
}

/** Arrow's `BinaryConverter<T>::ToBinary16` (T = 32 or 64 bits). */
function toBinary16(fBits: bigint, numBits: 32 | 64): number {
  const mantBits = numBits === 32 ? 23n : 52n;
  const expBits = BigInt(numBits) - mantBits - 1n;
  const expBias = (1n << (expBits - 1n)) - 1n;
  const mantMask = (1n << mantBits) - 1n;
  const expMask = ((1n << expBits) - 1n) << mantBits;
  const hSign = Number((fBits >> BigInt(numBits - 16)) & 0x8000n);
  const fExp = fBits & expMask;
  const fBiasedExp = Number(fExp >> mantBits);
  const hBiasedExp = fBiasedExp - Number(expBias) + 15;
  const fMant = fBits & mantMask;
  const roundingBit = 1n << (mantBits - 11n);
  if (hBiasedExp >= 0x1f) {
    if (fExp === expMask && fMant !== 0n) {
      let hMant = Number(fMant >> (mantBits - 10n)) & 0xffff;
      if (hMant === 0) hMant = 1;
      return (hSign | 0x7c00 | hMant) & 0xffff;
    }
    return (hSign | 0x7c00) & 0xffff;
  }
  if (hBiasedExp <= 0) {
    if (hBiasedExp < -10) return hSign;
    let rounded = ((1n << mantBits) | fMant) >> BigInt(1 - hBiasedExp);
    if ((rounded & ((roundingBit << 2n) - 1n)) !== roundingBit || (fMant & 0x7ffn) !== 0n) rounded += roundingBit;
    return (hSign + Number(rounded >> (mantBits - 10n))) & 0xffff;
  }
  let rounded = fMant;
  if ((rounded & ((roundingBit << 2n) - 1n)) !== roundingBit) rounded += roundingBit;
  return (hSign + (hBiasedExp << 10) + Number(rounded >> (mantBits - 10n))) & 0xffff;
}

/** Arrow's `BinaryConverter<T>::FromBinary16`: halffloat bits → float (32) or double (64) bits. */
function fromBinary16(h: number, numBits: 32 | 64): bigint {
  const mantBits = numBits === 32 ? 23n : 52n;
  const expBias = numBits === 32 ? 127n : 1023n;
  const expMask = numBits === 32 ? 0xffn << 23n : 0x7ffn << 52n;
  const fSign = BigInt(h & 0x8000) << BigInt(numBits - 16);
  const hExp = h & 0x7c00;
  const hMant = BigInt(h & 0x3ff);
  if (hExp === 0x7c00) return fSign | expMask | (hMant << (mantBits - 10n));
  if (hExp === 0) {
    if (hMant === 0n) return fSign;
    let fExp = expBias - 15n;
    let fMant = hMant << 1n;
    while ((fMant & 0x400n) === 0n) {
      fExp--;
      fMant <<= 1n;
    }
    return fSign | (fExp << mantBits) | ((fMant & 0x3ffn) << (mantBits - 10n));
  }
  return fSign | ((BigInt(h & 0x7fff) + ((expBias - 15n) << 10n)) << (mantBits - 10n));
}

const f32Number = (bits: number): number => {
  scratch.setUint32(0, bits >>> 0, true);
  return scratch.getFloat32(0, true);
};

const f32Bits = (x: number): number => {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true) >>> 0;
};

/** A source float value as a double (what C++ compares and prints), and its NaN sign. */
function floatValue(bits: bigint, width: 16 | 32 | 64): number {
  if (width === 64) return f64FromBits(bits);
  if (width === 32) return f32Number(Number(bits));
  return f32Number(Number(fromBinary16(Number(bits), 32)));
}

// ---------------------------------------------------------------------------------------------
// Decimal strings → floats (fast_float's grammar and correct rounding)

const FLOAT_GRAMMAR =
  /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan(?:\([0-9A-Za-z_]*\))?|inf(?:inity)?)$/i;

/** A correctly rounded float32 from a finite, unsigned decimal string (no double rounding). */
function decimalToFloat32(text: string): number {
  const d = Number(text);
  const f = Math.fround(d);
  if (f === d) return f;
  const fBits = f32Bits(f);
  const MAX_BITS = 0x7f7fffff;
  let lo: number;
  let hi: number;
  if (f === Number.POSITIVE_INFINITY) {
    lo = f32Number(MAX_BITS);
    hi = 2 ** 128;
  } else if (f < d) {
    lo = f;
    hi = fBits === MAX_BITS ? 2 ** 128 : f32Number(fBits + 1);
  } else {
    lo = fBits === 0 ? 0 : f32Number(fBits - 1);
    hi = f;
  }
  const mid = (lo + hi) / 2;
  if (d !== mid) return f;
  // The double is exactly a float midpoint: decide on the decimal itself.
  const cmp = compareDecimal(text, mid);
  if (cmp === 0) return f;
  const pick = cmp < 0 ? lo : hi;
  return pick === 2 ** 128 ? Number.POSITIVE_INFINITY : pick;
}

/** Sign of (decimal text − x) for a finite unsigned decimal and a finite non-negative double. */
function compareDecimal(text: string, x: number): number {
  const m = /^([0-9]*)\.?([0-9]*)(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  if (m === null) return 0;
  const digits = BigInt(`${m[1] ?? ""}${m[2] ?? ""}` || "0");
  const exp10 = Number(m[3] ?? "0") - (m[2] ?? "").length;
  // x = mant × 2^exp2
  const bits = f64Bits(x);
  const e = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  let exp2: number;
  if (e === 0) exp2 = -1074;
  else {
    mant |= 1n << 52n;
    exp2 = e - 1075;
  }
  let left = digits;
  let right = mant;
  if (exp10 >= 0) left *= 10n ** BigInt(exp10);
  else right *= 10n ** BigInt(-exp10);
  if (exp2 >= 0) right <<= BigInt(exp2);
  else left <<= BigInt(-exp2);
  return left === right ? 0 : left < right ? -1 : 1;
}

/** `StringToFloat` to double bits, or null when fast_float refuses the text. */
function parseDoubleBits(text: string): bigint | null {
  if (!FLOAT_GRAMMAR.test(text)) return null;
  const negative = text.startsWith("-");
  const body = text.replace(/^[+-]/, "");
  const lower = body.toLowerCase();
  let bits: bigint;
  if (lower.startsWith("nan")) bits = 0x7ff8000000000000n;
  else if (lower.startsWith("inf")) bits = 0x7ff0000000000000n;
  else bits = f64Bits(Number(body));
  return negative ? bits | (1n << 63n) : bits;
}

/** `StringToFloat` to float bits, or null. */
function parseFloatBits(text: string): number | null {
  if (!FLOAT_GRAMMAR.test(text)) return null;
  const negative = text.startsWith("-");
  const body = text.replace(/^[+-]/, "");
  const lower = body.toLowerCase();
  let bits: number;
  if (lower.startsWith("nan")) bits = 0x7fc00000;
  else if (lower.startsWith("inf")) bits = 0x7f800000;
  else bits = f32Bits(decimalToFloat32(body));
  return (negative ? bits | 0x80000000 : bits) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Decimal strings → integers (Arrow's StringConverter for integer types)

function parseInteger(text: string, bits: number, signed: boolean): bigint | null {
  if (text.length === 0) return null;
  if (text.length > 2 && text[0] === "0" && (text[1] === "x" || text[1] === "X")) {
    const hex = text.slice(2);
    if (hex.length > bits / 4 || !/^[0-9A-Fa-f]+$/.test(hex)) return null;
    const v = BigInt(`0x${hex}`);
    return signed ? BigInt.asIntN(bits, v) : v;
  }
  let negative = false;
  let body = text;
  if (signed && body[0] === "-") {
    negative = true;
    body = body.slice(1);
    if (body.length === 0) return null;
  }
  if (!/^[0-9]*$/.test(body)) return null;
  const magnitude = BigInt(body.replace(/^0+/, "") || "0");
  if (signed) {
    const maxPositive = (1n << BigInt(bits - 1)) - 1n;
    if (negative) return magnitude > maxPositive + 1n ? null : -magnitude;
    return magnitude > maxPositive ? null : magnitude;
  }
  return magnitude > (1n << BigInt(bits)) - 1n ? null : magnitude;
}

/** Arrow's boolean parsing: 0, 1, true, false (any case). */
function parseBool(text: string): boolean | null {
  if (text === "0") return false;
  if (text === "1") return true;
  const lower = text.toLowerCase();
  if (text.length === 4 && lower === "true") return true;
  if (text.length === 5 && lower === "false") return false;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Decimal → real (Arrow's DecimalRealConversion)

/** Correctly rounded float32 of a non-negative bigint (static_cast<float>(uint64)). */
function bigintToFloat32(v: bigint): number {
  if (v === 0n) return 0;
  const length = v.toString(2).length;
  if (length <= 24) return Number(v);
  const shift = BigInt(length - 24);
  let top = v >> shift;
  const rest = v & ((1n << shift) - 1n);
  const half = 1n << (shift - 1n);
  if (rest > half || (rest === half && (top & 1n) === 1n)) top += 1n;
  return Math.fround(Number(top) * 2 ** Number(shift));
}

const DOUBLE_POWERS = new Map<number, number>();
const FLOAT_POWERS = new Map<number, number>();

/** `LargePowerOfTen<Real>(exp)`: the correctly rounded literal `1e{exp}` (0 / inf past float's range). */
function powerOfTen(exp: number, real: "float" | "double"): number {
  const cache = real === "double" ? DOUBLE_POWERS : FLOAT_POWERS;
  let p = cache.get(exp);
  if (p === undefined) {
    if (real === "double") p = Number(`1e${exp}`);
    else if (exp < -45) p = 0;
    else if (exp > 38) p = Number.POSITIVE_INFINITY;
    else p = decimalToFloat32(`1e${exp}`);
    cache.set(exp, p);
  }
  return p;
}

const MAX_PRECISE = { float: (1n << 24n) - 1n, double: (1n << 53n) - 1n } as const;

/** `ToRealPositiveNoSplit`: the words summed in Real precision, times 10^-scale. */
function toRealNoSplit(value: bigint, scale: number, bitWidth: number, real: "float" | "double"): number {
  const round = real === "float" ? Math.fround : (x: number) => x;
  const toReal = real === "float" ? bigintToFloat32 : (v: bigint) => Number(v);
  let x: number;
  if (bitWidth <= 64) {
    x = toReal(value);
  } else if (bitWidth === 128) {
    const high = value >> 64n;
    const low = value & 0xffffffffffffffffn;
    x = round(toReal(high) * 2 ** 64);
    x = round(x + toReal(low));
  } else {
    const parts = [0, 1, 2, 3].map((k) => (value >> BigInt(64 * k)) & 0xffffffffffffffffn);
    const scaled = (part: bigint, power: number): number => {
      const r = toReal(part);
      if (real === "float" && power >= 128) return r === 0 ? 0 : Number.POSITIVE_INFINITY;
      return round(r * 2 ** power);
    };
    x = 0;
    x = round(x + scaled(parts[3]!, 192));
    x = round(x + scaled(parts[2]!, 128));
    x = round(x + scaled(parts[1]!, 64));
    x = round(x + toReal(parts[0]!));
  }
  return round(x * powerOfTen(-scale, real));
}

/** `DecimalRealConversion::ToReal`. */
function decimalToReal(value: bigint, scale: number, bitWidth: number, real: "float" | "double"): number {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  let x: number;
  const small = bitWidth === 256 ? abs < MAX_PRECISE[real] : abs <= MAX_PRECISE[real];
  if (scale <= 0 || small) {
    x = toRealNoSplit(abs, scale, bitWidth, real);
  } else {
    const m = 10n ** BigInt(scale);
    const whole = toRealNoSplit(abs / m, 0, bitWidth, real);
    const fraction = toRealNoSplit(abs % m, scale, bitWidth, real);
    x = real === "float" ? Math.fround(whole + fraction) : whole + fraction;
  }
  return negative ? -x : x;
}

// ---------------------------------------------------------------------------------------------
// Formatting for messages

/** C's `printf("%f", x)` (glibc: round half to even on the exact binary value; "-nan" keeps the sign). */
export function formatFixed6(x: number): string {
  const negative = f64Bits(x) >> 63n === 1n;
  const sign = negative ? "-" : "";
  if (Number.isNaN(x)) return `${sign}nan`;
  if (!Number.isFinite(x)) return `${sign}inf`;
  const bits = f64Bits(Math.abs(x));
  const e = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  let exp2: number;
  if (e === 0) exp2 = -1074;
  else {
    mant |= 1n << 52n;
    exp2 = e - 1075;
  }
  let scaled: bigint;
  if (exp2 >= 0) scaled = (mant << BigInt(exp2)) * 1_000_000n;
  else {
    const num = mant * 1_000_000n;
    const den = 1n << BigInt(-exp2);
    scaled = num / den;
    const rem = num % den;
    if (rem * 2n > den || (rem * 2n === den && (scaled & 1n) === 1n)) scaled += 1n;
  }
  const whole = scaled / 1_000_000n;
  const frac = (scaled % 1_000_000n).toString().padStart(6, "0");
  return `${sign}${whole}.${frac}`;
}

// ---------------------------------------------------------------------------------------------
// Output columns

interface Out {
  readonly validity: Uint8Array | null;
  readonly nullCount: number;
}

function validityOf(rows: Rows): Out {
  let nullCount = 0;
  const bitmap = new Uint8Array((rows.length + 7) >> 3);
  for (let i = 0; i < rows.length; i++) {
    if (rows.at(i) === null) nullCount++;
    else bitmap[i >> 3]! |= 1 << (i & 7);
  }
  return { validity: nullCount > 0 ? bitmap : null, nullCount };
}

function nullColumn(type: DataType, length: number): Data {
  if (DataType.isNull(type)) return makeData({ type: new Null(), length });
  const bytes = (length + 7) >> 3;
  const nullBitmap = new Uint8Array(bytes);
  if (DataType.isBool(type))
    return makeData({ type: type as Bool, length, nullCount: length, nullBitmap, data: new Uint8Array(bytes) });
  const T = (type as DataType).ArrayType as new (n: number) => ArrayLike<number>;
  return makeData({ type: type as Int32, length, nullCount: length, nullBitmap, data: new T(length) as Int32Array });
}

/** A numeric or bool output column of `target` filled by `value(row) → raw value`. */
function numericColumn(
  type: DataType,
  rows: Rows,
  write: (out: ArrayBufferView, i: number, chunk: Data, index: number) => void,
): Data {
  const { validity, nullCount } = validityOf(rows);
  const length = rows.length;
  if (DataType.isBool(type)) {
    const bits = new Uint8Array((length + 7) >> 3);
    for (let i = 0; i < length; i++) {
      const at = rows.at(i);
      if (at !== null) write(bits, i, at[0], at[1]);
    }
    return makeData({ type: type as Bool, length, nullCount, nullBitmap: validity ?? undefined, data: bits });
  }
  const T = type.ArrayType as new (n: number) => ArrayBufferView;
  const data = new T(length);
  for (let i = 0; i < length; i++) {
    const at = rows.at(i);
    if (at !== null) write(data, i, at[0], at[1]);
  }
  return makeData({
    type: type as Int32,
    length,
    nullCount,
    nullBitmap: validity ?? undefined,
    data: data as Int32Array,
  });
}

function setBit(bits: ArrayBufferView, i: number, on: boolean): void {
  if (on) (bits as Uint8Array)[i >> 3]! |= 1 << (i & 7);
}

function setFloat(out: ArrayBufferView, i: number, kind: "half" | "float" | "double", bits: bigint): void {
  if (kind === "half") (out as Uint16Array)[i] = Number(bits);
  else if (kind === "float") new DataView(out.buffer, out.byteOffset).setUint32(i * 4, Number(bits), true);
  else new DataView(out.buffer, out.byteOffset).setBigUint64(i * 8, bits, true);
}

function setInt(out: ArrayBufferView, i: number, v: bigint): void {
  const arr = out as unknown as { [k: number]: number | bigint; BYTES_PER_ELEMENT: number };
  arr[i] = arr.BYTES_PER_ELEMENT === 8 ? v : Number(v);
}

// ---------------------------------------------------------------------------------------------
// Kernels

const bigintOrder = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

function intRange(bits: number, signed: boolean): readonly [bigint, bigint] {
  return signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];
}

/** `CheckIntegersInRange`: the first valid value outside [lo, hi] fails. */
function checkIntsInRange(rows: Rows, lo: bigint, hi: bigint): void {
  for (let i = 0; i < rows.length; i++) {
    const at = rows.at(i);
    if (at === null) continue;
    const v = readInt(at[0], at[1]);
    if (v < lo || v > hi) throw invalid(`Integer value ${v} not in range: ${lo} to ${hi}`);
  }
}

function intToInt(
  rows: Rows,
  source: DataType & { bitWidth: number; isSigned: boolean },
  target: Target & { kind: "int" },
  type: DataType,
): Data {
  const [sLo, sHi] = intRange(source.bitWidth, source.isSigned);
  const [tLo, tHi] = intRange(target.bits, target.signed);
  // GetSafeMinMax: the target's range, clipped to what the source type can hold.
  const [lo, hi] = [[sLo, tLo].sort(bigintOrder)[1]!, [sHi, tHi].sort(bigintOrder)[0]!];
  if (sLo < lo || sHi > hi) checkIntsInRange(rows, lo, hi);
  return numericColumn(type, rows, (out, i, chunk, index) => setInt(out, i, readInt(chunk, index)));
}

function intToFloat(
  rows: Rows,
  source: DataType & { bitWidth: number; isSigned: boolean },
  target: Target,
  type: DataType,
): Data {
  const kind = target.kind as "half" | "float" | "double";
  const bits = source.bitWidth;
  let limit: bigint | null = null;
  if (bits === 32) limit = kind === "double" ? null : 1n << 24n;
  else if (bits === 64) limit = kind === "float" ? 1n << 24n : 1n << 53n;
  if (limit !== null) checkIntsInRange(rows, source.isSigned ? -limit : 0n, limit);
  return numericColumn(type, rows, (out, i, chunk, index) => {
    const v = readInt(chunk, index);
    if (kind === "double") setFloat(out, i, kind, f64Bits(Number(v)));
    else {
      const asFloat = f32Bits(Math.fround(Number(v)));
      setFloat(out, i, kind, kind === "float" ? BigInt(asFloat) : BigInt(toBinary16(BigInt(asFloat), 32)));
    }
  });
}

function floatWidth(type: DataType & { precision: Precision }): 16 | 32 | 64 {
  return type.precision === Precision.HALF ? 16 : type.precision === Precision.SINGLE ? 32 : 64;
}

function floatToInt(rows: Rows, width: 16 | 32 | 64, target: Target & { kind: "int" }, type: DataType): Data {
  const [lo, hi] = intRange(target.bits, target.signed);
  for (let i = 0; i < rows.length; i++) {
    const at = rows.at(i);
    if (at === null) continue;
    const bits = readFloatBits(at[0], at[1]);
    const x = floatValue(bits, width);
    const ok = Number.isInteger(x) && BigInt(x) >= lo && BigInt(x) <= hi;
    if (!ok) {
      const shown =
        width === 16 ? String(bits) : formatFixed6(width === 32 ? f64FromBits(f32ToF64Bits(Number(bits))) : x);
      throw invalid(`Float value ${shown} was truncated converting to ${pyarrowTypeName(type)}`);
    }
  }
  return numericColumn(type, rows, (out, i, chunk, index) =>
    setInt(out, i, BigInt(floatValue(readFloatBits(chunk, index), width))),
  );
}

function floatToFloat(rows: Rows, width: 16 | 32 | 64, target: Target, type: DataType): Data {
  const kind = target.kind as "half" | "float" | "double";
  return numericColumn(type, rows, (out, i, chunk, index) => {
    const bits = readFloatBits(chunk, index);
    let result: bigint;
    if (width === 64) {
      result = kind === "double" ? bits : kind === "float" ? BigInt(f64ToF32Bits(bits)) : BigInt(toBinary16(bits, 64));
    } else if (width === 32) {
      result = kind === "double" ? f32ToF64Bits(Number(bits)) : kind === "float" ? bits : BigInt(toBinary16(bits, 32));
    } else {
      result =
        kind === "double" ? fromBinary16(Number(bits), 64) : kind === "float" ? fromBinary16(Number(bits), 32) : bits;
    }
    setFloat(out, i, kind, result);
  });
}

function boolToNumber(rows: Rows, target: Target, type: DataType): Data {
  return numericColumn(type, rows, (out, i, chunk, index) => {
    const v = readBool(chunk, index);
    if (target.kind === "int") setInt(out, i, v ? 1n : 0n);
    else if (target.kind === "bool") setBit(out, i, v);
    else if (target.kind === "float") setFloat(out, i, "float", v ? 0x3f800000n : 0n);
    else setFloat(out, i, "double", v ? 0x3ff0000000000000n : 0n);
  });
}

function numberToBool(rows: Rows, source: DataType, type: DataType): Data {
  const width = DataType.isFloat(source) ? floatWidth(source) : null;
  return numericColumn(type, rows, (out, i, chunk, index) => {
    if (width === null) setBit(out, i, readInt(chunk, index) !== 0n);
    else setBit(out, i, floatValue(readFloatBits(chunk, index), width) !== 0);
  });
}

/** Parses every valid value; the last failure is the one reported (`ScalarUnaryNotNull`). */
function parseColumn<V>(
  rows: Rows,
  type: DataType,
  parse: (text: string) => V | null,
  failure: (bytes: Uint8Array) => string,
  write: (out: ArrayBufferView, i: number, v: V) => void,
): Data {
  const parsed: (V | null)[] = new Array(rows.length).fill(null);
  let error: string | null = null;
  for (let i = 0; i < rows.length; i++) {
    const at = rows.at(i);
    if (at === null) continue;
    const bytes = readBytes(at[0], at[1]);
    const v = parse(asciiText(bytes));
    if (v === null) error = failure(bytes);
    else parsed[i] = v;
  }
  if (error !== null) throw invalid(error);
  return numericColumn(type, rows, (out, i) => write(out, i, parsed[i] as V));
}

/** Bytes as the parsers see them: each byte one char, so non-ASCII never parses as a digit. */
function asciiText(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function parseToNumber(rows: Rows, target: Target, type: DataType): Data {
  const name = pyarrowTypeName(type);
  const failure = (bytes: Uint8Array) => `Failed to parse string: '${bytesText(bytes)}' as a scalar of type ${name}`;
  switch (target.kind) {
    case "int":
      return parseColumn(rows, type, (s) => parseInteger(s, target.bits, target.signed), failure, setInt);
    case "double":
      return parseColumn(rows, type, parseDoubleBits, failure, (out, i, v) => setFloat(out, i, "double", v));
    case "float":
      return parseColumn(rows, type, parseFloatBits, failure, (out, i, v) => setFloat(out, i, "float", BigInt(v)));
    case "half":
      return parseColumn(rows, type, parseFloatBits, failure, (out, i, v) =>
        setFloat(out, i, "half", BigInt(toBinary16(BigInt(v), 32))),
      );
    case "bool":
      return parseColumn(rows, type, parseBool, (bytes) => `Failed to parse value: ${bytesText(bytes)}`, setBit);
    case "null":
      throw new Error("unreachable: no parse kernel for null");
  }
}

function decimalToNumber(
  rows: Rows,
  source: DataType & { bitWidth: number; scale: number },
  target: Target,
  type: DataType,
): Data {
  const { bitWidth, scale } = source;
  if (target.kind === "int") {
    let [lo, hi] = intRange(target.bits, target.signed);
    if (bitWidth <= 64) {
      // Arrow compares a Decimal32/64 with the target's limits converted to the decimal's own
      // width, which wraps the ones that do not fit (int64's to 0 and -1 in a Decimal32):
      // pyarrow then refuses every value ("Integer value out of bounds").
      lo = BigInt.asIntN(bitWidth, lo);
      hi = BigInt.asIntN(bitWidth, hi);
    }
    const results: (bigint | null)[] = new Array(rows.length).fill(null);
    let error: string | null = null;
    for (let i = 0; i < rows.length; i++) {
      const at = rows.at(i);
      if (at === null) continue;
      const v = readDecimal(at[0], at[1], bitWidth);
      let whole: bigint;
      if (scale > 0) {
        const m = 10n ** BigInt(scale);
        if (v % m !== 0n) {
          error = "Rescaling Decimal value would cause data loss";
          continue;
        }
        whole = v / m;
      } else {
        // Rescale up: the product wraps at the decimal's width; Arrow flags a sign flip as loss.
        whole = BigInt.asIntN(bitWidth, v * 10n ** BigInt(-scale));
        if (v < 0n ? whole > v : whole < v) {
          error = "Rescaling Decimal value would cause data loss";
          continue;
        }
      }
      if (whole < lo || whole > hi) {
        error = "Integer value out of bounds";
        continue;
      }
      results[i] = whole;
    }
    if (error !== null) throw invalid(error);
    return numericColumn(type, rows, (out, i) => setInt(out, i, results[i]!));
  }
  const real = target.kind === "float" ? "float" : "double";
  return numericColumn(type, rows, (out, i, chunk, index) => {
    const x = decimalToReal(readDecimal(chunk, index, bitWidth), scale, bitWidth, real);
    setFloat(out, i, real, real === "float" ? BigInt(f32Bits(x)) : f64Bits(x));
  });
}

/** Reinterprets a temporal column's values as int32/int64 (Arrow's zero-copy casts). */
function reinterpret(data: Data, type: DataType): Data {
  const values = data.values as ArrayBufferView;
  const T = type.ArrayType as new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayBufferView;
  const width = (type as DataType & { bitWidth: number }).bitWidth / 8;
  const view = new T(values.buffer, values.byteOffset, values.byteLength / width);
  return makeData({
    type: type as Int32,
    length: data.length,
    nullCount: data.nullCount,
    nullBitmap: data.nullBitmap ?? undefined,
    offset: data.offset,
    data: view as Int32Array,
  });
}

// ---------------------------------------------------------------------------------------------
// Dispatch

function unsupported(source: ColumnType, target: Target): ArrowCastError {
  const { fn, id } = functionOf(target);
  return new ArrowCastError(
    "ArrowNotImplementedError",
    `Unsupported cast from ${nameOf(source)} to ${id} using function ${fn}`,
  );
}

/** Whether two column types are the same Arrow type (pyarrow's `DataType.equals`, as spelled by tokens). */
function sameType(a: ColumnType, b: ColumnType): boolean {
  if (a.extension !== b.extension) return false;
  return typeText(a.type) === typeText(b.type);
}

function castRows(rows: Rows, sourceData: Data | null, source: ColumnType, target: Target, type: DataType): Data {
  if (!hasKernel(target, source)) throw unsupported(source, target);
  // Arrow runs no kernel over an empty column: only a missing kernel fails it.
  if (target.kind === "null") return makeData({ type: new Null(), length: rows.length });
  if (rows.length === 0) return nullColumn(type, 0);
  const id = typeId(source);
  const s = source.type;
  switch (id) {
    case "NA":
      return nullColumn(type, rows.length);
    case "EXTENSION": {
      const storage: ColumnType = { type: s };
      if (sameType(storage, { type })) return sourceData ?? numericColumn(type, rows, () => {});
      return castRows(rows, sourceData, storage, target, type);
    }
    case "DICTIONARY": {
      if (sourceData === null || !DataType.isDictionary(s) || sourceData.dictionary === undefined) {
        throw new Error("a dictionary column without its dictionary");
      }
      const values: ColumnType = { type: s.dictionary };
      if (!sameType(values, { type }) && !hasKernel(target, values)) {
        throw invalid(
          `Cast type ${pyarrowTypeName(type)} incompatible with dictionary type ${pyarrowTypeName(s.dictionary)}`,
        );
      }
      const taken = takenRows(sourceData, sourceData.dictionary);
      if (sameType(values, { type })) return numericColumn(type, taken, copyValue(type));
      return castRows(taken, null, values, target, type);
    }
    case "INT":
      if (target.kind === "int") return intToInt(rows, s as Int32, target, type);
      if (target.kind === "bool") return numberToBool(rows, s, type);
      return intToFloat(rows, s as Int32, target, type);
    case "HALF_FLOAT":
    case "FLOAT":
    case "DOUBLE": {
      const width = floatWidth(s as DataType & { precision: Precision });
      if (target.kind === "int") return floatToInt(rows, width, target, type);
      if (target.kind === "bool") return numberToBool(rows, s, type);
      return floatToFloat(rows, width, target, type);
    }
    case "BOOL":
      return boolToNumber(rows, target, type);
    case "BASE_BINARY":
    case "BINARY_VIEW":
      return parseToNumber(rows, target, type);
    case "DECIMAL":
      return decimalToNumber(rows, s as DataType & { bitWidth: number; scale: number }, target, type);
    case "DATE32":
    case "DATE64":
    case "TIME32":
    case "TIME64":
    case "TIMESTAMP":
    case "DURATION":
      if (sourceData !== null) return reinterpret(sourceData, type);
      return numericColumn(type, rows, (out, i, chunk, index) => setInt(out, i, readInt(chunk, index)));
    default:
      throw unsupported(source, target);
  }
}

/** Copies a value of `type` unchanged (a dictionary whose values already have the target type). */
function copyValue(type: DataType): (out: ArrayBufferView, i: number, chunk: Data, index: number) => void {
  if (DataType.isBool(type)) return (out, i, chunk, index) => setBit(out, i, readBool(chunk, index));
  if (DataType.isFloat(type)) {
    const kind = type.precision === Precision.HALF ? "half" : type.precision === Precision.SINGLE ? "float" : "double";
    return (out, i, chunk, index) => setFloat(out, i, kind, readFloatBits(chunk, index));
  }
  return (out, i, chunk, index) => setInt(out, i, readInt(chunk, index));
}

/** Whether this port casts to `type` (other targets accept only an equal type). */
export function castsTo(type: DataType): boolean {
  return targetOf(type) !== undefined;
}

/**
 * `Array.cast(to)` with pyarrow's safe defaults, for a column decoded from field `from`.
 *
 * @throws ArrowCastError with pyarrow's exception type and message when pyarrow refuses.
 * @throws UnsupportedTargetError when the types differ and this port has no cast to `to`.
 */
export function castColumn(data: Data, from: Field, to: DataType): Data {
  const source = columnTypeOf(from);
  if (sameType(source, { type: to })) return data;
  const target = targetOf(to);
  if (target === undefined) {
    throw new UnsupportedTargetError(
      `quiver casts exchange inputs to numbers, bool and null only; ${nameOf(source)} to ${pyarrowTypeName(to)} is refused`,
    );
  }
  return castRows(plainRows(data), data, source, target, to);
}
