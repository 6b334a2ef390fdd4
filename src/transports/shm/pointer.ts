/**
 * Pointer batches: how a batch that lives in a shared-memory segment travels on the pipe. The
 * writer serializes the batch into an allocation and sends a zero-row batch of the same schema
 * carrying `vgi_rpc.shm_offset` / `vgi_rpc.shm_length`; the reader copies the region out,
 * decodes it and frees the allocation (the reader owns the free, as in the reference).
 *
 * The region holds what the reference writes: a whole IPC stream (schema, batch, EOS) for
 * schemas without dictionaries; for dictionary schemas only the dictionary and record batch
 * messages, the reader supplying the schema message and EOS itself.
 *
 * This module only needs the `SegmentAccess` shape, so it never loads the native mapping.
 */
import { DataType, RecordBatch, type Schema } from "apache-arrow";
import { frameworkError, RpcError } from "../../errors.js";
import { emptyBatch } from "../../wire/batches.js";
import { MessageFramer } from "../../wire/framer.js";
import { concatBytes, EOS, encodeSchemaMessage, IpcStreamDecoder, IpcStreamEncoder } from "../../wire/ipc.js";
import {
  LOG_LEVEL_KEY,
  SHM_LENGTH_KEY,
  SHM_OFFSET_KEY,
  SHM_SEGMENT_NAME_KEY,
  SHM_SEGMENT_SIZE_KEY,
  SHM_SOURCE_KEY,
} from "../../wire/keys.js";

/** What the pointer layer needs of a segment (`ShmSegment` has this shape). */
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

function readThreshold(): number {
  const raw = process.env.VGI_RPC_SHM_MIN_BATCH_BYTES;
  if (raw) {
    const n = Number.parseInt(raw, 10);
    if (Number.isSafeInteger(n)) return n;
  }
  return process.platform === "win32" ? 1024 * 1024 : 128 * 1024;
}

/**
 * Smallest batch (logical buffer bytes) sent through the segment; smaller ones are cheaper on the
 * pipe. 128 KiB (1 MiB on Windows), overridable with `VGI_RPC_SHM_MIN_BATCH_BYTES`, as the
 * reference resolves it.
 */
export const SHM_THRESHOLD_BYTES: number = readThreshold();

/** The metadata keys a request carries so a worker can attach the client's segment. */
export function segmentMetadata(segment: SegmentAccess): [string, string][] {
  return [
    [SHM_SEGMENT_NAME_KEY, segment.name],
    [SHM_SEGMENT_SIZE_KEY, String(segment.size)],
  ];
}

function hasDictionaries(schema: Schema): boolean {
  return schema.fields.some((f) => DataType.isDictionary(f.type));
}

/** True for a zero-row batch carrying an shm offset and no log level (the reference's test). */
export function isPointerBatch(batch: RecordBatch): boolean {
  return batch.numRows === 0 && batch.metadata.has(SHM_OFFSET_KEY) && !batch.metadata.has(LOG_LEVEL_KEY);
}

/**
 * Moves `batch` into the segment when it has rows, its logical size reaches `threshold`, and an
 * allocation fits; returns the pointer batch to send instead, or `batch` itself. Application
 * metadata on the batch rides on the pointer. `bytes` is the batch's logical size when known.
 */
export function toPointer(
  batch: RecordBatch,
  segment: SegmentAccess,
  bytes: number,
  threshold: number = SHM_THRESHOLD_BYTES,
): RecordBatch {
  if (batch.numRows === 0 || bytes < threshold) return batch;
  const enc = new IpcStreamEncoder(batch.schema);
  const dict = hasDictionaries(batch.schema);
  let chunks: Uint8Array[];
  if (dict) {
    enc.begin(); // the reader supplies the schema message
    chunks = enc.batch(batch);
  } else chunks = [...enc.batch(batch), ...enc.end()];
  let length = 0;
  for (const c of chunks) length += c.byteLength;
  const offset = segment.allocate(length);
  if (offset === null) return batch; // full: the pipe carries it, as the reference falls back
  try {
    segment.write(offset, chunks);
  } catch (err) {
    segment.free(offset);
    throw err;
  }
  const md = new Map(batch.metadata);
  md.set(SHM_OFFSET_KEY, String(offset));
  md.set(SHM_LENGTH_KEY, String(length));
  return emptyBatch(batch.schema, md);
}

function parseDecimal(md: ReadonlyMap<string, string>, key: string): number {
  const raw = md.get(key) ?? "";
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw frameworkError("protocol_error", `shared-memory pointer batch has an invalid ${key} '${raw}'`);
  }
  return n;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/**
 * Resolves a pointer batch against `segment`: copies the region out, frees it, decodes the batch
 * it holds. With no segment the pointer cannot be followed: a `protocol_error`, never a silent
 * empty batch. A pointer outside the segment or to no live allocation is a `protocol_error`
 * whose cause is the segment's `ShmError`; the allocation is freed whenever it was valid.
 */
export async function resolvePointer(batch: RecordBatch, segment: SegmentAccess | null): Promise<RecordBatch> {
  if (segment === null) {
    throw frameworkError(
      "protocol_error",
      "received a shared-memory pointer batch, but no shared-memory segment is attached to this connection",
    );
  }
  const md = batch.metadata;
  const offset = parseDecimal(md, SHM_OFFSET_KEY);
  const length = parseDecimal(md, SHM_LENGTH_KEY);
  let region: Uint8Array;
  try {
    // A private copy: the peer may reuse the allocation as soon as it is freed.
    region = Uint8Array.prototype.slice.call(segment.read(offset, length));
    segment.free(offset);
  } catch (err) {
    if (err instanceof RpcError) throw err;
    throw frameworkError(
      "protocol_error",
      `cannot resolve shared-memory pointer (offset ${offset}, length ${length}) in segment '${segment.name}': ${(err as Error).message}`,
      { cause: err },
    );
  }
  const bytes = hasDictionaries(batch.schema) ? concatBytes([encodeSchemaMessage(batch.schema), region, EOS]) : region;
  const framer = new MessageFramer(once(bytes));
  const decoder = new IpcStreamDecoder();
  let out: RecordBatch | null = null;
  for (;;) {
    const f = await framer.next();
    if (f === "eos" || f === "end") break;
    const r = decoder.accept(f);
    if (r !== null && "numRows" in r) {
      out = r;
      break;
    }
  }
  if (out === null) {
    throw frameworkError("protocol_error", `shared-memory region at offset ${offset} holds no record batch`);
  }
  const resolved = new Map(md);
  resolved.delete(SHM_OFFSET_KEY);
  resolved.delete(SHM_LENGTH_KEY);
  resolved.set(SHM_SOURCE_KEY, segment.name);
  return new RecordBatch(out.schema, out.data, resolved);
}
