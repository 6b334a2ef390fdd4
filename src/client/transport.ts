/**
 * The client's two seams.
 *
 * - `ClientTransport`: a duplex byte stream to one server. Session transports (pipe, subprocess,
 *   Unix, TCP, in-memory) implement it, and `RpcClient` runs the protocol over it.
 * - `ClientSideChannel`: a path beside that byte stream for large batches (shared memory beside a
 *   pipe, implemented in `transports/shm`); `RpcClient` hands it what it sends and the pointer
 *   batches it receives.
 * - `CallChannel` / `StreamChannel`: calls at the batch level. `RpcClient` implements them; a
 *   stateless transport (HTTP: one request per unary call or stream turn, state in tokens)
 *   implements them directly. The typed layer (`call`/`stream`/`exchange`, `proxy()`) and
 *   `describe` depend only on `CallChannel`, so they work unchanged over such a transport.
 */
import type { RecordBatch } from "apache-arrow";
import type { RpcError } from "../errors.js";

export interface ClientTransport {
  /** Bytes from the server, in arbitrary pieces; ends (or throws) when the server goes away. */
  readonly input: AsyncIterable<Uint8Array>;
  /** Sends chunks in order; resolves when the transport can take more; rejects if the peer is gone. */
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /** Closes the client's side (the server sees EOF) and releases the transport's resources. */
  close(): Promise<void> | void;
  /** Transport name for errors and logs: `pipe`, `subprocess`, `unix`, `tcp`, `memory`. */
  readonly name?: string;
  /**
   * Rewords an error met reading the server's bytes in this transport's terms (a subprocess says
   * its worker printed to stdout); returns the error the client reports. Default: as is.
   */
  explainReadError?(err: RpcError): RpcError;
}

/**
 * A side channel beside a session transport's byte stream that carries large batches out of band
 * (shared memory beside a pipe: `transports/shm`). The client sends every request and stream
 * input through `outgoing` and resolves, through `incoming`, the batches the server sent that
 * stand for one in the channel; it knows nothing else of the channel.
 */
export interface ClientSideChannel {
  /** Metadata every request carries so the server can take the channel (a segment's name and size). */
  readonly requestMetadata: RequestMetadata;
  /**
   * A batch about to be sent (a request, or a stream's input): the batch to write instead,
   * standing for it in the channel, or itself.
   */
  outgoing(batch: RecordBatch): RecordBatch;
  /**
   * A batch the server sent that stands for one in the channel (a shared-memory pointer batch):
   * the batch it stands for. Throws an `RpcError` (`protocol_error`) when it cannot be followed.
   */
  incoming(batch: RecordBatch): RecordBatch;
  /**
   * Takes back what `outgoing` put in the channel for an input the server discarded unread;
   * `sent` is the batch `outgoing` returned. May throw (the channel is unusable): ignored.
   */
  reclaim(sent: RecordBatch): void;
}

/** Where a request goes: the routing key, the method. */
/**
 * Follows external-location pointer batches (`ExternalResolver` from the package, Node only):
 * what a client given one (`external` in its options) does with a pointer the server sent in
 * place of a large batch.
 */
export interface PointerResolver {
  /**
   * The batch `pointer` stands for; log batches found on the way go to `onLog`, an error batch is
   * thrown as its `RpcError`. Fails with `ExternalFetchError`.
   */
  resolve(pointer: RecordBatch, onLog?: (log: RecordBatch) => void): Promise<RecordBatch>;
}

export interface CallTarget {
  /** `vgi_rpc.protocol`. */
  readonly protocol: string;
  /** `vgi_rpc.protocol_version`, sent when non-empty. */
  readonly protocolVersion?: string;
  readonly method: string;
}

/** Extra metadata on a request batch (framework keys always win). */
export type RequestMetadata = ReadonlyMap<string, string>;

/**
 * The most inputs a stream keeps in flight: a producer's ticks (`RawStream.pull`, `prefetch`) or
 * an exchange's pipelined inputs (`RawStream.pipeline`, `window`). 64 ticks are under 5 KB, so
 * they fit any socket or pipe buffer (64 KiB for a pipe) and writing them never waits on a server
 * that is itself blocked writing an answer this client has not read yet; for an exchange it
 * bounds the inputs held in memory until written.
 */
export const MAX_IN_FLIGHT = 64;

/** A RangeError unless `n` is an integer from 1 to `MAX_IN_FLIGHT`; `what` names it in the message. */
export function checkInFlight(what: string, n: unknown): void {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_IN_FLIGHT) {
    throw new RangeError(`${what} must be an integer from 1 to ${MAX_IN_FLIGHT}, got ${String(n)}`);
  }
}

/** One stream call at the batch level (lockstep: one answer per input batch). */
export interface StreamChannel {
  /** The header batch, when the method declares one. */
  readonly header: RecordBatch | null;
  /** True once the stream has ended (finished by the server, or closed/cancelled). */
  readonly ended: boolean;
  /** Sends one input batch; resolves to the answer, or null when the server ended the stream. */
  send(batch: RecordBatch): Promise<RecordBatch | null>;
  /** A producer tick (zero-row batch on the empty schema, optionally with metadata). */
  tick(metadata?: ReadonlyMap<string, string>): Promise<RecordBatch | null>;
  /**
   * A producer's next batch with up to `ahead` ticks in flight (1 to `MAX_IN_FLIGHT`; the server
   * produces ahead of the consumer). Optional: a channel without it (HTTP, whose turns chain on
   * tokens) is ticked one batch at a time.
   */
  pull?(ahead: number): Promise<RecordBatch | null>;
  /**
   * An exchange's inputs sent up to `window` ahead of the answers read (1 to `MAX_IN_FLIGHT`),
   * the answers yielded in order. Optional: a channel without it (HTTP) is sent one input at a
   * time.
   */
  pipeline?(
    inputs: Iterable<RecordBatch> | AsyncIterable<RecordBatch>,
    window: number,
  ): AsyncGenerator<RecordBatch, void, undefined>;
  /** Ends the input (EOS) and drains the output. Idempotent. */
  close(): Promise<void>;
  /** Cancels with the protocol's cancel batch. Idempotent, best effort. */
  cancel(): Promise<void>;
}

/** How a stream call is opened. */
export interface StreamOpenOptions {
  /** Read the header stream first (the method declares a header). */
  readonly hasHeader: boolean;
  readonly extra?: RequestMetadata;
  /**
   * The caller lets answer batches be read into a buffer the client reuses, so each is valid only
   * until the stream's next `send`/`tick`. A permission, not a promise: a channel may ignore it.
   */
  readonly borrow?: boolean;
}

/** Calls at the batch level: what the typed layer and `describe` run on. */
export interface CallChannel {
  /** A unary call: `params` is the one-row parameter batch; resolves to the result batch. */
  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch>;
  /** Opens a stream call (reading the header first when `hasHeader`). */
  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<StreamChannel>;
}
