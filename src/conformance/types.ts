/**
 * The conformance service's dataclasses (reference `vgi_rpc/conformance/_types.py`) as field
 * specs, and the codec for a dataclass carried as a parameter or result.
 *
 * On the wire a dataclass *parameter or result* is a `binary` value holding a complete Arrow IPC
 * stream (schema, one row, end-of-stream) whose schema is the dataclass's `ARROW_SCHEMA`; a
 * nested dataclass is a struct column and an enum a `dictionary<int16, utf8>` of member names.
 * A stream *header* is a plain one-row batch of that schema, which the declaration API builds
 * from a record of specs directly.
 *
 * Every enum-typed spec below is made by its own `status()` call: each dictionary type carries its
 * own IPC dictionary id, and two columns of one schema must not share an id.
 */
import { type RecordBatch, Table, tableToIPC } from "apache-arrow";
import { ValueError } from "../errors.js";
import { batchFromRows, rowsFromBatch } from "../protocol/batch.js";
import { type FieldSpecs, type RowOf, t } from "../protocol/types.js";
import { decodeStreamBytes } from "../wire/ipc.js";
import { compareCodePoints, pyStrListRepr } from "./pyrepr.js";

/** The reference's `Status` enum members, in declaration order. */
export const STATUS_MEMBERS = ["PENDING", "ACTIVE", "CLOSED"] as const;
export type Status = (typeof STATUS_MEMBERS)[number];

/** The reference enum's values (the legacy lowercase spelling it still accepts). */
const STATUS_VALUES: ReadonlyMap<string, Status> = new Map([
  ["pending", "PENDING"],
  ["active", "ACTIVE"],
  ["closed", "CLOSED"],
]);

/** A fresh `Status` spec: `dictionary<int16, utf8>` holding member names. */
export const status = () => t.enumOf(...STATUS_MEMBERS);

/** `KeyError`, as the reference raises for an enum name it cannot resolve. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

/**
 * Resolves a received enum string the way the reference deserializer does: by member name first,
 * then by (legacy, lowercase) member value.
 */
export function toStatus(value: string): Status {
  if ((STATUS_MEMBERS as readonly string[]).includes(value)) return value as Status;
  const byValue = STATUS_VALUES.get(value);
  if (byValue !== undefined) return byValue;
  throw new KeyError(`'${value}' is not a valid Status name or value`);
}

// ---------------------------------------------------------------------------------------------
// Dataclasses

export const PointFields = { x: t.float64(), y: t.float64() };
export type Point = RowOf<typeof PointFields>;
/** `Point` nested in another record: `struct<x: float64 not null, y: float64 not null>`. */
export const pointStruct = () => t.struct(PointFields);

export const BoundingBoxFields = {
  top_left: pointStruct(),
  bottom_right: pointStruct(),
  label: t.utf8(),
};

export const AllTypesFields = {
  str_field: t.utf8(),
  bytes_field: t.binary(),
  int_field: t.int64(),
  float_field: t.float64(),
  bool_field: t.bool(),
  list_of_int: t.list(t.int64()),
  list_of_str: t.list(t.utf8()),
  dict_field: t.map(t.utf8(), t.int64()),
  enum_field: status(),
  nested_point: pointStruct(),
  optional_str: t.utf8().optional(),
  optional_int: t.int64().optional(),
  optional_nested: pointStruct().optional(),
  list_of_nested: t.list(pointStruct()),
  annotated_int32: t.int32(),
  annotated_float32: t.float32(),
  nested_list: t.list(t.list(t.int64())),
  dict_str_str: t.map(t.utf8(), t.utf8()),
};

export const WideTypesFields = {
  int8_field: t.int8(),
  int16_field: t.int16(),
  int32_field: t.int32(),
  uint8_field: t.uint8(),
  uint16_field: t.uint16(),
  uint32_field: t.uint32(),
  uint64_field: t.uint64(),
  float32_field: t.float32(),
  date_field: t.date32(),
  timestamp_field: t.timestampUs(),
  timestamp_utc_field: t.timestampUs("UTC"),
  time_field: t.time64Us(),
  duration_field: t.durationUs(),
  decimal_field: t.decimal128(20, 4),
  large_string_field: t.largeUtf8(),
  large_binary_field: t.largeBinary(),
  fixed_binary_field: t.fixedBinary(8),
};

export const ContainerWideTypesFields = {
  list_decimal: t.list(t.decimal128(20, 4)),
  list_date: t.list(t.date32()),
  list_timestamp: t.list(t.timestampUs()),
  optional_date: t.date32().optional(),
  optional_decimal: t.decimal128(20, 4).optional(),
  optional_timestamp: t.timestampUs().optional(),
  dict_str_decimal: t.map(t.utf8(), t.decimal128(20, 4)),
  frozenset_int: t.list(t.int64()),
  list_optional_int: t.list(t.int64()),
};

/** `pa.RecordBatch` and `pa.Schema` fields travel as nested IPC bytes. */
export const EmbeddedArrowFields = { batch: t.binary(), schema: t.binary() };

export const DeepNestedFields = {
  list_of_lists_decimal: t.list(t.list(t.decimal128(20, 4))),
  optional_list_date: t.list(t.date32()).optional(),
  dict_encoded_string: t.dictUtf8(),
  list_of_dict_encoded: t.list(t.dictUtf8()),
};

export const NestedContainersFields = {
  statuses: t.list(status()),
  points: t.list(pointStruct()),
  status_by_name: t.map(t.utf8(), status()),
  frozen_statuses: t.list(status()),
  tagged_status: status().optional(),
  tagged_point: pointStruct().optional(),
  /** A `pa.RecordBatch` annotated `ArrowType(pa.binary())`: nested IPC bytes. */
  tagged_batch: t.binary().optional(),
};
export type NestedContainers = RowOf<typeof NestedContainersFields>;

/** Header of `produce_with_header`, `produce_with_header_and_logs`, `exchange_with_header`. */
export const ConformanceHeaderFields = { total_expected: t.int64(), description: t.utf8() };

/** Header of `produce_with_rich_header`, `produce_dynamic_schema`, `exchange_with_rich_header`. */
export const RichHeaderFields = {
  str_field: t.utf8(),
  bytes_field: t.binary(),
  int_field: t.int64(),
  float_field: t.float64(),
  bool_field: t.bool(),
  list_of_int: t.list(t.int64()),
  list_of_str: t.list(t.utf8()),
  dict_field: t.map(t.utf8(), t.int64()),
  enum_field: status(),
  nested_point: pointStruct(),
  optional_str: t.utf8().optional(),
  optional_int: t.int64().optional(),
  optional_nested: pointStruct().optional(),
  list_of_nested: t.list(pointStruct()),
  nested_list: t.list(t.list(t.int64())),
  annotated_int32: t.int32(),
  annotated_float32: t.float32(),
  dict_str_str: t.map(t.utf8(), t.utf8()),
};
export type RichHeader = RowOf<typeof RichHeaderFields>;

/** A dataclass: its Python class name (for error messages) and its fields in order. */
export interface Dataclass<F extends FieldSpecs> {
  readonly name: string;
  readonly fields: F;
}

export const DATACLASSES = {
  Point: { name: "Point", fields: PointFields },
  BoundingBox: { name: "BoundingBox", fields: BoundingBoxFields },
  AllTypes: { name: "AllTypes", fields: AllTypesFields },
  WideTypes: { name: "WideTypes", fields: WideTypesFields },
  ContainerWideTypes: { name: "ContainerWideTypes", fields: ContainerWideTypesFields },
  EmbeddedArrow: { name: "EmbeddedArrow", fields: EmbeddedArrowFields },
  DeepNested: { name: "DeepNested", fields: DeepNestedFields },
  NestedContainers: { name: "NestedContainers", fields: NestedContainersFields },
  ConformanceHeader: { name: "ConformanceHeader", fields: ConformanceHeaderFields },
  RichHeader: { name: "RichHeader", fields: RichHeaderFields },
} as const satisfies Readonly<Record<string, Dataclass<FieldSpecs>>>;

// ---------------------------------------------------------------------------------------------
// IPC codec

/** Serializes one batch as a complete IPC stream (schema, the batch, end-of-stream). */
export function recordBatchToIPC(batch: RecordBatch): Uint8Array {
  return tableToIPC(new Table(batch), "stream");
}

/** Serializes a dataclass value as the reference's `serialize_to_bytes()` does. */
export function encodeDataclass<F extends FieldSpecs>(cls: Dataclass<F>, value: RowOf<F>): Uint8Array {
  return recordBatchToIPC(batchFromRows(cls.fields, [value]));
}

function pyMissingArguments(cls: string, names: readonly string[]): string {
  const quoted = names.map((n) => `'${n}'`);
  const list =
    quoted.length === 1
      ? quoted[0]
      : quoted.length === 2
        ? `${quoted[0]} and ${quoted[1]}`
        : `${quoted.slice(0, -1).join(", ")}, and ${quoted[quoted.length - 1]}`;
  const noun = names.length === 1 ? "argument" : "arguments";
  return `${cls}.__init__() missing ${names.length} required positional ${noun}: ${list}`;
}

/**
 * Reads the single row of a dataclass IPC payload, checking it as the reference's
 * `deserialize_from_bytes` does: exactly one row, every field present (matched by name).
 * Returns the batch, so callers that only validate need not decode the values.
 */
export function dataclassBatch<F extends FieldSpecs>(cls: Dataclass<F>, bytes: Uint8Array): RecordBatch {
  const required = Object.keys(cls.fields);
  // An empty buffer, or a stream without batches, reads as an empty / zero-column batch there.
  const table = bytes.byteLength === 0 ? null : decodeStreamBytes(bytes, "dataclass payload");
  const batch = table?.batches[0] ?? null;
  const names = table?.schema.fields.map((f) => f.name) ?? [];
  if (names.length === 0) {
    // The reference reads an all-transient row and then fails constructing the class.
    throw new TypeError(pyMissingArguments(cls.name, required));
  }
  if (batch === null || batch.numRows === 0) {
    throw new ValueError(`Cannot deserialize ${cls.name} from empty RecordBatch`);
  }
  const numRows = batch.numRows;
  if (numRows > 1) {
    throw new ValueError(`Expected single-row RecordBatch for ${cls.name} deserialization, got ${numRows} rows`);
  }
  const missing = required.filter((name) => !names.includes(name));
  if (missing.length > 0) {
    const found = [...new Set(names)].sort(compareCodePoints);
    throw new ValueError(
      `Missing fields in ${cls.name} RecordBatch: ${pyStrListRepr(missing)}. Found: ${pyStrListRepr(found)}`,
    );
  }
  return batch;
}

/** Decodes a dataclass IPC payload into its row. */
export function decodeDataclass<F extends FieldSpecs>(cls: Dataclass<F>, bytes: Uint8Array): RowOf<F> {
  const batch = dataclassBatch(cls, bytes);
  const [row] = rowsFromBatch(cls.fields, batch);
  if (row === undefined) throw new ValueError(`Cannot deserialize ${cls.name} from empty RecordBatch`);
  return row;
}
