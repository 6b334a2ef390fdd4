/**
 * The seam between session transports (stdio, sockets, WebSocket) and the dispatch core: a
 * duplex byte stream plus what the transport knows about its peer.
 */
import type { AuthContext } from "../protocol/context.js";
import type { SegmentAccess } from "../wire/shm-pointer.js";

/** A segment a worker attached on a client's behalf; closing it unmaps, never unlinks. */
export interface AttachedSegment extends SegmentAccess {
  close(): void;
}

/**
 * The shared-memory side channel, offered by transports whose peer shares this machine's kernel
 * (pipes). Without it a connection answers `__transport_options__` with `shm=false` and treats
 * any pointer batch as an error.
 */
export interface SharedMemoryAccess {
  /** Whether segments can be attached here (answers `__transport_options__`). */
  readonly available: boolean;
  /** Attaches the client's segment named in request metadata (header validated). */
  attach(name: string, size: number): Promise<AttachedSegment>;
}

export interface Connection {
  /** Bytes from the peer, in arbitrary pieces; ends when the peer closes its side. */
  readonly input: AsyncIterable<Uint8Array>;
  /**
   * Sends chunks in order. Resolves when the transport can take more (backpressure); rejects if
   * the peer is gone.
   */
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /**
   * Resolves once everything written so far has been handed to the OS, so no written chunk is
   * referenced any more. A connection without it never borrows input batches
   * (`ExchangeHandler.borrowInput`), since an answer may view the input it was made from.
   */
  flush?(): Promise<void>;
  /** Transport name for contexts and logs: `pipe`, `unix`, `tcp`, `ws`. */
  readonly transport: string;
  /** Facts about the peer (`remote_addr`, `user_agent`, ...). */
  readonly transportMetadata?: Readonly<Record<string, string>>;
  /** The connection's identity, resolved once at accept; anonymous when absent. */
  readonly auth?: AuthContext;
  /** The shared-memory side channel; absent on transports that cannot offer it. */
  readonly sharedMemory?: SharedMemoryAccess;
  /**
   * Aborted when the call in progress must stop: the peer went away, or the listener's shutdown
   * grace ran out. The call is aborted with `signal.reason` when it is an `RpcError`, else as
   * `cancelled`; no further request is read. Default: never.
   */
  readonly signal?: AbortSignal;
  /**
   * Aborted when the listener is closing: the session takes no further request, ending at once
   * when idle and after the call in progress otherwise. Default: never.
   */
  readonly closing?: AbortSignal;
}
