/**
 * The HTTP transport, client side: a `CallChannel` over the global `fetch`, so the typed layer
 * (`proxy()`) and `describe` run on it unchanged. No `node:` imports: it runs in browsers, Deno,
 * Bun and edge runtimes as well as Node 20+.
 *
 *   unary      POST {base}{prefix}/{protocol}/{method}
 *   stream     POST .../{method}/init       header stream (when declared), then the output stream:
 *                                          logs, a producer's first data batch, and a zero-row
 *                                          sentinel with the cursor and call tokens (none: finished)
 *              POST .../{method}/exchange   one turn: the input batch (producers: a zero-row tick)
 *                                          carrying both tokens; the answer carries the new cursor
 *                                          (on an exchange's data batch, or a producer's sentinel)
 *   cancel     POST .../{method}/exchange   a zero-row tick carrying the tokens and `vgi_rpc.cancel`
 *
 * Every request is independent (the server keeps no stream state), so a stream needs no
 * connection and `close()` sends nothing. Errors: a method error is an EXCEPTION batch, rethrown
 * as `RpcError` with the server's type, message, code and kind; an HTTP failure whose body is
 * not Arrow becomes an `HttpError` (401 `UNAUTHENTICATED`, kind `unauthenticated`, with the `VGI-Auth-Reason`; 413
 * `message_too_large`; network failures and 5xx from intermediaries `transport_error`).
 */
import { context, propagation } from "@opentelemetry/api";
import type { RecordBatch } from "apache-arrow";
import { requestBatch, traced } from "../../client/client.js";
import {
  describeProtocol,
  listProtocols,
  type ProtocolListing,
  type ServiceDescription,
} from "../../client/describe.js";
import type {
  CallChannel,
  CallTarget,
  RequestMetadata,
  StreamChannel,
  StreamOpenOptions,
} from "../../client/transport.js";
import { Watchdog } from "../../client/watchdog.js";
import { type ErrorCode, frameworkError, RpcError } from "../../errors.js";
import { batchFromData, EMPTY_SCHEMA, emptyBatch, withMetadata } from "../../wire/batches.js";
import { BorrowBuffer, MessageFramer } from "../../wire/framer.js";
import { encodeStream, IpcStreamDecoder } from "../../wire/ipc.js";
import { CALL_STATE_KEY, CANCEL_KEY, STREAM_STATE_KEY } from "../../wire/keys.js";
import { classifyBatch, errorFromMetadata, type LogRecord, readLogRecord } from "../../wire/messages.js";
import { type Cancellation, fetchPost, nodePost, type Post, type PostAnswer, readAll } from "./post.js";

const ARROW = "application/vnd.apache.arrow.stream";
const ACCEPT_MAX_RESPONSE_BYTES = "VGI-Accept-Max-Response-Bytes";
const AUTH_REASON = "VGI-Auth-Reason";
const MIN_RESPONSE_BYTES = 65536;

/** Default `timeoutMs`: 120 s per HTTP request. */
export const DEFAULT_HTTP_TIMEOUT_MS = 120_000;
/** Default `maxResponseBytes`: 256 MiB (the reference client's default). */
export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** Options of `connectHttp`. */
export interface HttpClientOptions {
  /** URL path prefix of every route, e.g. `/vgi` (as the server's `prefix`). Default: `""`. */
  readonly prefix?: string;
  /** Headers sent on every request, e.g. `{ Authorization: "Bearer ..." }`. Default: none. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Receives every non-error log record the server sends for a call. Default: logs are dropped. */
  readonly onLog?: (record: LogRecord) => void;
  /** Bound on each HTTP request, its answer's body included; `0` or `Infinity` disables it. Default: 120 000. */
  readonly timeoutMs?: number;
  /**
   * The `fetch` to use (a polyfill, an instrumented or a test fetch). Default: `globalThis.fetch`,
   * except under Node 20.16+ with Node's own `fetch`, where requests go through `node:http` with a
   * keep-alive agent and ask for uncompressed answers (several times cheaper per call).
   */
  readonly fetch?: typeof fetch;
  /** Largest decoded response body accepted, sent as `VGI-Accept-Max-Response-Bytes` (min 65536; null: no cap, no header). Default: 256 MiB. */
  readonly maxResponseBytes?: number | null;
}

/** An HTTP-level failure: a response that is not a vgi-rpc Arrow answer, or no response at all. */
export class HttpError extends RpcError {
  /** The HTTP status, or 0 when no response arrived (network failure, timeout, abort). */
  readonly status: number;
  /** The `VGI-Auth-Reason` of a 401 (`unauthorized`, `expired_credential`, ...), else `""`. */
  readonly authReason: string;

  constructor(
    message: string,
    opts: { status: number; type: string; code: ErrorCode; kind: string; authReason?: string; cause?: unknown },
  ) {
    super(message, {
      type: opts.type,
      code: opts.code,
      kind: opts.kind,
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.name = "HttpError";
    this.status = opts.status;
    this.authReason = opts.authReason ?? "";
  }
}

/** One IPC stream of a response body. */
interface BodyStream {
  readonly batches: RecordBatch[];
}

/**
 * Decodes every IPC stream in a body as it arrives, in order (a stream may end without EOS at the
 * body's end). With `borrow`, the first large record-batch body is read into that buffer (one
 * per answer: a second would overwrite it).
 */
async function decodeStreams(body: AsyncIterator<Uint8Array>, borrow: BorrowBuffer | null): Promise<BodyStream[]> {
  const framer = new MessageFramer(body, borrow === null ? {} : { borrowBuffer: borrow });
  let borrowing = borrow !== null;
  const out: BodyStream[] = [];
  let decoder: IpcStreamDecoder | null = null;
  let current: RecordBatch[] = [];
  for (;;) {
    const frame = await framer.next(borrowing);
    if (frame === "end") break;
    if (frame === "eos") {
      if (decoder !== null) out.push({ batches: current });
      decoder = null;
      current = [];
      continue;
    }
    if (frame.borrowed) borrowing = false;
    decoder ??= new IpcStreamDecoder();
    const r = decoder.accept(frame);
    if (r !== null && "numRows" in r) current.push(r);
  }
  if (decoder !== null) out.push({ batches: current });
  return out;
}

const decoder = new TextDecoder();

function preview(bytes: Uint8Array): string {
  return decoder.decode(bytes.subarray(0, 200));
}

/** The error for a response whose body is not Arrow. */
function statusError(
  status: number,
  headers: { header(name: string): string | null },
  body: Uint8Array,
  url: string,
): HttpError {
  const text = preview(body);
  let json: Record<string, unknown> | null = null;
  try {
    const v: unknown = JSON.parse(decoder.decode(body));
    if (v !== null && typeof v === "object" && !Array.isArray(v)) json = v as Record<string, unknown>;
  } catch {
    json = null;
  }
  const str = (k: string): string => (json !== null && typeof json[k] === "string" ? (json[k] as string) : "");
  if (status === 401) {
    const reason = str("reason") || headers.header(AUTH_REASON) || "unauthorized";
    const detail = str("detail");
    const html = /^\s*<(!doctype|html)/i.test(text);
    const message =
      detail || (html ? "server returned an HTML 401 page instead of the JSON error envelope" : text.trim()) || reason;
    return new HttpError(message, {
      status,
      type: "AuthenticationError",
      code: "UNAUTHENTICATED",
      kind: "unauthenticated",
      authReason: reason,
    });
  }
  const what = str("description") || str("title") || text.trim();
  const message = `HTTP ${status} from ${url}: ${what || "response is not a valid Arrow IPC stream"}`;
  if (status === 413) {
    return new HttpError(message, {
      status,
      type: "RequestTooLargeError",
      code: "RESOURCE_EXHAUSTED",
      kind: "message_too_large",
    });
  }
  if (status === 403) return new HttpError(message, { status, type: "HttpError", code: "PERMISSION_DENIED", kind: "" });
  if (status === 404)
    return new HttpError(message, { status, type: "HttpError", code: "NOT_FOUND", kind: "protocol_error" });
  if (status === 408 || status === 504) {
    return new HttpError(message, { status, type: "HttpError", code: "DEADLINE_EXCEEDED", kind: "transport_error" });
  }
  if (status === 429) {
    return new HttpError(message, { status, type: "HttpError", code: "RESOURCE_EXHAUSTED", kind: "transport_error" });
  }
  if (status >= 500)
    return new HttpError(message, { status, type: "HttpError", code: "UNAVAILABLE", kind: "transport_error" });
  return new HttpError(message, { status, type: "HttpError", code: "INVALID_ARGUMENT", kind: "protocol_error" });
}

function stripTokens(batch: RecordBatch): RecordBatch {
  const md = batch.metadata;
  if (!md.has(STREAM_STATE_KEY) && !md.has(CALL_STATE_KEY)) return batch;
  const out = new Map(md);
  out.delete(STREAM_STATE_KEY);
  out.delete(CALL_STATE_KEY);
  return withMetadata(batch, out);
}

/** A decoded response: its status and IPC streams. */
interface RpcResponse {
  readonly status: number;
  readonly streams: BodyStream[];
}

/** One request in flight, as its POST sees it: given up when the client closes or its time runs out. */
class PendingRequest implements Cancellation {
  aborted = false;
  reason: unknown = undefined;
  /** The watchdog wait bounding it (0: none). */
  wait = 0;
  private listener: (() => void) | null = null;

  onAbort(fn: (() => void) | null): void {
    this.listener = fn;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listener = this.listener;
    this.listener = null;
    listener?.();
  }
}

/** A vgi-rpc client over HTTP. Implements `CallChannel`, so `proxy(client, Protocol)` works on it. */
export class HttpClient implements CallChannel {
  /** Base URL plus prefix, without a trailing slash. */
  readonly url: string;
  readonly onLog: ((record: LogRecord) => void) | undefined;
  private readonly send: Post;
  private readonly destroyAgents: () => void;
  /** `headers`, `Content-Type` and the response budget, as one validated record (built on first use). */
  private baseHeaders: Readonly<Record<string, string>> | null = null;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number | null;
  private readonly inFlight = new Set<PendingRequest>();
  /** Bounds every request in flight (`timeoutMs`), or null when requests are unbounded. */
  private readonly watchdog: Watchdog | null;
  private closed = false;

  constructor(baseUrl: string | URL, opts: HttpClientOptions = {}) {
    const base = String(baseUrl).replace(/\/+$/, "");
    const prefix = (opts.prefix ?? "").replace(/\/+$/, "");
    this.url = prefix === "" ? base : `${base}${prefix.startsWith("/") ? "" : "/"}${prefix}`;
    this.onLog = opts.onLog;
    const node = opts.fetch === undefined ? nodePost() : null;
    if (node !== null) {
      this.send = node.post;
      this.destroyAgents = () => node.destroy();
    } else {
      const f = opts.fetch ?? globalThis.fetch;
      if (typeof f !== "function")
        throw new TypeError("connectHttp needs a fetch implementation (none is global here)");
      this.send = fetchPost(f);
      this.destroyAgents = () => {};
    }
    this.headers = opts.headers ?? {};
    const t = opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    this.timeoutMs = t > 0 && Number.isFinite(t) ? t : 0;
    this.watchdog = this.timeoutMs > 0 ? new Watchdog(this.timeoutMs) : null;
    const cap = opts.maxResponseBytes === undefined ? DEFAULT_MAX_RESPONSE_BYTES : opts.maxResponseBytes;
    if (cap !== null && !(Number.isSafeInteger(cap) && cap >= MIN_RESPONSE_BYTES)) {
      throw new TypeError(`maxResponseBytes must be an integer from ${MIN_RESPONSE_BYTES} through 2^53-1, or null`);
    }
    this.maxResponseBytes = cap;
  }

  /** The URL of a method route (`suffix`: `""`, `/init` or `/exchange`). */
  routeUrl(target: CallTarget, suffix = ""): string {
    return `${this.url}/${target.protocol}/${target.method}${suffix}`;
  }

  /**
   * Starts tracking one request (client close, timeout) of an open client; `release` forgets it. Requests in flight
   * are kept in a set and timed by one watchdog, so any number may run, each without an
   * `AbortController` or a timer of its own.
   */
  private track(): PendingRequest {
    const request = new PendingRequest();
    this.inFlight.add(request);
    if (this.watchdog !== null) {
      request.wait = this.watchdog.start(() =>
        request.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
      );
    }
    return request;
  }

  private release(request: PendingRequest): void {
    if (request.wait !== 0) this.watchdog?.stop(request.wait);
    this.inFlight.delete(request);
  }

  private networkError(err: unknown, url: string, request: PendingRequest): HttpError {
    if (this.closed) {
      return new HttpError("the client is closed", {
        status: 0,
        type: "TransportError",
        code: "UNAVAILABLE",
        kind: "transport_error",
        cause: err,
      });
    }
    const reason: unknown = request.reason;
    if (request.aborted && reason instanceof Error && reason.name === "TimeoutError") {
      return new HttpError(`no response from ${url} within ${this.timeoutMs} ms`, {
        status: 0,
        type: "TransportError",
        code: "DEADLINE_EXCEEDED",
        kind: "transport_error",
        cause: err,
      });
    }
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
    const message = err instanceof Error ? err.message : String(err);
    return new HttpError(`HTTP request to ${url} failed: ${message}${cause}`, {
      status: 0,
      type: "TransportError",
      code: "UNAVAILABLE",
      kind: "transport_error",
      cause: err,
    });
  }

  /** The constant request headers; `new Headers` validates them (and throws) as fetch would. */
  private base(): Readonly<Record<string, string>> {
    if (this.baseHeaders === null) {
      const headers = new Headers(this.headers);
      headers.set("Content-Type", ARROW);
      if (this.maxResponseBytes !== null) headers.set(ACCEPT_MAX_RESPONSE_BYTES, String(this.maxResponseBytes));
      const record: Record<string, string> = {};
      headers.forEach((value, name) => {
        record[name] = value;
      });
      this.baseHeaders = record;
    }
    return this.baseHeaders;
  }

  /**
   * POSTs one Arrow request and decodes the answer's IPC streams as they arrive (`borrow`: as
   * `decodeStreams`); HTTP failures throw.
   */
  private async post(
    url: string,
    body: readonly Uint8Array[],
    borrow: BorrowBuffer | null = null,
  ): Promise<RpcResponse> {
    if (this.closed) throw frameworkError("transport_error", "the client is closed");
    let headers = this.base();
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    for (const [k, v] of Object.entries(carrier)) {
      const name = k.toLowerCase();
      if (!Object.hasOwn(headers, name)) headers = { ...headers, [name]: v };
    }
    // The timeout and `close()` cover the whole answer, its body included.
    const request = this.track();
    try {
      const answer = await this.send(url, headers, body, request, this.maxResponseBytes);
      const status = answer.status;
      const contentType = (answer.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      if (status === 401 || contentType !== ARROW) throw statusError(status, answer, await readAll(answer), url);
      return { status, streams: await this.decode(answer, borrow) };
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw this.networkError(err, url, request);
    } finally {
      this.release(request);
    }
  }

  /** An Arrow answer's streams; bytes that are not Arrow fail as `HttpError`, the body's own failure as itself. */
  private async decode(answer: PostAnswer, borrow: BorrowBuffer | null): Promise<BodyStream[]> {
    try {
      return await decodeStreams(answer.body, borrow);
    } catch (err) {
      if (err === answer.failure()) throw err;
      // The rest is read (and so counted against the budget) as the reference does before it
      // decodes: a body past the budget is refused as such, whatever its bytes.
      try {
        while (!(await answer.body.next()).done) {}
      } catch (rest) {
        if (rest instanceof RpcError) throw rest;
      }
      throw new HttpError(
        `HTTP ${answer.status}: response is not a valid Arrow IPC stream (first 200 bytes: ${JSON.stringify(preview(answer.head()))})`,
        { status: answer.status, type: "HttpError", code: "INTERNAL", kind: "protocol_error", cause: err },
      );
    }
  }

  /** Sends a log batch to `onLog` (a throwing callback is ignored). */
  private log(batch: RecordBatch): void {
    if (this.onLog === undefined) return;
    try {
      this.onLog(readLogRecord(batch.metadata));
    } catch {
      // A throwing log callback must not fail the call.
    }
  }

  /**
   * @internal Walks one response stream: logs go to `onLog`, an EXCEPTION batch throws, pointer
   * batches throw (not resolved here); returns the remaining batches in order.
   */
  scan(stream: BodyStream | undefined): RecordBatch[] {
    const out: RecordBatch[] = [];
    for (const b of stream?.batches ?? []) {
      const kind = classifyBatch(b);
      if (kind === "log") this.log(b);
      else if (kind === "error") throw errorFromMetadata(b.metadata);
      else if (kind === "external_pointer" || kind === "shm_pointer") {
        throw frameworkError(
          "protocol_error",
          `the server sent a ${kind === "shm_pointer" ? "shared-memory" : "external-location"} pointer batch, which this client does not resolve`,
        );
      } else out.push(b);
    }
    return out;
  }

  /** @internal A failed status whose body carried no error batch. */
  static unexpected(status: number, what: string): RpcError {
    return frameworkError("protocol_error", `HTTP ${status}: ${what}`, { type: "ProtocolError" });
  }

  /** @internal POSTs a stream turn to `/exchange` (`borrow`: where the answer's data batch may be read). */
  exchangeRequest(target: CallTarget, batch: RecordBatch, borrow: BorrowBuffer | null = null): Promise<RpcResponse> {
    return this.post(this.routeUrl(target, "/exchange"), encodeStream(batch.schema, [batch]), borrow);
  }

  /** Unary call at the batch level: sends `params` (one row) and returns the result batch. */
  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    return traced(target, async () => {
      const body = encodeStream(params.schema, [requestBatch(params, target, extra)]);
      const res = await this.post(this.routeUrl(target), body);
      const batches = this.scan(res.streams[0]);
      const result = batches[0];
      if (result === undefined || res.status !== 200) {
        throw result === undefined
          ? frameworkError(
              "protocol_error",
              `${target.method}() response stream ended without a result batch. The server must write a result or error batch for every unary call.`,
              { type: "ProtocolError" },
            )
          : HttpClient.unexpected(res.status, `${target.method}() answered without an error batch`);
      }
      return result;
    });
  }

  /**
   * Opens a stream call with `/init` (the header, when declared, and a producer's first batch arrive
   * here). With `opts.borrow`, each later turn's data batch is read into one buffer the stream
   * reuses (the /init answer's batches are always the caller's own).
   */
  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<HttpStream> {
    return traced(target, async () => {
      const body = encodeStream(params.schema, [requestBatch(params, target, opts.extra)]);
      const res = await this.post(this.routeUrl(target, "/init"), body);
      let index = 0;
      let header: RecordBatch | null = null;
      if (opts.hasHeader) {
        const h = this.scan(res.streams[index++]);
        if (h[0] === undefined) {
          throw frameworkError("protocol_error", "Stream header IPC stream ended without a data batch.", {
            type: "ProtocolError",
          });
        }
        header = stripTokens(h[0]);
      }
      const pending: RecordBatch[] = [];
      let cursor: string | null = null;
      let callToken: string | null = null;
      for (const b of this.scan(res.streams[index])) {
        if (b.numRows === 0 && b.metadata.has(STREAM_STATE_KEY)) {
          cursor = b.metadata.get(STREAM_STATE_KEY)!;
          callToken = b.metadata.get(CALL_STATE_KEY) ?? null;
          break;
        }
        pending.push(b);
        if (pending.length > 1) {
          throw frameworkError("protocol_error", "producer init response contained multiple data batches", {
            type: "ProtocolError",
          });
        }
      }
      if (res.status !== 200)
        throw HttpClient.unexpected(res.status, `${target.method}/init answered without an error batch`);
      return new HttpStream(this, target, header, pending, cursor, callToken, opts.borrow ? new BorrowBuffer() : null);
    });
  }

  /** Describes a hosted protocol via `vgi_rpc.Reflection.v1` (default: the primary one). */
  describe(protocol?: string): Promise<ServiceDescription> {
    return describeProtocol(this, protocol);
  }

  /** Lists the hosted protocols via `vgi_rpc.Reflection.v1`. */
  listProtocols(): Promise<ProtocolListing> {
    return listProtocols(this);
  }

  /** Aborts requests in flight; later calls fail with `transport_error`. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const reason = frameworkError("transport_error", "the client is closed");
      for (const request of this.inFlight) request.abort(reason);
      this.inFlight.clear();
      this.watchdog?.close();
      this.destroyAgents();
    }
    return Promise.resolve();
  }
}

function isPlainTick(batch: RecordBatch): boolean {
  return batch.schema.fields.length === 0 && batch.numRows === 0 && batch.metadata.size === 0;
}

/**
 * A stream over HTTP: each `send`/`tick` is one `/exchange` request carrying the cursor and call
 * tokens. Any failed turn (a server error or an HTTP failure) ends the stream.
 */
export class HttpStream implements StreamChannel {
  private state: "open" | "finished" | "closed" = "open";
  private ops: Promise<unknown> = Promise.resolve();

  /** @internal */
  constructor(
    private readonly client: HttpClient,
    private readonly target: CallTarget,
    /** The header batch, when the method declares one. */
    readonly header: RecordBatch | null,
    private readonly pending: RecordBatch[],
    /** The current cursor token; null once the server has finished the stream. */
    private cursor: string | null,
    private readonly callToken: string | null,
    /** Where each turn's data batch is read when the caller borrows batches; released when the stream ends. */
    private readonly borrow: BorrowBuffer | null = null,
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
        const res = await this.client.exchangeRequest(this.target, this.tokens(batch, cursor), this.borrow);
        const out = this.client.scan(res.streams[0]);
        if (res.status !== 200) {
          throw HttpClient.unexpected(res.status, `${this.target.method}/exchange answered without an error batch`);
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
        this.end("closed");
        this.pending.length = 0;
        throw err;
      }
    });
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
      if (cursor === null) return;
      try {
        const res = await this.client.exchangeRequest(
          this.target,
          this.tokens(emptyBatch(EMPTY_SCHEMA), cursor, [CANCEL_KEY, "1"]),
        );
        this.client.scan(res.streams[0]);
      } catch {
        // Best effort, as the reference.
      }
    });
  }
}

/**
 * A vgi-rpc client for the server at `baseUrl` (e.g. `http://127.0.0.1:8080`). Nothing is sent
 * until the first call; `proxy(client, Protocol)` gives the typed methods.
 */
export function connectHttp(baseUrl: string | URL, options: HttpClientOptions = {}): HttpClient {
  return new HttpClient(baseUrl, options);
}
