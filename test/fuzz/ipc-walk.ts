/**
 * Structure for the mutators: splits a byte string of back-to-back Arrow IPC streams into its
 * messages (prefix, flatbuffer, body) and walks each message's flatbuffer (Message.fbs,
 * Schema.fbs) to list the places worth corrupting: vector and string lengths, offsets, int64
 * lengths and counts, union tags. Written independently of src/wire and defensive throughout:
 * it reads bytes that may be garbage and never throws, it just stops.
 */

/** One framed message of an IPC stream. */
export interface IpcMessage {
  readonly eos: false;
  /** Offset of the message's length prefix. */
  readonly start: number;
  /** 8 with the continuation marker, 4 without. */
  readonly prefixBytes: 4 | 8;
  /** Offset of the int32 metadata length. */
  readonly lengthAt: number;
  /** Offset of the flatbuffer. */
  readonly metaStart: number;
  /** The declared metadata length (flatbuffer plus padding). */
  readonly metaLength: number;
  /** Offset of the body. */
  readonly bodyStart: number;
  /** The flatbuffer's bodyLength, or 0 when unreadable. */
  readonly bodyLength: number;
  /** One past the body (may exceed the input when truncated). */
  readonly end: number;
  /** Message header type: 1 schema, 2 dictionary batch, 3 record batch (0 unreadable). */
  readonly headerType: number;
}

/** An end-of-stream marker. */
export interface IpcEos {
  readonly eos: true;
  readonly start: number;
  readonly end: number;
}

export type IpcPart = IpcMessage | IpcEos;

/** Splits `bytes` into messages and EOS markers for as long as they parse. */
export function splitIpc(bytes: Uint8Array): IpcPart[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: IpcPart[] = [];
  let at = 0;
  while (at + 4 <= bytes.byteLength && parts.length < 10_000) {
    let prefix: 4 | 8 = 4;
    let len = dv.getInt32(at, true);
    if (len === -1) {
      if (at + 8 > bytes.byteLength) break;
      prefix = 8;
      len = dv.getInt32(at + 4, true);
    }
    if (len === 0) {
      parts.push({ eos: true, start: at, end: at + prefix });
      at += prefix;
      continue;
    }
    if (len < 0) break;
    const metaStart = at + prefix;
    const fb = metaStart + len <= bytes.byteLength ? bytes.subarray(metaStart, metaStart + len) : null;
    const info = fb === null ? { bodyLength: 0, headerType: 0 } : messageInfo(fb);
    const bodyStart = metaStart + len;
    const end = bodyStart + info.bodyLength;
    parts.push({
      eos: false,
      start: at,
      prefixBytes: prefix,
      lengthAt: at + prefix - 4,
      metaStart,
      metaLength: len,
      bodyStart,
      bodyLength: info.bodyLength,
      end,
      headerType: info.headerType,
    });
    if (fb === null || end > bytes.byteLength) break;
    at = end;
  }
  return parts;
}

/** Only the messages of `parts`. */
export function messagesOf(parts: readonly IpcPart[]): IpcMessage[] {
  return parts.filter((p): p is IpcMessage => !p.eos);
}

/** Every boundary between parts (start of each part and the end of the last). */
export function boundaries(parts: readonly IpcPart[]): number[] {
  const out = new Set<number>();
  for (const p of parts) {
    out.add(p.start);
    out.add(p.end);
  }
  return [...out].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// The flatbuffer walk

/** What a point is. */
export type PointKind =
  /** A vector's uint32 element count. */
  | "vector-length"
  /** A string's uint32 byte length. */
  | "string-length"
  /** A uoffset (uint32) to a table, vector or string. */
  | "uoffset"
  /** A table's soffset (int32) to its vtable. */
  | "soffset"
  /** An int64 length, count, offset or id. */
  | "int64"
  /** An int32 scalar (bit widths, byte widths, list sizes). */
  | "int32"
  /** An int16 scalar (the metadata version). */
  | "int16"
  /** A union type tag (uint8). */
  | "union-type";

/** A place in the bytes worth corrupting. */
export interface FbPoint {
  readonly kind: PointKind;
  /** Absolute offset in the input bytes. */
  readonly at: number;
  /** Bytes the value occupies. */
  readonly width: 1 | 2 | 4 | 8;
  /** What it is, e.g. `RecordBatch.nodes[1].length` or `Message.custom_metadata`. */
  readonly label: string;
  /** The value found (int64 values above 2^53 are approximate). */
  readonly value: number;
}

const MAX_VECTOR_WALK = 64;
const MAX_DEPTH = 8;

class Walker {
  readonly points: FbPoint[] = [];
  private readonly dv: DataView;

  constructor(
    private readonly fb: Uint8Array,
    /** Offset of `fb` in the input, added to every point. */
    private readonly base: number,
  ) {
    this.dv = new DataView(fb.buffer, fb.byteOffset, fb.byteLength);
  }

  private ok(p: number, n: number): boolean {
    return p >= 0 && p + n <= this.fb.byteLength;
  }

  private u32(p: number): number | null {
    return this.ok(p, 4) ? this.dv.getUint32(p, true) : null;
  }

  private add(kind: PointKind, p: number, width: 1 | 2 | 4 | 8, label: string): void {
    if (!this.ok(p, width)) return;
    let value: number;
    if (width === 1) value = this.fb[p]!;
    else if (width === 2) value = this.dv.getInt16(p, true);
    else if (width === 4) value = kind === "soffset" || kind === "int32" ? this.dv.getInt32(p, true) : this.u32(p)!;
    else value = this.dv.getInt32(p + 4, true) * 4294967296 + this.dv.getUint32(p, true);
    this.points.push({ kind, at: this.base + p, width, label, value });
  }

  /** The position of field `index` of the table at `table`, or null when absent or unreadable. */
  private field(table: number, index: number): number | null {
    if (!this.ok(table, 4)) return null;
    const vtable = table - this.dv.getInt32(table, true);
    if (!this.ok(vtable, 4)) return null;
    const vlen = this.dv.getUint16(vtable, true);
    const slot = 4 + index * 2;
    if (slot + 2 > vlen || !this.ok(vtable + slot, 2)) return null;
    const rel = this.dv.getUint16(vtable + slot, true);
    return rel === 0 ? null : table + rel;
  }

  /** Follows the uoffset at `p` (recording it). */
  private deref(p: number, label: string): number | null {
    const off = this.u32(p);
    if (off === null) return null;
    this.add("uoffset", p, 4, label);
    const to = p + off;
    return this.ok(to, 4) ? to : null;
  }

  private table(p: number, label: string): number | null {
    if (!this.ok(p, 4)) return null;
    this.add("soffset", p, 4, `${label}.vtable`);
    return p;
  }

  private string(table: number, index: number, label: string): void {
    const f = this.field(table, index);
    if (f === null) return;
    const s = this.deref(f, label);
    if (s !== null) this.add("string-length", s, 4, label);
  }

  private scalar(table: number, index: number, kind: PointKind, width: 1 | 2 | 4 | 8, label: string): void {
    const f = this.field(table, index);
    if (f !== null) this.add(kind, f, width, label);
  }

  /** A vector field: records its length and returns (position of first element, count). */
  private vector(table: number, index: number, label: string): { first: number; count: number } | null {
    const f = this.field(table, index);
    if (f === null) return null;
    const v = this.deref(f, label);
    if (v === null) return null;
    this.add("vector-length", v, 4, label);
    return { first: v + 4, count: this.u32(v) ?? 0 };
  }

  private tablesOf(table: number, index: number, label: string, each: (t: number, label: string) => void): void {
    const vec = this.vector(table, index, label);
    if (vec === null) return;
    const n = Math.min(vec.count, MAX_VECTOR_WALK);
    for (let i = 0; i < n; i++) {
      const p = vec.first + i * 4;
      const t = this.deref(p, `${label}[${i}]`);
      if (t === null) return;
      each(this.table(t, `${label}[${i}]`) ?? t, `${label}[${i}]`);
    }
  }

  private keyValues(table: number, index: number, label: string): void {
    this.tablesOf(table, index, label, (kv, l) => {
      this.string(kv, 0, `${l}.key`);
      this.string(kv, 1, `${l}.value`);
    });
  }

  private structs16(table: number, index: number, label: string, a: string, b: string): void {
    const vec = this.vector(table, index, label);
    if (vec === null) return;
    // 16-byte structs are 8-aligned: the first one starts after the count, padded by the builder.
    const n = Math.min(vec.count, MAX_VECTOR_WALK);
    for (let i = 0; i < n; i++) {
      const p = vec.first + i * 16;
      this.add("int64", p, 8, `${label}[${i}].${a}`);
      this.add("int64", p + 8, 8, `${label}[${i}].${b}`);
    }
  }

  walkMessage(): { bodyLength: number; headerType: number } {
    const root = this.deref(0, "root");
    if (root === null) return { bodyLength: 0, headerType: 0 };
    const msg = this.table(root, "Message") ?? root;
    this.scalar(msg, 0, "int16", 2, "Message.version");
    const typeAt = this.field(msg, 1);
    const headerType = typeAt !== null && this.ok(typeAt, 1) ? this.fb[typeAt]! : 0;
    if (typeAt !== null) this.add("union-type", typeAt, 1, "Message.header_type");
    const bodyAt = this.field(msg, 3);
    let bodyLength = 0;
    if (bodyAt !== null && this.ok(bodyAt, 8)) {
      this.add("int64", bodyAt, 8, "Message.bodyLength");
      const hi = this.dv.getInt32(bodyAt + 4, true);
      const lo = this.dv.getUint32(bodyAt, true);
      bodyLength = hi >= 0 && hi < 0x200000 ? hi * 4294967296 + lo : 0;
    }
    this.keyValues(msg, 4, "Message.custom_metadata");
    const headerField = this.field(msg, 2);
    const header = headerField === null ? null : this.deref(headerField, "Message.header");
    if (header !== null) {
      const h = this.table(header, "header") ?? header;
      if (headerType === 1) this.schema(h);
      else if (headerType === 3) this.recordBatch(h, "RecordBatch");
      else if (headerType === 2) {
        this.scalar(h, 0, "int64", 8, "DictionaryBatch.id");
        const dataField = this.field(h, 1);
        const data = dataField === null ? null : this.deref(dataField, "DictionaryBatch.data");
        if (data !== null) this.recordBatch(this.table(data, "DictionaryBatch.data") ?? data, "DictionaryBatch.data");
      }
    }
    return { bodyLength, headerType };
  }

  private recordBatch(rb: number, label: string): void {
    this.scalar(rb, 0, "int64", 8, `${label}.length`);
    this.structs16(rb, 1, `${label}.nodes`, "length", "null_count");
    this.structs16(rb, 2, `${label}.buffers`, "offset", "length");
    const variadic = this.vector(rb, 4, `${label}.variadicBufferCounts`);
    if (variadic !== null) {
      const n = Math.min(variadic.count, MAX_VECTOR_WALK);
      for (let i = 0; i < n; i++) this.add("int64", variadic.first + i * 8, 8, `${label}.variadicBufferCounts[${i}]`);
    }
  }

  private schema(s: number): void {
    this.tablesOf(s, 1, "Schema.fields", (f, l) => this.fieldTable(f, l, 0));
    this.keyValues(s, 2, "Schema.custom_metadata");
  }

  private fieldTable(f: number, label: string, depth: number): void {
    if (depth > MAX_DEPTH) return;
    this.string(f, 0, `${label}.name`);
    const typeTypeAt = this.field(f, 2);
    const typeType = typeTypeAt !== null && this.ok(typeTypeAt, 1) ? this.fb[typeTypeAt]! : 0;
    if (typeTypeAt !== null) this.add("union-type", typeTypeAt, 1, `${label}.type_type`);
    const typeField = this.field(f, 3);
    const type = typeField === null ? null : this.deref(typeField, `${label}.type`);
    if (type !== null) {
      const t = this.table(type, `${label}.type`) ?? type;
      // Int.bitWidth, FixedSizeBinary.byteWidth, Decimal.precision, FixedSizeList.listSize.
      if (typeType === 2 || typeType === 7 || typeType === 15 || typeType === 16) {
        this.scalar(t, 0, "int32", 4, `${label}.type.width`);
      }
      if (typeType === 7) this.scalar(t, 2, "int32", 4, `${label}.type.bitWidth`);
      if (typeType === 10) this.string(t, 1, `${label}.type.timezone`);
    }
    const dictField = this.field(f, 4);
    const dict = dictField === null ? null : this.deref(dictField, `${label}.dictionary`);
    if (dict !== null) {
      const d = this.table(dict, `${label}.dictionary`) ?? dict;
      this.scalar(d, 0, "int64", 8, `${label}.dictionary.id`);
      const idxField = this.field(d, 1);
      const idx = idxField === null ? null : this.deref(idxField, `${label}.dictionary.indexType`);
      if (idx !== null) {
        const it = this.table(idx, `${label}.dictionary.indexType`) ?? idx;
        this.scalar(it, 0, "int32", 4, `${label}.dictionary.indexType.bitWidth`);
      }
    }
    this.tablesOf(f, 5, `${label}.children`, (c, l) => this.fieldTable(c, l, depth + 1));
    this.keyValues(f, 6, `${label}.custom_metadata`);
  }
}

/** Body length and header type of a message flatbuffer (0 and 0 when unreadable). */
export function messageInfo(fb: Uint8Array): { bodyLength: number; headerType: number } {
  try {
    return new Walker(fb, 0).walkMessage();
  } catch {
    return { bodyLength: 0, headerType: 0 };
  }
}

/** The points of one message's flatbuffer, at absolute offsets of the input. */
export function pointsOf(bytes: Uint8Array, m: IpcMessage): FbPoint[] {
  const end = Math.min(bytes.byteLength, m.metaStart + m.metaLength);
  if (m.metaStart >= end) return [];
  const w = new Walker(bytes.subarray(m.metaStart, end), m.metaStart);
  try {
    w.walkMessage();
  } catch {
    // Keep what was found before the bytes stopped making sense.
  }
  return w.points;
}

/** The points of every message in `bytes`. */
export function allPoints(bytes: Uint8Array, parts: readonly IpcPart[] = splitIpc(bytes)): FbPoint[] {
  return messagesOf(parts).flatMap((m) => pointsOf(bytes, m));
}
