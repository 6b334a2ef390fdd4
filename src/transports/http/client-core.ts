/**
 * What an HTTP client and its session views share (`ClientCore`): where and how requests go
 * (retries, uploads, a session's headers), and what reads the answers. No `node:` imports.
 */
import type { RecordBatch } from "apache-arrow";
import { requestBatch, resolvePointer, traced } from "../../client/client.js";
import { REFLECTION_PROTOCOL } from "../../client/describe.js";
import { type ClientInterceptor, interceptStream, interceptUnary } from "../../client/interceptors.js";
import type { CallTarget, PointerResolver, RequestMetadata, StreamOpenOptions } from "../../client/transport.js";
import { frameworkError } from "../../errors.js";
import { BorrowBuffer } from "../../wire/framer.js";
import { encodeStream } from "../../wire/ipc.js";
import { CALL_STATE_KEY, IDEMPOTENCY_KEY_METADATA, STREAM_STATE_KEY } from "../../wire/keys.js";
import { classifyBatch, errorFromMetadata, type LogRecord, readLogRecord } from "../../wire/messages.js";
import { HttpError, unexpectedStatus } from "./client-errors.js";
import type { AnswerHeaders, BodyStream, Requester, RpcResponse } from "./client-requests.js";
import { type RetryPolicy, TransientAnswer, withRetries } from "./client-retry.js";
import { type HttpStream, httpStream, type StreamTurns, stripTokens } from "./client-stream.js";
import { type UploadOptions, uploadRequest } from "./client-upload.js";
import { ECHO_HEADER_PREFIX, SESSION_ACCEPT_HEADER, SESSION_CLOSE_HEADER, SESSION_HEADER } from "./headers.js";

/** What a client and its session views share: where and how requests go, and what reads the answers. */
export class ClientCore {
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
  post(
    url: string,
    body: readonly Uint8Array[],
    borrow: BorrowBuffer | null,
    callHeaders: Headers | null,
    session: SessionTracker | null,
  ): Promise<RpcResponse> {
    const headers = session === null ? callHeaders : session.headers(callHeaders);
    const observe = session === null ? null : session.observe;
    const sent = this.requests.post(url, body, borrow, headers, observe);
    const uploads = this.uploads;
    if (uploads === null) return sent;
    return sent.catch(async (err: unknown) => {
      if (!(err instanceof HttpError) || err.status !== 413) throw err;
      const pointer = await uploadRequest(
        body,
        `${this.url}/__upload_url__/init`,
        (u, b) => this.requests.post(u, b, null, headers, observe),
        uploads,
      );
      return this.requests.post(url, pointer, borrow, headers, observe);
    });
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

/** A session's token and echo headers, added to each of its requests and updated from each answer. */
export class SessionTracker {
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
