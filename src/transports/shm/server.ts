/**
 * The worker's side of the shared-memory side channel: the segment a client advertises in request
 * metadata, attached on first sight and kept for the connection's life (the reference's
 * per-connection cache), pointer batches followed into it, and the answers of calls whose request
 * used it moved into it when large. Plugged into a connection as its `SideChannel`.
 */
import type { RecordBatch } from "apache-arrow";
import { frameworkError } from "../../errors.js";
import type { SideChannel } from "../../server/connection.js";
import { SHM_OFFSET_KEY, SHM_SEGMENT_NAME_KEY, SHM_SEGMENT_SIZE_KEY } from "../../wire/keys.js";
import { isPointerBatch } from "../../wire/pointer-batch.js";
import { resolvePointer, type SegmentAccess, toPointer } from "./pointer.js";

/** A segment a worker attached on a client's behalf; closing it unmaps, never unlinks. */
export interface AttachedSegment extends SegmentAccess {
  close(): void;
}

/**
 * What a transport whose peer shares this machine's kernel (pipes) offers for shared memory;
 * `sharedMemorySideChannel` makes a connection's side channel of it.
 */
export interface SharedMemoryAccess {
  /** Whether segments can be attached here (answers `__transport_options__`). */
  readonly available: boolean;
  /** Attaches the client's segment named in request metadata (header validated). */
  attach(name: string, size: number): Promise<AttachedSegment>;
}

/**
 * Segment names a worker agrees to attach: one path component of portable characters (what POSIX
 * `shm_open` and every reference client produce), so a request cannot name a file elsewhere.
 */
const SEGMENT_NAME = /^\/?(?!\.{1,2}$)[A-Za-z0-9._-]{1,250}$/;

/** One connection's shared-memory side channel over `access`. */
class SharedMemorySideChannel implements SideChannel {
  private name: string | null = null;
  /** The segment the client advertised on this connection, or null before it did. */
  private segment: AttachedSegment | null = null;

  constructor(private readonly access: SharedMemoryAccess) {}

  get available(): boolean {
    return this.access.available;
  }

  /**
   * Attaches what the request advertises, follows a request that arrived as a pointer, and
   * answers through the segment only when this request used it (named it, or pointed into it).
   */
  async request(batch: RecordBatch): Promise<{ readonly batch: RecordBatch; readonly answers: boolean }> {
    const md = batch.metadata;
    await this.refresh(md);
    const resolved = isPointerBatch(batch) ? resolvePointer(batch, this.segment) : batch;
    const answers = this.segment !== null && (md.has(SHM_OFFSET_KEY) || md.has(SHM_SEGMENT_NAME_KEY));
    return { batch: resolved, answers };
  }

  input(batch: RecordBatch): RecordBatch {
    // Resolving frees the region: the reader owns what it consumed.
    return isPointerBatch(batch) ? resolvePointer(batch, this.segment) : batch;
  }

  output(batch: RecordBatch): RecordBatch {
    // `request` says a call answers through the channel only once a segment is attached.
    return toPointer(batch, this.segment!);
  }

  /** Attaches the segment `md` names when it first appears or changes. */
  private async refresh(md: ReadonlyMap<string, string>): Promise<void> {
    const name = md.get(SHM_SEGMENT_NAME_KEY);
    if (name === undefined || name === this.name) return;
    const rawSize = md.get(SHM_SEGMENT_SIZE_KEY);
    // As the reference: a segment advertised without a usable size is ignored.
    if (rawSize === undefined || !/^\d+$/.test(rawSize) || !Number.isSafeInteger(Number(rawSize))) return;
    if (!this.access.available) return;
    if (!SEGMENT_NAME.test(name)) {
      throw frameworkError("protocol_error", `refusing to attach shared-memory segment '${name}': not a segment name`);
    }
    let attached: AttachedSegment;
    try {
      attached = await this.access.attach(name, Number(rawSize));
    } catch (err) {
      throw frameworkError(
        "protocol_error",
        `cannot attach shared-memory segment '${name}': ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.close();
    this.segment = attached;
    this.name = name;
  }

  close(): void {
    try {
      this.segment?.close();
    } catch {
      // Unmapping a segment we are done with cannot fail in a way worth reporting.
    }
    this.segment = null;
    this.name = null;
  }
}

/**
 * A connection's shared-memory side channel (`Connection.sideChannel`) over what its transport
 * offers; one per connection, closed by the session serving it.
 */
export function sharedMemorySideChannel(access: SharedMemoryAccess): SideChannel {
  return new SharedMemorySideChannel(access);
}
