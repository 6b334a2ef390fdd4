/**
 * Canonical text tokens for Arrow types, the vocabulary of the protocol-hash preimage.
 *
 * A port of the reference's `vgi_rpc/rpc/_type_tokens.py` (TYPE_TOKEN_VERSION 1). The hash is
 * taken over what Arrow *decodes to*, so every port must spell each type identically: lowercase
 * ASCII, parameters in parentheses, children in angle brackets as `name:token` (non-nullable) or
 * `name?:token` (nullable). List children are always spelled `item` and map children `key` /
 * `value` regardless of the field names on the wire (Arrow type equality ignores them); struct
 * and union child names, all child nullability and union type codes are kept. Decimal precision
 * and scale are folded into the token so the preimage never carries a JSON number.
 *
 * The function is total over what it recognises and throws {@link UnsupportedArrowTypeError}
 * otherwise — never falls back to an implementation-specific `toString()`.
 */
import {
  DataType,
  DateUnit,
  type Field,
  IntervalUnit,
  Precision,
  type Schema,
  TimeUnit,
  UnionMode,
} from "apache-arrow";

/** Bumped only when the spelling changes (which rotates every protocol hash). */
export const TYPE_TOKEN_VERSION = 1;

/** An Arrow type has no canonical token (mirrors the reference's `UnsupportedArrowTypeError`). */
export class UnsupportedArrowTypeError extends TypeError {
  override readonly name = "UnsupportedArrowTypeError";
}

/** One top-level schema field as it appears in the hash preimage. */
export interface FieldToken {
  readonly name: string;
  readonly nullable: boolean;
  readonly type: string;
}

/** The field metadata key naming an extension type. */
export const EXTENSION_NAME_KEY = "ARROW:extension:name";
/** The field metadata key carrying an extension type's serialized parameters. */
export const EXTENSION_METADATA_KEY = "ARROW:extension:metadata";

function unitToken(unit: TimeUnit): string {
  switch (unit) {
    case TimeUnit.SECOND:
      return "s";
    case TimeUnit.MILLISECOND:
      return "ms";
    case TimeUnit.MICROSECOND:
      return "us";
    case TimeUnit.NANOSECOND:
      return "ns";
    default:
      throw new UnsupportedArrowTypeError(`Unknown Arrow time unit ${String(unit)}.`);
  }
}

/**
 * The canonical extensions pyarrow recognises on IPC decode without any registration (checked
 * against pyarrow 26, the reference's pin). A field carrying one of these names — with a storage
 * type pyarrow accepts for it — decodes in the reference as an extension type and is spelled
 * `extension(name)<storage>`; any other extension name decodes there as its bare storage type,
 * so it is spelled as the storage type here too.
 */
export function isRecognisedExtension(name: string, storage: DataType): boolean {
  switch (name) {
    case "arrow.uuid":
      return DataType.isFixedSizeBinary(storage) && storage.byteWidth === 16;
    case "arrow.json":
      return DataType.isUtf8(storage) || DataType.isLargeUtf8(storage) || DataType.isUtf8View(storage);
    case "arrow.bool8":
      return DataType.isInt(storage) && storage.isSigned && storage.bitWidth === 8;
    case "arrow.fixed_shape_tensor":
      return DataType.isFixedSizeList(storage);
    case "arrow.variable_shape_tensor":
      return DataType.isStruct(storage);
    case "arrow.opaque":
      return true;
    default:
      return false;
  }
}

/** The token for a field's type, honouring a recognised canonical extension on the field. */
function fieldTypeToken(field: Field): string {
  const storage = typeToken(field.type);
  const extension = field.metadata.get(EXTENSION_NAME_KEY);
  if (extension !== undefined && isRecognisedExtension(extension, field.type)) {
    return `extension(${extension})<${storage}>`;
  }
  return storage;
}

/** A named child: `name:token` or `name?:token`. */
function child(field: Field): string {
  return `${field.name}${field.nullable ? "?" : ""}:${fieldTypeToken(field)}`;
}

/** A child whose name Arrow does not treat as part of the type, spelled with a fixed `name`. */
function anon(field: Field, name: string): string {
  return `${name}${field.nullable ? "?" : ""}:${fieldTypeToken(field)}`;
}

function onlyChild(type: DataType, what: string): Field {
  const first = type.children[0];
  if (first === undefined) throw new UnsupportedArrowTypeError(`Malformed Arrow ${what} type: it has no child field.`);
  return first;
}

/**
 * The canonical token for `type`.
 *
 * @throws UnsupportedArrowTypeError when the type has no canonical spelling (e.g. decimal32/64).
 */
export function typeToken(type: DataType): string {
  if (!DataType.isDataType(type)) {
    throw new UnsupportedArrowTypeError(`${String(type)} is not an Arrow type, so it has no canonical token.`);
  }
  if (DataType.isNull(type)) return "null";
  if (DataType.isBool(type)) return "bool";
  if (DataType.isInt(type)) {
    if (![8, 16, 32, 64].includes(type.bitWidth)) {
      throw new UnsupportedArrowTypeError(`Arrow integer type of bit width ${type.bitWidth} has no canonical token.`);
    }
    return `${type.isSigned ? "" : "u"}int${type.bitWidth}`;
  }
  if (DataType.isFloat(type)) {
    switch (type.precision) {
      case Precision.HALF:
        return "float16";
      case Precision.SINGLE:
        return "float32";
      case Precision.DOUBLE:
        return "float64";
      default:
        throw new UnsupportedArrowTypeError(`Arrow float precision ${String(type.precision)} has no canonical token.`);
    }
  }
  if (DataType.isUtf8(type)) return "utf8";
  if (DataType.isLargeUtf8(type)) return "large_utf8";
  if (DataType.isUtf8View(type)) return "utf8_view";
  if (DataType.isBinary(type)) return "binary";
  if (DataType.isLargeBinary(type)) return "large_binary";
  if (DataType.isBinaryView(type)) return "binary_view";
  if (DataType.isDate(type)) {
    switch (type.unit) {
      case DateUnit.DAY:
        return "date32";
      case DateUnit.MILLISECOND:
        return "date64";
      default:
        throw new UnsupportedArrowTypeError(`Arrow date unit ${String(type.unit)} has no canonical token.`);
    }
  }
  if (DataType.isInterval(type)) {
    switch (type.unit) {
      case IntervalUnit.YEAR_MONTH:
        return "interval_months";
      case IntervalUnit.DAY_TIME:
        return "interval_day_time";
      case IntervalUnit.MONTH_DAY_NANO:
        return "interval_month_day_nano";
      default:
        throw new UnsupportedArrowTypeError(`Arrow interval unit ${String(type.unit)} has no canonical token.`);
    }
  }
  if (DataType.isFixedSizeBinary(type)) return `fixed_size_binary(${type.byteWidth})`;
  if (DataType.isDecimal(type)) {
    if (type.bitWidth === 128 || type.bitWidth === 256) {
      return `decimal${type.bitWidth}(${type.precision},${type.scale})`;
    }
    throw new UnsupportedArrowTypeError(
      `Arrow type decimal${type.bitWidth}(${type.precision},${type.scale}) has no canonical token.`,
    );
  }
  if (DataType.isTime(type)) return `time${type.bitWidth}(${unitToken(type.unit)})`;
  if (DataType.isTimestamp(type)) {
    // The zone is carried verbatim: "UTC" and "+00:00" are distinct Arrow types. An empty zone
    // string is the same as no zone (that is how Arrow C++ reads it).
    const tz = type.timezone;
    const unit = unitToken(type.unit);
    return tz === null || tz === undefined || tz === "" ? `timestamp(${unit})` : `timestamp(${unit},tz=${tz})`;
  }
  if (DataType.isDuration(type)) return `duration(${unitToken(type.unit)})`;

  if (DataType.isFixedSizeList(type)) {
    return `fixed_size_list(${type.listSize})<${anon(onlyChild(type, "fixed_size_list"), "item")}>`;
  }
  if (DataType.isLargeList(type)) return `large_list<${anon(onlyChild(type, "large_list"), "item")}>`;
  if (DataType.isList(type)) return `list<${anon(onlyChild(type, "list"), "item")}>`;

  if (DataType.isMap(type)) {
    const entries = onlyChild(type, "map").type;
    const key = entries.children[0];
    const value = entries.children[1];
    if (!DataType.isStruct(entries) || key === undefined || value === undefined) {
      throw new UnsupportedArrowTypeError("Malformed Arrow map type: its entries are not a key/value struct.");
    }
    // keys_sorted is part of the type in Arrow, so it is part of the token.
    return `map<${anon(key, "key")},${anon(value, "value")}>${type.keysSorted ? ",keys_sorted" : ""}`;
  }

  if (DataType.isStruct(type)) return `struct<${type.children.map(child).join(",")}>`;

  if (DataType.isUnion(type)) {
    const kind = type.mode === UnionMode.Sparse ? "sparse_union" : "dense_union";
    const parts = type.children.map((f, i) => `${type.typeIds[i] ?? i}=${child(f)}`);
    return `${kind}<${parts.join(",")}>`;
  }

  if (DataType.isDictionary(type)) {
    const ordered = type.isOrdered ? ",ordered" : "";
    return `dictionary<index:${typeToken(type.indices)},value:${typeToken(type.dictionary)}>${ordered}`;
  }

  throw new UnsupportedArrowTypeError(
    `Arrow type ${String(type)} (type id ${String(type.typeId)}) has no canonical token. Add one to ` +
      "every port at the same time: a one-sided addition changes only that port's protocol hash.",
  );
}

/** `{name, nullable, type}` for one top-level field — strings and booleans only. */
export function fieldToken(field: Field): FieldToken {
  return { name: field.name, nullable: field.nullable, type: fieldTypeToken(field) };
}

/** A schema's fields in declaration order (which is significant). */
export function schemaTokens(schema: Schema): FieldToken[] {
  return schema.fields.map(fieldToken);
}

/** A type's token, or its arrow-js text for a type with no token (for messages and comparisons). */
export function typeText(type: DataType): string {
  try {
    return typeToken(type);
  } catch {
    return String(type);
  }
}
