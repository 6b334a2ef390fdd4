/**
 * Arrow type specs: one value per wire type, carrying the Arrow `DataType`, its nullability, an
 * optional parameter default, and a codec between Arrow `Data` and plain JS values. Method
 * declarations are built from these, and handler parameter/result types are inferred from them.
 *
 * Every JS value is exact (the full table, with what each type refuses, is `docs/types.md`):
 * - int8..int32, uint8..uint32, float16..float64 → `number`; int64, uint64 → `bigint`
 * - utf8, large_utf8, utf8_view → `string`; binary, large_binary, binary_view, fixed_size_binary →
 *   `Uint8Array`; bool → `boolean`; null → `null`
 * - date32 → `number` (days since the epoch); date64 → `bigint` (milliseconds, whole days)
 * - timestamp, duration, time64 → `bigint` in the declared unit; time32 → `number` in its unit
 * - interval_months → `number`; interval_day_time → `{ days, milliseconds }`;
 *   interval_month_day_nano → `{ months, days, nanoseconds: bigint }`
 * - decimal128, decimal256 → `bigint`, the unscaled integer (value × 10^scale)
 * - dictionary<I, V> (enums included) → V's value
 * - list, large_list, fixed_size_list → arrays; map<K, V> → `Map<K, V>` (order kept);
 *   struct → a plain object; dense/sparse union → `{ tag, value }`
 * - nullable specs add `null`
 *
 * Building refuses any value outside its type's domain with an `InvalidValueError` (see
 * `codecs.ts`); types apache-arrow cannot carry (list views, run-end encoding) and types the
 * reference refuses (decimal32/64) are refused where they are declared.
 */
import {
  Binary,
  BinaryView,
  Bool,
  DataType,
  DateDay,
  DateMillisecond,
  Decimal,
  DenseUnion,
  Dictionary,
  Duration,
  Field,
  FixedSizeBinary,
  FixedSizeList,
  Float16,
  Float32,
  Float64,
  Int8,
  Int16,
  Int32,
  Int64,
  type Interval,
  IntervalDayTime,
  IntervalMonthDayNano,
  IntervalUnit,
  IntervalYearMonth,
  LargeBinary,
  LargeList,
  LargeUtf8,
  List,
  Map_,
  Null,
  Precision,
  SparseUnion,
  Struct,
  Time,
  Timestamp,
  TimeUnit,
  Type,
  Uint8,
  Uint16,
  Uint32,
  Uint64,
  type Union,
  Utf8,
  Utf8View,
} from "apache-arrow";
import { ValueError } from "../errors.js";
import {
  bigIntCodec,
  boolCodec,
  type ChildSpec,
  type Codec,
  dayTimeCodec,
  decimalCodec,
  dictionaryCodec,
  fixedBinaryCodec,
  fixedSizeListCodec,
  float64Codec,
  listCodec,
  mapCodec,
  monthDayNanoCodec,
  narrowFloatCodec,
  nullCodec,
  smallIntCodec,
  structCodec,
  unionCodec,
  varBinaryCodec,
  viewCodec,
} from "./codecs.js";
import { typeText, UnsupportedArrowTypeError } from "./type-tokens.js";

export type { Codec } from "./codecs.js";

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
  if (!nullable && DataType.isNull(arrowType)) {
    // The reference's words: a null-typed field holds nothing but nulls.
    throw new ValueError("A null type field may not be non-nullable");
  }
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
      // A default outside the type's domain is refused here, where it is declared.
      if (value !== null && value !== undefined) codec.build([value]);
      return makeSpec<V>(arrowType, codec, nullable, true, value) as TypeSpec<V> & { readonly hasDefault: true };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Specs for Arrow types

/** A time unit as Arrow names it. */
export type TimeUnitName = "s" | "ms" | "us" | "ns";

const UNITS: Readonly<Record<TimeUnitName, TimeUnit>> = {
  s: TimeUnit.SECOND,
  ms: TimeUnit.MILLISECOND,
  us: TimeUnit.MICROSECOND,
  ns: TimeUnit.NANOSECOND,
};

/** Units per day, by Arrow time unit (for the time-of-day domain). */
const PER_DAY: Readonly<Record<number, bigint>> = {
  [TimeUnit.SECOND]: 86_400n,
  [TimeUnit.MILLISECOND]: 86_400_000n,
  [TimeUnit.MICROSECOND]: 86_400_000_000n,
  [TimeUnit.NANOSECOND]: 86_400_000_000_000n,
};

function unitOf(unit: TimeUnitName, allowed: readonly TimeUnitName[], what: string): TimeUnit {
  if (!allowed.includes(unit)) {
    throw new TypeError(
      `${what} takes the unit ${allowed.map((u) => `"${u}"`).join(" or ")}, got ${JSON.stringify(unit)}`,
    );
  }
  return UNITS[unit];
}

/** A day-time interval: days and milliseconds (`interval_day_time`). */
export interface DayTime {
  readonly days: number;
  readonly milliseconds: number;
}

/** A calendar interval: months, days and nanoseconds (`interval_month_day_nano`, pyarrow's `MonthDayNano`). */
export interface MonthDayNano {
  readonly months: number;
  readonly days: number;
  readonly nanoseconds: bigint;
}

/** A union's value: which member (`tag`) and its value. */
export type UnionValue<F extends FieldSpecs> = {
  [K in keyof F & string]: { readonly tag: K; readonly value: ValueOf<F[K]> };
}[keyof F & string];

const INT_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  "8s": [-128, 127],
  "16s": [-32768, 32767],
  "32s": [-2147483648, 2147483647],
  "8u": [0, 255],
  "16u": [0, 65535],
  "32u": [0, 4294967295],
};

function unsupported(message: string): never {
  throw new UnsupportedArrowTypeError(message);
}

/** The codec of a type without children (none for a container). */
function leafCodec(type: DataType): Codec | null {
  switch (type.typeId) {
    case Type.Null:
      return nullCodec(type as Null);
    case Type.Bool:
      return boolCodec(type);
    case Type.Int: {
      const { bitWidth, isSigned } = type as DataType & { readonly bitWidth: number; readonly isSigned: boolean };
      if (bitWidth === 64) return bigIntCodec(type, !isSigned);
      const range = INT_RANGES[`${bitWidth}${isSigned ? "s" : "u"}`];
      if (range === undefined) return unsupported(`Arrow integers of ${bitWidth} bits have no JS value`);
      const array = (type as DataType & { readonly ArrayType: Parameters<typeof smallIntCodec>[1] }).ArrayType;
      return smallIntCodec(type, array, range[0], range[1]);
    }
    case Type.Float: {
      const precision = (type as Float64).precision;
      if (precision === Precision.DOUBLE) return float64Codec(type);
      return narrowFloatCodec(type, precision === Precision.HALF);
    }
    case Type.Utf8:
      return varBinaryCodec(type, false, true);
    case Type.LargeUtf8:
      return varBinaryCodec(type, true, true);
    case Type.Binary:
      return varBinaryCodec(type, false, false);
    case Type.LargeBinary:
      return varBinaryCodec(type, true, false);
    case Type.Utf8View:
      return viewCodec(type, true);
    case Type.BinaryView:
      return viewCodec(type, false);
    case Type.FixedSizeBinary:
      return fixedBinaryCodec(type as FixedSizeBinary);
    case Type.Date:
      return (type as DateDay).unit === 0
        ? smallIntCodec(type, Int32Array, -2147483648, 2147483647)
        : bigIntCodec(type, false, { step: 86_400_000n, what: "a whole number of days in milliseconds" });
    case Type.Time: {
      const time = type as Time;
      const day = PER_DAY[time.unit]!;
      if (time.bitWidth === 32) {
        return smallIntCodec(type, Int32Array, -2147483648, 2147483647, {
          lo: 0,
          hi: Number(day) - 1,
          what: "a time of day",
        });
      }
      return bigIntCodec(type, false, { lo: 0n, hi: day - 1n, what: "a time of day" });
    }
    case Type.Timestamp:
    case Type.Duration:
      return bigIntCodec(type, false);
    case Type.Interval: {
      const unit = (type as Interval).unit;
      if (unit === IntervalUnit.YEAR_MONTH) return smallIntCodec(type, Int32Array, -2147483648, 2147483647);
      if (unit === IntervalUnit.DAY_TIME) return dayTimeCodec(type);
      return monthDayNanoCodec(type);
    }
    case Type.Decimal: {
      const decimal = type as Decimal;
      checkDecimal(decimal.bitWidth, decimal.precision, decimal.scale);
      return decimalCodec(decimal);
    }
    default:
      return null;
  }
}

function checkDecimal(bitWidth: number, precision: number, scale: number): void {
  if (bitWidth === 32 || bitWidth === 64) {
    unsupported(
      `decimal${bitWidth}(${precision}, ${scale}) cannot be declared: the reference (vgi-rpc 0.52.2) has no ` +
        `canonical token for decimal${bitWidth}, so no vgi-rpc server can hash a protocol holding it (its ` +
        "RpcServer refuses the declaration too). Declare decimal128 or decimal256.",
    );
  }
  const most = bitWidth === 128 ? 38 : bitWidth === 256 ? 76 : 0;
  if (most === 0) unsupported(`decimal of ${bitWidth} bits does not exist`);
  if (!Number.isInteger(precision) || precision < 1 || precision > most) {
    throw new ValueError(`precision should be between 1 and ${most}, got ${precision}`);
  }
  if (!Number.isInteger(scale) || scale < -2147483648 || scale > 2147483647) {
    throw new ValueError(`scale must be a 32-bit integer, got ${scale}`);
  }
}

/** A spec for a child field: the child's type, nullable as the field is. */
function childOf(field: Field): TypeSpec<unknown> {
  return specOf(field.type, field.nullable);
}

/** The spec for any Arrow type apache-arrow can carry, nullable or not; its codec reads and writes `type` itself. */
function specOf(type: DataType, nullable: boolean): TypeSpec<unknown> {
  if (!DataType.isDataType(type)) throw new TypeError(`${String(type)} is not an Arrow type`);
  const leaf = leafCodec(type);
  if (leaf !== null) return makeSpec(type, leaf, nullable);
  switch (type.typeId) {
    case Type.List:
      return makeSpec(type, listCodec(type, childOf(type.children[0]!), false), nullable);
    case Type.LargeList:
      return makeSpec(type, listCodec(type, childOf(type.children[0]!), true), nullable);
    case Type.FixedSizeList:
      return makeSpec(type, fixedSizeListCodec(type as FixedSizeList, childOf(type.children[0]!)), nullable);
    case Type.Struct: {
      const fields = type.children as Field[];
      return makeSpec(
        type,
        structCodec(
          type as Struct,
          fields.map((f) => f.name),
          fields.map(childOf),
        ),
        nullable,
      );
    }
    case Type.Map: {
      const [key, value] = (type.children[0] as Field).type.children as Field[];
      return makeSpec(type, mapCodec(type as Map_, childOf(key!), childOf(value!), isString(key!.type)), nullable);
    }
    case Type.Union: {
      const union = type as Union;
      const members = (union.children as Field[]).map((f) => ({ name: f.name, ...asChild(childOf(f)) }));
      return makeSpec(type, unionCodec(union, members), nullable);
    }
    case Type.Dictionary: {
      const dictionary = type as Dictionary;
      checkDictionary(dictionary.dictionary, dictionary.indices);
      return makeSpec(type, dictionaryCodec(dictionary, specOf(dictionary.dictionary, true)), nullable);
    }
    default:
      return unsupported(
        `Arrow type ${String(type)} (type id ${String(type.typeId)}) cannot be declared: apache-arrow 21 cannot read ` +
          "or write its values (list views and run-end encoded arrays among them)",
      );
  }
}

function asChild(spec: TypeSpec<unknown>): ChildSpec {
  return { codec: spec.codec, nullable: spec.nullable };
}

function isString(type: DataType): boolean {
  return DataType.isUtf8(type) || DataType.isLargeUtf8(type) || DataType.isUtf8View(type);
}

function checkDictionary(value: DataType, index: DataType): void {
  if (!DataType.isInt(index))
    throw new TypeError(`The dictionary index type should be integer, got ${typeText(index)}`);
  if (DataType.isDictionary(value)) {
    unsupported("a dictionary of dictionary-encoded values cannot be declared: apache-arrow 21 cannot write it");
  }
}

// ---------------------------------------------------------------------------------------------
// The DSL

/** Builds an Arrow field for a named spec (the top-level nullability comes from the spec). */
export function fieldOf(name: string, spec: TypeSpec<unknown>): Field {
  return new Field(name, spec.arrowType, spec.nullable);
}

function leaf<V>(type: DataType): TypeSpec<V> {
  return makeSpec<V>(type, leafCodec(type)!);
}

/** A container spec: its codec reads and writes its children through the given child specs. */
function container<V>(type: DataType, codec: Codec): TypeSpec<V> {
  return makeSpec<V>(type, codec);
}

function refused(what: string, instead: string): never {
  return unsupported(`${what} cannot be declared: apache-arrow 21 cannot read or write it. ${instead}`);
}

/**
 * Type constructors. Every spec starts non-nullable (as the reference's plain annotations do);
 * `.optional()` makes it nullable.
 */
export const t = {
  /** null: a column of nulls (always nullable, as the reference requires). */
  null: (): TypeSpec<null> => makeSpec(new Null(), nullCodec(new Null()), true),
  bool: (): TypeSpec<boolean> => leaf(new Bool()),
  int8: (): TypeSpec<number> => leaf(new Int8()),
  int16: (): TypeSpec<number> => leaf(new Int16()),
  int32: (): TypeSpec<number> => leaf(new Int32()),
  int64: (): TypeSpec<bigint> => leaf(new Int64()),
  uint8: (): TypeSpec<number> => leaf(new Uint8()),
  uint16: (): TypeSpec<number> => leaf(new Uint16()),
  uint32: (): TypeSpec<number> => leaf(new Uint32()),
  uint64: (): TypeSpec<bigint> => leaf(new Uint64()),
  float16: (): TypeSpec<number> => leaf(new Float16()),
  float32: (): TypeSpec<number> => leaf(new Float32()),
  float64: (): TypeSpec<number> => leaf(new Float64()),
  utf8: (): TypeSpec<string> => leaf(new Utf8()),
  largeUtf8: (): TypeSpec<string> => leaf(new LargeUtf8()),
  /** utf8_view (pyarrow's `string_view`). */
  utf8View: (): TypeSpec<string> => leaf(new Utf8View()),
  binary: (): TypeSpec<Uint8Array> => leaf(new Binary()),
  largeBinary: (): TypeSpec<Uint8Array> => leaf(new LargeBinary()),
  binaryView: (): TypeSpec<Uint8Array> => leaf(new BinaryView()),
  fixedBinary: (byteWidth: number): TypeSpec<Uint8Array> => {
    if (!Number.isInteger(byteWidth) || byteWidth < 0 || byteWidth > 2147483647) {
      throw new ValueError(`fixed_size_binary byte width must be a non-negative 32-bit integer, got ${byteWidth}`);
    }
    return leaf(new FixedSizeBinary(byteWidth));
  },
  /** date32: days since the UNIX epoch. */
  date32: (): TypeSpec<number> => leaf(new DateDay()),
  /** date64: milliseconds since the UNIX epoch, a whole number of days (a multiple of 86 400 000). */
  date64: (): TypeSpec<bigint> => leaf(new DateMillisecond()),
  /** timestamp[unit] (naive) or timestamp[unit, tz]: units since the epoch. */
  timestamp: (unit: TimeUnitName, timezone?: string): TypeSpec<bigint> =>
    leaf(new Timestamp(unitOf(unit, ["s", "ms", "us", "ns"], "timestamp"), timezone ?? null)),
  /** timestamp[us] (naive) or timestamp[us, tz]: microseconds since the epoch. */
  timestampUs: (timezone?: string): TypeSpec<bigint> => leaf(new Timestamp(TimeUnit.MICROSECOND, timezone ?? null)),
  /** time32[s] or time32[ms]: seconds or milliseconds since midnight, less than a day. */
  time32: (unit: "s" | "ms"): TypeSpec<number> => leaf(new Time(unitOf(unit, ["s", "ms"], "time32"), 32)),
  /** time64[us] or time64[ns]: microseconds or nanoseconds since midnight, less than a day. */
  time64: (unit: "us" | "ns"): TypeSpec<bigint> => leaf(new Time(unitOf(unit, ["us", "ns"], "time64"), 64)),
  /** time64[us]: microseconds since midnight. */
  time64Us: (): TypeSpec<bigint> => leaf(new Time(TimeUnit.MICROSECOND, 64)),
  /** duration[unit]. */
  duration: (unit: TimeUnitName): TypeSpec<bigint> =>
    leaf(new Duration(unitOf(unit, ["s", "ms", "us", "ns"], "duration"))),
  /** duration[us]: microseconds. */
  durationUs: (): TypeSpec<bigint> => leaf(new Duration(TimeUnit.MICROSECOND)),
  /** month_interval (`interval_months`): a number of months. */
  intervalMonths: (): TypeSpec<number> => leaf(new IntervalYearMonth()),
  /** day_time_interval: days and milliseconds. */
  intervalDayTime: (): TypeSpec<DayTime> => leaf(new IntervalDayTime()),
  /** month_day_nano_interval: months, days and nanoseconds. */
  intervalMonthDayNano: (): TypeSpec<MonthDayNano> => leaf(new IntervalMonthDayNano()),
  /** decimal128(precision, scale), precision 1 to 38: the unscaled integer. */
  decimal128: (precision: number, scale: number): TypeSpec<bigint> => {
    checkDecimal(128, precision, scale);
    return leaf(new Decimal(scale, precision, 128));
  },
  /** decimal256(precision, scale), precision 1 to 76: the unscaled integer. */
  decimal256: (precision: number, scale: number): TypeSpec<bigint> => {
    checkDecimal(256, precision, scale);
    return leaf(new Decimal(scale, precision, 256));
  },
  /** Refused: the reference cannot hash a protocol holding decimal32 (use decimal128). */
  decimal32: (precision: number, scale: number): never => checkDecimal(32, precision, scale) as never,
  /** Refused: the reference cannot hash a protocol holding decimal64 (use decimal128). */
  decimal64: (precision: number, scale: number): never => checkDecimal(64, precision, scale) as never,
  /** An enum: dictionary<int16, utf8> holding member names; other strings are refused. */
  enumOf: <const M extends string>(...members: readonly M[]): TypeSpec<M> => {
    if (members.length === 0) throw new TypeError("enumOf() needs at least one member");
    const type = new Dictionary(new Utf8(), new Int16());
    return container(type, dictionaryCodec(type, asChild(t.utf8()), new Set(members)));
  },
  /** dictionary<int16, utf8>, for string columns sent dictionary-encoded. */
  dictUtf8: (): TypeSpec<string> => t.dictionary(t.utf8(), t.int16()),
  /**
   * dictionary<index, value>: values of any type sent dictionary-encoded (each batch carries the
   * distinct values, in first-seen order). `index` is an integer spec (default int32, as pyarrow's
   * `dictionary_encode`); more distinct values than it can address are refused.
   */
  dictionary: <V>(
    value: TypeSpec<V>,
    index: TypeSpec<number> | TypeSpec<bigint> = t.int32(),
    opts: { readonly ordered?: boolean } = {},
  ): TypeSpec<V> => {
    checkDictionary(value.arrowType, index.arrowType);
    const type = new Dictionary(value.arrowType, index.arrowType as Int32, null, opts.ordered ?? false);
    return container(type, dictionaryCodec(type, asChild(value)));
  },
  /** list<item: T>; the item field is nullable, as in the reference. */
  list: <V>(item: TypeSpec<V>): TypeSpec<V[]> => {
    const type = new List(new Field("item", item.arrowType, true));
    return container(type, listCodec(type, { codec: item.codec, nullable: true }, false));
  },
  /** large_list<item: T> (64-bit offsets); the item field is nullable. */
  largeList: <V>(item: TypeSpec<V>): TypeSpec<V[]> => {
    const type = new LargeList(new Field("item", item.arrowType, true));
    return container(type, listCodec(type, { codec: item.codec, nullable: true }, true));
  },
  /** fixed_size_list<item: T>[size]: arrays of exactly `size` items; the item field is nullable. */
  fixedSizeList: <V>(item: TypeSpec<V>, size: number): TypeSpec<V[]> => {
    if (!Number.isInteger(size) || size < 0 || size > 2147483647) {
      throw new ValueError(`fixed_size_list size must be a non-negative 32-bit integer, got ${size}`);
    }
    const type = new FixedSizeList(size, new Field("item", item.arrowType, true));
    return container(type, fixedSizeListCodec(type, { codec: item.codec, nullable: true }));
  },
  /** map<key: K, value: V>; keys non-null, values nullable, entry order kept. */
  map: <K, V>(key: TypeSpec<K>, value: TypeSpec<V>): TypeSpec<Map<K, V>> => {
    const entries = new Struct([new Field("key", key.arrowType, false), new Field("value", value.arrowType, true)]);
    const type = new Map_(new Field("entries", entries, false));
    return container(
      type,
      mapCodec(
        type,
        { codec: key.codec, nullable: false },
        { codec: value.codec, nullable: true },
        isString(key.arrowType),
      ),
    );
  },
  /** struct<...>: a plain object per row. */
  struct: <F extends FieldSpecs>(fields: F): TypeSpec<RowOf<F>> => {
    const entries = Object.entries(fields);
    const type = new Struct(entries.map(([name, spec]) => fieldOf(name, spec)));
    return container(
      type,
      structCodec(
        type,
        entries.map(([name]) => name),
        entries.map(([, spec]) => asChild(spec)),
      ),
    );
  },
  /**
   * dense_union<...>: `{ tag, value }`, one member per field (its nullability its spec's); type
   * codes 0..n-1 unless `typeIds` gives them (0 to 127).
   */
  denseUnion: <F extends FieldSpecs>(members: F, typeIds?: readonly number[]): TypeSpec<UnionValue<F>> =>
    unionSpec(members, typeIds, true),
  /** sparse_union<...>: as `denseUnion`, every member as long as the union. */
  sparseUnion: <F extends FieldSpecs>(members: F, typeIds?: readonly number[]): TypeSpec<UnionValue<F>> =>
    unionSpec(members, typeIds, false),
  /** Refused: apache-arrow 21 has no list views. */
  listView: (_item: TypeSpec<unknown>): never => refused("list_view", "Declare list<...> or large_list<...>."),
  /** Refused: apache-arrow 21 has no list views. */
  largeListView: (_item: TypeSpec<unknown>): never =>
    refused("large_list_view", "Declare large_list<...> or list<...>."),
  /** Refused: apache-arrow 21 has no run-end encoding. */
  runEndEncoded: (_runEnds: TypeSpec<unknown>, _values: TypeSpec<unknown>): never =>
    refused("run_end_encoded", "Declare the value type itself, or a dictionary of it."),
  /**
   * The spec for an Arrow type (as apache-arrow spells it, e.g. a field of a schema the other side
   * described), nullable unless told otherwise, with the value mapping above. A type apache-arrow
   * cannot carry, or decimal32/64, throws `UnsupportedArrowTypeError`.
   */
  fromArrow: (type: DataType, nullable = true): TypeSpec<unknown> => specOf(type, nullable),
};

function unionSpec<F extends FieldSpecs>(
  members: F,
  typeIds: readonly number[] | undefined,
  dense: boolean,
): TypeSpec<UnionValue<F>> {
  const entries = Object.entries(members);
  if (entries.length === 0) throw new TypeError("a union needs at least one member");
  const ids = typeIds ?? entries.map((_, i) => i);
  if (ids.length !== entries.length) {
    throw new TypeError(`a union of ${entries.length} members needs ${entries.length} type ids, got ${ids.length}`);
  }
  if (ids.some((id) => !Number.isInteger(id) || id < 0 || id > 127) || new Set(ids).size !== ids.length) {
    throw new TypeError(`union type ids must be distinct integers from 0 to 127, got ${ids.join(", ")}`);
  }
  const children = entries.map(([name, spec]) => fieldOf(name, spec));
  const type = dense ? new DenseUnion([...ids], children) : new SparseUnion([...ids], children);
  return container(
    type,
    unionCodec(
      type,
      entries.map(([name, spec]) => ({ name, codec: spec.codec, nullable: spec.nullable })),
    ),
  );
}
