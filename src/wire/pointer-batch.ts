/**
 * Pointer batches as the byte stream sees them: a zero-row batch that stands for a batch carried
 * beside the stream (`vgi_rpc.shm_offset`: in a shared-memory segment). Only a side channel can
 * follow one (`transports/shm`); a connection without one refuses it here, with the error the
 * channel itself gives while it has nothing to follow it in.
 */
import type { RecordBatch } from "apache-arrow";
import { frameworkError, type RpcError } from "../errors.js";
import { LOG_LEVEL_KEY, SHM_OFFSET_KEY } from "./keys.js";

/** True for a zero-row batch carrying an shm offset and no log level (the reference's test). */
export function isPointerBatch(batch: RecordBatch): boolean {
  return batch.numRows === 0 && batch.metadata.has(SHM_OFFSET_KEY) && !batch.metadata.has(LOG_LEVEL_KEY);
}

/** The error for a pointer batch with nothing to follow it in: a `protocol_error`, never a silent empty batch. */
export function unfollowablePointer(): RpcError {
  return frameworkError(
    "protocol_error",
    "received a shared-memory pointer batch, but no shared-memory segment is attached to this connection",
  );
}

/** A batch read on a connection without a side channel: the batch itself, unless it is a pointer batch (refused). */
export function withoutSideChannel(batch: RecordBatch): RecordBatch {
  if (isPointerBatch(batch)) throw unfollowablePointer();
  return batch;
}
