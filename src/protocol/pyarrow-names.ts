/**
 * Arrow types and schemas spelled as pyarrow prints them (`str(pa.DataType)`, `str(pa.Schema)`),
 * for messages that must read byte for byte like the reference's: `double`, `date32[day]`,
 * `timestamp[ms, tz=UTC]`, `large_list<item: int8>`, `dictionary<values=string, indices=int16,
 * ordered=0>`, and a schema one field a line with its nested children and metadata.
 *
 * A port of Arrow C++'s `DataType::ToString` and `PrettyPrint(const Schema&)` with pyarrow's
 * defaults (`Schema.to_string()`: metadata truncated, field and schema metadata shown, each
 * written piece cut at 100 bytes). It describes a schema as pyarrow would see it after reading
 * the same IPC bytes: a recognised canonical extension (see `isRecognisedExtension`) prints as
 * the extension and its `ARROW:extension:*` keys leave the field metadata; map children are
 * always `entries`/`key`/`value`, as pyarrow's IPC reader renames them.
 *
 * Expectations come from the real pyarrow: test/fixtures/casts/type-names.json, written by
 * scripts/make-cast-fixtures.py.
 */
import {
  DataType,
  DateUnit,
  Field,
  IntervalUnit,
  Precision,
  type Schema,
  Struct,
  TimeUnit,
  UnionMode,
} from "apache-arrow";
import { EXTENSION_METADATA_KEY, EXTENSION_NAME_KEY, isRecognisedExtension } from "./type-tokens.js";

/** pyarrow's `PrettyPrintOptions.element_size_limit`: each written piece is cut at this many bytes. */
const ELEMENT_SIZE_LIMIT = 100;
/** `PrettyPrintOptions.indent_size`. */
const INDENT_SIZE = 2;

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is text here, never a byte-order mark to drop.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

function unitText(unit: TimeUnit): string {
  switch (unit) {
    case TimeUnit.SECOND:
      return "s";
    case TimeUnit.MILLISECOND:
      return "ms";
    case TimeUnit.MICROSECOND:
      return "us";
    default:
      return "ns";
  }
}

/** The recognised canonical extension a field carries, or undefined. */
function extensionOf(field: Field): string | undefined {
  const name = field.metadata.get(EXTENSION_NAME_KEY);
  return name !== undefined && isRecognisedExtension(name, field.type) ? name : undefined;
}

function jsonObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** `PrintVector{v, ","}`: `[2,3]`. */
function printVector(value: unknown): string {
  return Array.isArray(value) ? `[${value.map((v) => String(v)).join(",")}]` : "[]";
}

function tensorSuffix(meta: Record<string, unknown>): string {
  let out = "";
  if (Array.isArray(meta.permutation) && meta.permutation.length > 0)
    out += `, permutation=${printVector(meta.permutation)}`;
  if (Array.isArray(meta.dim_names) && meta.dim_names.length > 0) out += `, dim_names=[${meta.dim_names.join(",")}]`;
  return out;
}

/** `ExtensionType::ToString` for the canonical extensions pyarrow decodes. */
function extensionText(name: string, field: Field): string {
  const meta = jsonObject(field.metadata.get(EXTENSION_METADATA_KEY)) ?? {};
  const storage = field.type;
  switch (name) {
    case "arrow.opaque":
      return `extension<${name}[storage_type=${pyarrowTypeName(storage)}, type_name=${String(meta.type_name ?? "")}, vendor_name=${String(meta.vendor_name ?? "")}]>`;
    case "arrow.fixed_shape_tensor": {
      const value = storage.children[0];
      const valueType = value === undefined ? "" : pyarrowFieldTypeName(value);
      return `extension<${name}[value_type=${valueType}, shape=${printVector(meta.shape)}${tensorSuffix(meta)}]>`;
    }
    case "arrow.variable_shape_tensor": {
      const data = (storage.children ?? []).find((c: Field) => c.name === "data");
      const shape = (storage.children ?? []).find((c: Field) => c.name === "shape");
      const value = data?.type.children[0];
      const valueType = value === undefined ? "" : pyarrowFieldTypeName(value);
      const ndim = shape !== undefined && DataType.isFixedSizeList(shape.type) ? shape.type.listSize : 0;
      let out = `extension<${name}[value_type=${valueType}, ndim=${ndim}${tensorSuffix(meta)}`;
      if (Array.isArray(meta.uniform_shape) && meta.uniform_shape.length > 0) {
        out += `, uniform_shape=[${meta.uniform_shape.map((v) => (v === null ? "null" : String(v))).join(",")}]`;
      }
      return `${out}]>`;
    }
    default:
      return `extension<${name}>`;
  }
}

/** `Field::ToString()`: `name: type` plus ` not null`. */
function fieldText(field: Field): string {
  return `${field.name}: ${pyarrowFieldTypeName(field)}${field.nullable ? "" : " not null"}`;
}

/** The type of `field` as pyarrow prints it, honouring a canonical extension on the field. */
export function pyarrowFieldTypeName(field: Field): string {
  const extension = extensionOf(field);
  return extension === undefined ? pyarrowTypeName(field.type) : extensionText(extension, field);
}

/** `str(pa.DataType)` for an arrow-js type (no extension: see {@link pyarrowFieldTypeName}). */
export function pyarrowTypeName(type: DataType): string {
  if (DataType.isNull(type)) return "null";
  if (DataType.isBool(type)) return "bool";
  if (DataType.isInt(type)) return `${type.isSigned ? "" : "u"}int${type.bitWidth}`;
  if (DataType.isFloat(type)) {
    if (type.precision === Precision.HALF) return "halffloat";
    return type.precision === Precision.SINGLE ? "float" : "double";
  }
  if (DataType.isUtf8(type)) return "string";
  if (DataType.isLargeUtf8(type)) return "large_string";
  if (DataType.isUtf8View(type)) return "string_view";
  if (DataType.isBinary(type)) return "binary";
  if (DataType.isLargeBinary(type)) return "large_binary";
  if (DataType.isBinaryView(type)) return "binary_view";
  if (DataType.isFixedSizeBinary(type)) return `fixed_size_binary[${type.byteWidth}]`;
  if (DataType.isDate(type)) return type.unit === DateUnit.DAY ? "date32[day]" : "date64[ms]";
  if (DataType.isTime(type)) return `time${type.bitWidth}[${unitText(type.unit)}]`;
  if (DataType.isTimestamp(type)) {
    const tz = type.timezone;
    return tz === null || tz === undefined || tz === ""
      ? `timestamp[${unitText(type.unit)}]`
      : `timestamp[${unitText(type.unit)}, tz=${tz}]`;
  }
  if (DataType.isDuration(type)) return `duration[${unitText(type.unit)}]`;
  if (DataType.isInterval(type)) {
    switch (type.unit) {
      case IntervalUnit.YEAR_MONTH:
        return "month_interval";
      case IntervalUnit.DAY_TIME:
        return "day_time_interval";
      default:
        return "month_day_nano_interval";
    }
  }
  if (DataType.isDecimal(type)) return `decimal${type.bitWidth}(${type.precision}, ${type.scale})`;
  if (DataType.isFixedSizeList(type)) return `fixed_size_list<${childText(type, 0)}>[${type.listSize}]`;
  if (DataType.isLargeList(type)) return `large_list<${childText(type, 0)}>`;
  if (DataType.isList(type)) return `list<${childText(type, 0)}>`;
  if (DataType.isMap(type)) {
    const entries = type.children[0]?.type;
    const key = entries?.children[0];
    const value = entries?.children[1];
    const keyText = key === undefined ? "" : pyarrowFieldTypeName(key);
    const valueText = value === undefined ? "" : pyarrowFieldTypeName(value);
    return `map<${keyText}, ${valueText}${type.keysSorted ? ", keys_sorted" : ""}>`;
  }
  if (DataType.isStruct(type)) return `struct<${type.children.map(fieldText).join(", ")}>`;
  if (DataType.isUnion(type)) {
    const kind = type.mode === UnionMode.Sparse ? "sparse_union" : "dense_union";
    return `${kind}<${type.children.map((f, i) => `${fieldText(f)}=${type.typeIds[i] ?? i}`).join(", ")}>`;
  }
  if (DataType.isDictionary(type)) {
    return `dictionary<values=${pyarrowTypeName(type.dictionary)}, indices=${pyarrowTypeName(type.indices)}, ordered=${type.isOrdered ? 1 : 0}>`;
  }
  return String(type);
}

function childText(type: DataType, index: number): string {
  const child = type.children[index];
  return child === undefined ? "" : fieldText(child);
}

/**
 * The children pyarrow's schema printer lists under a field (`DataType::fields()`): a map's one
 * `entries` struct (non-null, `key` non-null), none for a dictionary or an extension.
 */
function printedChildren(field: Field): readonly Field[] {
  if (extensionOf(field) !== undefined) return [];
  const type = field.type;
  if (DataType.isDictionary(type)) return [];
  if (DataType.isMap(type)) {
    const entries = type.children[0];
    if (entries === undefined) return [];
    const [key, value] = entries.type.children;
    const renamed = [key?.clone({ name: "key" }), value?.clone({ name: "value" })].filter(
      (f): f is Field => f !== undefined,
    );
    return [new Field("entries", new Struct(renamed), false)];
  }
  return type.children ?? [];
}

/** Field metadata as pyarrow keeps it: a recognised extension's own keys are consumed. */
function shownMetadata(field: Field): ReadonlyMap<string, string> {
  if (extensionOf(field) === undefined) return field.metadata;
  const out = new Map(field.metadata);
  out.delete(EXTENSION_NAME_KEY);
  out.delete(EXTENSION_METADATA_KEY);
  return out;
}

/** Arrow C++'s SchemaPrinter with pyarrow's default options. */
class SchemaPrinter {
  private out = "";
  private indent = 0;

  /** `PrettyPrinter::Write`: each piece is cut at 100 bytes (of UTF-8), noting what was left out. */
  private write(text: string): void {
    const bytes = encoder.encode(text);
    if (bytes.byteLength <= ELEMENT_SIZE_LIMIT) {
      this.out += text;
      return;
    }
    this.out += `${decoder.decode(bytes.subarray(0, ELEMENT_SIZE_LIMIT))} (... ${bytes.byteLength - ELEMENT_SIZE_LIMIT} chars omitted)`;
  }

  private newline(): void {
    this.out += "\n";
  }

  private writeIndent(): void {
    this.out += " ".repeat(this.indent);
  }

  private metadata(title: string, metadata: ReadonlyMap<string, string>): void {
    if (metadata.size === 0) return;
    this.newline();
    this.writeIndent();
    this.write(title);
    for (const [key, value] of metadata) {
      this.newline();
      this.writeIndent();
      const keyBytes = encoder.encode(key).byteLength;
      const valueBytes = encoder.encode(value);
      // size_t arithmetic: a key longer than the line leaves the value uncut (the piece limit still applies).
      const room = 70 - keyBytes - this.indent;
      const cut = room < 0 ? Number.POSITIVE_INFINITY : Math.max(10, room);
      if (valueBytes.byteLength <= cut) {
        this.write(`${key}: '${value}'`);
      } else {
        const kept = decoder.decode(valueBytes.subarray(0, cut));
        this.write(`${key}: '${kept}' + ${valueBytes.byteLength - cut}`);
      }
    }
  }

  private type(field: Field): void {
    this.write(pyarrowFieldTypeName(field));
    if (!field.nullable) this.write(" not null");
    printedChildren(field).forEach((child, i) => {
      this.newline();
      this.writeIndent();
      this.indent += INDENT_SIZE;
      this.writeIndent();
      this.write(`child ${i}, `);
      this.field(child);
      this.indent -= INDENT_SIZE;
    });
  }

  field(field: Field): void {
    this.write(field.name);
    this.write(": ");
    this.type(field);
    this.indent += INDENT_SIZE;
    this.metadata("-- field metadata --", shownMetadata(field));
    this.indent -= INDENT_SIZE;
  }

  schema(schema: Schema): string {
    schema.fields.forEach((f, i) => {
      if (i > 0) this.newline();
      this.writeIndent();
      this.field(f);
    });
    this.metadata("-- schema metadata --", schema.metadata);
    return this.out;
  }
}

/** `str(pa.Schema)`: one field a line, nested children indented, metadata shown and truncated. */
export function pyarrowSchemaText(schema: Schema): string {
  return new SchemaPrinter().schema(schema);
}
