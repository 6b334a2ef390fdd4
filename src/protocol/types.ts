/**
 * Arrow type specs: one value per wire type, carrying the Arrow `DataType`, its nullability, an
 * optional parameter default, and a codec between Arrow `Data` and plain JS values. Method
 * declarations are built from these, and handler parameter/result types are inferred from them.
 *
 * JS value mapping (chosen to be lossless):
 * - int8..int32, uint8..uint32, float16..float64 → `number`; int64, uint64 → `bigint`
 * - utf8, large_utf8 → `string`; binary, large_binary, fixed_size_binary → `Uint8Array`
 * - bool → `boolean`; date32 → `number` (days since the epoch)
 * - timestamp, time64, duration → `bigint` in the declared unit
 * - decimal128 → `bigint`, the unscaled integer (value × 10^scale)
 * - dictionary<int16, utf8> (enums) → `string`
 * - list<T> → `T[]`; map<K, V> → `Map<K, V>` (order kept); struct → a plain object
 * - nullable specs add `null`
 */
import {
  Binary,
  Bool,
  Data,
  DataType,
  DateDay,
  Decimal,
  Dictionary,
  DurationMicrosecond,
  Field,
  FixedSizeBinary,
  Float16,
  Float32,
  Float64,
  Int8,
  Int16,
  Int32,
  Int64,
  LargeBinary,
  LargeUtf8,
  List,
  Map_,
  makeBuilder,
  makeData,
  Precision,
  Struct,
  Time,
  Timestamp,
  TimeUnit,
  Type,
  Uint8,
  Uint16,
  Uint32,
  Uint64,
  Utf8,
  Vector,
} from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { smallArray, smallBytes } from "../wire/slab.js";

/** Converts between Arrow `Data` and JS values for one type. */
export interface Codec {
  /**
   * Reads the value at `index` as arrow-js indexes it: a slice's buffers start at its first value,
   * so `index` counts from there. Never called for nulls.
   */
  readonly get: (data: Data, index: number) => unknown;
  /** Builds Arrow data from JS values (`null`/`undefined` become nulls). */
  readonly build: (values: readonly unknown[]) => Data;
}

/**
 * A wire type plus the JS value it decodes to. `V` is phantom (covariant) so that a record of
 * specs can be constrained by `TypeSpec<unknown>` without `any`.
 */
export interface TypeSpec<V = unknown> {
  /** Phantom carrier of the decoded JS type; never set at run time. */
  readonly __value?: V;
  readonly arrowType: DataType;
  readonly nullable: boolean;
  readonly hasDefault: boolean;
  readonly defaultValue: unknown;
  readonly codec: Codec;
  /** The same type, nullable (`Optional[...]` in the reference). */
  optional(): TypeSpec<V | null>;
  /** The same type with an explicit top-level nullability. */
  withNullable(nullable: boolean): TypeSpec<V | null>;
  /** A parameter default: callers may omit the parameter and the handler receives `value`. */
  default(value: V): TypeSpec<V> & { readonly hasDefault: true };
}

/** The JS value a spec decodes to. */
export type ValueOf<S> = S extends TypeSpec<infer V> ? V : never;

/** A record of named specs: the shape of a parameter list, a row, a header. */
export type FieldSpecs = Readonly<Record<string, TypeSpec<unknown>>>;

/** The decoded row for a record of specs. */
export type RowOf<F extends FieldSpecs> = { -readonly [K in keyof F]: ValueOf<F[K]> };

function makeSpec<V>(
  arrowType: DataType,
  codec: Codec,
  nullable = false,
  hasDefault = false,
  defaultValue: unknown = undefined,
): TypeSpec<V> {
  return {
    arrowType,
    codec,
    nullable,
    hasDefault,
    defaultValue,
    optional() {
      return makeSpec<V | null>(arrowType, codec, true, hasDefault, defaultValue);
    },
    withNullable(n: boolean) {
      return makeSpec<V | null>(arrowType, codec, n, hasDefault, defaultValue);
    },
    default(value: V) {
      return makeSpec<V>(arrowType, codec, nullable, true, value) as TypeSpec<V> & { readonly hasDefault: true };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Codecs

/**
 * arrow-js's getter for `type`. 64-bit integers and doubles read their values array directly,
 * as its get visitor does for them, without the visitor's per-call type dispatch.
 */
function scalarGetter(type: DataType): Codec["get"] {
  // Each reads as arrow-js does for the data's own type (a peer may send another type than the
  // one declared), so anything but the fast path's own goes to the visitor.
  if (DataType.isInt(type) && type.bitWidth === 64) {
    return (data, index) =>
      data.type.typeId === Type.Int ? (data.values as BigInt64Array)[index] : getVisitor.visit(data, index);
  }
  if (DataType.isFloat(type) && type.precision === Precision.DOUBLE) {
    return (data, index) =>
      data.type.typeId === Type.Float && (data.type as Float64).precision !== Precision.HALF
        ? (data.values as Float64Array)[index]
        : getVisitor.visit(data, index);
  }
  return (data, index) => getVisitor.visit(data, index);
}

/** Scalar types whose arrow-js getter and builder are already exact. */
function builderCodec(type: DataType): Codec {
  return {
    get: scalarGetter(type),
    build: (values) => {
      const builder = makeBuilder({ type, nullValues: [null, undefined] });
      for (const v of values) builder.append(v);
      return builder.finish().flush();
    },
  };
}

function validityBitmap(values: readonly unknown[]): { bitmap: Uint8Array; nullCount: number } {
  const bitmap = new Uint8Array(((values.length + 63) >> 6) << 3);
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === null || values[i] === undefined) nullCount++;
    else bitmap[i >> 3]! |= 1 << (i & 7);
  }
  return { bitmap, nullCount };
}

/** Fixed-width values read and written as raw integers (temporal types). */
function rawBigIntCodec(type: DataType): Codec {
  return {
    get: (data, index) => (data.values as BigInt64Array)[index],
    build: (values) => {
      const out = new BigInt64Array(values.length);
      values.forEach((v, i) => {
        if (v !== null && v !== undefined) out[i] = BigInt(v as bigint);
      });
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({ type, length: values.length, nullCount, nullBitmap: bitmap, data: out } as never);
    },
  };
}

const utf8Encoder = new TextEncoder();

/** Keeps a leading U+FEFF: it is part of the value (arrow-js's getter drops it). */
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });

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

/** Strings shorter than this are checked for ASCII and copied by hand (TextEncoder costs more). */
const SHORT_STRING = 64;

/** `s` when it is short and all ASCII (its UTF-8 bytes are its char codes), else its UTF-8 bytes. */
function utf8Part(s: string): string | Uint8Array {
  if (s.length >= SHORT_STRING) return utf8Encoder.encode(s);
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return utf8Encoder.encode(s);
  return s;
}

/**
 * Variable-width binary and string columns, written straight into one values buffer and one
 * offsets buffer (the arrow-js builder is ~20x slower for strings and doubles its buffers, which
 * cannot reach multi-GiB values), and assembled into `Data` directly, as makeData would for these
 * buffers. A single binary value is used as is, without a copy; short ASCII strings are copied
 * char by char.
 */
function varBinaryCodec(type: DataType, large: boolean, strings: boolean): Codec {
  return {
    get: strings ? getUtf8 : builderCodec(type).get,
    build: (values) => {
      const n = values.length;
      const parts: Array<string | Uint8Array> = new Array(n);
      let total = 0;
      let nullCount = 0;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        let part: string | Uint8Array;
        if (v === null || v === undefined) {
          nullCount++;
          part = EMPTY_BYTES;
        } else if (strings) part = utf8Part(String(v));
        else if (v instanceof Uint8Array) part = v;
        else throw new TypeError(`expected a Uint8Array, got ${typeof v}`);
        parts[i] = part;
        total += typeof part === "string" ? part.length : part.byteLength;
      }
      if (!large && total > 0x7fffffff) {
        throw new RangeError(`${total} bytes exceed the 2 GiB offset range of ${String(type)}; use the large_ variant`);
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
      const bitmap = nullCount === 0 ? EMPTY_BYTES : validityBitmap(values).bitmap;
      return new Data(type, 0, n, nullCount, [offsets, data, bitmap]);
    },
  };
}

const EMPTY_BYTES = new Uint8Array(0);

const dateDayCodec: Codec = {
  get: (data, index) => (data.values as Int32Array)[index],
  build: (values) => {
    const out = new Int32Array(values.length);
    values.forEach((v, i) => {
      if (v !== null && v !== undefined) out[i] = Number(v);
    });
    const { bitmap, nullCount } = validityBitmap(values);
    return makeData({ type: new DateDay(), length: values.length, nullCount, nullBitmap: bitmap, data: out });
  },
};

function decimalCodec(type: Decimal): Codec {
  const words = type.bitWidth / 32;
  return {
    get: (data, index) => {
      const base = index * words;
      const w = data.values as Uint32Array;
      let v = 0n;
      for (let k = words - 1; k >= 0; k--) v = (v << 32n) | BigInt(w[base + k]!);
      return BigInt.asIntN(type.bitWidth, v);
    },
    build: (values) => {
      const out = new Uint32Array(values.length * words);
      values.forEach((raw, i) => {
        if (raw === null || raw === undefined) return;
        let v = BigInt.asUintN(type.bitWidth, BigInt(raw as bigint));
        for (let k = 0; k < words; k++) {
          out[i * words + k] = Number(v & 0xffffffffn);
          v >>= 32n;
        }
      });
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({ type, length: values.length, nullCount, nullBitmap: bitmap, data: out });
    },
  };
}

function isValid(data: Data, index: number): boolean {
  return data.getValid(index);
}

function listCodec(type: List, child: TypeSpec<unknown>): Codec {
  return {
    get: (data, index) => {
      const offsets = data.valueOffsets as Int32Array;
      const childData = data.children[0]!;
      const start = offsets[index]!;
      const end = offsets[index + 1]!;
      const out: unknown[] = [];
      for (let j = start; j < end; j++) {
        out.push(isValid(childData, j) ? child.codec.get(childData, j) : null);
      }
      return out;
    },
    build: (values) => {
      const offsets = new Int32Array(values.length + 1);
      const flat: unknown[] = [];
      values.forEach((v, i) => {
        if (v !== null && v !== undefined) for (const item of v as readonly unknown[]) flat.push(item);
        offsets[i + 1] = flat.length;
      });
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({
        type,
        length: values.length,
        nullCount,
        nullBitmap: bitmap,
        valueOffsets: offsets,
        child: child.codec.build(flat),
      });
    },
  };
}

function structCodec(type: Struct, fields: FieldSpecs): Codec {
  const names = Object.keys(fields);
  return {
    get: (data, index) => {
      const out: Record<string, unknown> = {};
      names.forEach((name, k) => {
        const childData = data.children[k]!;
        out[name] = isValid(childData, index) ? fields[name]!.codec.get(childData, index) : null;
      });
      return out;
    },
    build: (values) => {
      const children = names.map((name) =>
        fields[name]!.codec.build(
          values.map((v) => (v === null || v === undefined ? null : (v as Record<string, unknown>)[name])),
        ),
      );
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({ type, length: values.length, nullCount, nullBitmap: bitmap, children });
    },
  };
}

function mapCodec(type: Map_, key: TypeSpec<unknown>, value: TypeSpec<unknown>): Codec {
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
      const offsets = new Int32Array(values.length + 1);
      const ks: unknown[] = [];
      const vs: unknown[] = [];
      values.forEach((m, i) => {
        if (m !== null && m !== undefined) {
          const entries = m instanceof Map ? m.entries() : Object.entries(m as object);
          for (const [k, v] of entries) {
            ks.push(k);
            vs.push(v);
          }
        }
        offsets[i + 1] = ks.length;
      });
      const entriesType = type.children[0]!.type as Struct;
      const entries = makeData({
        type: entriesType,
        length: ks.length,
        nullCount: 0,
        children: [key.codec.build(ks), value.codec.build(vs)],
      });
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({
        type,
        length: values.length,
        nullCount,
        nullBitmap: bitmap,
        valueOffsets: offsets,
        child: entries,
      });
    },
  };
}

/** dictionary<int16, utf8>: enum members travel as their names; each build gets a fresh dictionary. */
function dictionaryCodec(type: Dictionary<Utf8, Int16>): Codec {
  return {
    get: (data, index) => {
      const key = (data.values as Int16Array)[index]!;
      return data.dictionary!.get(key);
    },
    build: (values) => {
      const members: string[] = [];
      const position = new Map<string, number>();
      const keys = new Int16Array(values.length);
      values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        const s = String(v);
        let k = position.get(s);
        if (k === undefined) {
          k = members.length;
          members.push(s);
          position.set(s, k);
        }
        keys[i] = k;
      });
      const dictionary = new Vector([varBinaryCodec(new Utf8(), false, true).build(members)]);
      const { bitmap, nullCount } = validityBitmap(values);
      return makeData({ type, length: values.length, nullCount, nullBitmap: bitmap, data: keys, dictionary } as never);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The DSL

function scalar<V>(type: DataType): TypeSpec<V> {
  return makeSpec<V>(type, builderCodec(type));
}

function varBinary<V>(type: DataType, large: boolean, strings: boolean): TypeSpec<V> {
  return makeSpec<V>(type, varBinaryCodec(type, large, strings));
}

/** Builds an Arrow field for a named spec (the top-level nullability comes from the spec). */
export function fieldOf(name: string, spec: TypeSpec<unknown>): Field {
  return new Field(name, spec.arrowType, spec.nullable);
}

/**
 * Type constructors. Every spec starts non-nullable (as the reference's plain annotations do);
 * `.optional()` makes it nullable.
 */
export const t = {
  bool: (): TypeSpec<boolean> => scalar(new Bool()),
  int8: (): TypeSpec<number> => scalar(new Int8()),
  int16: (): TypeSpec<number> => scalar(new Int16()),
  int32: (): TypeSpec<number> => scalar(new Int32()),
  int64: (): TypeSpec<bigint> => scalar(new Int64()),
  uint8: (): TypeSpec<number> => scalar(new Uint8()),
  uint16: (): TypeSpec<number> => scalar(new Uint16()),
  uint32: (): TypeSpec<number> => scalar(new Uint32()),
  uint64: (): TypeSpec<bigint> => scalar(new Uint64()),
  float16: (): TypeSpec<number> => scalar(new Float16()),
  float32: (): TypeSpec<number> => scalar(new Float32()),
  float64: (): TypeSpec<number> => scalar(new Float64()),
  utf8: (): TypeSpec<string> => varBinary(new Utf8(), false, true),
  largeUtf8: (): TypeSpec<string> => varBinary(new LargeUtf8(), true, true),
  binary: (): TypeSpec<Uint8Array> => varBinary(new Binary(), false, false),
  largeBinary: (): TypeSpec<Uint8Array> => varBinary(new LargeBinary(), true, false),
  fixedBinary: (byteWidth: number): TypeSpec<Uint8Array> => scalar(new FixedSizeBinary(byteWidth)),
  /** date32: days since the UNIX epoch. */
  date32: (): TypeSpec<number> => makeSpec(new DateDay(), dateDayCodec),
  /** timestamp[us] (naive) or timestamp[us, tz]: microseconds since the epoch. */
  timestampUs: (timezone?: string): TypeSpec<bigint> => {
    const type = new Timestamp(TimeUnit.MICROSECOND, timezone ?? null);
    return makeSpec(type, rawBigIntCodec(type));
  },
  /** time64[us]: microseconds since midnight. */
  time64Us: (): TypeSpec<bigint> => {
    const type = new Time(TimeUnit.MICROSECOND, 64);
    return makeSpec(type, rawBigIntCodec(type));
  },
  /** duration[us]: microseconds. */
  durationUs: (): TypeSpec<bigint> => {
    const type = new DurationMicrosecond();
    return makeSpec(type, rawBigIntCodec(type));
  },
  /** decimal128(precision, scale): the unscaled integer. */
  decimal128: (precision: number, scale: number): TypeSpec<bigint> => {
    const type = new Decimal(scale, precision, 128);
    return makeSpec(type, decimalCodec(type));
  },
  /** An enum: dictionary<int16, utf8> holding member names. */
  enumOf: <const M extends string>(..._members: readonly M[]): TypeSpec<M> => {
    const type = new Dictionary(new Utf8(), new Int16());
    return makeSpec(type, dictionaryCodec(type));
  },
  /** dictionary<int16, utf8>, for string columns sent dictionary-encoded. */
  dictUtf8: (): TypeSpec<string> => {
    const type = new Dictionary(new Utf8(), new Int16());
    return makeSpec(type, dictionaryCodec(type));
  },
  /** list<item: T>; the item field is nullable, as in the reference. */
  list: <V>(item: TypeSpec<V>): TypeSpec<V[]> => {
    const type = new List(new Field("item", item.arrowType, true));
    return makeSpec(type, listCodec(type, item));
  },
  /** map<key: K, value: V>; keys non-null, values nullable, entry order kept. */
  map: <K, V>(key: TypeSpec<K>, value: TypeSpec<V>): TypeSpec<Map<K, V>> => {
    const entries = new Struct([new Field("key", key.arrowType, false), new Field("value", value.arrowType, true)]);
    const type = new Map_(new Field("entries", entries, false));
    return makeSpec(type, mapCodec(type, key, value));
  },
  /** struct<...>: a plain object per row. */
  struct: <F extends FieldSpecs>(fields: F): TypeSpec<RowOf<F>> => {
    const type = new Struct(Object.entries(fields).map(([name, spec]) => fieldOf(name, spec)));
    return makeSpec(type, structCodec(type, fields));
  },
};
