/**
 * Verification of IPC message headers before anything decodes them, as flatbuffers' Verifier and
 * Arrow C++'s `VerifyFlatbuffers` do: every offset, vector and string a decoder could follow is
 * checked against the bytes actually present, nesting is capped, and the work is bounded by the
 * header's size (a table or string may be shared by several offsets, so the walk charges a budget
 * proportional to the bytes rather than trusting counts). apache-arrow's flatbuffer accessors do no
 * bounds checks of their own: a declared count of 2^31-1 entries would be looped over.
 *
 * On top of the structure, what the decoders would otherwise trust: the message and metadata
 * versions, the header type, type parameters that name an Arrow type arrow-js can build, children
 * counts per type, and int64 lengths and offsets that are non-negative safe integers. Pure: bytes in,
 * a `protocol_error` out.
 */
import { frameworkError, type RpcError } from "../errors.js";

/**
 * Deepest nesting of tables and vectors followed, as Arrow C++'s verifier allows: each level of
 * nested types (a list of structs of ...) costs two, so about 60 levels of types.
 */
export const MAX_FLATBUFFER_DEPTH = 128;

/** A header that failed verification. */
function invalid(why: string): RpcError {
  return frameworkError("protocol_error", `malformed Arrow IPC message: ${why}`);
}

// Flatbuffer enums of Message.fbs and Schema.fbs.
const HEADER_SCHEMA = 1;
const HEADER_DICTIONARY_BATCH = 2;
const HEADER_RECORD_BATCH = 3;
const HEADER_NAMES = ["NONE", "Schema", "DictionaryBatch", "RecordBatch", "Tensor", "SparseTensor"];
const METADATA_V4 = 3;
const METADATA_V5 = 4;

/** `Type` union members of Schema.fbs. */
enum T {
  Null = 1,
  Int = 2,
  FloatingPoint = 3,
  Binary = 4,
  Utf8 = 5,
  Bool = 6,
  Decimal = 7,
  Date = 8,
  Time = 9,
  Timestamp = 10,
  Interval = 11,
  List = 12,
  Struct = 13,
  Union = 14,
  FixedSizeBinary = 15,
  FixedSizeList = 16,
  Map = 17,
  Duration = 18,
  LargeBinary = 19,
  LargeUtf8 = 20,
  LargeList = 21,
  RunEndEncoded = 22,
  BinaryView = 23,
  Utf8View = 24,
  ListView = 25,
  LargeListView = 26,
}

/**
 * Walks one flatbuffer. Positions are byte offsets into `bytes`; every read is bounds-checked
 * first, and every object visited is charged to `budget`.
 */
class Walker {
  private readonly view: DataView;
  private readonly size: number;
  /** Bytes of tables, vectors and strings still allowed to be visited. */
  private budget: number;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = bytes.byteLength;
    // Unshared, every object is visited once, so a valid header spends at most its own size; twice
    // that (plus a little) leaves room for shared strings without letting sharing multiply the work.
    this.budget = 2 * this.size + 4096;
  }

  private charge(n: number): void {
    this.budget -= n;
    if (this.budget < 0) throw invalid("the header refers to the same objects too many times");
  }

  private need(at: number, n: number, what: string): void {
    if (at < 0 || n < 0 || at + n > this.size)
      throw invalid(`${what} at ${at} runs past the header's ${this.size} bytes`);
  }

  u8(at: number): number {
    this.need(at, 1, "a byte");
    return this.bytes[at]!;
  }

  i16(at: number): number {
    this.need(at, 2, "an int16");
    return this.view.getInt16(at, true);
  }

  i32(at: number): number {
    this.need(at, 4, "an int32");
    return this.view.getInt32(at, true);
  }

  /** An int64 that must be a safe integer (lengths, offsets, ids). */
  i64(at: number, what: string): number {
    this.need(at, 8, what);
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getInt32(at + 4, true);
    if (hi < -0x200000 || hi >= 0x200000) throw invalid(`${what} does not fit in 53 bits`);
    return hi * 4294967296 + lo;
  }

  /** The object a uoffset at `at` points to (flatbuffers' VerifyOffset: non-zero, positive, in bounds). */
  follow(at: number, what: string): number {
    this.need(at, 4, `the offset of ${what}`);
    const rel = this.view.getUint32(at, true);
    if (rel === 0 || rel > 0x7fffffff) throw invalid(`the offset of ${what} at ${at} is ${rel}`);
    const target = at + rel;
    this.need(target, 1, what);
    return target;
  }

  /** Verifies the table at `table` (its vtable and inline part) and returns it. */
  table(table: number, what: string): Table {
    this.need(table, 4, what);
    if (table % 4 !== 0) throw invalid(`${what} at ${table} is not 4-byte aligned`);
    const vtable = table - this.view.getInt32(table, true);
    this.need(vtable, 4, `the vtable of ${what}`);
    if (vtable % 2 !== 0) throw invalid(`the vtable of ${what} is not 2-byte aligned`);
    const vlen = this.view.getUint16(vtable, true);
    const tlen = this.view.getUint16(vtable + 2, true);
    if (vlen < 4 || vlen % 2 !== 0) throw invalid(`the vtable of ${what} declares ${vlen} bytes`);
    this.need(vtable, vlen, `the vtable of ${what}`);
    this.need(table, tlen, what);
    this.charge(4 + tlen);
    return new Table(this, this.view, table, vtable, vlen, tlen, what);
  }

  /** Verifies a vector of `elemSize`-byte elements at `vec`; returns its length. */
  vector(vec: number, elemSize: number, what: string): number {
    this.need(vec, 4, what);
    if (vec % 4 !== 0) throw invalid(`${what} at ${vec} is not 4-byte aligned`);
    const n = this.view.getUint32(vec, true);
    // Checked before multiplying: a count can claim more elements than the buffer has bytes.
    if (n > (this.size - vec - 4) / elemSize)
      throw invalid(`${what} declares ${n} entries, more than the header holds`);
    this.charge(4 + n * elemSize);
    return n;
  }

  /** Verifies the string at `str` (length, bytes and NUL terminator in bounds). */
  string(str: number, what: string): void {
    this.need(str, 4, what);
    const n = this.view.getUint32(str, true);
    if (n >= this.size - str - 4) throw invalid(`${what} declares ${n} bytes, more than the header holds`);
    if (this.bytes[str + 4 + n] !== 0) throw invalid(`${what} is not NUL-terminated`);
    this.charge(4 + n + 1);
  }
}

/** A verified table: field positions are checked against the buffer as they are asked for. */
class Table {
  constructor(
    private readonly w: Walker,
    private readonly view: DataView,
    readonly at: number,
    private readonly vtable: number,
    private readonly vlen: number,
    private readonly tlen: number,
    readonly what: string,
  ) {}

  /** Position of field `slot` (size `n` bytes), or 0 when absent; the field must lie in the table. */
  private field(slot: number, n: number): number {
    const entry = 4 + slot * 2;
    if (entry >= this.vlen) return 0;
    const rel = this.view.getUint16(this.vtable + entry, true);
    if (rel === 0) return 0;
    if (rel + n > this.tlen) throw invalid(`field ${slot} of ${this.what} lies outside the table`);
    return this.at + rel;
  }

  has(slot: number): boolean {
    return this.field(slot, 1) !== 0;
  }

  u8(slot: number, dflt: number): number {
    const p = this.field(slot, 1);
    return p === 0 ? dflt : this.w.u8(p);
  }

  i16(slot: number, dflt: number): number {
    const p = this.field(slot, 2);
    return p === 0 ? dflt : this.w.i16(p);
  }

  i32(slot: number, dflt: number): number {
    const p = this.field(slot, 4);
    return p === 0 ? dflt : this.w.i32(p);
  }

  i64(slot: number, what: string): number {
    const p = this.field(slot, 8);
    return p === 0 ? 0 : this.w.i64(p, `${this.what}'s ${what}`);
  }

  /** Position of the object field `slot` points to, or 0 when absent. */
  ref(slot: number, what: string): number {
    const p = this.field(slot, 4);
    return p === 0 ? 0 : this.w.follow(p, `${this.what}'s ${what}`);
  }
}

/** What verification found of a header that is sound as a flatbuffer. */
export interface VerifiedHeader {
  readonly version: number;
  readonly headerType: number;
  readonly bodyLength: number;
  /** Why the message must not be decoded, though its body can be skipped; null to decode it. */
  readonly refusal: RpcError | null;
}

/**
 * Verifies an IPC message's flatbuffer (the bytes between the length prefix and the body) before
 * any decoder reads it. Throws a `protocol_error` when the bytes are not a sound Arrow message
 * (nothing in them, the body length included, can be trusted); returns the message's refusal
 * when they are but it must not be decoded.
 */
export function verifyMessageHeader(bytes: Uint8Array): VerifiedHeader {
  if (bytes.byteLength < 8) throw invalid(`a ${bytes.byteLength}-byte header is too short`);
  return new MessageVerifier(new Walker(bytes)).message();
}

class MessageVerifier {
  /** Nesting of tables and vectors being followed. */
  private depth = 0;
  /** Why the message, sound as a flatbuffer, must not be decoded (see `refuse`). */
  refusal: RpcError | null = null;

  constructor(private readonly w: Walker) {}

  /**
   * Records a header that is sound as a flatbuffer but not one to decode (a type arrow-js cannot
   * build, a message type vgi-rpc does not use): its body length is still known, so the reader
   * can skip the message and stay framed. The first reason wins; the walk goes on to verify the
   * rest of the structure.
   */
  private refuse(why: string): void {
    this.refusal ??= invalid(why);
  }

  private enter(): void {
    if (++this.depth > MAX_FLATBUFFER_DEPTH) throw invalid(`nesting deeper than ${MAX_FLATBUFFER_DEPTH}`);
  }

  private leave(): void {
    this.depth--;
  }

  message(): VerifiedHeader {
    const w = this.w;
    const m = w.table(w.follow(0, "the message"), "the message");
    const version = m.i16(0, 0);
    const headerType = m.u8(1, 0);
    const bodyLength = m.i64(3, "body length");
    if (bodyLength < 0) throw invalid("a negative body length");
    this.verify(m, version, headerType);
    return { version, headerType, bodyLength, refusal: this.refusal };
  }

  private verify(m: Table, version: number, type: number): void {
    if (version !== METADATA_V4 && version !== METADATA_V5) {
      this.refuse(`metadata version ${version} is not supported (V4 or V5 expected)`);
    }
    const header = m.ref(2, "header");
    this.keyValues(m.ref(4, "custom metadata"));
    if (type !== HEADER_SCHEMA && type !== HEADER_DICTIONARY_BATCH && type !== HEADER_RECORD_BATCH) {
      const name = HEADER_NAMES[type] ?? String(type);
      this.refuse(`message header type ${name} is not part of the vgi-rpc wire protocol`);
      return;
    }
    if (header === 0) {
      this.refuse(`the ${HEADER_NAMES[type]} message has no header`);
      return;
    }
    this.enter();
    if (type === HEADER_SCHEMA) this.schema(header);
    else if (type === HEADER_RECORD_BATCH) this.recordBatch(header, "the record batch");
    else this.dictionaryBatch(header);
    this.leave();
  }

  private keyValues(vec: number): void {
    if (vec === 0) return;
    const w = this.w;
    const n = w.vector(vec, 4, "a custom metadata vector");
    this.enter();
    for (let i = 0; i < n; i++) {
      const kv = w.table(w.follow(vec + 4 + i * 4, "a metadata entry"), "a metadata entry");
      const key = kv.ref(0, "key");
      if (key !== 0) w.string(key, "a metadata key");
      const value = kv.ref(1, "value");
      if (value !== 0) w.string(value, "a metadata value");
    }
    this.leave();
  }

  private schema(at: number): void {
    const w = this.w;
    const s = w.table(at, "the schema");
    if (s.i16(0, 0) !== 0) this.refuse("big-endian Arrow data is not supported");
    const fields = s.ref(1, "fields");
    if (fields !== 0) this.fields(fields);
    this.keyValues(s.ref(2, "custom metadata"));
    const features = s.ref(3, "features");
    if (features !== 0) w.vector(features, 8, "the schema's features");
  }

  private fields(vec: number): number {
    const w = this.w;
    const n = w.vector(vec, 4, "a field vector");
    this.enter();
    for (let i = 0; i < n; i++) this.field(w.follow(vec + 4 + i * 4, "a field"));
    this.leave();
    return n;
  }

  private field(at: number): void {
    const w = this.w;
    this.enter();
    const f = w.table(at, "a field");
    const name = f.ref(0, "name");
    if (name !== 0) w.string(name, "a field name");
    f.u8(1, 0); // nullable
    const typeId = f.u8(2, 0);
    const typeAt = f.ref(3, "type");
    const children = f.ref(5, "children");
    const childCount = children === 0 ? 0 : this.fields(children);
    const expected =
      typeId === 0 || typeAt === 0 ? null : this.type(typeId, w.table(typeAt, "a field type"), childCount);
    if (typeId === 0 || typeAt === 0) this.refuse("a field has no type");
    else if (expected !== null && childCount !== expected) {
      this.refuse(`a ${typeName(typeId)} field has ${childCount} children (${expected} expected)`);
    }
    const dictionary = f.ref(4, "dictionary");
    if (dictionary !== 0) {
      const d = w.table(dictionary, "a dictionary encoding");
      d.i64(0, "id");
      d.u8(2, 0); // isOrdered
      d.i16(3, 0); // dictionaryKind
      const index = d.ref(1, "index type");
      if (index !== 0) {
        const indexType = w.table(index, "a dictionary index type");
        indexType.u8(1, 0); // is_signed
        const bits = indexType.i32(0, 0);
        if (bits !== 8 && bits !== 16 && bits !== 32 && bits !== 64) {
          this.refuse(`a dictionary index of ${bits} bits`);
        }
      }
    }
    this.keyValues(f.ref(6, "custom metadata"));
    this.leave();
  }

  /**
   * Checks a type table's parameters; returns how many children a field of the type has, or null
   * for any number (a struct), given the field's `children`.
   */
  private type(typeId: number, t: Table, children: number): number | null {
    switch (typeId) {
      case T.Null:
      case T.Binary:
      case T.Utf8:
      case T.Bool:
      case T.LargeBinary:
      case T.LargeUtf8:
      case T.BinaryView:
      case T.Utf8View:
        return 0;
      case T.Int: {
        t.u8(1, 0); // is_signed
        const bits = t.i32(0, 0);
        if (bits !== 8 && bits !== 16 && bits !== 32 && bits !== 64) this.refuse(`an Int type of ${bits} bits`);
        return 0;
      }
      case T.FloatingPoint: {
        const precision = t.i16(0, 0);
        if (precision < 0 || precision > 2) this.refuse(`a FloatingPoint precision of ${precision}`);
        return 0;
      }
      case T.Decimal: {
        const bits = t.i32(2, 128);
        const precision = t.i32(0, 0);
        t.i32(1, 0); // scale
        if (bits !== 32 && bits !== 64 && bits !== 128 && bits !== 256) this.refuse(`a Decimal of ${bits} bits`);
        if (precision < 1 || precision > 76) this.refuse(`a Decimal precision of ${precision}`);
        return 0;
      }
      case T.Date: {
        const unit = t.i16(0, 1);
        if (unit !== 0 && unit !== 1) this.refuse(`a Date unit of ${unit}`);
        return 0;
      }
      case T.Time: {
        const unit = t.i16(0, 1);
        const bits = t.i32(1, 32);
        if (unit < 0 || unit > 3) this.refuse(`a Time unit of ${unit}`);
        if (bits !== (unit < 2 ? 32 : 64)) this.refuse(`a Time of unit ${unit} with ${bits} bits`);
        return 0;
      }
      case T.Timestamp: {
        const unit = t.i16(0, 0);
        if (unit < 0 || unit > 3) this.refuse(`a Timestamp unit of ${unit}`);
        const tz = t.ref(1, "timezone");
        if (tz !== 0) this.w.string(tz, "a timezone");
        return 0;
      }
      case T.Interval: {
        const unit = t.i16(0, 0);
        if (unit < 0 || unit > 2) this.refuse(`an Interval unit of ${unit}`);
        return 0;
      }
      case T.Duration: {
        const unit = t.i16(0, 1);
        if (unit < 0 || unit > 3) this.refuse(`a Duration unit of ${unit}`);
        return 0;
      }
      case T.FixedSizeBinary: {
        const width = t.i32(0, 0);
        if (width < 0) this.refuse(`a FixedSizeBinary of ${width} bytes`);
        return 0;
      }
      case T.List:
      case T.LargeList:
        return 1;
      case T.Map:
        t.u8(0, 0); // keysSorted
        return 1;
      case T.FixedSizeList: {
        const size = t.i32(0, 0);
        if (size < 0) this.refuse(`a FixedSizeList of size ${size}`);
        return 1;
      }
      case T.Struct:
        return null;
      case T.Union: {
        const mode = t.i16(0, 0);
        if (mode !== 0 && mode !== 1) this.refuse(`a Union mode of ${mode}`);
        const ids = t.ref(1, "type ids");
        // arrow-js does not default absent ids to 0..n-1 as the format allows (pyarrow writes them).
        if (ids === 0) {
          this.refuse("a Union without type ids");
          return null;
        }
        const n = this.w.vector(ids, 4, "a Union's type ids");
        if (n !== children) this.refuse(`a Union declares ${n} type ids for ${children} children`);
        for (let i = 0; i < n; i++) {
          const id = this.w.i32(ids + 4 + i * 4);
          if (id < 0 || id > 127) this.refuse(`a Union type id of ${id}`);
        }
        return null;
      }
      case T.RunEndEncoded:
      case T.ListView:
      case T.LargeListView:
        this.refuse(`${typeName(typeId)} columns are not supported`);
        return null;
      default:
        this.refuse(`unknown Arrow type id ${typeId}`);
        return null;
    }
  }

  private dictionaryBatch(at: number): void {
    const d = this.w.table(at, "the dictionary batch");
    d.i64(0, "id");
    d.u8(2, 0); // isDelta
    const data = d.ref(1, "data");
    if (data === 0) {
      this.refuse("the dictionary batch has no data");
      return;
    }
    this.enter();
    this.recordBatch(data, "the dictionary batch's data");
    this.leave();
  }

  private recordBatch(at: number, what: string): void {
    const w = this.w;
    const r = w.table(at, what);
    if (r.i64(0, "length") < 0) this.refuse(`${what} has a negative length`);
    const nodes = r.ref(1, "field nodes");
    if (nodes !== 0) this.int64Pairs(nodes, `${what}'s field nodes`);
    const buffers = r.ref(2, "buffers");
    if (buffers !== 0) this.int64Pairs(buffers, `${what}'s buffers`);
    const compression = r.ref(3, "compression");
    if (compression !== 0) {
      const c = w.table(compression, "the body compression");
      c.u8(0, 0); // codec
      c.u8(1, 0); // method
    }
    const variadic = r.ref(4, "variadic buffer counts");
    if (variadic !== 0) {
      const n = w.vector(variadic, 8, "the variadic buffer counts");
      for (let i = 0; i < n; i++) {
        if (w.i64(variadic + 4 + i * 8, "a variadic buffer count") < 0) this.refuse("a negative variadic buffer count");
      }
    }
  }

  /** A vector of (int64, int64) structs whose values must all be non-negative safe integers. */
  private int64Pairs(vec: number, what: string): void {
    const w = this.w;
    const n = w.vector(vec, 16, what);
    // Structs of 8-byte alignment: the builder pads so the first starts 8-aligned after the length.
    for (let i = 0; i < n * 2; i++) {
      if (w.i64(vec + 4 + i * 8, what) < 0) this.refuse(`${what} hold a negative value`);
    }
  }
}

function typeName(typeId: number): string {
  return T[typeId] ?? `type ${typeId}`;
}
