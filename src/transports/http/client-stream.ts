/**
 * A stream over HTTP, client side: each turn is one `/exchange` request carrying the cursor and
 * call tokens the previous answer gave; the server keeps nothing between turns. No `node:` imports.
 */
import type { RecordBatch } from "apache-arrow";
import type { CallTarget, StreamChannel } from "../../client/transport.js";
import { frameworkError, RpcError } from "../../errors.js";
import { batchFromData, EMPTY_SCHEMA, emptyBatch, withMetadata } from "../../wire/batches.js";
import type { BorrowBuffer } from "../../wire/framer.js";
import { CALL_STATE_KEY, CANCEL_KEY, STREAM_STATE_KEY } from "../../wire/keys.js";
import { HttpError, unexpectedStatus } from "./client-errors.js";
import type { BodyStream, RpcResponse } from "./client-requests.js";

/** What a stream needs of its client: sending a turn, and reading an answer's stream. */
export interface StreamTurns {
  /**
   * POSTs a turn to `/exchange` (`borrow`: where the answer's data batch may be read; `headers`:
   * the call's own, set by its interceptors).
   */
  turn(
    target: CallTarget,
    batch: RecordBatch,
    borrow: BorrowBuffer | null,
    headers: Headers | null,
  ): Promise<RpcResponse>;
  /** One answer stream's batches, logs delivered and an error batch thrown. */
  scan(stream: BodyStream | undefined): Promise<RecordBatch[]>;
}

/** `batch` without the stream tokens (what the caller sees). */
export function stripTokens(batch: RecordBatch): RecordBatch {
  const md = batch.metadata;
  if (!md.has(STREAM_STATE_KEY) && !md.has(CALL_STATE_KEY)) return batch;
  const out = new Map(md);
  out.delete(STREAM_STATE_KEY);
  out.delete(CALL_STATE_KEY);
  return withMetadata(batch, out);
}

function isPlainTick(batch: RecordBatch): boolean {
  return batch.schema.fields.length === 0 && batch.numRows === 0 && batch.metadata.size === 0;
}

/**
 * Where a stream over HTTP stands between turns: its tokens, which any instance sharing the
 * server's token key continues from (`HttpClient.resumeStream`). Plain strings: store or send it
 * as JSON. The tokens expire with the server's `tokenTtlSeconds`.
 */
export interface HttpStreamCheckpoint {
  readonly protocol: string;
  readonly method: string;
  readonly cursor: string;
  readonly callToken: string | null;
}

/**
 * A stream over HTTP: each `send`/`tick` is one `/exchange` request carrying the cursor and call
 * tokens. A turn the server answered with an error ends the stream. A turn that got no answer or
 * only a transient status (after the client's retries) leaves it where it was: send the same
 * input again, or take its `checkpoint()` and resume it later, from any client. `close()` sends
 * nothing (stateless HTTP holds nothing to release); `cancel()` sends the protocol's cancel batch
 * (nothing after such a failure: the stream stays resumable from its checkpoint).
 */
export interface HttpStream extends StreamChannel {
  /** True when the server finished the stream (producer end) rather than the client closing it. */
  readonly finished: boolean;
  /**
   * The stream's tokens before its next turn, or null when there is nothing to resume: it ended,
   * the server finished it, or a batch its `/init` answer carried is still unread.
   */
  checkpoint(): HttpStreamCheckpoint | null;
}

/** True for a failure after which the turn may be sent again: no answer, or a transient one. */
function resumable(err: unknown): boolean {
  if (err instanceof HttpError) return err.status === 0 || err.status === 429 || err.status >= 502;
  return err instanceof RpcError && (err.kind === "server_draining" || err.kind === "transport_error");
}

/** What the server's `/init` answer opened a stream with. */
export interface OpenedStream {
  readonly target: CallTarget;
  /** The header batch, when the method declares one. */
  readonly header: RecordBatch | null;
  /** Batches the `/init` answer already carried (a producer's first). */
  readonly pending: RecordBatch[];
  /** The first cursor token; null when the server finished the stream in `/init`. */
  readonly cursor: string | null;
  readonly callToken: string | null;
  /** Where each turn's data batch is read when the caller borrows batches; released when the stream ends. */
  readonly borrow: BorrowBuffer | null;
  /** Headers every turn sends (the call's interceptors'), or null. */
  readonly headers: Headers | null;
}

/** A stream over `turns`, from what its `/init` answer gave. */
export function httpStream(turns: StreamTurns, opened: OpenedStream): HttpStream {
  return new TurnStream(
    turns,
    opened.target,
    opened.header,
    opened.pending,
    opened.cursor,
    opened.callToken,
    opened.borrow,
    opened.headers,
  );
}

class TurnStream implements HttpStream {
  private state: "open" | "finished" | "closed" = "open";
  /** The last turn failed with no (or a transient) answer: the tokens are still good. */
  private interrupted = false;
  private ops: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: StreamTurns,
    private readonly target: CallTarget,
    readonly header: RecordBatch | null,
    private readonly pending: RecordBatch[],
    /** The current cursor token; null once the server has finished the stream. */
    private cursor: string | null,
    private readonly callToken: string | null,
    private readonly borrow: BorrowBuffer | null,
    private readonly headers: Headers | null,
  ) {}

  /** True once the stream has ended (finished by the server, or closed/cancelled). */
  get ended(): boolean {
    return this.state !== "open";
  }

  /** True when the server finished the stream (producer end) rather than the client closing it. */
  get finished(): boolean {
    return this.state === "finished";
  }

  /** Ends the stream; a borrowed batch's buffer is not kept past it. */
  private end(state: "finished" | "closed"): void {
    this.state = state;
    this.borrow?.release();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ops.then(fn, fn);
    this.ops = run.catch(() => {});
    return run;
  }

  private tokens(batch: RecordBatch, cursor: string, extra?: [string, string]): RecordBatch {
    const md = new Map(batch.metadata);
    md.set(STREAM_STATE_KEY, cursor);
    if (this.callToken !== null) md.set(CALL_STATE_KEY, this.callToken);
    if (extra) md.set(extra[0], extra[1]);
    return batchFromData(batch.schema, batch.data.children, batch.numRows, md);
  }

  /**
   * Sends one input batch (producers: a zero-row tick on the empty schema) and returns the
   * server's answer, or null when the server has ended the stream.
   */
  send(batch: RecordBatch): Promise<RecordBatch | null> {
    return this.serial(async () => {
      if (this.state !== "open") throw frameworkError("protocol_error", "Stream has been closed or cancelled");
      const buffered = this.pending.shift();
      if (buffered !== undefined) {
        if (!isPlainTick(batch)) {
          this.pending.unshift(buffered);
          throw new TypeError(
            "the producer's first batch arrived with /init: consume it with a plain tick before sending metadata",
          );
        }
        return buffered;
      }
      const cursor = this.cursor;
      if (cursor === null) {
        this.end("finished");
        return null;
      }
      try {
        const res = await this.client.turn(this.target, this.tokens(batch, cursor), this.borrow, this.headers);
        this.interrupted = false;
        const out = await this.client.scan(res.streams[0]);
        if (res.status !== 200) {
          throw unexpectedStatus(res.status, `${this.target.method}/exchange answered without an error batch`);
        }
        const first = out[0];
        if (first === undefined) {
          // The producer finished without a last batch.
          this.cursor = null;
          this.end("finished");
          return null;
        }
        const own = first.metadata.get(STREAM_STATE_KEY);
        if (own !== undefined) {
          // An exchange: the answer itself carries the next cursor.
          this.cursor = own;
        } else {
          // A producer: a sentinel follows the data, or none when this was the last turn.
          const sentinel = out.slice(1).find((b) => b.metadata.has(STREAM_STATE_KEY));
          this.cursor = sentinel?.metadata.get(STREAM_STATE_KEY) ?? null;
        }
        return stripTokens(first);
      } catch (err) {
        if (resumable(err)) {
          // Nothing changed on the server's side that the tokens do not cover: stay at this turn.
          this.interrupted = true;
          throw err;
        }
        this.end("closed");
        this.pending.length = 0;
        throw err;
      }
    });
  }

  checkpoint(): HttpStreamCheckpoint | null {
    const cursor = this.cursor;
    if (cursor === null || this.pending.length > 0) return null;
    if (this.state !== "open" && !(this.state === "closed" && this.interrupted)) return null;
    return { protocol: this.target.protocol, method: this.target.method, cursor, callToken: this.callToken };
  }

  /** A producer tick: a zero-row batch on the empty schema, optionally carrying metadata. */
  tick(metadata?: ReadonlyMap<string, string>): Promise<RecordBatch | null> {
    return this.send(emptyBatch(EMPTY_SCHEMA, metadata));
  }

  /** Ends the stream client-side. Stateless HTTP has nothing to release, so nothing is sent. */
  close(): Promise<void> {
    return this.serial(async () => {
      if (this.state === "open") this.end("closed");
      this.pending.length = 0;
    });
  }

  /**
   * Cancels with the protocol's cancel batch (a zero-row tick carrying the tokens and
   * `vgi_rpc.cancel`), so the server runs the method's cancel hook. Idempotent; errors swallowed.
   */
  cancel(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== "open") return;
      this.end("closed");
      this.pending.length = 0;
      const cursor = this.cursor;
      // After a turn that got no answer, the server is likely out of reach and the stream is
      // kept resumable from its checkpoint: nothing is sent.
      if (cursor === null || this.interrupted) return;
      try {
        const res = await this.client.turn(
          this.target,
          this.tokens(emptyBatch(EMPTY_SCHEMA), cursor, [CANCEL_KEY, "1"]),
          null,
          this.headers,
        );
        await this.client.scan(res.streams[0]);
      } catch {
        // Best effort, as the reference.
      }
    });
  }
}
