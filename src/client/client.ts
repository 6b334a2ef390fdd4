/**
 * `RpcClient`: the caller's side of vgi-rpc over a session transport (a duplex byte stream:
 * pipe, subprocess, Unix or TCP socket, in-memory pipe).
 *
 * Every call is one request IPC stream; the answer is one IPC stream (unary) or, for streams, an
 * optional header stream and then lockstep input/output streams. One call runs at a time per
 * connection; concurrent calls queue. A stream holds the connection until it ends (finished,
 * closed or cancelled).
 *
 * Two layers: the batch layer (`unaryBatch`, `openStream`) works from Arrow schemas alone (the
 * CLI uses it after `describe`); the typed layer (`call`, `stream`, `exchange`, and `proxy()` in
 * `typed.ts`) works from the same method declarations the server binds. A stateless transport
 * (HTTP) would implement the batch layer's `CallTarget`-level operations (`unaryBatch`,
 * `openStream`) itself; the typed layer only depends on those two.
 */
import { context, ProxyTracerProvider, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { RecordBatch, Schema } from "apache-arrow";
import { compareFields } from "apache-arrow/visitor/typecomparator";
import { frameworkError, RpcError } from "../errors.js";
import { EMPTY_SCHEMA, emptyBatch, recordBatch } from "../wire/batches.js";
import { type FrameResult, MessageFramer } from "../wire/framer.js";
import { encodeStream, IpcStreamDecoder, IpcStreamEncoder, totalBytes } from "../wire/ipc.js";
import {
  CANCEL_KEY,
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
  TRACEPARENT_KEY,
  TRACESTATE_KEY,
} from "../wire/keys.js";
import { classifyBatch, errorFromMetadata, type LogRecord, readLogRecord } from "../wire/messages.js";
import { unfollowablePointer } from "../wire/pointer-batch.js";
import { TypedChannel } from "./channel.js";
import { type ClientInterceptor, interceptorList, interceptStream, interceptUnary } from "./interceptors.js";
import {
  type CallTarget,
  type ClientSideChannel,
  type ClientTransport,
  checkInFlight,
  type PointerResolver,
  type RequestMetadata,
  type StreamChannel,
  type StreamOpenOptions,
} from "./transport.js";
import { Watchdog } from "./watchdog.js";

export type { CallTarget, RequestMetadata } from "./transport.js";

/**
 * The batch an external-location `pointer` stands for, through `resolver` (its log batches to
 * `onLog`); without a resolver, the `protocol_error` saying how to configure one.
 */
export async function resolvePointer(
  resolver: PointerResolver | null,
  pointer: RecordBatch,
  onLog: ((r: LogRecord) => void) | undefined,
): Promise<RecordBatch> {
  if (resolver === null) {
    throw frameworkError(
      "protocol_error",
      "the server sent an external-location pointer batch; pass `external: new ExternalResolver(...)` in the client's options to resolve it",
    );
  }
  return resolver.resolve(pointer, (log) => {
    if (onLog === undefined) return;
    try {
      onLog(readLogRecord(log.metadata));
    } catch {
      // A throwing log callback must not fail the call.
    }
  });
}

/** Default bound on any single wait for the server (a response message, or write backpressure). */
export const DEFAULT_TIMEOUT_MS = 120_000;

export interface ClientOptions {
  /** Receives every non-error log record the server sends for a call. */
  readonly onLog?: (record: LogRecord) => void;
  /**
   * Longest wait, in milliseconds, for any one message from the server (or for a write to be
   * accepted). On expiry the connection is closed and the call fails with a `transport_error`.
   * Default: 120 000. `0` or `Infinity` disables it (a dead peer still fails at once on EOF).
   */
  readonly timeoutMs?: number;
  /** Largest IPC message accepted from the server, in bytes. Default: 4 GiB. */
  readonly maxMessageBytes?: number;
  /**
   * A side channel beside the byte stream for large batches (shared memory beside a pipe to a
   * worker on this machine: `pipeConnect(r, w, { shm })` and `connectSubprocess({ shm })` plug
   * one in). Used as given, without asking the server first. Default: none.
   */
  readonly sideChannel?: ClientSideChannel;
  /**
   * Wrap every call the client makes, the first outermost (see `ClientInterceptor`): add request
   * metadata, observe answers and errors, refuse or retry calls. Default: none.
   */
  readonly interceptors?: readonly ClientInterceptor[];
  /**
   * Resolves external-location pointer batches (a server externalizing large batches sends them):
   * `new ExternalResolver({ urlValidator, ... })`. Without one a pointer fails the call with a
   * `protocol_error` naming this option. Default: none.
   */
  readonly external?: PointerResolver;
}

/**
 * Runs `fn` inside a CLIENT span `vgi_rpc/<method>` (a no-op unless an OpenTelemetry SDK is
 * registered), so that the trace context `requestMetadata` injects is the call's own.
 */
export function traced<T>(target: CallTarget, fn: () => Promise<T>): Promise<T> {
  // No tracer provider: the span would be non-recording and carry the active context's span
  // context unchanged, so the call (and the trace context it injects) is the same without it.
  // Its promise is returned as it is (an async wrapper costs a promise and two microtask turns).
  const provider = trace.getTracerProvider();
  if (provider instanceof ProxyTracerProvider && provider.getDelegateTracer("quiver-rpc") === undefined) {
    try {
      return fn();
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const tracer = trace.getTracer("quiver-rpc");
  return tracer.startActiveSpan(
    `vgi_rpc/${target.method}`,
    {
      kind: SpanKind.CLIENT,
      attributes: { "rpc.system": "vgi_rpc", "rpc.service": target.protocol, "rpc.method": target.method },
    },
    async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * The metadata of a request batch, exactly the keys the reference client writes, plus the
 * active W3C trace context (`traceparent`/`tracestate`) so a trace crosses client and server.
 */
export function requestMetadata(target: CallTarget, extra?: RequestMetadata): Map<string, string> {
  const md = new Map<string, string>(extra ?? []);
  if (!md.has(TRACEPARENT_KEY)) {
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    if (carrier.traceparent) md.set(TRACEPARENT_KEY, carrier.traceparent);
    if (carrier.tracestate) md.set(TRACESTATE_KEY, carrier.tracestate);
  }
  md.set(METHOD_KEY, target.method);
  md.set(REQUEST_VERSION_KEY, REQUEST_VERSION);
  md.set(PROTOCOL_KEY, target.protocol);
  if (target.protocolVersion) md.set(PROTOCOL_VERSION_KEY, target.protocolVersion);
  else md.delete(PROTOCOL_VERSION_KEY);
  return md;
}

/** The request batch: one row of parameters (zero rows and no columns for a parameterless call). */
export function requestBatch(params: RecordBatch, target: CallTarget, extra?: RequestMetadata): RecordBatch {
  // The parameters' own struct data (one row, or none), with the request's fresh metadata map.
  return recordBatch(params.schema, params.data, requestMetadata(target, extra));
}

/** One IPC stream being read off the connection. */
class StreamReader {
  private readonly decoder = new IpcStreamDecoder();
  private ended = false;

  constructor(private readonly conn: ClientConnection) {}

  get schema(): Schema | null {
    return this.decoder.schema;
  }

  get done(): boolean {
    return this.ended;
  }

  /** The next batch of this stream, or null at its EOS; `borrow` as in `MessageFramer.next`. */
  async next(borrow = false): Promise<RecordBatch | null> {
    while (!this.ended) {
      const f = this.conn.pollFrame() ?? (await this.conn.readFrame(borrow));
      if (f === "eos") {
        this.ended = true;
        return null;
      }
      if (f === "end") {
        throw this.conn.fail(frameworkError("transport_error", "the server closed the connection mid-call"));
      }
      let r: ReturnType<IpcStreamDecoder["accept"]>;
      try {
        r = this.decoder.accept(f);
      } catch (err) {
        throw this.conn.fail(RpcError.from(err));
      }
      if (r !== null && "numRows" in r) return r;
    }
    return null;
  }

  /**
   * The next data batch: log batches go to `onLog`, an EXCEPTION batch is thrown as `RpcError`
   * (after the stream is drained to its EOS, so the connection stays in sync).
   */
  async nextData(onLog: ((r: LogRecord) => void) | undefined, borrow = false): Promise<RecordBatch | null> {
    for (;;) {
      const b = await this.next(borrow);
      if (b === null) return null;
      const kind = classifyBatch(b);
      if (kind === "log") {
        if (onLog) {
          try {
            onLog(readLogRecord(b.metadata));
          } catch {
            // A throwing log callback must not desync the connection.
          }
        }
        continue;
      }
      if (kind === "error") {
        const err = errorFromMetadata(b.metadata);
        await this.drain();
        throw err;
      }
      if (kind === "shm_pointer") {
        try {
          // A batch standing for one in the side channel; without a channel it cannot be followed.
          const side = this.conn.sideChannel;
          if (side === null) throw unfollowablePointer();
          return side.incoming(b);
        } catch (err) {
          await this.drain();
          throw err;
        }
      }
      if (kind === "external_pointer") {
        try {
          return await resolvePointer(this.conn.external, b, onLog);
        } catch (err) {
          await this.drain();
          throw err;
        }
      }
      return b;
    }
  }

  /** Reads to EOS, discarding what is left. */
  async drain(): Promise<void> {
    while ((await this.next()) !== null) {
      /* discard */
    }
  }
}

/** An input batch the side channel carries: what was sent for it, so that it can be reclaimed if unread. */
interface InputRegion {
  readonly channel: ClientSideChannel;
  readonly sent: RecordBatch;
}

/**
 * An exchange pipeline queues another input only while the inputs queued before it and not yet
 * handed to the OS are fewer bytes than this, whatever its window: batches of megabytes then
 * go one or two at a time (queued behind one another, their writes and the answers' reads
 * contended for the client's one thread and made large exchanges slower than turn by turn),
 * while small ones fill the window.
 */
export const PIPELINE_UNWRITTEN_BYTES = 4 * 1024 * 1024;

/** A task in the connection's queue: runs when every earlier call has released it. */
type Release = () => void;

/**
 * A stream call on a session transport, at the batch level (what `RpcClient.openStream` returns):
 * a `StreamChannel` that can also keep ticks (`pull`) or inputs (`pipeline`) in flight.
 */
export interface RawStream extends StreamChannel {
  /** True when the server finished the stream (producer end) rather than the client closing it. */
  readonly finished: boolean;
  /**
   * A producer's next batch, with up to `ahead` ticks in flight: the ticks that are missing are
   * sent before the answer is read, so the server produces the following batches while this one
   * is consumed; `ahead` is from 1 to `MAX_IN_FLIGHT`. `pull(1)` is `tick()`. Ticks the server
   * does not answer (it finished, failed, or was cancelled or closed) are read and discarded by
   * the server, as the protocol has it. With a side channel (a shared-memory segment) one tick
   * is in flight, whatever `ahead` (see `inFlightLimit`).
   */
  pull(ahead: number): Promise<RecordBatch | null>;
  /**
   * An exchange with its inputs sent ahead: writes batches of `inputs` while fewer than `window`
   * answers are owed, and yields each answer, in order, as it is read. The writes are queued
   * behind one another and never awaited by the reading, so a server blocked writing an answer
   * is always read from: no deadlock, whatever the batch sizes (leaving early too: the cancel is
   * queued behind the inputs while the answers are read and dropped). An input's buffers may be
   * held until it is written, so do not change a batch after `inputs` yields it. The session
   * stays open when `inputs` ends (for more turns, `close()` or `cancel()`); a server error closes
   * it, as in `send`; leaving early (break, an error from `inputs`) cancels it. Nothing else runs
   * on the stream meanwhile: `send`, `close` and `cancel` wait until the generator is finished,
   * so iterate it to its end or call its `return()` (as `for await` does). With a side channel (a
   * shared-memory segment) the inputs go one at a time, whatever `window` (its allocation table
   * has no lock; see `inFlightLimit`); inputs the server never read are freed once the stream ended.
   */
  pipeline(
    inputs: Iterable<RecordBatch> | AsyncIterable<RecordBatch>,
    window: number,
  ): AsyncGenerator<RecordBatch, void, undefined>;
}

/**
 * How many ticks or inputs a stream may have in flight: `asked`, or one while a shared-memory
 * segment carries batches. The segment's allocation table has no lock (the reference's `shm.py`:
 * "the lockstep RPC protocol guarantees only one side is active at a time"): a turn sent ahead
 * would have this side allocating inputs or freeing answers while the worker allocates the next
 * answers, and a table changed by both at once loses regions or corrupts (seen as leaked regions
 * and stalled exchanges against the reference worker, test/interop/shm-python.test.ts).
 */
function inFlightLimit(conn: ClientConnection, asked: number): number {
  return conn.sideChannel === null ? asked : 1;
}

/** `RawStream` over a connection: holds the connection until the stream ends. */
class SessionStream implements RawStream {
  private encoder: IpcStreamEncoder | null = null;
  private reader: StreamReader | null = null;
  private state: "open" | "finished" | "closed" = "open";
  private ops: Promise<unknown> = Promise.resolve();
  /** Inputs written whose answers are not read yet (more than one only with `pull`). */
  private owed = 0;

  constructor(
    private readonly conn: ClientConnection,
    /** The header batch, when the method declares one. */
    readonly header: RecordBatch | null,
    private readonly release: Release,
    private readonly onLog: ((r: LogRecord) => void) | undefined,
    /** Answers may be read into a reused buffer: each is valid until the next `send`/`tick`. */
    private readonly borrow = false,
  ) {}

  /** True once the stream has ended (server finished, or closed/cancelled by the client). */
  get ended(): boolean {
    return this.state !== "open";
  }

  /** True when the server finished the stream (producer end) rather than the client closing it. */
  get finished(): boolean {
    return this.state === "finished";
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ops.then(fn, fn);
    this.ops = run.catch(() => {});
    return run;
  }

  private end(state: "finished" | "closed"): void {
    if (this.state !== "open") return;
    this.state = state;
    if (this.borrow) this.conn.releaseBorrowed();
    this.release();
  }

  /**
   * Sends one input batch (producers: a zero-row tick on the empty schema) and returns the
   * server's next answer, or null when the server ended the stream. Answers come in the order of
   * the inputs: with ticks still in flight (`pull`), that is the answer to the oldest of them. A
   * server error ends the stream (the input stream is closed) and is thrown as `RpcError`.
   */
  send(batch: RecordBatch): Promise<RecordBatch | null> {
    return this.turn(() => [batch]);
  }

  /** A producer tick: a zero-row batch on the empty schema, optionally carrying metadata. */
  tick(metadata?: ReadonlyMap<string, string>): Promise<RecordBatch | null> {
    return this.turn(() => [emptyBatch(EMPTY_SCHEMA, metadata)]);
  }

  /** See `RawStream.pull`. */
  pull(ahead: number): Promise<RecordBatch | null> {
    try {
      checkInFlight("ticks ahead", ahead);
    } catch (err) {
      return Promise.reject(err);
    }
    const limit = inFlightLimit(this.conn, ahead);
    return this.turn(() => {
      const ticks: RecordBatch[] = [];
      for (let n = limit - this.owed; n > 0; n--) ticks.push(emptyBatch(EMPTY_SCHEMA));
      return ticks;
    });
  }

  /** Writes `inputs()` (possibly none), then reads the server's next answer. */
  private turn(inputs: () => RecordBatch[]): Promise<RecordBatch | null> {
    return this.serial(async () => {
      if (this.state !== "open") throw frameworkError("protocol_error", "Stream has been closed or cancelled");
      try {
        const batches = inputs();
        if (batches.length > 0) await this.writeInputs(batches);
        this.reader ??= new StreamReader(this.conn);
        const out = await this.reader.nextData(this.onLog, this.borrow);
        if (out === null) await this.finishInput();
        else this.owed--;
        return out;
      } catch (err) {
        if (this.conn.isBroken) this.end("closed");
        else if (err instanceof RpcError) await this.closeNow();
        throw err;
      }
    });
  }

  /**
   * The server ended the stream: completes our input stream so the next request starts clean
   * (the server reads and discards any input it did not answer).
   */
  private async finishInput(): Promise<void> {
    await this.conn.writeChunks((this.encoder ?? new IpcStreamEncoder(EMPTY_SCHEMA)).end());
    this.end("finished");
  }

  /** Writes input batches in one write; the server owes an answer for each. */
  private async writeInputs(batches: readonly RecordBatch[]): Promise<void> {
    const chunks: Uint8Array[] = [];
    for (const batch of batches) this.encodeInput(batch, chunks);
    await this.conn.writeChunks(chunks);
    this.owed += batches.length;
  }

  /**
   * Appends one input batch's messages to `chunks` (the schema message first, once); returns
   * what the side channel carries for the batch, or null when it travels inline.
   */
  private encodeInput(batch: RecordBatch, chunks: Uint8Array[]): InputRegion | null {
    const given = batch as Partial<RecordBatch> | null | undefined;
    if (typeof given !== "object" || given === null || typeof given.numRows !== "number" || !given.schema) {
      throw new TypeError(`an input must be an Arrow RecordBatch, got ${given === null ? "null" : typeof given}`);
    }
    if (this.encoder !== null && !sameFields(this.encoder.schema, batch.schema)) {
      throw new TypeError(
        "an input batch's schema differs from the schema of the stream's first input batch (one IPC stream carries one schema)",
      );
    }
    // The stream's encoder is kept only once its first batch encoded.
    const encoder = this.encoder ?? new IpcStreamEncoder(batch.schema);
    const side = this.conn.sideChannel;
    const out = side === null ? batch : side.outgoing(batch);
    for (const c of encoder.batch(out)) chunks.push(c);
    this.encoder = encoder;
    return out === batch ? null : { channel: side!, sent: out };
  }

  /** See `RawStream.pipeline`. */
  async *pipeline(
    inputs: Iterable<RecordBatch> | AsyncIterable<RecordBatch>,
    window: number,
  ): AsyncGenerator<RecordBatch, void, undefined> {
    checkInFlight("window", window);
    const ahead = inFlightLimit(this.conn, window);
    let unlock = () => {};
    const held = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const before = this.ops;
    this.ops = before.then(() => held);
    await before;
    let it: Iterator<RecordBatch> | AsyncIterator<RecordBatch> | null = null;
    let exhausted = false;
    let completed = false;
    // Writes in order, none awaited by the reads; a failed one breaks the client, which the
    // next read reports.
    let writes: Promise<void> = Promise.resolve();
    // Bytes queued and not yet handed to the OS.
    let unwritten = 0;
    // Each input in flight, oldest first: what the side channel carries for it, or null.
    const regions: Array<InputRegion | null> = [];
    // Regions the server may still hold: freed only when the stream ended as the protocol says.
    let freeUnread = true;
    try {
      if (this.state !== "open") throw frameworkError("protocol_error", "Stream has been closed or cancelled");
      it =
        typeof inputs === "object" && inputs !== null && Symbol.asyncIterator in inputs
          ? (inputs as AsyncIterable<RecordBatch>)[Symbol.asyncIterator]()
          : (inputs as Iterable<RecordBatch>)[Symbol.iterator]();
      this.reader ??= new StreamReader(this.conn);
      for (;;) {
        while (!exhausted && this.owed < ahead && (this.owed === 0 || unwritten < PIPELINE_UNWRITTEN_BYTES)) {
          const next = await it.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          const chunks: Uint8Array[] = [];
          regions.push(this.encodeInput(next.value, chunks));
          this.owed++;
          const bytes = totalBytes(chunks);
          unwritten += bytes;
          writes = writes.then(() => this.conn.writeChunks(chunks));
          writes.then(
            () => {
              unwritten -= bytes;
            },
            () => {},
          );
        }
        if (this.owed === 0) break;
        let out: RecordBatch | null;
        try {
          out = await this.reader.nextData(this.onLog, this.borrow);
        } catch (err) {
          // The server failed on the oldest input (it read it), and discards the rest unread.
          regions.shift();
          if (!this.conn.isBroken && err instanceof RpcError) {
            await writes.catch(() => {});
            await this.closeNow();
          }
          throw err;
        }
        if (out === null) {
          // Not how an exchange ends: which inputs the server read is unknown, so none is freed.
          freeUnread = false;
          await writes;
          await this.finishInput();
          throw frameworkError("protocol_error", "the server ended the exchange stream with inputs unanswered");
        }
        regions.shift();
        this.owed--;
        yield out;
      }
      await writes;
      completed = true;
    } finally {
      try {
        if (this.conn.isBroken) this.end("closed");
        if (!completed) {
          // The inputs' own cleanup runs beside the cancel, which reads while it waits.
          const iterator = it;
          const closing =
            iterator !== null && !exhausted
              ? (async () => {
                  try {
                    await iterator.return?.();
                  } catch {
                    // The caller's cleanup failed; the stream is cancelled either way.
                  }
                })()
              : null;
          // Leaving early: the server reads (and answers) every input queued before the cancel,
          // or fails on one and discards the rest.
          if (this.state === "open") await this.cancelNow(writes, () => regions.shift());
          await closing;
        }
        // Reclaimed only once the output reached its EOS: every input the server will read is
        // read. A broken connection leaves its side channel unused: nothing there is reclaimed.
        if (freeUnread && this.state !== "open" && !this.conn.isBroken && this.reader?.done === true) {
          for (const r of regions.splice(0)) {
            try {
              r?.channel.reclaim(r.sent);
            } catch {
              // A channel closed or unusable: nothing left to reclaim in it.
            }
          }
        }
      } finally {
        unlock();
      }
    }
  }

  private async closeNow(): Promise<void> {
    if (this.state !== "open") return;
    try {
      if (this.encoder === null) await this.conn.writeChunks(encodeStream(EMPTY_SCHEMA, []));
      else await this.conn.writeChunks(this.encoder.end());
      await this.drainOutput();
    } finally {
      this.end("closed");
    }
  }

  /**
   * Reads the output to its EOS, dropping what is left. `answered` runs for each data batch and
   * for an error batch: each accounts for one input the server read.
   */
  private async drainOutput(answered?: () => void): Promise<void> {
    this.reader ??= new StreamReader(this.conn);
    for (let i = 0; i < 10_000 && !this.reader.done; i++) {
      try {
        if ((await this.reader.nextData(this.onLog)) === null) return;
        answered?.();
      } catch (err) {
        if (this.conn.isBroken) throw err;
        // A server error while draining: the stream is over either way.
        answered?.();
      }
    }
  }

  /** Ends the input stream (EOS) and drains what the server still sends. Idempotent. */
  close(): Promise<void> {
    return this.serial(() => this.closeNow());
  }

  /**
   * Cancels the stream with the protocol's cancel batch (a zero-row batch carrying
   * `vgi_rpc.cancel`), then drains the output. Idempotent; transport errors are swallowed.
   */
  cancel(): Promise<void> {
    return this.serial(() => this.cancelNow());
  }

  /**
   * Writes the cancel batch and input EOS once `queued` (writes still in progress) is done, and
   * reads the output to its EOS meanwhile: a server blocked writing an answer to an input queued
   * before the cancel is read from, so the queued writes can finish. `answered` as in `drainOutput`.
   */
  private async cancelNow(queued: Promise<void> = Promise.resolve(), answered?: () => void): Promise<void> {
    if (this.state !== "open") return;
    try {
      const md = new Map([[CANCEL_KEY, "1"]]);
      const enc = this.encoder;
      const chunks =
        enc === null
          ? encodeStream(EMPTY_SCHEMA, [emptyBatch(EMPTY_SCHEMA, md)])
          : [...enc.batch(emptyBatch(enc.schema, md)), ...enc.end()];
      const written = queued.then(() => this.conn.writeChunks(chunks));
      written.catch(() => {});
      await this.drainOutput(answered);
      await written;
    } catch {
      // Best effort, as the reference.
    } finally {
      this.end("closed");
    }
  }
}

/**
 * The protocol state of one client connection: the framer, the queue of calls waiting for the
 * connection, the timeout, the side channel, and whether the transport broke. Kept off
 * `RpcClient` (which holds one in a private field) so that the streams and readers working on it
 * reach these operations without their being part of the client's public type.
 */
class ClientConnection {
  private readonly framer: MessageFramer;
  private readonly timeoutMs: number;
  /** Bounds each wait for the server by `timeoutMs` (null: no timeout). */
  private readonly watchdog: Watchdog | null;
  /** A call (or an open stream) holds the connection. */
  private busy = false;
  /** Calls queued for the connection, in order. */
  private readonly waiting: Array<{ grant(release: Release): void; refuse(err: RpcError): void }> = [];
  private broken: RpcError | null = null;
  private closed = false;
  /** The side channel calls use, or null when batches travel on the byte stream only. */
  sideChannel: ClientSideChannel | null;
  readonly onLog: ((record: LogRecord) => void) | undefined;
  /** Follows external-location pointers (`ClientOptions.external`), or null. */
  readonly external: PointerResolver | null;

  constructor(
    private readonly transport: ClientTransport,
    opts: ClientOptions,
  ) {
    this.onLog = opts.onLog;
    this.sideChannel = opts.sideChannel ?? null;
    this.external = opts.external ?? null;
    const t = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.timeoutMs = t > 0 && Number.isFinite(t) ? t : 0;
    this.watchdog = this.timeoutMs > 0 ? new Watchdog(this.timeoutMs) : null;
    this.framer = new MessageFramer(
      transport.input[Symbol.asyncIterator](),
      opts.maxMessageBytes === undefined ? {} : { maxMessageBytes: opts.maxMessageBytes },
    );
  }

  /** The request batch, advertising the side channel (and sent through it when it says so). */
  request(params: RecordBatch, target: CallTarget, extra?: RequestMetadata): RecordBatch {
    const side = this.sideChannel;
    if (side === null) return requestBatch(params, target, extra);
    const md = new Map(extra ?? []);
    for (const [k, v] of side.requestMetadata) md.set(k, v);
    return side.outgoing(requestBatch(params, target, md));
  }

  /** True after a transport failure: every later call fails with that `transport_error`. */
  get isBroken(): boolean {
    return this.broken !== null;
  }

  /** Marks the connection unusable and closes the transport; returns the error. */
  fail(err: RpcError): RpcError {
    if (this.broken === null) {
      this.broken =
        err.kind === "transport_error"
          ? err
          : frameworkError("transport_error", `connection lost: ${err.message}`, { cause: err });
      this.refuseWaiting(this.broken);
      this.watchdog?.close();
      void Promise.resolve()
        .then(() => this.transport.close())
        .catch(() => {});
    }
    return this.broken;
  }

  private withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
    const watchdog = this.watchdog;
    if (watchdog === null) return p;
    return new Promise<T>((resolve, reject) => {
      const wait = watchdog.start(() =>
        reject(frameworkError("transport_error", `no ${what} from the server within ${this.timeoutMs} ms`)),
      );
      p.then(
        (value) => {
          watchdog.stop(wait);
          resolve(value);
        },
        (err: unknown) => {
          watchdog.stop(wait);
          reject(err);
        },
      );
    });
  }

  /** Reads one frame (bounded by the timeout); `borrow` as in `MessageFramer.next`. */
  async readFrame(borrow = false): Promise<FrameResult> {
    if (this.broken) throw this.broken;
    try {
      return await this.withTimeout(this.framer.next(borrow), "response");
    } catch (err) {
      throw this.readFailed(err);
    }
  }

  /** The next frame when it is buffered already (see `MessageFramer.poll`), else null: call `readFrame`. */
  pollFrame(): Exclude<FrameResult, "end"> | null {
    if (this.broken) throw this.broken;
    try {
      return this.framer.poll();
    } catch (err) {
      throw this.readFailed(err);
    }
  }

  /** A failed read breaks the connection (its framing is lost): the error, as a transport error unless typed. */
  private readFailed(err: unknown): RpcError {
    const e = RpcError.from(err).kind === "" ? wrapTransport(err) : RpcError.from(err);
    return this.fail(this.transport.explainReadError?.(e) ?? e);
  }

  /** A borrowing stream ended: its reused answer buffer is not kept for later calls. */
  releaseBorrowed(): void {
    this.framer.releaseBorrowed();
  }

  /** Writes chunks (bounded by the timeout). */
  async writeChunks(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.broken) throw this.broken;
    try {
      await this.withTimeout(this.transport.write(chunks), "write progress");
    } catch (err) {
      throw this.fail(wrapTransport(err));
    }
  }

  /**
   * Waits for the connection (calls run one at a time); resolves to the release function. An idle
   * connection is taken at once; otherwise the call queues, and fails when the connection does.
   */
  private acquire(): Promise<Release> {
    if (this.closed) return Promise.reject(frameworkError("transport_error", "the client is closed"));
    if (this.broken !== null) return Promise.reject(this.broken);
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(this.releaser());
    }
    return new Promise<Release>((grant, refuse) => {
      this.waiting.push({ grant, refuse });
    });
  }

  /** The release function of the call holding the connection: hands it to the next in line. */
  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next === undefined) this.busy = false;
      else next.grant(this.releaser());
    };
  }

  /** The connection failed or closed: calls still queued fail with `err`. */
  private refuseWaiting(err: RpcError): void {
    for (const w of this.waiting.splice(0)) w.refuse(err);
  }

  /** A unary call at the batch level, once the connection is free (no span: the caller opens it). */
  async unary(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    const release = await this.acquire();
    try {
      if (this.broken) throw this.broken;
      await this.writeChunks(encodeStream(params.schema, [this.request(params, target, extra)]));
      const reader = new StreamReader(this);
      const batch = await reader.nextData(this.onLog);
      if (batch === null) {
        throw frameworkError(
          "protocol_error",
          `${target.method}() response stream ended without a result batch. The server must write a result or error batch for every unary call.`,
          { type: "ProtocolError" },
        );
      }
      await reader.drain();
      return batch;
    } finally {
      release();
    }
  }

  /** Opens a stream call at the batch level (no span: the caller opens it). */
  async open(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<RawStream> {
    const release = await this.acquire();
    try {
      if (this.broken) throw this.broken;
      await this.writeChunks(encodeStream(params.schema, [this.request(params, target, opts.extra)]));
      let header: RecordBatch | null = null;
      if (opts.hasHeader) {
        const reader = new StreamReader(this);
        try {
          header = await reader.nextData(this.onLog);
        } catch (err) {
          // Complete the failed call's input-stream boundary, as the reference client does.
          if (!this.broken) await this.writeChunks(encodeStream(EMPTY_SCHEMA, [])).catch(() => {});
          throw err;
        }
        if (header === null) {
          throw this.fail(
            frameworkError("protocol_error", "Stream header IPC stream ended without a data batch.", {
              type: "ProtocolError",
            }),
          );
        }
        await reader.drain();
      }
      return new SessionStream(this, header, release, this.onLog, opts.borrow ?? false);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Closes the connection (a stream in progress fails with `transport_error`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.broken === null) this.broken = frameworkError("transport_error", "the client is closed");
    this.refuseWaiting(this.broken);
    this.watchdog?.close();
    await this.transport.close();
  }
}

/** A client over one session transport. */
export class RpcClient extends TypedChannel {
  /** The connection's protocol state; private, so none of it is in the client's public type. */
  readonly #conn: ClientConnection;
  /** `ClientOptions.interceptors`, or null when there are none. */
  readonly #interceptors: readonly ClientInterceptor[] | null;
  /** Receives every non-error log record the server sends for a call (`ClientOptions.onLog`). */
  readonly onLog: ((record: LogRecord) => void) | undefined;

  constructor(
    /** The byte stream the client speaks over. */
    readonly transport: ClientTransport,
    opts: ClientOptions = {},
  ) {
    super();
    this.onLog = opts.onLog;
    this.#conn = new ClientConnection(transport, opts);
    this.#interceptors = interceptorList(opts.interceptors);
  }

  /** The side channel calls use, or null when batches travel on the byte stream only. */
  get sideChannel(): ClientSideChannel | null {
    return this.#conn.sideChannel;
  }

  /**
   * Starts (or, with null, stops) using a side channel for the calls that follow. The caller
   * owns what the channel holds (a shared-memory segment) and keeps it usable while the client
   * uses it.
   */
  useSideChannel(channel: ClientSideChannel | null): void {
    this.#conn.sideChannel = channel;
  }

  /** True after a transport failure: every later call fails with that `transport_error`. */
  get isBroken(): boolean {
    return this.#conn.isBroken;
  }

  /** Unary call at the batch level: sends `params` (one row) and returns the result batch. */
  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    const conn = this.#conn;
    const interceptors = this.#interceptors;
    if (interceptors === null) return traced(target, () => conn.unary(target, params, extra));
    return traced(target, () =>
      interceptUnary(interceptors, { target, params, extra, headers: null }, (call) =>
        conn.unary(target, params, call.metadata),
      ),
    );
  }

  /**
   * Opens a stream call at the batch level. When `hasHeader`, the header stream is read first
   * (an init error surfaces here). The returned stream holds the connection until it ends.
   */
  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<RawStream> {
    const conn = this.#conn;
    const interceptors = this.#interceptors;
    if (interceptors === null) return traced(target, () => conn.open(target, params, opts));
    return traced(target, () =>
      interceptStream(interceptors, { target, params, extra: opts.extra, headers: null }, (call) =>
        conn.open(target, params, { ...opts, extra: call.metadata }),
      ),
    );
  }

  /** Closes the connection (waits for nothing; a stream in progress fails with `transport_error`). */
  close(): Promise<void> {
    return this.#conn.close();
  }
}

function sameFields(a: Schema, b: Schema): boolean {
  if (a === b) return true;
  if (a.fields.length !== b.fields.length) return false;
  return a.fields.every((f, i) => compareFields(f, b.fields[i]));
}

function wrapTransport(err: unknown): RpcError {
  if (err instanceof RpcError && err.kind === "transport_error") return err;
  const message = err instanceof Error ? err.message : String(err);
  return frameworkError("transport_error", `transport failed: ${message}`, { cause: err });
}
