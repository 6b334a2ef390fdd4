/**
 * The client's side of the shared-memory side channel: every request advertises the segment,
 * batches of 128 KiB and more go into it as pointer batches, and the server's pointer batches are
 * followed into it. Plugged into a client as its `ClientSideChannel`; the caller owns the segment.
 */
import type { RecordBatch } from "apache-arrow";
import type { ClientSideChannel } from "../../client/transport.js";
import { SHM_OFFSET_KEY } from "../../wire/keys.js";
import { resolvePointer, type SegmentAccess, segmentMetadata, toPointer } from "./pointer.js";

/** A client's side channel through one shared-memory segment. */
export class SharedMemoryChannel implements ClientSideChannel {
  readonly requestMetadata: ReadonlyMap<string, string>;

  constructor(
    /** The segment, which the caller owns and keeps mapped while the channel is in use. */
    readonly segment: SegmentAccess,
  ) {
    this.requestMetadata = new Map(segmentMetadata(segment));
  }

  outgoing(batch: RecordBatch): RecordBatch {
    return toPointer(batch, this.segment);
  }

  incoming(batch: RecordBatch): RecordBatch {
    // Resolving frees the region: the reader owns what it consumed.
    return resolvePointer(batch, this.segment);
  }

  reclaim(sent: RecordBatch): void {
    this.segment.free(Number(sent.metadata.get(SHM_OFFSET_KEY)));
  }
}

/** The segment a client's side channel goes through, or null when it has none (or another kind). */
export function segmentOf(channel: ClientSideChannel | null): SegmentAccess | null {
  return channel instanceof SharedMemoryChannel ? channel.segment : null;
}
