/**
 * The seam between session transports (stdio, sockets, WebSocket) and the dispatch core: a
 * duplex byte stream plus what the transport knows about its peer.
 */
import type { RecordBatch } from "apache-arrow";
import type { AuthContext } from "../protocol/context.js";

/**
 * A side channel beside the byte stream that carries large batches out of band (shared memory
 * beside a pipe, implemented in `transports/shm`), for one connection. The session hands it the
 * batches it reads and, for the calls whose request used it, the data batches it answers with;
 * what the channel does with them is its own business. Without one a connection answers
 * `__transport_options__` with `shm=false` and refuses any pointer batch.
 */
export interface SideChannel {
  /** Whether the peer may use the channel here (what `__transport_options__` answers). */
  readonly available: boolean;
  /**
   * A request batch as read, before it is dispatched: the channel takes what its metadata offers
   * (attaching a segment it names) and resolves it when it stands for a batch in the channel.
   * `answers` is true when the call's data batches go through `output`. Rejects with the error
   * that refuses the request (answered, and the connection goes on).
   */
  request(batch: RecordBatch): Promise<{ readonly batch: RecordBatch; readonly answers: boolean }>;
  /** A stream's input batch as read: the batch the stream sees (itself, or the one it stands for). Throws to fail the stream. */
  input(batch: RecordBatch): RecordBatch;
  /**
   * A data batch with rows answering a call whose request the channel answers: the batch to
   * write instead (standing for it in the channel), or itself.
   */
  output(batch: RecordBatch): RecordBatch;
  /** The session ended: releases what the channel holds (never fails). */
  close(): void;
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
  /** `ctx.csrfVerified` for the connection's calls (see auth/cross-site.ts). Default: true. */
  readonly csrfVerified?: boolean;
  /**
   * The connection's side channel; absent on transports that cannot offer one. The session
   * serving the connection closes it when it ends.
   */
  readonly sideChannel?: SideChannel;
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
  /**
   * How long the connection may wait for its next request, in ms: from the connection's start and
   * from the end of each call, the next request must have arrived whole within it, or the session
   * ends (logged at info) and the transport closes the connection. Default: no limit.
   */
  readonly idleTimeoutMs?: number;
  /** Called when the session ends for `idleTimeoutMs`, before it resolves (e.g. to pick a close code). */
  onIdleTimeout?(): void;
}
