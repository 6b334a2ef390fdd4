/**
 * The lockstep session protocol over one duplex byte stream (pipes, sockets, WebSocket): call
 * after call, each a request IPC stream answered by response streams, with streams continuing
 * batch by batch. Mirrors the reference server's `serve_one` ordering, including which failures
 * are answered on the empty schema and when a pending input stream is drained.
 */
import type { RecordBatch, Schema } from "apache-arrow";
import { frameworkError, RpcError } from "../errors.js";
import { isPointerBatch } from "../external/pointer.js";
import { asRequest } from "../external/resolve.js";
import { ANONYMOUS } from "../protocol/context.js";
import { MessageFramer } from "../wire/framer.js";
import { EOS, type Frame, IpcStreamDecoder, IpcStreamEncoder } from "../wire/ipc.js";
import { withoutSideChannel } from "../wire/pointer-batch.js";
import type { Connection, SideChannel } from "./connection.js";
import type { Answer, CallEnv } from "./dispatch.js";
import { type ActiveCall, type ActiveStream, dispatch, peerGone, refuseUnread } from "./dispatcher.js";
import { coreOf, type RpcServer, type ServerCore } from "./types.js";

/** An error that leaves the byte stream unframed: answer it, then end the session. */
class FramingLost extends Error {
  constructor(readonly error: RpcError) {
    super(error.message);
  }
}

/** Reads one IPC stream message by message from the shared framer. */
class StreamReader {
  private readonly decoder = new IpcStreamDecoder();
  private ended = false;

  constructor(private readonly framer: MessageFramer) {}

  /** Reads up to the schema. Null when the peer closed before sending anything. */
  async open(): Promise<Schema | null> {
    const schema = await this.nextMessage(true);
    if (schema === "end") return null;
    if (schema === "eos") throw new FramingLost(frameworkError("protocol_error", "IPC stream ended before its schema"));
    return this.decoder.schema;
  }

  /**
   * The next record batch, or null at EOS. With `borrow`, a large body may be read into the
   * framer's reused buffer (see `MessageFramer.next`): the batch is valid until the next read.
   */
  async next(borrow = false): Promise<RecordBatch | null> {
    for (;;) {
      if (this.ended) return null;
      const r = await this.nextMessage(false, borrow);
      if (r === "eos") return null;
      if (r === "end")
        throw new FramingLost(frameworkError("transport_error", "peer closed the connection mid-stream"));
      if (r !== null) return r;
    }
  }

  /** Consumes the rest of the stream through EOS. */
  async drain(): Promise<void> {
    while (!this.ended) {
      try {
        await this.next();
      } catch (err) {
        if (err instanceof FramingLost) throw err;
        // A malformed batch inside a stream we are discarding: keep draining.
      }
    }
  }

  /** `open`'s schema when the stream's first message is already buffered, else undefined. */
  pollOpen(): Schema | undefined {
    const frame = this.polled();
    if (frame === null) return undefined;
    if (frame === "eos") throw new FramingLost(frameworkError("protocol_error", "IPC stream ended before its schema"));
    this.decoded(frame, true);
    return this.decoder.schema ?? undefined;
  }

  /**
   * The next record batch when it is already buffered, without waiting: null at EOS, undefined
   * when `next` must be awaited. Throws as `next` rejects. Requests and pipelined inputs usually
   * arrive whole, and this saves the promises of an async read for each.
   */
  poll(): RecordBatch | null | undefined {
    for (;;) {
      if (this.ended) return null;
      const frame = this.polled();
      if (frame === null) return undefined;
      const r = this.decoded(frame, false);
      if (r === "eos") return null;
      if (r !== null) return r;
    }
  }

  /** Consumes the rest of the stream when it is buffered: true once at EOS, false when `drain` must finish. */
  pollDrain(): boolean {
    while (!this.ended) {
      try {
        if (this.poll() === undefined) return false;
      } catch (err) {
        if (err instanceof FramingLost) throw err;
        // A malformed batch inside a stream we are discarding: keep draining.
      }
    }
    return true;
  }

  /** The framer's next message if buffered whole, else null. */
  private polled(): Frame | "eos" | null {
    try {
      return this.framer.poll();
    } catch (err) {
      throw framingError(err);
    }
  }

  private async nextMessage(first: boolean, borrow = false): Promise<RecordBatch | "eos" | "end" | null> {
    let frame: Frame | "eos" | "end";
    try {
      frame = this.framer.poll() ?? (await this.framer.next(borrow));
    } catch (err) {
      throw framingError(err);
    }
    if (frame === "end") {
      if (first) return "end";
      throw new FramingLost(frameworkError("protocol_error", "byte stream ended inside an IPC stream"));
    }
    return this.decoded(frame, first);
  }

  /** What a framed message stands for: a batch, EOS, or null (a schema or dictionary message). */
  private decoded(frame: Frame | "eos", first: boolean): RecordBatch | "eos" | null {
    if (frame === "eos") {
      this.ended = true;
      return "eos";
    }
    const out = this.decoder.accept(frame);
    if (first && this.decoder.schema === null) {
      throw new FramingLost(frameworkError("protocol_error", "IPC stream does not start with a schema message"));
    }
    return out === null || !("numRows" in out) ? null : out;
  }
}

/** A framer failure: `message_too_large` leaves the stream framed (the body was skipped); anything else does not. */
function framingError(err: unknown): Error {
  const e = RpcError.from(err);
  return e.kind === "message_too_large" ? e : new FramingLost(e);
}

/** Data batches with rows go through the side channel when it answers this call. */
function routed(batches: readonly RecordBatch[], side: SideChannel | null): readonly RecordBatch[] {
  if (side === null) return batches;
  return batches.map((b) => (b.numRows > 0 ? side.output(b) : b));
}

/** Writes one IPC stream at a time to the connection. */
async function writeAnswer(conn: Connection, answer: Answer, side: SideChannel | null = null): Promise<void> {
  const enc = new IpcStreamEncoder(answer.schema);
  const chunks = enc.begin();
  for (const b of routed(answer.batches, side)) chunks.push(...enc.batch(b));
  chunks.push(EOS);
  await conn.write(chunks);
}

/** Serves one connection until the peer closes it or the byte stream becomes unreadable. */
export async function serveSession(rpcServer: RpcServer, conn: Connection): Promise<void> {
  const server = coreOf(rpcServer);
  const framer = new MessageFramer(conn.input[Symbol.asyncIterator](), { maxMessageBytes: server.maxMessageBytes });
  const env: CallEnv = {
    server,
    transport: conn.transport,
    transportMetadata: conn.transportMetadata ?? {},
    auth: conn.auth ?? ANONYMOUS,
    sideChannel: conn.sideChannel?.available === true,
    ...(conn.csrfVerified === false ? { csrfVerified: false } : {}),
  };
  const starting = server.serveStart(conn.transport);
  if (starting !== null) {
    try {
      await starting;
    } catch {
      // Logged by serveStart. A session cannot answer before its first request: it ends, and
      // its transport closes the connection (the next connection runs the hook again).
      conn.sideChannel?.close();
      return;
    }
  }
  const session = new Session(server, conn, framer, env);
  try {
    await session.serve();
  } finally {
    session.close();
  }
}

/** A value `closing` resolves with, as opposed to a request read. */
const CLOSING = Symbol("closing");
/** A value the idle deadline (`Connection.idleTimeoutMs`) resolves with. */
const IDLE = Symbol("idle");

/**
 * One wait at a time that an event can end early with `value` (one slot: racing a long-lived
 * promise per request would keep a reaction per request alive).
 */
class Interruptible<S> {
  private waiting: ((value: S) => void) | null = null;

  constructor(private readonly value: S) {}

  /** `work`'s result, or `value` when `interrupt` comes first (`work`'s result then dropped). */
  wait<T>(work: Promise<T>): Promise<T | S> {
    return new Promise<T | S>((resolve, reject) => {
      this.waiting = resolve;
      work.then(
        (result) => {
          if (this.waiting !== resolve) return; // interrupted
          this.waiting = null;
          resolve(result);
        },
        (err: unknown) => {
          if (this.waiting !== resolve) return;
          this.waiting = null;
          reject(err);
        },
      );
    });
  }

  interrupt(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.(this.value);
  }
}

/** One connection's calls, one after the other. */
class Session {
  /** The connection's side channel, or null (then pointer batches are refused). */
  private readonly side: SideChannel | null;
  /** The call in progress, to abort when the peer goes away or the listener gives up on it. */
  private current: ActiveCall | null = null;
  private readonly onAbort = () => {
    const reason = this.conn.signal?.reason;
    this.current?.abort(reason instanceof RpcError ? reason : peerGone(this.conn.transport));
  };
  /** The wait for the next request, answered with `CLOSING` if the listener starts closing first. */
  private readonly closingWait = new Interruptible<typeof CLOSING>(CLOSING);
  private readonly onClosing = () => this.closingWait.interrupt();
  /** The read the idle deadline ends (`IDLE`), its timer, and whether it passed. */
  private readonly idleWait = new Interruptible<typeof IDLE>(IDLE);
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private idleExpired = false;

  constructor(
    private readonly server: ServerCore,
    private readonly conn: Connection,
    private readonly framer: MessageFramer,
    private readonly env: CallEnv,
  ) {
    this.side = conn.sideChannel ?? null;
    conn.signal?.addEventListener("abort", this.onAbort, { once: true });
    conn.closing?.addEventListener("abort", this.onClosing, { once: true });
  }

  /** `work`'s result, or `CLOSING` when the listener starts closing first (`work`'s result then dropped). */
  private unlessClosing<T>(work: Promise<T>): Promise<T | typeof CLOSING> {
    const closing = this.conn.closing;
    if (closing === undefined) return work;
    if (closing.aborted) return Promise.resolve(CLOSING);
    return this.closingWait.wait(work);
  }

  /** Starts the wait for the next request: it must have arrived whole within `idleTimeoutMs`. */
  private armIdle(): void {
    const ms = this.conn.idleTimeoutMs;
    if (ms === undefined) return;
    this.disarmIdle();
    this.idleExpired = false;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.idleExpired = true;
      this.idleWait.interrupt();
    }, ms);
    this.idleTimer.unref?.();
  }

  private disarmIdle(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** `work`'s result, or `IDLE` when the idle deadline passes first (`work`'s result then dropped). */
  private unlessIdle<T>(work: Promise<T>): Promise<T | typeof IDLE> {
    if (this.conn.idleTimeoutMs === undefined) return work;
    if (this.idleExpired) return Promise.resolve(IDLE);
    return this.idleWait.wait(work);
  }

  /** Ends the session for the idle deadline: logged, and the transport closes the connection. */
  private idleEnd(): void {
    const { conn } = this;
    this.server.logger.info(
      { transport: conn.transport, ...conn.transportMetadata, idle_timeout_ms: conn.idleTimeoutMs },
      "Connection closed: no request within its idle timeout",
    );
    conn.onIdleTimeout?.();
  }

  close(): void {
    this.disarmIdle();
    this.conn.signal?.removeEventListener("abort", this.onAbort);
    this.conn.closing?.removeEventListener("abort", this.onClosing);
    this.side?.close();
  }

  /** True once no further request may start (the listener is closing or the server draining). */
  private get stopping(): boolean {
    return this.server.draining || this.conn.closing?.aborted === true || this.conn.signal?.aborted === true;
  }

  async serve(): Promise<void> {
    const { conn } = this;
    while (!this.stopping) {
      const reader = new StreamReader(this.framer);
      let request: RecordBatch | null;
      this.armIdle();
      try {
        // An idle connection of a closing listener stops waiting for its next request.
        // (A request already buffered whole is read without waiting: most arrive in one piece.)
        const schema = reader.pollOpen() ?? (await this.unlessIdle(this.unlessClosing(reader.open())));
        if (schema === null || schema === CLOSING) return; // clean close between calls, or shutdown
        if (schema === IDLE) return this.idleEnd();
        const polled = reader.poll();
        const read = polled !== undefined ? polled : await this.unlessIdle(reader.next());
        if (read === IDLE) return this.idleEnd();
        request = read;
        if (request !== null && !reader.pollDrain() && (await this.unlessIdle(reader.drain())) === IDLE) {
          return this.idleEnd();
        }
      } catch (err) {
        const lost = err instanceof FramingLost;
        if (!lost && (await this.unlessIdle(reader.drain().catch(() => {}))) === IDLE) return this.idleEnd();
        await writeAnswer(conn, refuseUnread(this.env, lost ? err.error : err)).catch(() => {});
        if (lost) return;
        continue;
      }
      this.disarmIdle();
      // The side channel takes what the request offers and resolves a request that stands for a
      // batch in it; the call's answers go through it only when it says this request used it.
      let output: SideChannel | null = null;
      if (request !== null) {
        const read = request;
        try {
          if (this.side === null) request = withoutSideChannel(read);
          else {
            const taken = await this.side.request(read);
            request = taken.batch;
            if (taken.answers) output = this.side;
          }
          const policy = this.server.external;
          if (policy !== null && isPointerBatch(request))
            request = asRequest(request, await policy.inbound.resolve(request));
        } catch (err) {
          await writeAnswer(conn, refuseUnread(this.env, err, read)).catch(() => {});
          continue;
        }
      }
      try {
        await this.server.track(this.serveCall(request, output));
      } catch (err) {
        // An input stream that left the bytes unframed: the call answered what it could (an open
        // output stream ends with the error), and nothing after it can be read.
        if (err instanceof FramingLost) return;
        throw err;
      } finally {
        this.current = null;
      }
    }
  }

  /** Runs one call; `output` is the side channel its data batches go through, or null. */
  private async serveCall(request: RecordBatch | null, output: SideChannel | null): Promise<void> {
    const { conn, framer } = this;
    const outcome = await dispatch(this.env, request, (call) => {
      this.current = call;
      if (conn.signal?.aborted) this.onAbort();
    });
    if (outcome.kind === "answer") {
      await writeAnswer(conn, outcome.answer, outcome.drainInput ? null : output);
      // The client still sends one input stream after a refused or failed stream call.
      if (outcome.drainInput) await discardInput(framer);
      return;
    }
    const { stream } = outcome;
    if (outcome.header !== null) await writeAnswer(conn, outcome.header);
    // As the reference does, read the input stream's schema before opening the output stream.
    const input = new StreamReader(framer);
    let inputSchema: Schema | null;
    try {
      inputSchema = input.pollOpen() ?? (await input.open());
    } catch (err) {
      // No input to run turns on: the output stream carries the error alone.
      await writeAnswer(conn, { schema: stream.outputSchema, batches: stream.fail(unframed(err)) });
      if (err instanceof FramingLost) throw err;
      await input.drain();
      return;
    }
    if (inputSchema === null) {
      stream.end();
      return; // peer gone before its input stream
    }
    const enc = new IpcStreamEncoder(stream.outputSchema);
    await conn.write([...enc.begin(), ...enc.batches(outcome.initLogs)]);
    await this.runTurns(stream, input, enc, output);
  }

  /** Feeds the stream its inputs, writes each turn's batches, and ends its output stream. */
  private async runTurns(
    stream: ActiveStream,
    input: StreamReader,
    enc: IpcStreamEncoder,
    output: SideChannel | null,
  ): Promise<void> {
    const { conn, framer, side } = this;
    let inputDone = false;
    let lost: FramingLost | null = null;
    // Borrowed inputs are read over the last one, so every answer written (which may view its
    // input) is handed to the OS before the next input is read; the buffer is let go when the
    // stream ends (answers still queued keep it alive).
    const flush = stream.borrowInput ? conn.flush?.bind(conn) : undefined;
    try {
      for (;;) {
        if (flush !== undefined) await flush();
        let batch: RecordBatch | RpcError | null;
        try {
          // An aborted stream stops waiting for its client's next input.
          // (An input already buffered whole, as pipelined inputs often are, is read without waiting.)
          const ready = stream.aborted ?? input.poll();
          batch =
            ready !== undefined
              ? ready
              : await stream.unlessAborted<RecordBatch | RpcError | null>(
                  input.next(flush !== undefined),
                  (reason) => reason,
                );
        } catch (err) {
          // A malformed input ends the stream with the error on the output schema, as a failed
          // turn does; the connection goes on only if the bytes are still framed.
          lost = err instanceof FramingLost ? err : null;
          await conn.write(enc.batches(stream.fail(unframed(err))));
          break;
        }
        if (batch instanceof RpcError) {
          await conn.write(enc.batches(stream.fail(batch)));
          // The client may be mid-write: the rest of the connection is not read.
          lost = new FramingLost(batch);
          break;
        }
        if (batch === null) {
          inputDone = true;
          break;
        }
        try {
          batch = side === null ? withoutSideChannel(batch) : side.input(batch);
          const policy = this.server.external;
          if (policy !== null && isPointerBatch(batch)) batch = await policy.inbound.resolve(batch);
        } catch (err) {
          await conn.write(enc.batches(stream.fail(err)));
          break;
        }
        if (await answerTurn(conn, stream, batch, enc, output)) break;
      }
      await conn.write([EOS]);
      if (lost !== null) throw lost;
      if (!inputDone) await input.drain();
    } finally {
      stream.end();
      if (flush !== undefined) framer.releaseBorrowed();
    }
  }
}

/**
 * Runs one stream turn on `input` and writes its answer; true when the stream is done. A function
 * of its own so that, once it returns, nothing of the turn is left in the suspended frame of the
 * loop awaiting the next input (an answer may view its input: a 30 MB input would otherwise stay
 * alive until the next one arrives; bench/rss-phases.ts measures it).
 */
async function answerTurn(
  conn: Connection,
  stream: ActiveStream,
  input: RecordBatch,
  enc: IpcStreamEncoder,
  output: SideChannel | null,
): Promise<boolean> {
  const turn = await stream.turn(input);
  if (turn.batches.length > 0) await conn.write(enc.batches(routed(turn.batches, output)));
  return turn.done;
}

/** The error a failed read stands for. */
function unframed(err: unknown): unknown {
  return err instanceof FramingLost ? err.error : err;
}

/**
 * Reads and drops the input stream a client sends after its stream call was refused or failed
 * at init, so the next request is framed. Batches that cannot be decoded are dropped too; only
 * bytes that leave the stream unframed end the session (`FramingLost`).
 */
async function discardInput(framer: MessageFramer): Promise<void> {
  const input = new StreamReader(framer);
  try {
    if ((await input.open()) === null) return;
  } catch (err) {
    if (err instanceof FramingLost) throw err;
  }
  await input.drain();
}
