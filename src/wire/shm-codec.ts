/**
 * What goes into a segment allocation, as the reference lays it out:
 * - a schema without top-level dictionary fields: one whole IPC stream (schema message, record
 *   batch message, EOS);
 * - a schema with a top-level dictionary field: only the dictionary batch messages and the record
 *   batch message; the reader supplies the schema (from the pointer batch) and the EOS.
 * The batch's own custom metadata stays out of the region: it rides on the pointer batch.
 *
 * Dictionary ids: the reader rebuilds the schema message from the pointer batch's schema, and
 * pyarrow numbers dictionaries 0, 1, ... in field order when it serializes a schema, whatever ids
 * the pipe's stream used. So the dictionary messages in a region carry those canonical ids, and
 * decoding assumes them. (arrow-js draws ids from a process-wide counter, hence the renumbering.)
 * A schema with a dictionary nested below the top level on this path is not placed in shm.
 *
 * Decoding is synchronous and bounded by the region: a frame that runs past it is a
 * `protocol_error`, never a read beyond the allocation.
 */
import { type Data, DataType, Dictionary, makeData, RecordBatch, Schema, Struct } from "apache-arrow";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { frameworkError } from "../errors.js";
import { encodeSchemaMessage, type Frame, framesOf, IpcStreamDecoder, IpcStreamEncoder } from "./ipc.js";

/**
 * What encoding into and reading from a segment needs of it (`ShmSegment` in
 * `quiver-rpc/shm` has this shape; this module never maps anything itself).
 */
export interface SegmentAccess {
  readonly name: string;
  /** Total bytes, header included (what `vgi_rpc.shm_segment_size` advertises). */
  readonly size: number;
  /** An offset as pointer batches carry it, or null when no gap is large enough. */
  allocate(length: number): number | null;
  write(offset: number, chunks: readonly Uint8Array[]): void;
  read(offset: number, length: number): Uint8Array;
  free(offset: number): void;
}

/** The environment variable overriding the size threshold (as the reference reads it). */
export const SHM_MIN_BATCH_BYTES_ENV = "VGI_RPC_SHM_MIN_BATCH_BYTES";

/** Node's `process`, or undefined where there is none (a browser bundling the client). */
function nodeProcess(): { env: Record<string, string | undefined>; platform: string } | undefined {
  return (globalThis as { process?: { env: Record<string, string | undefined>; platform: string } }).process;
}

/**
 * The smallest batch worth a segment round trip: `VGI_RPC_SHM_MIN_BATCH_BYTES` when it parses as an
 * integer, else 128 KiB (1 MiB on Windows, where mapping costs more) — the reference's rule.
 */
export function resolveShmMinBatchBytes(
  env: Readonly<Record<string, string | undefined>> = nodeProcess()?.env ?? {},
  platform: string = nodeProcess()?.platform ?? "browser",
): number {
  const raw = env[SHM_MIN_BATCH_BYTES_ENV];
  if (raw !== undefined && /^\s*[+-]?\d+\s*$/.test(raw)) {
    const n = Number(raw.trim());
    if (Number.isSafeInteger(n)) return n;
  }
  return platform === "win32" ? 1024 * 1024 : 128 * 1024;
}

/** Resolved once at import, like the reference's `SHM_MIN_BATCH_BYTES`. */
export const SHM_MIN_BATCH_BYTES: number = resolveShmMinBatchBytes();

/** True when a top-level field is dictionary-encoded (the reference looks no deeper). */
export function hasTopLevelDictionary(schema: Schema): boolean {
  return schema.fields.some((f) => DataType.isDictionary(f.type));
}

function containsDictionary(type: DataType): boolean {
  if (DataType.isDictionary(type)) return true;
  return (type.children ?? []).some((f) => containsDictionary(f.type));
}

/**
 * `schema` with its top-level dictionary fields numbered 0..n-1 in field order (the same object
 * when they already are), or `null` when a dictionary sits below the top level.
 */
export function canonicalDictionarySchema(schema: Schema): Schema | null {
  let next = 0;
  let changed = false;
  const fields = [];
  for (const f of schema.fields) {
    const type = f.type;
    if (!DataType.isDictionary(type)) {
      if (containsDictionary(type)) return null;
      fields.push(f);
      continue;
    }
    if (containsDictionary(type.dictionary)) return null;
    const id = next++;
    if (type.id === id) {
      fields.push(f);
      continue;
    }
    changed = true;
    fields.push(f.clone({ type: new Dictionary(type.dictionary, type.indices, id, type.isOrdered) }));
  }
  return changed ? new Schema(fields, schema.metadata, undefined, schema.metadataVersion) : schema;
}

/** `batch`'s columns re-typed to `schema` (same layout, other dictionary ids), without metadata. */
function retype(batch: RecordBatch, schema: Schema): RecordBatch {
  const children = batch.data.children.map((c, i) => {
    const type = schema.fields[i]!.type;
    return c.type === type ? c : c.clone(type);
  });
  return new RecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length: batch.numRows, nullCount: 0, children }),
  );
}

function dataBytes(data: Data, seen: Set<Data>): number {
  if (seen.has(data)) return 0;
  seen.add(data);
  let n = 0;
  for (const buf of [data.valueOffsets, data.values, data.nullBitmap, data.typeIds] as const) {
    if (buf !== undefined && buf !== null) n += (buf as ArrayBufferView).byteLength;
  }
  for (const child of data.children) n += dataBytes(child, seen);
  for (const chunk of data.dictionary?.data ?? []) n += dataBytes(chunk, seen);
  return n;
}

/**
 * Bytes the batch's buffers hold (validity, offsets, values, children, dictionaries): the figure
 * the threshold is compared with, as pyarrow's `RecordBatch.nbytes` is in the reference.
 */
export function batchByteSize(batch: RecordBatch): number {
  return dataBytes(batch.data, new Set());
}

/** The encoded region: chunks to copy in order, and their total length. */
export interface ShmPayload {
  readonly chunks: Uint8Array[];
  readonly byteLength: number;
}

/**
 * Whether a region can carry batches of `schema`: always, except a schema with a top-level
 * dictionary and another dictionary nested below the top level, whose ids this module does not
 * renumber (such batches travel on the pipe).
 */
export function shmCanCarry(schema: Schema): boolean {
  return !hasTopLevelDictionary(schema) || canonicalDictionarySchema(schema) !== null;
}

/**
 * Encodes `batch` as the reference stores it in an allocation (see the module comment). Throws a
 * `RangeError` when `shmCanCarry(batch.schema)` is false.
 */
export function encodeForShm(batch: RecordBatch): ShmPayload {
  let chunks: Uint8Array[];
  if (hasTopLevelDictionary(batch.schema)) {
    const schema = canonicalDictionarySchema(batch.schema);
    if (schema === null) {
      throw new RangeError("a schema with top-level and nested dictionaries cannot be placed in shared memory");
    }
    const enc = new IpcStreamEncoder(schema);
    enc.begin(); // the reader supplies the schema message
    chunks = enc.batch(retype(batch, schema));
  } else {
    // Without metadata: the pointer batch carries the application's metadata, not the region.
    const bare = batch.metadata.size > 0 ? new RecordBatch(batch.schema, batch.data) : batch;
    const enc = new IpcStreamEncoder(batch.schema);
    chunks = [...enc.batch(bare), ...enc.end()];
  }
  let byteLength = 0;
  for (const c of chunks) byteLength += c.byteLength;
  return { chunks, byteLength };
}

/**
 * Decodes the batch in an allocation's bytes. `schema` is the pointer batch's: it is needed for
 * dictionary schemas, whose regions carry no schema message (the batch then comes back typed by
 * `schema` itself). The batch's buffers are views of `region` (zero-copy) where aligned; copy
 * `region` first if it will be freed before the batch is done with.
 */
export function decodeFromShm(region: Uint8Array, schema: Schema): RecordBatch {
  const decoder = new IpcStreamDecoder();
  const frames = framesOf(region);
  const first = frames.next();
  if (first.done) throw frameworkError("protocol_error", "shared-memory region holds no IPC message");
  let canonical: Schema | null = null;
  if (first.value.message.headerType !== MessageHeader.Schema) {
    canonical = hasTopLevelDictionary(schema) ? canonicalDictionarySchema(schema) : null;
    if (canonical === null) {
      throw frameworkError("protocol_error", "shared-memory region does not start with a schema message");
    }
    const [schemaFrame] = [...framesOf(encodeSchemaMessage(canonical))];
    decoder.accept(schemaFrame!);
  }
  for (let f: IteratorResult<Frame> = first; !f.done; f = frames.next()) {
    const out = decoder.accept(f.value);
    if (out instanceof RecordBatch) return canonical === null ? out : retype(out, schema);
  }
  throw frameworkError("protocol_error", "shared-memory region holds no record batch");
}

/** Options for `writeBatchToShm`. */
export interface WriteToShmOptions {
  /** Batches smaller than this (by `batchByteSize`) stay on the pipe. Default: `SHM_MIN_BATCH_BYTES`. */
  readonly minBatchBytes?: number;
}

/**
 * The reference's `maybe_write_to_shm` without the pointer batch: writes `batch` into a fresh
 * allocation and returns where (the pointer's offset and length), or `null` when the batch should
 * travel on the pipe instead — no rows, under the threshold, a layout the region cannot carry
 * (see `encodeForShm`), or no room in the segment.
 * The allocation is rounded up to 8 bytes so the next one stays aligned; `length` is exact.
 */
export function writeBatchToShm(
  segment: SegmentAccess,
  batch: RecordBatch,
  opts: WriteToShmOptions = {},
): { offset: number; length: number } | null {
  if (batch.numRows === 0 || batchByteSize(batch) < (opts.minBatchBytes ?? SHM_MIN_BATCH_BYTES)) return null;
  if (!shmCanCarry(batch.schema)) return null;
  const payload = encodeForShm(batch);
  const offset = segment.allocate(Math.ceil(payload.byteLength / 8) * 8);
  if (offset === null) return null;
  try {
    segment.write(offset, payload.chunks);
  } catch (err) {
    segment.free(offset);
    throw err;
  }
  return { offset, length: payload.byteLength };
}

/** Options for `readBatchFromShm`. */
export interface ReadFromShmOptions {
  /** Copy the region out before decoding, so the allocation can be freed at once. Default: false. */
  readonly copy?: boolean;
}

/**
 * Reads and decodes the batch a pointer names. Zero-copy by default with the mmap backing: the
 * batch then lives in the allocation, which must not be freed while the batch is in use.
 */
export function readBatchFromShm(
  segment: SegmentAccess,
  offset: number,
  length: number,
  schema: Schema,
  opts: ReadFromShmOptions = {},
): RecordBatch {
  const region = segment.read(offset, length);
  return decodeFromShm(opts.copy === true ? Uint8Array.prototype.slice.call(region) : region, schema);
}
