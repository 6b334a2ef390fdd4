/**
 * Pointer batches: how a batch that lives in a shared-memory segment travels on the pipe. The
 * writer encodes the batch into an allocation (the layout is the codec's, the reference's) and
 * sends a zero-row batch of the same schema carrying `vgi_rpc.shm_offset` / `vgi_rpc.shm_length`
 * plus the batch's own metadata; the reader copies the region out, frees the allocation (the
 * reader owns the free, as in the reference) and decodes its copy.
 *
 * This module only needs the `SegmentAccess` shape, so it never loads the native mapping.
 */
import { RecordBatch } from "apache-arrow";
import { frameworkError, RpcError } from "../../errors.js";
import { emptyBatch } from "../../wire/batches.js";
import {
  SHM_LENGTH_KEY,
  SHM_OFFSET_KEY,
  SHM_SEGMENT_NAME_KEY,
  SHM_SEGMENT_SIZE_KEY,
  SHM_SOURCE_KEY,
} from "../../wire/keys.js";
import { unfollowablePointer } from "../../wire/pointer-batch.js";
import {
  batchByteSize,
  decodeFromShm,
  encodeForShm,
  type SegmentAccess,
  SHM_MIN_BATCH_BYTES,
} from "../../wire/shm-codec.js";

export type { SegmentAccess };

/** The metadata keys a request carries so a worker can attach the client's segment. */
export function segmentMetadata(segment: SegmentAccess): [string, string][] {
  return [
    [SHM_SEGMENT_NAME_KEY, segment.name],
    [SHM_SEGMENT_SIZE_KEY, String(segment.size)],
  ];
}

/**
 * Moves `batch` into the segment when it has rows, its buffers reach `threshold` bytes
 * (`SHM_MIN_BATCH_BYTES`: 128 KiB, or `VGI_RPC_SHM_MIN_BATCH_BYTES`) and an allocation fits;
 * returns the pointer batch to send instead, or `batch` itself: the pipe carries it when the
 * segment is full (as the reference falls back) or fails to allocate or write.
 */
export function toPointer(
  batch: RecordBatch,
  segment: SegmentAccess,
  threshold: number = SHM_MIN_BATCH_BYTES,
): RecordBatch {
  if (batch.numRows === 0 || batchByteSize(batch) < threshold) return batch;
  const payload = encodeForShm(batch);
  if (payload === null) return batch; // a dictionary layout the region cannot carry
  let offset: number | null;
  try {
    // Rounded up to 8 so the next allocation stays aligned; the pointer carries the exact length.
    offset = segment.allocate(Math.ceil(payload.byteLength / 8) * 8);
  } catch {
    // A segment that cannot allocate (closed, or a table the peer corrupted): the pipe still works.
    return batch;
  }
  if (offset === null) return batch;
  try {
    segment.write(offset, payload.chunks);
  } catch {
    try {
      segment.free(offset);
    } catch {
      // The table is already unusable; the batch goes on the pipe either way.
    }
    return batch;
  }
  const md = new Map(batch.metadata);
  md.set(SHM_OFFSET_KEY, String(offset));
  md.set(SHM_LENGTH_KEY, String(payload.byteLength));
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

/**
 * Resolves a pointer batch against `segment`: copies the region out, frees it, decodes the copy.
 * With no segment the pointer cannot be followed: a `protocol_error`, never a silent empty
 * batch. A pointer outside the segment or to no live allocation is a `protocol_error` whose
 * cause is the segment's `ShmError`.
 */
export function resolvePointer(batch: RecordBatch, segment: SegmentAccess | null): RecordBatch {
  if (segment === null) throw unfollowablePointer();
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
  const out = decodeFromShm(region, batch.schema);
  const resolved = new Map(md);
  resolved.delete(SHM_OFFSET_KEY);
  resolved.delete(SHM_LENGTH_KEY);
  resolved.set(SHM_SOURCE_KEY, segment.name);
  return new RecordBatch(out.schema, out.data, resolved);
}
