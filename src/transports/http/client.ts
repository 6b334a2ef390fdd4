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
import { type ClientInterceptor, interceptorList } from "../../client/interceptors.js";
import type { CallTarget, PointerResolver, RequestMetadata, StreamOpenOptions } from "../../client/transport.js";
import { BorrowBuffer } from "../../wire/framer.js";
import type { LogRecord } from "../../wire/messages.js";
import { encodingsOf, Requester } from "./client-requests.js";
import { type HttpRetryOptions, retryPolicy } from "./client-retry.js";
import { type HttpStream, type HttpStreamCheckpoint, httpStream } from "./client-stream.js";
import type { UploadOptions } from "./client-upload.js";
import { MIN_RESPONSE_BUDGET_BYTES } from "./headers.js";
import { fetchPost, nodePost } from "./post.js";

export { HttpError } from "./client-errors.js";
export type { HttpRetryOptions } from "./client-retry.js";
export { HttpSession, type HttpSessionOptions } from "./client-session.js";
export type { HttpStream, HttpStreamCheckpoint } from "./client-stream.js";

import { ClientCore, SessionTracker } from "./client-core.js";
import { HttpSession, type HttpSessionOptions } from "./client-session.js";

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
  /**
   * Gzip request bodies of at least `minBytes` (default 64 KiB) once the server has said it
   * decodes gzip (`VGI-Supported-Encodings` on any answer, or `capabilities()`): worth it over a
   * slow link, pure cost on a fast one. Default: false (bodies are sent as they are).
   */
  readonly compressRequests?: boolean | { readonly minBytes?: number };
}

/** What a server says of itself on every answer (`HttpClient.capabilities()`). */
export interface HttpCapabilities {
  /** `VGI-Max-Request-Bytes`: the largest request body it takes, or null when it names none. */
  readonly maxRequestBytes: number | null;
  /** `VGI-Max-Response-Bytes`: its own cap on answers, or null. */
  readonly maxResponseBytes: number | null;
  /** `VGI-Accept-Max-Response-Bytes-Support: true`: it honours the client's answer budget. */
  readonly acceptsResponseBudget: boolean;
  /** `VGI-Supported-Encodings`: the codings it decodes in requests and produces in answers. */
  readonly supportedEncodings: readonly string[];
  /** `VGI-Externalization-Enabled`: it may answer with pointers to external storage. */
  readonly externalizationEnabled: boolean;
  /** `VGI-Max-Externalized-Response-Bytes`, or null. */
  readonly maxExternalizedResponseBytes: number | null;
  /** `VGI-Upload-URL-Support`: it vends upload URLs for large requests. */
  readonly uploadUrlSupport: boolean;
  /** `VGI-Max-Upload-Bytes`, or null. */
  readonly maxUploadBytes: number | null;
  /** `VGI-Sticky-Enabled`: methods may open sticky sessions. */
  readonly stickyEnabled: boolean;
  /** `VGI-Proxy-Proof-Required`: it takes only requests through its proxy. */
  readonly proxyProofRequired: boolean;
  /** How long these may be kept (`Cache-Control: max-age`), in seconds, or null. */
  readonly maxAgeSeconds: number | null;
}

/** The default `compressRequests.minBytes`. */
export const DEFAULT_COMPRESS_MIN_BYTES = 64 * 1024;

function compressMinBytes(option: HttpClientOptions["compressRequests"]): number | null {
  if (option === undefined || option === false) return null;
  const min = option === true ? DEFAULT_COMPRESS_MIN_BYTES : (option.minBytes ?? DEFAULT_COMPRESS_MIN_BYTES);
  if (!Number.isSafeInteger(min) || min < 0) throw new RangeError(`compressRequests.minBytes must be an integer >= 0`);
  return min;
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
      compressMinBytes: compressMinBytes(opts.compressRequests),
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
    opts: { readonly borrow?: boolean; readonly headers?: Readonly<Record<string, string>> } = {},
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

  /** Asks the server what it supports (`OPTIONS {prefix}/health`, which needs no credentials). */
  async capabilities(): Promise<HttpCapabilities> {
    const answer = await this.core.requests.capabilities(`${this.url}/health`);
    const int = (name: string): number | null => {
      const v = answer.header(name);
      return v !== null && /^\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : null;
    };
    const flag = (name: string): boolean => (answer.header(name) ?? "").trim().toLowerCase() === "true";
    const maxAge = /(?:^|,)\s*max-age=(\d+)/.exec(answer.header("cache-control") ?? "")?.[1];
    return {
      maxRequestBytes: int("VGI-Max-Request-Bytes"),
      maxResponseBytes: int("VGI-Max-Response-Bytes"),
      acceptsResponseBudget: flag("VGI-Accept-Max-Response-Bytes-Support"),
      supportedEncodings: encodingsOf(answer.header("VGI-Supported-Encodings")),
      externalizationEnabled: flag("VGI-Externalization-Enabled"),
      maxExternalizedResponseBytes: int("VGI-Max-Externalized-Response-Bytes"),
      uploadUrlSupport: flag("VGI-Upload-URL-Support"),
      maxUploadBytes: int("VGI-Max-Upload-Bytes"),
      stickyEnabled: flag("VGI-Sticky-Enabled"),
      proxyProofRequired: flag("VGI-Proxy-Proof-Required"),
      maxAgeSeconds: maxAge === undefined ? null : Number(maxAge),
    };
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

/**
 * A vgi-rpc client for the server at `baseUrl` (e.g. `http://127.0.0.1:8080`). Nothing is sent
 * until the first call; `proxy(client, Protocol)` gives the typed methods.
 */
export function connectHttp(baseUrl: string | URL, options: HttpClientOptions = {}): HttpClient {
  return new HttpClient(baseUrl, options);
}
