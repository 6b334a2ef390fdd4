/**
 * `quiver-rpc/shm`: the shared-memory segment vgi-rpc peers use beside a pipe for large batches,
 * the codec for what goes into an allocation, and the side channels that plug a segment into a
 * client (`SharedMemoryChannel`) or a served connection (`sharedMemorySideChannel`). Loading this
 * subpath loads the native addon (when built); nothing else in the package does.
 *
 * @module quiver-rpc/shm
 */
export {
  batchByteSize,
  canonicalDictionarySchema,
  decodeFromShm,
  encodeForShm,
  hasTopLevelDictionary,
  type ReadFromShmOptions,
  readBatchFromShm,
  resolveShmMinBatchBytes,
  type SegmentAccess,
  SHM_MIN_BATCH_BYTES,
  SHM_MIN_BATCH_BYTES_ENV,
  type ShmPayload,
  shmCanCarry,
  type WriteToShmOptions,
  writeBatchToShm,
} from "../../wire/shm-codec.js";
export { SharedMemoryChannel } from "./client.js";
export {
  ALLOC_ENTRY_SIZE,
  BACKING_ENV,
  FIXED_HEADER_SIZE,
  HEADER_SIZE,
  MAGIC,
  MAX_ALLOCS,
  MAX_SEGMENT_SIZE,
  SHM_DIR,
  type ShmAllocation,
  type ShmAttachOptions,
  type ShmCreateOptions,
  ShmError,
  type ShmErrorKind,
  ShmSegment,
  type ShmSupport,
  shmSupport,
  VERSION,
} from "./segment.js";
export { type AttachedSegment, type SharedMemoryAccess, sharedMemorySideChannel } from "./server.js";
