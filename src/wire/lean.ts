/**
 * The small-batch fast path of the IPC codec: record-batch messages of flat columns (fixed-width,
 * bool, utf8 and binary) written and read without arrow-js's visitors, its flatbuffer builder
 * (a fresh 1 KiB buffer and BigInts per message) or its message objects. A unary call is two such
 * messages, and those costs were most of its Arrow work.
 *
 * The encoder replays the exact sequence of builder operations arrow-js's `Message.encode` makes
 * for a record batch (same alignment rule, same vtable sharing), so its bytes are identical to the
 * general encoder's; test/wire/lean.test.ts asserts that over many schemas and values. Anything
 * outside the fast path's shapes returns null and goes the general way.
 */
import { Data, DataType, type RecordBatch, type Schema, Struct, Type } from "apache-arrow";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { MetadataVersion } from "apache-arrow/fb/metadata-version";
import { BufferRegion, FieldNode, Message, RecordBatch as RecordBatchHeader } from "apache-arrow/ipc/metadata/message";
import { STRUCT_BUFFERS } from "./batches.js";
import { smallBytes } from "./slab.js";

// ---------------------------------------------------------------------------------------------
// A minimal flatbuffer builder: writes back to front into one reused buffer, like flatbuffers'
// Builder, whose alignment depends only on the bytes written so far (not on the buffer's size).

let buf = new Uint8Array(4096);
let view = new DataView(buf.buffer);
/** Bytes written so far (they occupy the last `used` bytes of `buf`). */
let used = 0;
let minAlign = 1;
/** vtable positions (as `used` offsets) written in the current message, for sharing. */
const vtables: number[] = [];
/** Field slots of the open table: `used` offset of each field, 0 when absent. */
const slots: number[] = [0, 0, 0, 0, 0];
let slotCount = 0;
let objectStart = 0;

function reset(): void {
  used = 0;
  minAlign = 1;
  vtables.length = 0;
  int64Writes.length = 0;
}

function grow(need: number): void {
  let size = buf.byteLength;
  while (size < used + need) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(buf.byteLength - used), size - used);
  buf = next;
  view = new DataView(buf.buffer);
}

/** Aligns so that `size`-byte data is aligned after `additional` more bytes are written. */
function prep(size: number, additional: number): void {
  if (size > minAlign) minAlign = size;
  const alignSize = (~(used + additional) + 1) & (size - 1);
  if (buf.byteLength < used + alignSize + size + additional) grow(alignSize + size + additional);
  for (let i = 0; i < alignSize; i++) buf[buf.byteLength - ++used] = 0;
}

/** Position in `buf` of the byte `used` bytes from the end. */
function at(offset: number): number {
  return buf.byteLength - offset;
}

function writeInt16(v: number): void {
  used += 2;
  view.setInt16(at(used), v, true);
}
function writeInt32(v: number): void {
  used += 4;
  view.setInt32(at(used), v, true);
}
/** `used` after each int64 write of the message being built (the values a template patches). */
const int64Writes: number[] = [];

/** A non-negative integer below 2^53 as a little-endian int64. */
function writeInt64(v: number): void {
  used += 8;
  int64Writes.push(used);
  const p = at(used);
  view.setUint32(p, v >>> 0, true);
  view.setUint32(p + 4, Math.floor(v / 4294967296), true);
}
function addInt16(v: number): void {
  prep(2, 0);
  writeInt16(v);
}
function addInt32(v: number): void {
  prep(4, 0);
  writeInt32(v);
}
function addOffset(offset: number): void {
  prep(4, 0);
  writeInt32(used - offset + 4);
}

function startObject(fields: number): void {
  slotCount = fields;
  for (let i = 0; i < fields; i++) slots[i] = 0;
  objectStart = used;
}

function slot(field: number): void {
  slots[field] = used;
}

function endObject(): number {
  addInt32(0);
  const tableAt = used;
  let last = slotCount - 1;
  while (last >= 0 && slots[last] === 0) last--;
  const trimmed = last + 1;
  for (let i = last; i >= 0; i--) addInt16(slots[i] !== 0 ? tableAt - slots[i]! : 0);
  addInt16(tableAt - objectStart);
  const len = (trimmed + 2) * 2;
  addInt16(len);
  // Share an identical vtable written before, as flatbuffers does (the output must match it).
  const mine = at(used);
  let existing = 0;
  outer: for (const other of vtables) {
    const theirs = at(other);
    if (view.getInt16(theirs, true) !== len) continue;
    for (let j = 2; j < len; j += 2) {
      if (view.getInt16(mine + j, true) !== view.getInt16(theirs + j, true)) continue outer;
    }
    existing = other;
    break;
  }
  if (existing !== 0) {
    used = tableAt;
    view.setInt32(at(used), existing - tableAt, true);
  } else {
    vtables.push(used);
    view.setInt32(at(tableAt), used - tableAt, true);
  }
  return tableAt;
}

function startVector(elemSize: number, count: number, alignment: number): void {
  prep(4, elemSize * count);
  prep(alignment, elemSize * count);
}

function endVector(count: number): number {
  writeInt32(count);
  return used;
}

const textEncoder = new TextEncoder();

/** flatbuffers' `createString`: NUL-terminated UTF-8 bytes after a length. */
function createString(s: string): number {
  prep(1, 0);
  buf[at(++used)] = 0;
  let n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  let bytes: Uint8Array | null = null;
  if (!ascii) {
    bytes = textEncoder.encode(s);
    n = bytes.byteLength;
  }
  startVector(1, n, 1);
  used += n;
  const p = at(used);
  if (bytes !== null) buf.set(bytes, p);
  else for (let i = 0; i < n; i++) buf[p + i] = s.charCodeAt(i);
  return endVector(n);
}

/** A FieldNode or Buffer struct: two int64s, the second field first (back to front). */
function addStruct16(first: number, second: number): void {
  prep(8, 16);
  writeInt64(second);
  writeInt64(first);
}

// ---------------------------------------------------------------------------------------------
// Record-batch messages

enum Header {
  RecordBatch = 3,
}
const METADATA_V5 = 4;

/** Types whose body is one values buffer sliced to `length * stride` (arrow-js's flat vectors). */
function isFlat(typeId: Type): boolean {
  switch (typeId) {
    case Type.Int:
    case Type.Float:
    case Type.Date:
    case Type.Timestamp:
    case Type.Time:
    case Type.Decimal:
    case Type.Interval:
    case Type.Duration:
    case Type.FixedSizeBinary:
      return true;
    default:
      return false;
  }
}

/** A message and the body buffers (unpadded) the fast path found for a batch. */
interface Plan {
  readonly nodes: number[];
  readonly buffers: Uint8Array[];
}

const EMPTY = new Uint8Array(0);

/**
 * The field nodes and body buffers of `batch`, in arrow-js's order, or null when a column is not
 * of a fast-path shape (nested, dictionary, view, large offsets, sliced).
 */
function plan(batch: RecordBatch): Plan | null {
  const nodes: number[] = [];
  const buffers: Uint8Array[] = [];
  for (const data of batch.data.children as Data[]) {
    const typeId = data.type.typeId;
    const { length } = data;
    if (data.offset !== 0 || DataType.isDictionary(data.type)) return null;
    const nullCount = data.nullCount;
    let validity: Uint8Array = EMPTY;
    if (nullCount > 0) {
      const bitmap = data.nullBitmap;
      if (bitmap === undefined) return null;
      validity = bitmap;
    }
    if (isFlat(typeId)) {
      const values = data.values as ArrayLike<unknown> & { subarray(a: number, b: number): ArrayBufferView };
      if (values === undefined) return null;
      const v = values.subarray(0, length * data.stride);
      buffers.push(validity, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (typeId === Type.Utf8 || typeId === Type.Binary) {
      const offsets = data.valueOffsets as Int32Array | undefined;
      const values = data.values as Uint8Array | undefined;
      if (offsets === undefined || values === undefined || offsets[0] !== 0) return null;
      const end = offsets[length]!;
      const o = offsets.subarray(0, length + 1);
      buffers.push(
        validity,
        new Uint8Array(o.buffer, o.byteOffset, o.byteLength),
        values.subarray(0, Math.min(end, values.byteLength)),
      );
    } else if (typeId === Type.Bool) {
      const values = data.values as Uint8Array | undefined;
      if (nullCount >= length) buffers.push(validity, new Uint8Array((length + 7) >> 3));
      else if (values instanceof Uint8Array) buffers.push(validity, values);
      else return null;
    } else {
      return null;
    }
    nodes.push(length, nullCount);
  }
  return { nodes, buffers };
}

const PADDING = new Uint8Array(8);

/**
 * A record-batch message written before, for reuse: calls write batches of the same schema and
 * the same metadata over and over, and their messages differ only in the int64s (row count, field
 * nodes, buffer regions, body length), which never move the flatbuffer's layout. A batch whose
 * shape and metadata match gets a copy of the template with those numbers written in place.
 */
interface Template {
  readonly message: Uint8Array;
  /** Byte position in `message` of each int64, in the order `int64Values` lists them. */
  readonly positions: Int32Array;
  readonly nodeCount: number;
  readonly bufferCount: number;
  readonly hasRows: boolean;
  readonly hasBody: boolean;
  /** The metadata as written: key, value, key, value... */
  readonly metadata: readonly string[];
}

/** Templates by schema, most recent first. */
const templates = new WeakMap<Schema, Template[]>();
/** Templates kept per schema: a schema's batches carry a few distinct metadata sets. */
const TEMPLATES_PER_SCHEMA = 8;
/** Larger messages (long metadata: logs, errors) are built every time. */
const MAX_TEMPLATE_BYTES = 2048;

/** The int64s of a message in the order the builder writes them (back to front). */
function int64Values(nodes: readonly number[], regions: readonly number[], rows: number, bodyLength: number): number[] {
  const out: number[] = [];
  for (let i = nodes.length - 2; i >= 0; i -= 2) out.push(nodes[i + 1]!, nodes[i]!);
  for (let i = regions.length - 2; i >= 0; i -= 2) out.push(regions[i + 1]!, regions[i]!);
  if (rows !== 0) out.push(rows);
  if (bodyLength !== 0) out.push(bodyLength);
  return out;
}

function sameMetadata(metadata: ReadonlyMap<string, string>, written: readonly string[]): boolean {
  if (metadata.size * 2 !== written.length) return false;
  let i = 0;
  for (const [k, v] of metadata) {
    if (`${k}` !== written[i] || `${v}` !== written[i + 1]) return false;
    i += 2;
  }
  return true;
}

function findTemplate(
  schema: Schema,
  nodeCount: number,
  bufferCount: number,
  hasRows: boolean,
  hasBody: boolean,
  metadata: ReadonlyMap<string, string>,
): Template | null {
  const list = templates.get(schema);
  if (list === undefined) return null;
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (
      t.nodeCount === nodeCount &&
      t.bufferCount === bufferCount &&
      t.hasRows === hasRows &&
      t.hasBody === hasBody &&
      sameMetadata(metadata, t.metadata)
    ) {
      // Most recently used first: messages whose metadata changes every time (a state token, a
      // trace id) push out the least recently used template, not the one every call uses.
      if (i > 0) {
        list.splice(i, 1);
        list.unshift(t);
      }
      return t;
    }
  }
  return null;
}

/** How many message templates `schema` holds (for tests; not exported from the package). */
export function templateCount(schema: Schema): number {
  return templates.get(schema)?.length ?? 0;
}

function keepTemplate(schema: Schema, t: Template): void {
  let list = templates.get(schema);
  if (list === undefined) {
    list = [];
    templates.set(schema, list);
  }
  list.unshift(t);
  if (list.length > TEMPLATES_PER_SCHEMA) list.pop();
}

/** Little-endian int64 of a non-negative integer below 2^53 at `p`. */
function putInt64(view: DataView, p: number, v: number): void {
  view.setUint32(p, v >>> 0, true);
  view.setUint32(p + 4, Math.floor(v / 4294967296), true);
}

/**
 * The framed record-batch message and padded body of `batch`, byte for byte what the general
 * encoder writes, or null when the batch is not of the fast path's shapes.
 */
export function encodeRecordBatchLean(batch: RecordBatch): Uint8Array[] | null {
  const p = plan(batch);
  if (p === null) return null;
  const { nodes, buffers } = p;
  let bodyLength = 0;
  const regions: number[] = [];
  for (const b of buffers) {
    const padded = Math.ceil(b.byteLength / 8) * 8;
    regions.push(bodyLength, padded);
    bodyLength += padded;
  }
  const rows = batch.numRows;
  const nodeCount = nodes.length / 2;
  const metadata = batch.metadata;
  const values = int64Values(nodes, regions, rows, bodyLength);
  const known = findTemplate(batch.schema, nodeCount, buffers.length, rows !== 0, bodyLength !== 0, metadata);
  let message: Uint8Array;
  if (known !== null) {
    message = smallBytes(known.message.byteLength);
    message.set(known.message);
    const mv = new DataView(message.buffer, message.byteOffset, message.byteLength);
    for (let k = 0; k < values.length; k++) putInt64(mv, known.positions[k]!, values[k]!);
  } else {
    message = buildMessage(nodes, regions, rows, bodyLength, metadata);
    if (message.byteLength <= MAX_TEMPLATE_BYTES && int64Writes.length === values.length) {
      const positions = new Int32Array(int64Writes.length);
      for (let k = 0; k < positions.length; k++) positions[k] = 8 + builtBytes - int64Writes[k]!;
      const written: string[] = [];
      for (const [k, v] of metadata) written.push(`${k}`, `${v}`);
      keepTemplate(batch.schema, {
        message: message.slice(),
        positions,
        nodeCount,
        bufferCount: buffers.length,
        hasRows: rows !== 0,
        hasBody: bodyLength !== 0,
        metadata: written,
      });
    }
  }
  const out: Uint8Array[] = [message];
  for (const b of buffers) {
    if (b.byteLength === 0) continue;
    out.push(b);
    const pad = Math.ceil(b.byteLength / 8) * 8 - b.byteLength;
    if (pad > 0) out.push(PADDING.subarray(0, pad));
  }
  return out;
}

/** Flatbuffer bytes of the last message built (before framing). */
let builtBytes = 0;

/** Builds the framed message (continuation token, length, flatbuffer, padding to 8). */
function buildMessage(
  nodes: readonly number[],
  regions: readonly number[],
  rows: number,
  bodyLength: number,
  metadata: ReadonlyMap<string, string>,
): Uint8Array {
  reset();
  // RecordBatch table: nodes vector, buffers vector, then the table (as arrow-js orders them).
  const nodeCount = nodes.length / 2;
  startVector(16, nodeCount, 8);
  for (let i = nodes.length - 2; i >= 0; i -= 2) addStruct16(nodes[i]!, nodes[i + 1]!);
  const nodesAt = endVector(nodeCount);
  const bufferCount = regions.length / 2;
  startVector(16, bufferCount, 8);
  for (let i = regions.length - 2; i >= 0; i -= 2) addStruct16(regions[i]!, regions[i + 1]!);
  const buffersAt = endVector(bufferCount);
  startObject(5);
  if (rows !== 0) {
    prep(8, 0);
    writeInt64(rows);
    slot(0);
  }
  addOffset(nodesAt);
  slot(1);
  addOffset(buffersAt);
  slot(2);
  const headerAt = endObject();
  // Custom metadata: each key/value table, then the vector of their offsets.
  let metadataAt = 0;
  if (metadata.size > 0) {
    const pairs: number[] = [];
    for (const [k, v] of metadata) {
      const key = createString(`${k}`);
      const value = createString(`${v}`);
      startObject(2);
      addOffset(key);
      slot(0);
      addOffset(value);
      slot(1);
      pairs.push(endObject());
    }
    startVector(4, pairs.length, 4);
    for (let i = pairs.length - 1; i >= 0; i--) addOffset(pairs[i]!);
    metadataAt = endVector(pairs.length);
  }
  // Message table: version, header, header type, body length, custom metadata.
  startObject(5);
  addInt16(METADATA_V5);
  slot(0);
  addOffset(headerAt);
  slot(2);
  prep(1, 0);
  buf[at(++used)] = Header.RecordBatch;
  slot(1);
  if (bodyLength !== 0) {
    prep(8, 0);
    writeInt64(bodyLength);
    slot(3);
  }
  if (metadataAt !== 0) {
    addOffset(metadataAt);
    slot(4);
  }
  const root = endObject();
  prep(minAlign, 4);
  addOffset(root);
  builtBytes = used;
  // Frame: continuation token, metadata length (padded to 8), flatbuffer, padding.
  const aligned = (used + 8 + 7) & ~7;
  const message = smallBytes(aligned);
  const mv = new DataView(message.buffer, message.byteOffset, message.byteLength);
  mv.setInt32(0, -1, true);
  mv.setInt32(4, aligned - 8, true);
  message.set(buf.subarray(buf.byteLength - used), 8);
  return message;
}

// ---------------------------------------------------------------------------------------------
// Reading record-batch messages

/**
 * A record-batch message read by hand: the header's nodes and buffer regions stay plain numbers
 * until someone asks for arrow-js's header objects (the general loader, for other shapes).
 */
export class LeanMessage extends Message<MessageHeader.RecordBatch> {
  constructor(
    bodyLength: number,
    version: MetadataVersion,
    metadata: Map<string, string>,
    /** Rows in the batch. */
    readonly rows: number,
    /** Field nodes as (length, nullCount) pairs. */
    readonly nodes: readonly number[],
    /** Buffer regions as (offset, length) pairs. */
    readonly regions: readonly number[],
  ) {
    super(bodyLength, version, MessageHeader.RecordBatch, undefined, metadata);
  }

  override header(): RecordBatchHeader {
    const nodes: FieldNode[] = [];
    for (let i = 0; i < this.nodes.length; i += 2) nodes.push(new FieldNode(this.nodes[i]!, this.nodes[i + 1]!));
    const regions: BufferRegion[] = [];
    for (let i = 0; i < this.regions.length; i += 2) {
      regions.push(new BufferRegion(this.regions[i]!, this.regions[i + 1]!));
    }
    return new RecordBatchHeader(this.rows, nodes, regions, null, []);
  }
}

/** Thrown inside the reader for anything it does not handle; the caller falls back. */
class NotLean extends Error {}
const NOT_LEAN = new NotLean();

/** A flatbuffer table's field position (0 when absent), given the table's position. */
function field(dv: DataView, table: number, index: number): number {
  const vtable = table - dv.getInt32(table, true);
  const vlen = dv.getUint16(vtable, true);
  const slotAt = 4 + index * 2;
  if (slotAt >= vlen) return 0;
  const rel = dv.getUint16(vtable + slotAt, true);
  return rel === 0 ? 0 : table + rel;
}

/**
 * An int64 that must be a non-negative safe integer: every int64 read here is a length, count or
 * offset (anything else goes to the general reader, whose verifier names the problem).
 */
function int64(dv: DataView, p: number): number {
  const hi = dv.getInt32(p + 4, true);
  if (hi < 0 || hi >= 0x200000) throw NOT_LEAN;
  return hi * 4294967296 + dv.getUint32(p, true);
}

/** UTF-8 as written: a leading U+FEFF is a character, not a byte-order mark to drop. */
const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * String bytes the current message may still decode: entries may share one string, so without a
 * budget a small header could make the reader decode the same long string millions of times.
 */
let stringBudget = 0;

function readString(bytes: Uint8Array, dv: DataView, offsetAt: number): string {
  const start = offsetAt + dv.getUint32(offsetAt, true);
  const length = dv.getUint32(start, true);
  const from = start + 4;
  if (from + length > bytes.byteLength) throw NOT_LEAN;
  stringBudget -= length;
  if (stringBudget < 0) throw NOT_LEAN;
  if (length < 64) return recentAscii(bytes, from, length) ?? textDecoder.decode(bytes.subarray(from, from + length));
  return textDecoder.decode(bytes.subarray(from, from + length));
}

/** Slots of `recentAscii`'s table (a power of two). */
const RECENT_SLOTS = 256;
const recent: (string | undefined)[] = new Array(RECENT_SLOTS);

/**
 * A short ASCII string of metadata: the one read before from the same bytes when it is still in
 * a small table indexed by a hash of them (the keys, and most values, repeat message after
 * message), else made and put there. Null when a byte is not ASCII.
 */
function recentAscii(bytes: Uint8Array, from: number, length: number): string | null {
  let h = length;
  for (let i = 0; i < length; i++) {
    const c = bytes[from + i]!;
    if (c > 0x7f) return null;
    h = (Math.imul(h, 31) + c) | 0;
  }
  const slot = (h ^ (h >>> 16)) & (RECENT_SLOTS - 1);
  const known = recent[slot];
  if (known !== undefined && known.length === length) {
    let i = 0;
    while (i < length && known.charCodeAt(i) === bytes[from + i]) i++;
    if (i === length) return known;
  }
  let s = "";
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[from + i]!);
  recent[slot] = s;
  return s;
}

/**
 * Reads a record-batch message with no compression and no variadic buffers; null for any other
 * message, or anything unusual, which the general decoder then verifies and reads. Every read is
 * bounds-checked (DataView) and every count checked against the bytes before it is looped over,
 * so what this accepts needs no verification of its own.
 */
export function decodeRecordBatchLean(bytes: Uint8Array): LeanMessage | null {
  try {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const root = dv.getUint32(0, true);
    const headerTypeAt = field(dv, root, 1);
    if (headerTypeAt === 0 || bytes[headerTypeAt] !== MessageHeader.RecordBatch) return null;
    const versionAt = field(dv, root, 0);
    const version = versionAt === 0 ? 0 : dv.getInt16(versionAt, true);
    if (version < MetadataVersion.V4 || version > MetadataVersion.V5) return null;
    const headerAt = field(dv, root, 2);
    if (headerAt === 0) return null;
    const bodyAt = field(dv, root, 3);
    const bodyLength = bodyAt === 0 ? 0 : int64(dv, bodyAt);
    const metadata = new Map<string, string>();
    const mdAt = field(dv, root, 4);
    if (mdAt !== 0) {
      const vec = mdAt + dv.getUint32(mdAt, true);
      const n = dv.getUint32(vec, true);
      if (n > (bytes.byteLength - vec - 4) / 4) throw NOT_LEAN;
      stringBudget = 2 * bytes.byteLength;
      for (let i = 0; i < n; i++) {
        const entryAt = vec + 4 + i * 4;
        const entry = entryAt + dv.getUint32(entryAt, true);
        const keyAt = field(dv, entry, 0);
        if (keyAt === 0) continue;
        const valueAt = field(dv, entry, 1);
        // arrow-js stores a missing value as null; leave that rare case to it.
        if (valueAt === 0) throw NOT_LEAN;
        metadata.set(readString(bytes, dv, keyAt), readString(bytes, dv, valueAt));
      }
    }
    const header = headerAt + dv.getUint32(headerAt, true);
    if (field(dv, header, 3) !== 0 || field(dv, header, 4) !== 0) return null;
    const lengthAt = field(dv, header, 0);
    const rows = lengthAt === 0 ? 0 : int64(dv, lengthAt);
    const nodes = structs(dv, field(dv, header, 1));
    const regions = structs(dv, field(dv, header, 2));
    return new LeanMessage(bodyLength, version, metadata, rows, nodes, regions);
  } catch (err) {
    if (err instanceof NotLean || err instanceof RangeError) return null;
    throw err;
  }
}

/** A vector of 16-byte structs of two int64s, as a flat number array. */
function structs(dv: DataView, at: number): number[] {
  if (at === 0) return [];
  const vec = at + dv.getUint32(at, true);
  const n = dv.getUint32(vec, true);
  if (vec + 4 + n * 16 > dv.byteLength) throw NOT_LEAN;
  const out: number[] = new Array(n * 2);
  // Structs of 8-byte alignment start after the length word, padded to 8 by the builder.
  for (let i = 0; i < n; i++) {
    const p = vec + 4 + i * 16;
    out[i * 2] = int64(dv, p);
    out[i * 2 + 1] = int64(dv, p + 8);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building column data from a read message

type ViewCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView;
  new (length: number): ArrayBufferView;
  readonly BYTES_PER_ELEMENT: number;
};

/** arrow-js's `toArrayBufferView` for a body slice: a view of the same bytes as `Ctor`. */
function viewAs(Ctor: ViewCtor, bytes: Uint8Array): ArrayBufferView {
  return bytes.byteLength <= 0
    ? new Ctor(0)
    : new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
}

/** A plain Uint8Array over the same bytes (the body may be a Node Buffer, whose slice() differs). */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Per schema: the struct type of its batches and whether every column can be read here. */
const readable = new WeakMap<Schema, Struct | null>();

function structFor(schema: Schema): Struct | null {
  let struct = readable.get(schema);
  if (struct === undefined) {
    const ok = schema.fields.every((f) => {
      const id = f.type.typeId;
      return (
        id === Type.Int ||
        id === Type.Float ||
        id === Type.Date ||
        id === Type.Timestamp ||
        id === Type.Time ||
        id === Type.Duration ||
        id === Type.Utf8 ||
        id === Type.Binary ||
        id === Type.Bool
      );
    });
    struct = ok ? new Struct(schema.fields) : null;
    readable.set(schema, struct);
  }
  return struct;
}

/**
 * The batch data of `message` over `body` when every column of `schema` is of a shape read here:
 * the same `Data` objects (types, lengths, null counts, views of the body) as arrow-js's
 * VectorLoader and makeData build, without their visitor dispatch. Null otherwise.
 */
export function loadLean(schema: Schema, message: LeanMessage, body: Uint8Array): Data<Struct> | null {
  const struct = structFor(schema);
  if (struct === null) return null;
  const { nodes, regions } = message;
  const fields = schema.fields;
  if (nodes.length !== fields.length * 2) return null;
  const children: Data[] = new Array(fields.length);
  let r = 0;
  const slice = (): Uint8Array => {
    if (r + 1 >= regions.length) throw new RangeError("fewer buffers than the schema needs");
    const offset = regions[r]!;
    const length = regions[r + 1]!;
    r += 2;
    return body.subarray(offset, offset + length);
  };
  for (let i = 0; i < fields.length; i++) {
    const type = fields[i]!.type;
    const length = nodes[i * 2]!;
    const nullCount = nodes[i * 2 + 1]!;
    const validity = slice();
    const nullBitmap = nullCount > 0 && validity.byteLength > 0 ? plain(validity) : new Uint8Array(0);
    const id = type.typeId;
    if (id === Type.Utf8 || id === Type.Binary) {
      const offsets = viewAs(Int32Array, slice());
      const values = plain(slice());
      children[i] = new Data(type, 0, length, nullCount, [offsets, values, nullBitmap]);
    } else {
      const values = viewAs(type.ArrayType as ViewCtor, slice());
      children[i] = new Data(type, 0, length, nullCount, [undefined, values, nullBitmap]);
    }
  }
  return new Data(struct, 0, message.rows, 0, STRUCT_BUFFERS, children);
}
