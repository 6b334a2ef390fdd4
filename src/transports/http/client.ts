/**
 * The HTTP transport, client side: a `CallChannel` over the global `fetch`, so the typed layer
 * (`call`/`stream`/`exchange`, `proxy()`) and `describe` run on it unchanged. No `node:` imports:
 * it runs in browsers, Deno, Bun and edge runtimes as well as Node 20+.
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
 *
 * Requests go out through client-requests.ts; streams continue in client-stream.ts.
 */
import type { RecordBatch } from "apache-arrow";
import { TypedChannel } from "../../client/channel.js";
import { REFLECTION_PROTOCOL } from "../../client/describe.js";
import { requestBatch, resolvePointer, traced } from "../../client/client.js";
import { type ClientInterceptor, interceptorList, interceptStream, interceptUnary } from "../../client/interceptors.js";
import type { CallTarget, PointerResolver, RequestMetadata, StreamOpenOptions } from "../../client/transport.js";
import { frameworkError } from "../../errors.js";
import { BorrowBuffer } from "../../wire/framer.js";
import { encodeStream } from "../../wire/ipc.js";
import { CALL_STATE_KEY, IDEMPOTENCY_KEY_METADATA, STREAM_STATE_KEY } from "../../wire/keys.js";
import { classifyBatch, errorFromMetadata, type LogRecord, readLogRecord } from "../../wire/messages.js";
import { HttpError, unexpectedStatus } from "./client-errors.js";
import { type AnswerHeaders, type BodyStream, Requester, type RpcResponse } from "./client-requests.js";
import { type HttpRetryOptions, type RetryPolicy, retryPolicy, TransientAnswer, withRetries } from "./client-retry.js";
import {
  type HttpStream,
  type HttpStreamCheckpoint,
  httpStream,
  type StreamTurns,
  stripTokens,
} from "./client-stream.js";
import { type UploadOptions, uploadRequest } from "./client-upload.js";
import {
  ECHO_HEADER_PREFIX,
  MIN_RESPONSE_BUDGET_BYTES,
  SESSION_ACCEPT_HEADER,
  SESSION_CLOSE_HEADER,
  SESSION_ENDPOINT,
  SESSION_HEADER,
} from "./headers.js";
import { fetchPost, nodePost } from "./post.js";

export { HttpError } from "./client-errors.js";
export type { HttpRetryOptions } from "./client-retry.js";
export type { HttpStream, HttpStreamCheckpoint } from "./client-stream.js";

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
  /**
   * Wrap every call the client makes, the first outermost (see `ClientInterceptor`): add request
   * metadata or headers (`call.headers`, sent with each of the call's requests), observe answers
   * and errors, refuse or retry calls. Default: none.
   */
  readonly interceptors?: readonly ClientInterceptor[];
  /**
   * Resolves external-location pointer batches (`new ExternalResolver({ ... })`): see
   * `ClientOptions.external`. Default: none (a pointer fails the call).
   */
  readonly external?: PointerResolver;
  /**
   * Upload a request the server refuses as too large (413) through an upload URL it vends, and
   * send a pointer instead (a server with external storage and upload URLs resolves it). Default:
   * none (the 413 fails the call).
   */
  readonly uploads?: UploadOptions;
  /**
   * Retry replay-safe requests that got no answer or a transient status (429, 502, 503, 504):
   * every stream turn (re-sent from the same tokens), and unary calls and stream opens that carry
   * an idempotency key (`CallOptions.idempotencyKey`, or an `Idempotency-Key` header) or describe
   * the server. Backoff is exponential with full jitter, honouring `Retry-After`; see
   * `HttpRetryOptions`. false: never retry. Default: 3 retries from 500 ms, at most 30 s apart.
   */
  readonly retry?: HttpRetryOptions | false;
}

/** What a client and its session views share: where and how requests go, and what reads the answers. */
class ClientCore {
  /** What streams opened outside a session send their turns through. */
  readonly turns: StreamTurns;

  constructor(
    /** Base URL plus prefix, without a trailing slash. */
    readonly url: string,
    readonly onLog: ((record: LogRecord) => void) | undefined,
    readonly requests: Requester,
    /** `HttpClientOptions.interceptors`, or null when there are none. */
    readonly interceptors: readonly ClientInterceptor[] | null,
    /** `HttpClientOptions.external`, or null. */
    readonly external: PointerResolver | null,
    /** `HttpClientOptions.uploads`, or null. */
    readonly uploads: UploadOptions | null,
    /** `HttpClientOptions.retry`, checked. */
    readonly retry: RetryPolicy,
    /** The client's own headers carry an idempotency key (every call is then replay-safe). */
    readonly keyedHeaders: boolean,
    /** True once the client closed (no more retries). */
    readonly closed: () => boolean,
  ) {
    this.turns = this.turnsIn(null);
  }

  /** How a stream's turns are sent: in `session`, when it was opened in one. */
  turnsIn(session: SessionTracker | null): StreamTurns {
    return {
      // A turn is always replay-safe: the server keeps nothing between turns, so the same tokens
      // start the turn again from the same state.
      turn: (target, batch, borrow, headers) =>
        this.request(
          this.routeUrl(target, "/exchange"),
          encodeStream(batch.schema, [batch]),
          borrow,
          headers,
          session,
          true,
        ),
      scan: (stream) => this.scan(stream),
    };
  }

  /**
   * One request, retried under `HttpClientOptions.retry` when `replaySafe`: a failure with no
   * answer or a transient status is sent again; the last transient Arrow answer is returned for
   * its error batch to be read.
   */
  request(
    url: string,
    body: readonly Uint8Array[],
    borrow: BorrowBuffer | null,
    callHeaders: Headers | null,
    session: SessionTracker | null,
    replaySafe: boolean,
  ): Promise<RpcResponse> {
    const policy = this.retry;
    if (!replaySafe || policy.maxRetries === 0) return this.post(url, body, borrow, callHeaders, session);
    return withRetries(
      policy,
      async () => {
        const res = await this.post(url, body, borrow, callHeaders, session);
        if (policy.retryableStatuses.has(res.status)) throw new TransientAnswer(res.status, res.retryAfterMs, res);
        return res;
      },
      this.closed,
    );
  }

  /** Whether a call may be sent twice: it carries an idempotency key, or only reads the server's description. */
  private replaySafe(target: CallTarget, extra: RequestMetadata | undefined, headers: Headers | null): boolean {
    return (
      target.protocol === REFLECTION_PROTOCOL ||
      this.keyedHeaders ||
      extra?.has(IDEMPOTENCY_KEY_METADATA) === true ||
      headers?.has("idempotency-key") === true
    );
  }

  /**
   * One request (in `session`: with its headers, its answer's session headers read); a 413 is
   * answered by uploading the body and sending a pointer (`uploads`).
   */
  async post(
    url: string,
    body: readonly Uint8Array[],
    borrow: BorrowBuffer | null,
    callHeaders: Headers | null,
    session: SessionTracker | null,
  ): Promise<RpcResponse> {
    const headers = session === null ? callHeaders : session.headers(callHeaders);
    const observe = session === null ? null : session.observe;
    try {
      return await this.requests.post(url, body, borrow, headers, observe);
    } catch (err) {
      const uploads = this.uploads;
      if (uploads === null || !(err instanceof HttpError) || err.status !== 413) throw err;
      const pointer = await uploadRequest(
        body,
        `${this.url}/__upload_url__/init`,
        (u, b) => this.requests.post(u, b, null, headers, observe),
        uploads,
      );
      return this.requests.post(url, pointer, borrow, headers, observe);
    }
  }

  /** The URL of a method route (`suffix`: `""`, `/init` or `/exchange`). */
  routeUrl(target: CallTarget, suffix = ""): string {
    return `${this.url}/${target.protocol}/${target.method}${suffix}`;
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
   * Walks one response stream: logs go to `onLog`, an EXCEPTION batch throws, external-location
   * pointers are resolved (`HttpClientOptions.external`), shared-memory pointers throw; returns
   * the remaining batches in order.
   */
  async scan(stream: BodyStream | undefined): Promise<RecordBatch[]> {
    const out: RecordBatch[] = [];
    for (const b of stream?.batches ?? []) {
      const kind = classifyBatch(b);
      if (kind === "log") this.log(b);
      else if (kind === "error") throw errorFromMetadata(b.metadata);
      else if (kind === "external_pointer") out.push(await resolvePointer(this.external, b, this.onLog));
      else if (kind === "shm_pointer") {
        throw frameworkError(
          "protocol_error",
          "the server sent a shared-memory pointer batch, which this client does not resolve",
        );
      } else out.push(b);
    }
    return out;
  }

  /** Unary call at the batch level (in `session`, when given): sends `params` (one row), returns the result batch. */
  unaryBatch(
    target: CallTarget,
    params: RecordBatch,
    extra: RequestMetadata | undefined,
    session: SessionTracker | null,
  ): Promise<RecordBatch> {
    const interceptors = this.interceptors;
    if (interceptors === null) return traced(target, () => this.unaryRequest(target, params, extra, null, session));
    return traced(target, () =>
      interceptUnary(interceptors, { target, params, extra, headers: new Headers() }, (call) =>
        this.unaryRequest(target, params, call.metadata, call.headers, session),
      ),
    );
  }

  /** One unary request (`headers`: an interceptor's, over the client's). */
  private async unaryRequest(
    target: CallTarget,
    params: RecordBatch,
    extra: RequestMetadata | undefined,
    headers: Headers | null,
    session: SessionTracker | null,
  ): Promise<RecordBatch> {
    const body = encodeStream(params.schema, [requestBatch(params, target, extra)]);
    const safe = this.replaySafe(target, extra, headers);
    const res = await this.request(this.routeUrl(target), body, null, headers, session, safe);
    const batches = await this.scan(res.streams[0]);
    const result = batches[0];
    if (result === undefined || res.status !== 200) {
      throw result === undefined
        ? frameworkError(
            "protocol_error",
            `${target.method}() response stream ended without a result batch. The server must write a result or error batch for every unary call.`,
            { type: "ProtocolError" },
          )
        : unexpectedStatus(res.status, `${target.method}() answered without an error batch`);
    }
    return result;
  }

  /** Opens a stream call with `/init` (in `session`, when given: its turns too). */
  openStream(
    target: CallTarget,
    params: RecordBatch,
    opts: StreamOpenOptions,
    session: SessionTracker | null,
  ): Promise<HttpStream> {
    const interceptors = this.interceptors;
    if (interceptors === null) {
      return traced(target, () => this.initRequest(target, params, opts, opts.extra, null, session));
    }
    return traced(target, () =>
      interceptStream(interceptors, { target, params, extra: opts.extra, headers: new Headers() }, (call) =>
        this.initRequest(target, params, opts, call.metadata, call.headers, session),
      ),
    );
  }

  /** One `/init` request; the stream's turns send `headers` too. */
  private async initRequest(
    target: CallTarget,
    params: RecordBatch,
    opts: StreamOpenOptions,
    extra: RequestMetadata | undefined,
    headers: Headers | null,
    session: SessionTracker | null,
  ): Promise<HttpStream> {
    const body = encodeStream(params.schema, [requestBatch(params, target, extra)]);
    const safe = this.replaySafe(target, extra, headers);
    const res = await this.request(this.routeUrl(target, "/init"), body, null, headers, session, safe);
    let index = 0;
    let header: RecordBatch | null = null;
    if (opts.hasHeader) {
      const h = await this.scan(res.streams[index++]);
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
    for (const b of await this.scan(res.streams[index])) {
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
    if (res.status !== 200) throw unexpectedStatus(res.status, `${target.method}/init answered without an error batch`);
    const borrow = opts.borrow ? new BorrowBuffer() : null;
    const turns = session === null ? this.turns : this.turnsIn(session);
    return httpStream(turns, { target, header, pending, cursor, callToken, borrow, headers });
  }
}

/** A vgi-rpc client over HTTP. Implements `CallChannel`, so `proxy(client, Protocol)` works on it. */
export class HttpClient extends TypedChannel {
  /** Base URL plus prefix, without a trailing slash. */
  readonly url: string;
  readonly onLog: ((record: LogRecord) => void) | undefined;
  private readonly core: ClientCore;
  private readonly destroyAgents: () => void;
  private closed = false;

  constructor(baseUrl: string | URL, opts: HttpClientOptions = {}) {
    super();
    const base = String(baseUrl).replace(/\/+$/, "");
    const prefix = (opts.prefix ?? "").replace(/\/+$/, "");
    this.url = prefix === "" ? base : `${base}${prefix.startsWith("/") ? "" : "/"}${prefix}`;
    this.onLog = opts.onLog;
    const node = opts.fetch === undefined ? nodePost() : null;
    let send: ReturnType<typeof fetchPost>;
    if (node !== null) {
      send = node.post;
      this.destroyAgents = () => node.destroy();
    } else {
      const f = opts.fetch ?? globalThis.fetch;
      if (typeof f !== "function")
        throw new TypeError("connectHttp needs a fetch implementation (none is global here)");
      send = fetchPost(f);
      this.destroyAgents = () => {};
    }
    const t = opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    const cap = opts.maxResponseBytes === undefined ? DEFAULT_MAX_RESPONSE_BYTES : opts.maxResponseBytes;
    if (cap !== null && !(Number.isSafeInteger(cap) && cap >= MIN_RESPONSE_BUDGET_BYTES)) {
      throw new TypeError(
        `maxResponseBytes must be an integer from ${MIN_RESPONSE_BUDGET_BYTES} through 2^53-1, or null`,
      );
    }
    const requests = new Requester({
      send,
      headers: opts.headers ?? {},
      timeoutMs: t > 0 && Number.isFinite(t) ? t : 0,
      maxResponseBytes: cap,
    });
    this.core = new ClientCore(
      this.url,
      this.onLog,
      requests,
      interceptorList(opts.interceptors),
      opts.external ?? null,
      opts.uploads ?? null,
      retryPolicy(opts.retry),
      new Headers(opts.headers ?? {}).has("idempotency-key"),
      () => this.closed,
    );
  }

  /** The URL of a method route (`suffix`: `""`, `/init` or `/exchange`). */
  routeUrl(target: CallTarget, suffix = ""): string {
    return this.core.routeUrl(target, suffix);
  }

  /** Unary call at the batch level: sends `params` (one row) and returns the result batch. */
  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    return this.core.unaryBatch(target, params, extra, null);
  }

  /**
   * Opens a stream call with `/init` (the header, when declared, and a producer's first batch arrive
   * here). With `opts.borrow`, each later turn's data batch is read into one buffer the stream
   * reuses (the /init answer's batches are always the caller's own).
   */
  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<HttpStream> {
    return this.core.openStream(target, params, opts, null);
  }

  /**
   * A view of this client in a sticky session (see `HttpSession`): its calls send
   * `VGI-Session-Accept: true`, so a method may open a session, and then carry the session's token
   * (and the echo headers the server asked for); `opts.token` resumes a session held before
   * (`detach()`). Sessions are independent: several may be open on one client at once.
   */
  withSession(opts: HttpSessionOptions = {}): HttpSession {
    return new HttpSession(this.core, new SessionTracker(opts.token ?? null, opts.echoHeaders ?? {}));
  }

  /**
   * Continues a stream from its checkpoint (`HttpStream.checkpoint()`), taken by this client or
   * another, before or after a restart: its next turn is sent with the checkpoint's tokens, to
   * any server sharing the token key of the one that opened it. `borrow` as in
   * `StreamOpenOptions`; `headers` go with every turn (the original call's interceptors' are not
   * in the checkpoint). Wrap it for typed rows with `producerStream`/`exchangeSession`.
   */
  resumeStream(
    checkpoint: HttpStreamCheckpoint,
    opts: { readonly borrow?: boolean; readonly headers?: HeadersInit } = {},
  ): HttpStream {
    const { protocol, method, cursor, callToken } = checkpoint;
    for (const [name, v] of [
      ["protocol", protocol],
      ["method", method],
      ["cursor", cursor],
    ] as const) {
      if (typeof v !== "string" || v === "") throw new TypeError(`checkpoint.${name} must be a non-empty string`);
    }
    if (callToken !== null && typeof callToken !== "string") {
      throw new TypeError("checkpoint.callToken must be a string or null");
    }
    return httpStream(this.core.turns, {
      target: { protocol, method },
      header: null,
      pending: [],
      cursor,
      callToken,
      borrow: opts.borrow ? new BorrowBuffer() : null,
      headers: opts.headers === undefined ? null : new Headers(opts.headers),
    });
  }

  /** Aborts requests in flight; later calls fail with `transport_error`. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.core.requests.close();
      this.destroyAgents();
    }
    return Promise.resolve();
  }
}

/** Options of `HttpClient.withSession`. */
export interface HttpSessionOptions {
  /** A session token kept from before (`HttpSession.detach()`), to resume that session. Default: none. */
  readonly token?: string;
  /** The echo headers kept with it (`HttpSession.echoHeaders`). Default: none. */
  readonly echoHeaders?: Readonly<Record<string, string>>;
}

/**
 * A client in a sticky session, as the reference's `with_session_token()`: a `CallChannel` (so
 * `proxy(session, Protocol)` works) whose requests carry `VGI-Session-Accept: true` and, once a
 * method opened a session, its `VGI-Session` token and the `VGI-Echo-*` headers the server sent.
 * A `VGI-Session-Close: true` answer ends it. `close()` closes a session still open on the server
 * (`DELETE {prefix}/__session__`); `detach()` keeps it open and hands its token over instead.
 * A session belongs to the server instance that opened it: elsewhere (or once it ended) its calls
 * fail with an `RpcError` of kind `session_lost`.
 */
export class HttpSession extends TypedChannel {
  /** @internal Made by `HttpClient.withSession`. */
  constructor(
    private readonly core: ClientCore,
    private readonly tracker: SessionTracker,
  ) {
    super();
  }

  /** The session's token, or null when none is open (not opened yet, closed, detached). */
  get token(): string | null {
    return this.tracker.token;
  }

  /** The headers this session echoes on every request (`VGI-Echo-<name>` on the opening answer). */
  get echoHeaders(): Readonly<Record<string, string>> {
    return { ...this.tracker.echo };
  }

  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    return this.core.unaryBatch(target, params, extra, this.tracker);
  }

  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<HttpStream> {
    return this.core.openStream(target, params, opts, this.tracker);
  }

  /**
   * Hands the token over and forgets it, leaving the session open on the server (until its
   * lifetime ends) to be resumed with `withSession({ token, echoHeaders })`; `close()` then sends nothing.
   */
  detach(): string | null {
    const token = this.tracker.token;
    this.tracker.forget();
    return token;
  }

  /**
   * Closes the session on the server if one is open (`DELETE {prefix}/__session__`, best effort:
   * a failure is ignored, the session's lifetime ends it anyway) and forgets it. Idempotent.
   */
  async close(): Promise<void> {
    const token = this.tracker.token;
    if (token === null) return;
    const headers = this.tracker.headers(null);
    this.tracker.forget();
    try {
      await this.core.requests.send("DELETE", `${this.core.url}/${SESSION_ENDPOINT}`, headers);
    } catch {
      // Best effort, as the reference: the server's expiry is the safety net.
    }
  }
}

/** A session's token and echo headers, added to each of its requests and updated from each answer. */
class SessionTracker {
  echo: Record<string, string>;

  constructor(
    public token: string | null,
    echo: Readonly<Record<string, string>>,
  ) {
    this.echo = { ...echo };
  }

  /** `callHeaders` (an interceptor's, or none) with the session's added. */
  headers(callHeaders: Headers | null): Headers {
    const out = new Headers(callHeaders ?? undefined);
    out.set(SESSION_ACCEPT_HEADER, "true");
    if (this.token !== null) out.set(SESSION_HEADER, this.token);
    for (const [name, value] of Object.entries(this.echo)) if (!out.has(name)) out.set(name, value);
    return out;
  }

  /** Reads an answer's session headers: a new token, echo headers, or the session's end. */
  readonly observe = (answer: AnswerHeaders): void => {
    const token = answer.header(SESSION_HEADER);
    if (token) this.token = token;
    const prefix = ECHO_HEADER_PREFIX.toLowerCase();
    for (const name of answer.headerNames()) {
      if (name.startsWith(prefix) && name.length > prefix.length) {
        this.echo[name.slice(prefix.length)] = answer.header(name) ?? "";
      }
    }
    if ((answer.header(SESSION_CLOSE_HEADER) ?? "").trim().toLowerCase() === "true") this.forget();
  };

  forget(): void {
    this.token = null;
    this.echo = {};
  }
}

/**
 * A vgi-rpc client for the server at `baseUrl` (e.g. `http://127.0.0.1:8080`). Nothing is sent
 * until the first call; `proxy(client, Protocol)` gives the typed methods.
 */
export function connectHttp(baseUrl: string | URL, options: HttpClientOptions = {}): HttpClient {
  return new HttpClient(baseUrl, options);
}
