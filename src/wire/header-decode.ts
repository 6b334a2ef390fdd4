/**
 * Reads the strings and schemas of verified message headers (see verify.ts) into arrow-js objects,
 * keeping every code point: apache-arrow reads flatbuffer strings through flatbuffers'
 * `TextDecoder`, which drops a leading U+FEFF (a byte-order mark to it, a character to the peer),
 * so a metadata key, value or field name starting with one arrived changed. Only verified headers
 * come here, so positions are trusted; reads still go through a DataView.
 */
import {
  Binary,
  BinaryView,
  Bool,
  type DataType,
  Date_,
  Decimal,
  Dictionary,
  Duration,
  Field,
  FixedSizeBinary,
  FixedSizeList,
  Float,
  Int,
  Int32,
  Interval,
  LargeBinary,
  LargeList,
  LargeUtf8,
  List,
  Map_,
  Null,
  Schema,
  Struct,
  Time,
  Timestamp,
  Union,
  Utf8,
  Utf8View,
} from "apache-arrow";

/** UTF-8 as written: a leading U+FEFF is a character, not a byte-order mark to drop. */
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** Field positions and values of a verified flatbuffer. */
class Reader {
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Position of field `slot` of the table at `table`, or 0 when absent. */
  field(table: number, slot: number): number {
    const vtable = table - this.view.getInt32(table, true);
    const entry = 4 + slot * 2;
    if (entry >= this.view.getUint16(vtable, true)) return 0;
    const rel = this.view.getUint16(vtable + entry, true);
    return rel === 0 ? 0 : table + rel;
  }

  /** The object field `slot` points to, or 0 when absent. */
  ref(table: number, slot: number): number {
    const p = this.field(table, slot);
    return p === 0 ? 0 : p + this.view.getUint32(p, true);
  }

  u8(table: number, slot: number, dflt: number): number {
    const p = this.field(table, slot);
    return p === 0 ? dflt : this.bytes[p]!;
  }

  i16(table: number, slot: number, dflt: number): number {
    const p = this.field(table, slot);
    return p === 0 ? dflt : this.view.getInt16(p, true);
  }

  i32(table: number, slot: number, dflt: number): number {
    const p = this.field(table, slot);
    return p === 0 ? dflt : this.view.getInt32(p, true);
  }

  /** An int64 field the verifier found to fit in 53 bits. */
  i64(table: number, slot: number): number {
    const p = this.field(table, slot);
    return p === 0 ? 0 : this.view.getInt32(p + 4, true) * 4294967296 + this.view.getUint32(p, true);
  }

  /** The string at `str`, or null for 0 (absent). */
  string(str: number): string | null {
    if (str === 0) return null;
    const n = this.view.getUint32(str, true);
    return utf8.decode(this.bytes.subarray(str + 4, str + 4 + n));
  }

  /** The table offsets of the vector at `vec` (none for 0). */
  tables(vec: number): number[] {
    if (vec === 0) return [];
    const n = this.view.getUint32(vec, true);
    const out: number[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const at = vec + 4 + i * 4;
      out[i] = at + this.view.getUint32(at, true);
    }
    return out;
  }

  int32s(vec: number): number[] {
    if (vec === 0) return [];
    const n = this.view.getUint32(vec, true);
    const out: number[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getInt32(vec + 4 + i * 4, true);
    return out;
  }

  /** The root table (the Message). */
  root(): number {
    return this.view.getUint32(0, true);
  }
}

/** A KeyValue vector as a Map, entries without a key skipped and missing values as "" (as arrow-js reads them). */
function keyValues(r: Reader, vec: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of r.tables(vec)) {
    const key = r.string(r.ref(kv, 0));
    if (key !== null) out.set(key, r.string(r.ref(kv, 1)) ?? "");
  }
  return out;
}

/** The custom metadata of a verified message header. */
export function messageMetadata(bytes: Uint8Array): Map<string, string> {
  const r = new Reader(bytes);
  return keyValues(r, r.ref(r.root(), 4));
}

/**
 * The schema of a verified Schema message header, as arrow-js's own decoder builds it (the same
 * types, dictionary ids and metadata version), with strings kept exactly.
 */
export function schemaOfHeader(bytes: Uint8Array, version: number): Schema {
  const r = new Reader(bytes);
  const schema = r.ref(r.root(), 2);
  const dictionaries = new Map<number, DataType>();
  const fields = r.tables(r.ref(schema, 1)).map((f) => fieldOf(r, f, dictionaries));
  return new Schema(fields, keyValues(r, r.ref(schema, 2)), dictionaries, version);
}

function fieldOf(r: Reader, f: number, dictionaries: Map<number, DataType>): Field {
  const name = r.string(r.ref(f, 0)) ?? "";
  const nullable = r.u8(f, 1, 0) !== 0;
  const metadata = keyValues(r, r.ref(f, 6));
  const children = r.tables(r.ref(f, 5)).map((c) => fieldOf(r, c, dictionaries));
  const encoding = r.ref(f, 4);
  if (encoding === 0) return new Field(name, typeOf(r, f, children), nullable, metadata);
  const id = r.i64(encoding, 0);
  const index = r.ref(encoding, 1);
  const indices = index === 0 ? new Int32() : (intType(r.u8(index, 1, 0) !== 0, r.i32(index, 0, 0)) as Int32);
  // The first field of an id declares its value type; later ones share it, as arrow-js does.
  let values = dictionaries.get(id);
  if (values === undefined) {
    values = typeOf(r, f, children);
    dictionaries.set(id, values);
  }
  return new Field(name, new Dictionary(values, indices, id, r.u8(encoding, 2, 0) !== 0), nullable, metadata);
}

/** An integer type (its width verified to be 8, 16, 32 or 64), as arrow-js builds it. */
function intType(signed: boolean, bitWidth: number): Int {
  return new (Int as unknown as new (signed: boolean, bitWidth: number) => Int)(signed, bitWidth);
}

/** The type of field `f` (its Type union member, verified to be one arrow-js builds). */
function typeOf(r: Reader, f: number, children: Field[]): DataType {
  const t = r.ref(f, 3);
  switch (r.u8(f, 2, 0)) {
    case 1:
      return new Null();
    case 2:
      return intType(r.u8(t, 1, 0) !== 0, r.i32(t, 0, 0));
    case 3:
      return new Float(r.i16(t, 0, 0));
    case 4:
      return new Binary();
    case 5:
      return new Utf8();
    case 6:
      return new Bool();
    case 7:
      return new Decimal(r.i32(t, 1, 0), r.i32(t, 0, 0), r.i32(t, 2, 128));
    case 8:
      return new Date_(r.i16(t, 0, 1));
    case 9:
      return new Time(r.i16(t, 0, 1), r.i32(t, 1, 32) as 32);
    case 10:
      return new Timestamp(r.i16(t, 0, 0), r.string(r.ref(t, 1)));
    case 11:
      return new Interval(r.i16(t, 0, 0));
    case 12:
      return new List(children[0]!);
    case 13:
      return new Struct(children);
    case 14:
      return new Union(r.i16(t, 0, 0), r.int32s(r.ref(t, 1)), children);
    case 15:
      return new FixedSizeBinary(r.i32(t, 0, 0));
    case 16:
      return new FixedSizeList(r.i32(t, 0, 0), children[0]!);
    case 17:
      return new Map_(children[0]! as Field<Struct>, r.u8(t, 0, 0) !== 0);
    case 18:
      return new Duration(r.i16(t, 0, 1));
    case 19:
      return new LargeBinary();
    case 20:
      return new LargeUtf8();
    case 21:
      return new LargeList(children[0]!);
    case 23:
      return new BinaryView();
    case 24:
      return new Utf8View();
    default:
      // The verifier refuses every other member before a header reaches here.
      throw new Error(`unverified type id ${r.u8(f, 2, 0)}`);
  }
}
