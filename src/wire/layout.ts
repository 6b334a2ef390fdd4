/**
 * Checks a record batch's field nodes and buffer regions against its schema and body before
 * anything loads it, as Arrow C++'s array validation does (not the full, per-value kind): as many
 * nodes and buffers as the schema's types need, every buffer inside the body and large enough for
 * its node's length, null counts within lengths, offsets that stay inside the values or child they
 * index (their first and last entries), children at least as long as their parents need, and top-level
 * columns as long as the batch. Pure: numbers and the body in, a `protocol_error` out.
 *
 * Types with no bytes per row (null, a struct or union without children, a batch without columns)
 * leave a row count unbounded by the body, so every length is also capped at 8 rows per body byte
 * plus `ROWS_WITHOUT_BYTES`: one small message cannot claim billions of rows for a reader to loop over.
 */
import { type DataType, type Dictionary, type Schema, Type } from "apache-arrow";
import { frameworkError, type RpcError } from "../errors.js";

/** Rows any node may claim beyond 8 per body byte (see the module comment). */
export const ROWS_WITHOUT_BYTES = 1 << 20;

/** What the checker needs to know of a type. */
type Layout =
  | { readonly kind: "null" }
  | { readonly kind: "fixed"; readonly bits: number }
  | { readonly kind: "binary"; readonly offsetBytes: 4 | 8 }
  | { readonly kind: "view" }
  | { readonly kind: "list"; readonly offsetBytes: 4 | 8; readonly child: Named }
  | { readonly kind: "fixedList"; readonly size: number; readonly child: Named }
  | { readonly kind: "struct"; readonly children: readonly Named[] }
  | {
      readonly kind: "union";
      readonly dense: boolean;
      readonly children: readonly Named[];
      /** Child index by type id (-1: not a type id of this union). */
      readonly childOf: Int8Array;
    };

interface Named {
  readonly name: string;
  readonly layout: Layout;
}

/** Bits per value of the fixed-width types (dictionary columns: their indices'). */
function fixedBits(type: DataType): number | null {
  switch (type.typeId) {
    case Type.Bool:
      return 1;
    case Type.Int:
    case Type.Time:
    case Type.Decimal:
      return (type as unknown as { bitWidth: number }).bitWidth;
    case Type.Float:
      return [16, 32, 64][(type as unknown as { precision: number }).precision] ?? null;
    case Type.Date:
      return (type as unknown as { unit: number }).unit === 0 ? 32 : 64;
    case Type.Timestamp:
    case Type.Duration:
      return 64;
    case Type.Interval:
      return [32, 64, 128][(type as unknown as { unit: number }).unit] ?? null;
    case Type.FixedSizeBinary:
      return (type as unknown as { byteWidth: number }).byteWidth * 8;
    case Type.Dictionary:
      return (type as Dictionary).indices.bitWidth;
    default:
      return null;
  }
}

const layouts = new WeakMap<DataType, Layout>();

function named(name: string, type: DataType): Named {
  return { name, layout: layoutOf(type) };
}

/** The layout of `type` (memoized: declared and decoded types are long-lived). */
export function layoutOf(type: DataType): Layout {
  let layout = layouts.get(type);
  if (layout !== undefined) return layout;
  const children = (type.children ?? []).map((f) => named(f.name, f.type));
  switch (type.typeId) {
    case Type.Null:
      layout = { kind: "null" };
      break;
    case Type.Utf8:
    case Type.Binary:
      layout = { kind: "binary", offsetBytes: 4 };
      break;
    case Type.LargeUtf8:
    case Type.LargeBinary:
      layout = { kind: "binary", offsetBytes: 8 };
      break;
    case Type.Utf8View:
    case Type.BinaryView:
      layout = { kind: "view" };
      break;
    case Type.List:
    case Type.Map:
      layout = { kind: "list", offsetBytes: 4, child: children[0] ?? missingChild(type) };
      break;
    case Type.LargeList:
      layout = { kind: "list", offsetBytes: 8, child: children[0] ?? missingChild(type) };
      break;
    case Type.FixedSizeList:
      layout = {
        kind: "fixedList",
        size: (type as unknown as { listSize: number }).listSize,
        child: children[0] ?? missingChild(type),
      };
      break;
    case Type.Struct:
      layout = { kind: "struct", children };
      break;
    case Type.Union:
    case Type.DenseUnion:
    case Type.SparseUnion: {
      const childOf = new Int8Array(128).fill(-1);
      Array.from((type as unknown as { typeIds: ArrayLike<number> }).typeIds).forEach((id, i) => {
        if (id >= 0 && id < 128) childOf[id] = i;
      });
      layout = { kind: "union", dense: (type as unknown as { mode: number }).mode === 1, children, childOf };
      break;
    }
    default: {
      const bits = fixedBits(type);
      if (bits === null) throw frameworkError("protocol_error", `Arrow type ${type} cannot be read`);
      layout = { kind: "fixed", bits };
    }
  }
  layouts.set(type, layout);
  return layout;
}

function missingChild(type: DataType): never {
  throw frameworkError("protocol_error", `Arrow type ${type} has no child type`);
}

/** A batch header as plain numbers: (length, nullCount) and (offset, length) pairs. */
export interface BatchLayout {
  readonly rows: number;
  readonly nodes: readonly number[];
  readonly regions: readonly number[];
  /** Buffers of each view column, in order (none without view columns). */
  readonly variadicCounts?: readonly number[];
}

function bad(what: string, why: string): RpcError {
  return frameworkError("protocol_error", `malformed Arrow record batch: ${what}: ${why}`);
}

/**
 * Walks nodes and regions in the order arrow-js's VectorLoader reads them. Small calls check a
 * batch per message, so the walk allocates nothing: the last node and buffer read are kept in
 * fields, and the field's name is put into words only when something is wrong.
 */
class Checker {
  private node = 0;
  private region = 0;
  private variadic = 0;
  private view: DataView | null = null;
  /** The top-level column being checked (for messages). */
  private top: Named | null = null;
  /** The last node read: its length and null count. */
  private length = 0;
  private nulls = 0;
  /** The last buffer read: its offset in the body. */
  private at = 0;
  readonly maxRows: number;

  constructor(
    private readonly batch: BatchLayout,
    private readonly body: Uint8Array,
    private readonly unionValidity: boolean,
  ) {
    this.maxRows = 8 * body.byteLength + ROWS_WITHOUT_BYTES;
  }

  private bad(field: Named, why: string): RpcError {
    const top = this.top;
    const what =
      top === null || top === field ? `column '${field.name}'` : `column '${top.name}', field '${field.name}'`;
    return bad(what, why);
  }

  /** Reads the next field node into `length` and `nulls`. */
  private nextNode(field: Named): void {
    const { nodes } = this.batch;
    if (this.node + 1 >= nodes.length) throw this.bad(field, "the batch has fewer field nodes than the schema needs");
    const length = nodes[this.node]!;
    const nulls = nodes[this.node + 1]!;
    this.node += 2;
    if (length > this.maxRows) {
      throw this.bad(field, `${length} rows claimed in a body of ${this.body.byteLength} bytes`);
    }
    if (nulls > length) throw this.bad(field, `a null count of ${nulls} exceeds the length ${length}`);
    this.length = length;
    this.nulls = nulls;
  }

  /** Reads the next buffer region's offset into `at`, checked to lie in the body and hold `min` bytes. */
  private nextBuffer(field: Named, min: number): void {
    const { regions } = this.batch;
    if (this.region + 1 >= regions.length) throw this.bad(field, "the batch has fewer buffers than the schema needs");
    const offset = regions[this.region]!;
    const size = regions[this.region + 1]!;
    this.region += 2;
    if (offset + size > this.body.byteLength) {
      throw this.bad(
        field,
        `a buffer of ${size} bytes at ${offset} runs past the body's ${this.body.byteLength} bytes`,
      );
    }
    if (size < min) throw this.bad(field, `a buffer of ${size} bytes where ${min} are needed`);
    this.at = offset;
  }

  private validity(field: Named, length: number, nulls: number): void {
    this.nextBuffer(field, nulls > 0 ? Math.ceil(length / 8) : 0);
  }

  /** Offset `i` of the offsets buffer at `at` (4 or 8 bytes each). */
  private offset(field: Named, at: number, i: number, bytes: 4 | 8): number {
    this.view ??= new DataView(this.body.buffer, this.body.byteOffset, this.body.byteLength);
    if (bytes === 4) return this.view.getInt32(at + i * 4, true);
    const hi = this.view.getInt32(at + i * 8 + 4, true);
    if (hi < -0x200000 || hi >= 0x200000) throw this.bad(field, "an offset does not fit in 53 bits");
    return hi * 4294967296 + this.view.getUint32(at + i * 8, true);
  }

  /**
   * The offsets buffer of `length` entries (plus one); returns its last entry, which must not
   * exceed `limit` when given (a values buffer's size), or 0 when the column is empty. With
   * `every`, each entry must also be at least the one before (see below).
   */
  private offsets(field: Named, length: number, bytes: 4 | 8, limit: number | null, every: boolean): number {
    this.nextBuffer(field, length === 0 ? 0 : (length + 1) * bytes);
    if (length === 0) return 0;
    const at = this.at;
    const first = this.offset(field, at, 0, bytes);
    const last = this.offset(field, at, length, bytes);
    if (first < 0 || last < first) throw this.bad(field, `offsets run from ${first} to ${last}`);
    if (limit !== null && last > limit) {
      throw this.bad(field, `offsets end at ${last}, past the ${limit} bytes of values`);
    }
    // A string or binary value between offsets out of order or out of range reads as a clamped
    // (empty) view, so only the ends matter there. A list's child is sliced between them, and a
    // slice outside the child throws when read; 64-bit offsets past 2^53 throw when converted. So
    // lists and 64-bit offsets are checked entry by entry (one comparison per row).
    if (every || bytes === 8) {
      let previous = first;
      for (let i = 1; i <= length; i++) {
        const o = this.offset(field, at, i, bytes);
        if (o < previous || o > last)
          throw this.bad(field, `offset ${i} is ${o}, after ${previous} and before ${last}`);
        previous = o;
      }
    }
    return last;
  }

  /** Checks one top-level column (and its children); returns its length. */
  topColumn(field: Named): number {
    this.top = field;
    return this.column(field);
  }

  /** Checks one column (and its children); returns its length. */
  private column(field: Named): number {
    const layout = field.layout;
    this.nextNode(field);
    const length = this.length;
    const nulls = this.nulls;
    switch (layout.kind) {
      case "null":
        break;
      case "fixed":
        this.validity(field, length, nulls);
        this.nextBuffer(field, Math.ceil((length * layout.bits) / 8));
        break;
      case "binary": {
        this.validity(field, length, nulls);
        const { regions } = this.batch;
        // The values buffer follows the offsets: its size bounds the last offset.
        const valuesAt = this.region + 2;
        const valuesSize = valuesAt + 1 < regions.length ? regions[valuesAt + 1]! : 0;
        this.offsets(field, length, layout.offsetBytes, valuesSize, false);
        this.nextBuffer(field, 0);
        break;
      }
      case "view": {
        this.validity(field, length, nulls);
        this.nextBuffer(field, length * 16);
        const count = this.batch.variadicCounts?.[this.variadic++] ?? 0;
        for (let i = 0; i < count; i++) this.nextBuffer(field, 0);
        break;
      }
      case "list": {
        this.validity(field, length, nulls);
        const last = this.offsets(field, length, layout.offsetBytes, null, true);
        const childLength = this.column(layout.child);
        if (last > childLength) throw this.bad(field, `offsets end at ${last}, past the child's ${childLength} values`);
        break;
      }
      case "fixedList": {
        this.validity(field, length, nulls);
        const childLength = this.column(layout.child);
        if (childLength < length * layout.size) {
          throw this.bad(
            field,
            `${length} lists of ${layout.size} need ${length * layout.size} child values, not ${childLength}`,
          );
        }
        break;
      }
      case "struct":
        this.validity(field, length, nulls);
        for (const child of layout.children) {
          const childLength = this.column(child);
          if (childLength < length) {
            throw this.bad(field, `child '${child.name}' has ${childLength} rows, fewer than ${length}`);
          }
        }
        break;
      case "union": {
        if (this.unionValidity) this.validity(field, length, nulls);
        this.nextBuffer(field, length);
        const ids = this.at;
        let offsets = 0;
        if (layout.dense) {
          this.nextBuffer(field, length * 4);
          offsets = this.at;
        }
        const lengths = layout.children.map((child) => this.column(child));
        this.unionValues(field, layout, length, ids, offsets, lengths);
        break;
      }
    }
    return length;
  }

  /**
   * Every type id names a child, and (dense) every offset lies in its child, (sparse) every child
   * is as long as the union: the only check that reads every value, since a union that breaks it
   * cannot be read at all (arrow-js throws on the row). Unions are rare and the loop is cheap.
   */
  private unionValues(
    field: Named,
    layout: Extract<Layout, { kind: "union" }>,
    length: number,
    ids: number,
    offsets: number,
    lengths: readonly number[],
  ): void {
    this.view ??= new DataView(this.body.buffer, this.body.byteOffset, this.body.byteLength);
    const view = this.view;
    if (!layout.dense) {
      lengths.forEach((n, i) => {
        if (n < length)
          throw this.bad(field, `child '${layout.children[i]!.name}' has ${n} rows, fewer than ${length}`);
      });
    }
    for (let i = 0; i < length; i++) {
      const id = view.getInt8(ids + i);
      const child = id < 0 ? -1 : layout.childOf[id]!;
      if (child < 0) throw this.bad(field, `row ${i} has type id ${id}, which the union does not declare`);
      if (layout.dense) {
        const at = view.getInt32(offsets + i * 4, true);
        if (at < 0 || at >= lengths[child]!) {
          throw this.bad(field, `row ${i} points at value ${at} of a child of ${lengths[child]}`);
        }
      }
    }
  }

  /** After the columns: nothing may be left over. */
  finish(): void {
    const { nodes, regions } = this.batch;
    if (this.node !== nodes.length) {
      throw bad("the batch", `${nodes.length / 2} field nodes where the schema has ${this.node / 2}`);
    }
    if (this.region !== regions.length) {
      throw bad("the batch", `${regions.length / 2} buffers where the schema needs ${this.region / 2}`);
    }
  }
}

const columnsOf = new WeakMap<Schema, readonly Named[]>();

function columns(schema: Schema): readonly Named[] {
  let out = columnsOf.get(schema);
  if (out === undefined) {
    out = schema.fields.map((f) => named(f.name, f.type));
    columnsOf.set(schema, out);
  }
  return out;
}

/**
 * Checks a record batch of `schema` (see the module comment). `unionValidity`: the message is of
 * metadata version V4, whose unions carry a validity buffer.
 */
export function checkRecordBatch(schema: Schema, batch: BatchLayout, body: Uint8Array, unionValidity = false): void {
  const c = new Checker(batch, body, unionValidity);
  if (batch.rows > c.maxRows)
    throw bad("the batch", `${batch.rows} rows claimed in a body of ${body.byteLength} bytes`);
  for (const column of columns(schema)) {
    const length = c.topColumn(column);
    if (length !== batch.rows) {
      throw bad(`column '${column.name}'`, `${length} rows in a batch of ${batch.rows}`);
    }
  }
  c.finish();
}

/** Checks a dictionary batch whose values are of `type` (one column, as long as the batch). */
export function checkDictionaryBatch(
  type: DataType,
  batch: BatchLayout,
  body: Uint8Array,
  unionValidity = false,
): void {
  const c = new Checker(batch, body, unionValidity);
  if (batch.rows > c.maxRows)
    throw bad("the dictionary", `${batch.rows} rows claimed in a body of ${body.byteLength} bytes`);
  const length = c.topColumn(named("dictionary", type));
  if (length !== batch.rows) throw bad("the dictionary", `${length} values in a batch of ${batch.rows}`);
  c.finish();
}
