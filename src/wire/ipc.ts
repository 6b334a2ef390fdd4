/**
 * Arrow IPC streaming format, without I/O: encoding schemas, batches and EOS to byte chunks, and
 * decoding message frames back into schemas and record batches. Several IPC streams travel back
 * to back on one connection, so decoding is message by message and stops exactly at each EOS.
 */
import { type Data, makeData, type RecordBatch, type Schema, Struct, Vector } from "apache-arrow";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { MetadataVersion } from "apache-arrow/fb/metadata-version";
import {
  BufferRegion,
  DictionaryBatch,
  Message,
  RecordBatch as RecordBatchHeader,
} from "apache-arrow/ipc/metadata/message";
import { compareTypes } from "apache-arrow/visitor/typecomparator";
import { VectorAssembler } from "apache-arrow/visitor/vectorassembler";
import { VectorLoader } from "apache-arrow/visitor/vectorloader";
import { frameworkError, type RpcError } from "../errors.js";
import { recordBatch } from "./batches.js";
import { messageMetadata, schemaOfHeader } from "./header-decode.js";
import { type BatchLayout, checkDictionaryBatch, checkRecordBatch } from "./layout.js";
import { decodeRecordBatchLean, encodeRecordBatchLean, LeanMessage, loadLean } from "./lean.js";
import { verifyMessageHeader } from "./verify.js";

/** End-of-stream marker: continuation token then a zero length. */
export const EOS: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

const PADDING = new Uint8Array(8);

function frameFlatbuffer(flatbuffer: Uint8Array): Uint8Array[] {
  const aligned = (flatbuffer.byteLength + 8 + 7) & ~7;
  const prefix = new Uint8Array(8);
  const view = new DataView(prefix.buffer);
  view.setInt32(0, -1, true);
  view.setInt32(4, aligned - 8, true);
  const pad = aligned - 8 - flatbuffer.byteLength;
  return pad > 0 ? [prefix, flatbuffer, PADDING.subarray(0, pad)] : [prefix, flatbuffer];
}

/** The encapsulated schema message (what pyarrow's `Schema.serialize()` produces). */
export function encodeSchemaMessage(schema: Schema): Uint8Array {
  return concatBytes(frameFlatbuffer(Message.encode(Message.from(schema))));
}

/** Schema messages by schema object: declared schemas are long-lived, so each is encoded once. */
const schemaMessages = new WeakMap<Schema, Uint8Array>();

function schemaMessage(schema: Schema): Uint8Array {
  let bytes = schemaMessages.get(schema);
  if (bytes === undefined) {
    bytes = encodeSchemaMessage(schema);
    schemaMessages.set(schema, bytes);
  }
  return bytes;
}

function assembleBody(assembler: VectorAssembler): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const buf of assembler.buffers) {
    if (buf.byteLength === 0) continue;
    out.push(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    const pad = Math.ceil(buf.byteLength / 8) * 8 - buf.byteLength;
    if (pad > 0) out.push(PADDING.subarray(0, pad));
  }
  return out;
}

/**
 * Buffer regions and body length for an assembled batch. arrow-js computes them with 32-bit
 * bitwise rounding, which goes negative past 2 GiB; this recomputes them in doubles.
 */
function layout(assembler: VectorAssembler): { regions: BufferRegion[]; bodyLength: number } {
  const regions: BufferRegion[] = [];
  let at = 0;
  for (const buf of assembler.buffers) {
    const padded = Math.ceil(buf.byteLength / 8) * 8;
    regions.push(new BufferRegion(at, padded));
    at += padded;
  }
  return { regions, bodyLength: at };
}

function encodeDictionary(id: number, data: Data, isDelta: boolean): Uint8Array[] {
  const assembler = VectorAssembler.assemble(new Vector([data]));
  const { regions, bodyLength } = layout(assembler);
  const header = new RecordBatchHeader(data.length, assembler.nodes, regions, null, assembler.variadicBufferCounts);
  const message = Message.from(new DictionaryBatch(header, id, isDelta), bodyLength);
  return [...frameFlatbuffer(Message.encode(message)), ...assembleBody(assembler)];
}

/**
 * Writes one IPC stream: the schema once, dictionaries when they change, batches, then EOS. Each
 * call returns the chunks to send, in order; nothing is copied out of the batch's buffers.
 */
export class IpcStreamEncoder {
  private readonly written = new Map<number, Data>();
  private started = false;

  constructor(readonly schema: Schema) {}

  /** The schema message; returned by the first `batch()` call if not taken before. */
  begin(): Uint8Array[] {
    if (this.started) return [];
    this.started = true;
    return [schemaMessage(this.schema)];
  }

  /** A record batch message (custom metadata from `batch.metadata`), after any dictionary it needs. */
  batch(batch: RecordBatch): Uint8Array[] {
    return this.append(batch, []);
  }

  /**
   * The messages of `batches`, in order, in one array: what `batches.flatMap((b) => enc.batch(b))`
   * returns, without `flatMap`, which V8 runs through its runtime element by element (about 1 us
   * of a server's stream turn).
   */
  batches(batches: readonly RecordBatch[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const b of batches) this.append(b, out);
    return out;
  }

  /** Appends `batch`'s messages (the schema's first, once) to `out`; returns `out`. */
  private append(batch: RecordBatch, out: Uint8Array[]): Uint8Array[] {
    // Bytes of another schema would decode as garbage on the other side: refuse them here.
    if (batch.schema !== this.schema && !sameLayout(batch.schema, this.schema)) {
      throw frameworkError(
        "protocol_error",
        `batch schema (${batch.schema.fields.map((f) => `${f.name}: ${f.type}`).join(", ")}) does not match the stream's (${this.schema.fields.map((f) => `${f.name}: ${f.type}`).join(", ")})`,
      );
    }
    if (!this.started) {
      this.started = true;
      out.push(schemaMessage(this.schema));
    }
    if (batch.schema.fields.length === 0 && batch.metadata.size === 0) {
      out.push(columnlessBatchMessage(batch.numRows));
      return out;
    }
    const lean = encodeRecordBatchLean(batch);
    if (lean !== null) {
      for (const chunk of lean) out.push(chunk);
      return out;
    }
    for (const [id, dictionary] of batch.dictionaries) {
      const chunk = dictionary?.data[0];
      if (chunk === undefined || this.written.get(id) === chunk) continue;
      out.push(...encodeDictionary(id, chunk, false));
      this.written.set(id, chunk);
    }
    out.push(...encodeRecordBatchGeneral(batch));
    return out;
  }

  /** Ends the stream (writing the schema first if no batch was written). */
  end(): Uint8Array[] {
    return [...this.begin(), EOS];
  }
}

/**
 * A record-batch message and its body through arrow-js's assembler and flatbuffer builder: any
 * shape. (The stream encoder takes the lean path first; tests hold the two byte-identical.)
 */
export function encodeRecordBatchGeneral(batch: RecordBatch): Uint8Array[] {
  const assembler = VectorAssembler.assemble(batch);
  const { regions, bodyLength } = layout(assembler);
  const header = new RecordBatchHeader(
    batch.numRows,
    assembler.nodes,
    regions,
    null,
    assembler.variadicBufferCounts,
    batch.metadata.size > 0 ? batch.metadata : undefined,
  );
  const message = Message.from(header, bodyLength);
  return [...frameFlatbuffer(Message.encode(message)), ...assembleBody(assembler)];
}

/** Encoded record-batch messages with no columns and no metadata, by row count (bounded). */
const columnless = new Map<number, Uint8Array>();

/**
 * The message of a batch with no columns and no custom metadata: it depends on the row count
 * alone, and such batches (void results, producer ticks) are written on every call or turn.
 */
function columnlessBatchMessage(numRows: number): Uint8Array {
  let bytes = columnless.get(numRows);
  if (bytes === undefined) {
    const header = new RecordBatchHeader(numRows, [], [], null, []);
    bytes = concatBytes(frameFlatbuffer(Message.encode(Message.from(header, 0))));
    if (columnless.size < 64) columnless.set(numRows, bytes);
  }
  return bytes;
}

/** Same field count and, field by field, the same Arrow type (names and metadata may differ). */
function sameLayout(a: Schema, b: Schema): boolean {
  if (a.fields.length !== b.fields.length) return false;
  return a.fields.every((f, i) => compareTypes(f.type, b.fields[i]!.type));
}

/** Encodes a whole stream of `batches` on `schema`. */
export function encodeStream(schema: Schema, batches: readonly RecordBatch[]): Uint8Array[] {
  const enc = new IpcStreamEncoder(schema);
  const out = enc.begin();
  for (const b of batches) out.push(...enc.batch(b));
  out.push(...enc.end());
  return out;
}

/** The bytes in `chunks` altogether. */
export function totalBytes(chunks: readonly Uint8Array[]): number {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  return total;
}

/** Largest single write handed to the OS, well under INT_MAX. */
export const MAX_WRITE_BYTES = 1 << 30;

/** By default, chunks smaller than this are joined with their small neighbours before writing. */
const COALESCE_BELOW = 64 * 1024;

/**
 * `chunks` as the writes (or messages) to hand a byte stream, none over `max` bytes: every run of
 * consecutive chunks under `coalesceBelow` (default 64 KiB) joined into one (a lone one kept as
 * is), larger chunks passed through as the views they are and split at `max`; empty chunks
 * dropped. So an encoded batch's many small pieces cost one write (or message) while its large
 * column buffers are never copied. `join` joins a run (Node writers pass `Buffer.concat`, whose
 * small allocations come from a pool). A writer that sends several pieces in one vectored write
 * joins less (see the stdio sink).
 */
export function outgoingPieces(
  chunks: readonly Uint8Array[],
  join: (run: readonly Uint8Array[]) => Uint8Array = concatBytes,
  max: number = MAX_WRITE_BYTES,
  coalesceBelow: number = COALESCE_BELOW,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const mergeBelow = Math.min(max, coalesceBelow);
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const flush = () => {
    if (run.length === 1) out.push(run[0]!);
    else if (run.length > 1) out.push(join(run));
    run = [];
    runBytes = 0;
  };
  for (const c of chunks) {
    if (c.byteLength === 0) continue;
    if (c.byteLength < mergeBelow) {
      if (runBytes + c.byteLength > max) flush();
      run.push(c);
      runBytes += c.byteLength;
      continue;
    }
    flush();
    if (c.byteLength <= max) out.push(c);
    else for (let at = 0; at < c.byteLength; at += max) out.push(c.subarray(at, Math.min(c.byteLength, at + max)));
  }
  flush();
  return out;
}

/** Joins chunks into one buffer (from `allocate` when given: `n` bytes the join overwrites). */
export function concatBytes(chunks: readonly Uint8Array[], allocate?: (n: number) => Uint8Array): Uint8Array {
  const total = totalBytes(chunks);
  const out = allocate === undefined ? new Uint8Array(total) : allocate(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** One framed IPC message: its decoded header and its body bytes. */
export interface Frame {
  readonly message: Message;
  readonly body: Uint8Array;
  /** Bytes this frame occupied on the wire (prefix, metadata, padding and body). */
  readonly wireBytes: number;
  /** A schema message's schema, decoded once per distinct message (see `decodeSchema`). */
  readonly schema?: Schema;
  /** True when the body was read into the framer's borrow buffer (`MessageFramer.next(true)`). */
  readonly borrowed?: true;
}

/**
 * Decodes a message's flatbuffer, mapping flatbuffer failures to a protocol error. Nothing reads
 * a header before it is verified (see verify.ts): the lean reader checks every read itself, a
 * schema message seen before was verified then, and anything else is verified here first.
 */
export function decodeMessage(flatbuffer: Uint8Array): Message {
  const lean = decodeRecordBatchLean(flatbuffer);
  if (lean !== null) return lean;
  const known = knownSchemaMessage(flatbuffer);
  if (known !== null) return known.message;
  const { refusal, bodyLength, version, headerType } = verifyMessageHeader(flatbuffer);
  if (refusal !== null) return new RefusedMessage(bodyLength, version, headerType, refusal);
  // Strings (metadata, field names) are read here rather than by arrow-js, which drops a leading
  // U+FEFF (header-decode.ts); arrow-js still reads the numbers of batch headers.
  const metadata = messageMetadata(flatbuffer);
  if (headerType === MessageHeader.Schema) {
    return new Message(bodyLength, version, headerType, schemaOfHeader(flatbuffer, version), metadata);
  }
  try {
    const decoded = Message.decode(flatbuffer);
    return new Message(bodyLength, version, headerType, decoded.header(), metadata);
  } catch (err) {
    throw frameworkError("protocol_error", `malformed Arrow IPC message: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * A message that verified as a flatbuffer but must not be decoded (see `VerifiedHeader`): readers
 * skip its body, so the byte stream stays framed, and the stream decoder refuses it.
 */
export class RefusedMessage extends Message {
  constructor(
    bodyLength: number,
    version: number,
    headerType: number,
    /** Why it is refused. */
    readonly refusal: RpcError,
  ) {
    super(bodyLength, version, headerType);
  }

  override header(): never {
    throw this.refusal;
  }
}

/** A schema message seen before: its bytes, its decoded message and schema. */
interface KnownSchema {
  readonly bytes: Uint8Array;
  readonly message: Message;
  readonly schema: Schema;
}

/**
 * Decoded schema messages by byte length, then compared byte for byte: calls repeat the same few
 * schemas, and decoding one (fields, types, metadata maps) costs more than the rest of a small
 * call's framing. Equal messages share one Message and one Schema, which callers treat as
 * immutable (as arrow-js does).
 */
const knownSchemas = new Map<number, KnownSchema[]>();
let knownCount = 0;
const MAX_DECODED_SCHEMAS = 256;
/** Schema messages larger than this are decoded every time (rare, and comparing them costs more). */
const MAX_CACHED_SCHEMA_BYTES = 16 * 1024;
/** Schemas of the messages in the cache (a message decoded elsewhere is not in it). */
const schemaOfKnown = new WeakMap<Message, Schema>();

function knownSchemaMessage(flatbuffer: Uint8Array): KnownSchema | null {
  const n = flatbuffer.byteLength;
  const candidates = n <= MAX_CACHED_SCHEMA_BYTES ? knownSchemas.get(n) : undefined;
  if (candidates === undefined) return null;
  for (const known of candidates) if (sameBytes(known.bytes, flatbuffer)) return known;
  return null;
}

/** Node's Buffer.compare when present (the wire layer also runs in browsers). */
const compareBytes = (globalThis as { Buffer?: { compare(a: Uint8Array, b: Uint8Array): number } }).Buffer?.compare;

/**
 * Whether `a` and `b` hold the same bytes. Node's memcmp is 5-10x faster than a loop here over a
 * schema message's few hundred bytes.
 */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  if (compareBytes !== undefined) return compareBytes(a, b) === 0;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The schema of a schema message whose flatbuffer is `flatbuffer`. Equal messages share one
 * Schema object, which callers treat as immutable (as arrow-js does).
 */
export function decodeSchema(message: Message, flatbuffer: Uint8Array): Schema {
  const cached = schemaOfKnown.get(message);
  if (cached !== undefined) return cached;
  const schema = message.header() as Schema;
  const n = flatbuffer.byteLength;
  if (n > MAX_CACHED_SCHEMA_BYTES) return schema;
  if (knownCount >= MAX_DECODED_SCHEMAS) {
    knownSchemas.clear();
    knownCount = 0;
  }
  // Copies: the caller's bytes are a view of a reused read buffer, which the decoded message's
  // lazy header would read again; the cached message answers with the schema itself.
  const shared = new Message(message.bodyLength, message.version, message.headerType, schema, message.metadata);
  const known: KnownSchema = { bytes: new Uint8Array(flatbuffer), message: shared, schema };
  schemaOfKnown.set(shared, schema);
  const list = knownSchemas.get(n);
  if (list === undefined) knownSchemas.set(n, [known]);
  else list.push(known);
  knownCount++;
  schemaOfKnown.set(message, schema);
  return schema;
}

/**
 * Splits `region`, bytes held whole in memory (a shared-memory allocation, an IPC payload inside a
 * value), into IPC frames, stopping at EOS or the region's end; every length is bounds-checked and
 * every header verified (`decodeMessage`) before it is read.
 */
export function* framesOf(region: Uint8Array, what = "shared-memory region"): Generator<Frame> {
  const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
  let at = 0;
  while (at + 4 <= region.byteLength) {
    let prefix = 4;
    let length = view.getInt32(at, true);
    if (length === -1) {
      if (at + 8 > region.byteLength) break;
      prefix = 8;
      length = view.getInt32(at + 4, true);
    }
    if (length === 0) return;
    if (length < 0 || at + prefix + length > region.byteLength) {
      throw frameworkError(
        "protocol_error",
        `${what}: IPC message header of ${length} bytes at ${at} runs past the ${region.byteLength} bytes there are`,
      );
    }
    const message = decodeMessage(region.subarray(at + prefix, at + prefix + length));
    const bodyStart = at + prefix + length;
    const bodyLength = message.bodyLength;
    if (!Number.isSafeInteger(bodyLength) || bodyLength < 0 || bodyStart + bodyLength > region.byteLength) {
      throw frameworkError(
        "protocol_error",
        `${what}: IPC message body of ${bodyLength} bytes at ${bodyStart} runs past the ${region.byteLength} bytes there are`,
      );
    }
    let body = region.subarray(bodyStart, bodyStart + bodyLength);
    // Arrow reads buffers through typed arrays, which need 8-byte aligned views.
    if (body.byteOffset % 8 !== 0) body = Uint8Array.prototype.slice.call(body);
    yield { message, body, wireBytes: prefix + length + bodyLength };
    at = bodyStart + bodyLength;
  }
  if (at !== region.byteLength) {
    throw frameworkError("protocol_error", `${what} ends inside an IPC message prefix at ${at}`);
  }
}

/** One IPC stream decoded from bytes held in memory: its schema and batches. */
export interface DecodedStream {
  readonly schema: Schema;
  readonly batches: RecordBatch[];
}

/**
 * Decodes the IPC stream at the start of `bytes` (held whole in memory: an IPC payload inside a
 * value, say) with the same verification as every transport; `what` names the bytes in errors.
 * Null when `bytes` hold no schema message.
 */
export function decodeStreamBytes(bytes: Uint8Array, what = "IPC payload"): DecodedStream | null {
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  for (const frame of framesOf(bytes, what)) {
    const out = decoder.accept(frame);
    if (out !== null && "numRows" in out) batches.push(out);
  }
  return decoder.schema === null ? null : { schema: decoder.schema, batches };
}

/** A decoded record-batch header's numbers, as the layout check reads them. */
function plainLayout(header: RecordBatchHeader): BatchLayout {
  const nodes: number[] = [];
  for (const n of header.nodes) nodes.push(n.length, n.nullCount);
  const regions: number[] = [];
  for (const b of header.buffers) regions.push(b.offset, b.length);
  return { rows: header.length, nodes, regions, variadicCounts: header.variadicBufferCounts };
}

/**
 * Turns the frames of one IPC stream into a schema and record batches. Feed it frames in order;
 * it does no I/O and never sees bytes past the stream's EOS (the framer stops there).
 */
export class IpcStreamDecoder {
  private schemaValue: Schema | null = null;
  private readonly dictionaries = new Map<number, Vector>();

  get schema(): Schema | null {
    return this.schemaValue;
  }

  /**
   * Consumes one frame. Returns the schema for a schema message, a batch for a record batch,
   * or null for a dictionary batch.
   */
  accept(frame: Frame): Schema | RecordBatch | null {
    const { message, body } = frame;
    if (message instanceof RefusedMessage) throw message.refusal;
    if (message.headerType === MessageHeader.Schema) {
      if (this.schemaValue !== null)
        throw frameworkError("protocol_error", "a second schema message in one IPC stream");
      this.schemaValue = frame.schema ?? (message.header() as Schema);
      return this.schemaValue;
    }
    const schema = this.schemaValue;
    if (schema === null) throw frameworkError("protocol_error", "IPC stream does not start with a schema message");
    const unionValidity = message.version < MetadataVersion.V5;
    if (message instanceof LeanMessage) {
      checkRecordBatch(schema, message, body, unionValidity);
      let data: Data<Struct> | null;
      try {
        data = loadLean(schema, message, body);
      } catch (err) {
        throw frameworkError("protocol_error", `malformed Arrow record batch: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (data !== null) return recordBatch(schema, data, message.metadata);
    }
    if (message.headerType === MessageHeader.RecordBatch) {
      const header = message.header() as RecordBatchHeader;
      if (header.compression != null) {
        throw frameworkError("protocol_error", "compressed IPC buffers are not part of the vgi-rpc wire protocol");
      }
      checkRecordBatch(schema, plainLayout(header), body, unionValidity);
      const children = this.load(
        schema,
        header,
        body,
        schema.fields.map((f) => f.type),
      );
      const data = makeData({ type: new Struct(schema.fields), length: header.length, nullCount: 0, children });
      return recordBatch(schema, data, message.metadata);
    }
    if (message.headerType === MessageHeader.DictionaryBatch) {
      const header = message.header() as DictionaryBatch;
      const type = schema.dictionaries.get(header.id);
      if (type === undefined) throw frameworkError("protocol_error", `dictionary batch for unknown id ${header.id}`);
      if (header.data.compression != null) {
        throw frameworkError("protocol_error", "compressed IPC buffers are not part of the vgi-rpc wire protocol");
      }
      checkDictionaryBatch(type, plainLayout(header.data), body, unionValidity);
      const [data] = this.load(schema, header.data, body, [type]);
      const existing = this.dictionaries.get(header.id);
      const vector = new Vector([data!]);
      this.dictionaries.set(header.id, header.isDelta && existing ? existing.concat(vector) : vector);
      return null;
    }
    throw frameworkError("protocol_error", `unexpected IPC message type ${message.headerType}`);
  }

  private load(
    schema: Schema,
    header: RecordBatchHeader,
    body: Uint8Array,
    types: Schema["fields"][number]["type"][],
  ): Data[] {
    try {
      return new VectorLoader(
        body,
        header.nodes,
        header.buffers,
        this.dictionaries,
        schema.metadataVersion,
        header.variadicBufferCounts,
      ).visitMany(types);
    } catch (err) {
      throw frameworkError("protocol_error", `malformed Arrow record batch: ${(err as Error).message}`, { cause: err });
    }
  }
}
