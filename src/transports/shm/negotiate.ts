/**
 * Turning the shared-memory side channel on: the worker's side (what a pipe connection offers,
 * answered through `__transport_options__`) and the client's (create a segment, ask the worker,
 * use the segment only if it says yes). The segment module, and with it the native mapping, is
 * loaded on first use only.
 */
import type { Logger } from "pino";
import type { CallChannel } from "../../client/transport.js";
import { EMPTY_SCHEMA, emptyBatch } from "../../wire/batches.js";
import { TRANSPORT_OPTIONS_METHOD, TRANSPORT_SHM_KEY } from "../../wire/keys.js";
import type { SegmentAccess } from "./pointer.js";
import type { AttachedSegment, SharedMemoryAccess } from "./server.js";

/** A segment this process created or attached. */
export interface OwnedSegment extends AttachedSegment {
  /** Removes the segment's name (the creator does this once no peer needs to attach). */
  unlink(): void;
}

/** The parts of `./segment.js` this module uses. */
export interface SegmentModule {
  readonly ShmSegment: {
    create(size: number, opts?: { readonly name?: string }): OwnedSegment;
    attach(name: string, size: number): OwnedSegment;
  };
  shmSupport(): { readonly available: boolean; readonly reason?: string };
}

// A variable specifier keeps the segment module (and its native addon) out of the static graph.
const SEGMENT_MODULE = "./segment.js";
let loaded: Promise<SegmentModule> | null = null;

/** The segment module, imported once. */
export function loadSegmentModule(): Promise<SegmentModule> {
  loaded ??= import(SEGMENT_MODULE) as Promise<SegmentModule>;
  return loaded;
}

/** Whether this process can map segments, and why not when it cannot. */
export async function sharedMemorySupport(): Promise<{ readonly available: boolean; readonly reason?: string }> {
  try {
    return (await loadSegmentModule()).shmSupport();
  } catch (err) {
    return { available: false, reason: `shared-memory module failed to load: ${(err as Error).message}` };
  }
}

let reportedUnavailable = false;

/**
 * The side channel a pipe worker offers: available when segments can be mapped here. When they
 * cannot, the reason is logged once per process and `__transport_options__` answers false.
 */
export async function pipeSharedMemory(logger?: Logger): Promise<SharedMemoryAccess> {
  const support = await sharedMemorySupport();
  if (!support.available && !reportedUnavailable) {
    reportedUnavailable = true;
    logger?.warn({ reason: support.reason ?? "unknown" }, "shared-memory side channel unavailable");
  }
  return {
    available: support.available,
    attach: async (name, size) => (await loadSegmentModule()).ShmSegment.attach(name, size),
  };
}

/**
 * Asks a worker whether it takes the shared-memory side channel (`__transport_options__`). A
 * worker that does not know the method, or fails it, is taken as a no.
 */
export async function workerTakesSharedMemory(channel: CallChannel): Promise<boolean> {
  const params = emptyBatch(EMPTY_SCHEMA, new Map([[TRANSPORT_SHM_KEY, "true"]]));
  try {
    const reply = await channel.unaryBatch({ protocol: "", method: TRANSPORT_OPTIONS_METHOD }, params, params.metadata);
    return reply.metadata.get(TRANSPORT_SHM_KEY) === "true";
  } catch {
    return false;
  }
}

/** Creates a segment of `size` total bytes (header included) for a client to offer its worker. */
export async function createSegment(size: number): Promise<OwnedSegment> {
  return (await loadSegmentModule()).ShmSegment.create(size);
}

export type { SegmentAccess };
