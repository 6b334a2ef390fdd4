/**
 * Sending the HTTP client's requests: one POST per unary call or stream turn, bounded by the
 * client's timeout and given up when it closes, its Arrow answer decoded as it arrives. No `node:`
 * imports (see post.ts for how the POST itself goes).
 */
import { context, propagation } from "@opentelemetry/api";
import type { RecordBatch } from "apache-arrow";
import { Watchdog } from "../../client/watchdog.js";
import { frameworkError, RpcError } from "../../errors.js";
import { type BorrowBuffer, MessageFramer } from "../../wire/framer.js";
import { IpcStreamDecoder, totalBytes } from "../../wire/ipc.js";
import { HttpError, noAnswerError, parseRetryAfter, preview, statusError } from "./client-errors.js";
import { ACCEPT_MAX_RESPONSE_BYTES_HEADER, ARROW_CONTENT_TYPE, SUPPORTED_ENCODINGS_HEADER } from "./headers.js";
import { type Cancellation, type Post, type PostAnswer, readAll } from "./post.js";

/** One IPC stream of a response body. */
export interface BodyStream {
  readonly batches: RecordBatch[];
}

/** An answer's headers, as `Requester.post`'s `observe` reads them. */
export interface AnswerHeaders {
  /** A header by lower-case name, or null. */
  header(name: string): string | null;
  /** Every header name, in lower case. */
  headerNames(): readonly string[];
}

/** A decoded response: its status and IPC streams. */
export interface RpcResponse {
  readonly status: number;
  readonly streams: BodyStream[];
  /** The answer's `Retry-After`, in ms (read on a 429 or 503 only), or null. */
  readonly retryAfterMs: number | null;
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
    // Messages already buffered (a small answer arrives whole) are framed without a promise each;
    // while borrowing, `next` decides where a large body goes.
    const frame = (borrowing ? null : framer.poll()) ?? (await framer.next(borrowing));
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

/** How a `Requester` sends. */
export interface RequesterOptions {
  readonly send: Post;
  /** Headers sent on every request. */
  readonly headers: Readonly<Record<string, string>>;
  /** Bound on each request, its answer's body included (0: none). */
  readonly timeoutMs: number;
  /** Largest decoded answer accepted (null: no cap). */
  readonly maxResponseBytes: number | null;
  /**
   * Gzip request bodies of at least this many bytes once the server said it decodes gzip
   * (`VGI-Supported-Encodings`); null: never.
   */
  readonly compressMinBytes: number | null;
}

/** `bytes` gzipped with the platform's `CompressionStream` (browsers and Node alike). */
async function gzip(body: readonly Uint8Array[]): Promise<Uint8Array> {
  const stream = new Blob(body as Uint8Array<ArrayBuffer>[]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The codings a `VGI-Supported-Encodings` value names, lower case. */
export function encodingsOf(value: string | null): readonly string[] {
  return value === null
    ? []
    : value
        .split(",")
        .map((e) => e.trim().toLowerCase())
        .filter((e) => e !== "");
}

/** Sends one client's requests and tracks those in flight. */
export class Requester {
  /** `headers`, `Content-Type` and the response budget, as one validated record (built on first use). */
  private baseHeaders: Readonly<Record<string, string>> | null = null;
  private readonly inFlight = new Set<PendingRequest>();
  /** Bounds every request in flight (`timeoutMs`), or null when requests are unbounded. */
  private readonly watchdog: Watchdog | null;
  private closed = false;
  /** What the server's last answer said it decodes (`VGI-Supported-Encodings`); null before any. */
  private serverEncodings: readonly string[] | null = null;
  /** The `VGI-Supported-Encodings` value `serverEncodings` was read from. */
  private serverEncodingsHeader: string | null = null;

  constructor(private readonly options: RequesterOptions) {
    this.watchdog = options.timeoutMs > 0 ? new Watchdog(options.timeoutMs) : null;
  }

  /**
   * Starts tracking one request (client close, timeout) of an open client; `release` forgets it.
   * Requests in flight are kept in a set and timed by one watchdog, so any number may run, each
   * without an `AbortController` or a timer of its own.
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

  /** Notes what an answer's `VGI-Supported-Encodings` says (split only when it changes: it comes on every answer). */
  private sawEncodings(value: string | null): void {
    if (value === null || value === this.serverEncodingsHeader) return;
    this.serverEncodingsHeader = value;
    this.serverEncodings = encodingsOf(value);
  }

  private networkError(err: unknown, url: string, request: PendingRequest): HttpError {
    const reason: unknown = request.reason;
    const timedOut = request.aborted && reason instanceof Error && reason.name === "TimeoutError";
    return noAnswerError(this.closed ? "closed" : timedOut ? "timeout" : "network", err, url, this.options.timeoutMs);
  }

  /** The constant request headers; `new Headers` validates them (and throws) as fetch would. */
  private base(): Readonly<Record<string, string>> {
    if (this.baseHeaders === null) {
      const headers = new Headers(this.options.headers);
      headers.set("Content-Type", ARROW_CONTENT_TYPE);
      const cap = this.options.maxResponseBytes;
      if (cap !== null) headers.set(ACCEPT_MAX_RESPONSE_BYTES_HEADER, String(cap));
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
   * `decodeStreams`); HTTP failures throw. `extra`: the call's own headers (its interceptors',
   * a session's), over the client's, except the two the client owns (`Content-Type` and the
   * response budget). `observe` sees the answer's headers as soon as they arrive, whatever its status.
   */
  async post(
    url: string,
    body: readonly Uint8Array[],
    borrow: BorrowBuffer | null = null,
    extra: Headers | null = null,
    observe: ((answer: AnswerHeaders) => void) | null = null,
  ): Promise<RpcResponse> {
    if (this.closed) throw frameworkError("transport_error", "the client is closed");
    let headers = extra === null ? this.base() : withCallHeaders(this.base(), extra);
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    for (const k in carrier) {
      const name = k.toLowerCase();
      if (!Object.hasOwn(headers, name)) headers = { ...headers, [name]: carrier[k]! };
    }
    const min = this.options.compressMinBytes;
    if (min !== null && this.serverEncodings?.includes("gzip") === true && totalBytes(body) >= min) {
      body = [await gzip(body)];
      headers = { ...headers, "content-encoding": "gzip" };
    }
    // The timeout and `close()` cover the whole answer, its body included.
    const request = this.track();
    try {
      const answer = await this.options.send(url, headers, body, request, this.options.maxResponseBytes);
      this.sawEncodings(answer.header(SUPPORTED_ENCODINGS));
      observe?.(answer);
      const status = answer.status;
      if (status === 401 || !isArrow(answer.header("content-type"))) {
        throw statusError(status, answer, await readAll(answer), url);
      }
      const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(answer.header("retry-after")) : null;
      return { status, streams: await decode(answer, borrow), retryAfterMs };
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw this.networkError(err, url, request);
    } finally {
      this.release(request);
    }
  }

  /**
   * `OPTIONS {url}` (the capabilities query): the answer's status and headers, its body read and
   * dropped; a failure to get one throws.
   */
  async capabilities(url: string): Promise<{ readonly status: number; header(name: string): string | null }> {
    if (this.closed) throw frameworkError("transport_error", "the client is closed");
    const request = this.track();
    try {
      const answer = await this.options.send(url, this.base(), [], request, 65536, "OPTIONS");
      await readAll(answer);
      this.sawEncodings(answer.header(SUPPORTED_ENCODINGS));
      return answer;
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw this.networkError(err, url, request);
    } finally {
      this.release(request);
    }
  }

  /**
   * Sends a request with no body (`DELETE {prefix}/__session__`) under the client's headers and
   * `extra`, reads its answer whole and returns its status; a failure to get one throws.
   */
  async send(method: "DELETE", url: string, extra: Headers): Promise<number> {
    if (this.closed) throw frameworkError("transport_error", "the client is closed");
    const request = this.track();
    try {
      const answer = await this.options.send(url, withCallHeaders(this.base(), extra), [], request, 65536, method);
      await readAll(answer);
      return answer.status;
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw this.networkError(err, url, request);
    } finally {
      this.release(request);
    }
  }

  /** Gives up every request in flight; later ones fail with `transport_error`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const reason = frameworkError("transport_error", "the client is closed");
    for (const request of this.inFlight) request.abort(reason);
    this.inFlight.clear();
    this.watchdog?.close();
  }
}

/** `SUPPORTED_ENCODINGS_HEADER` as answers' headers are looked up (lower case). */
const SUPPORTED_ENCODINGS = SUPPORTED_ENCODINGS_HEADER.toLowerCase();

/** Whether a `Content-Type` value is Arrow's stream type (parameters and case aside). */
function isArrow(contentType: string | null): boolean {
  if (contentType === ARROW_CONTENT_TYPE) return true;
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase() === ARROW_CONTENT_TYPE;
}

/** Header names a call's headers cannot replace (as `Headers` lists them: lower case). */
const CLIENT_OWNED = new Set(["content-type", ACCEPT_MAX_RESPONSE_BYTES_HEADER.toLowerCase()]);

/** `base` with a call's headers added or replacing the client's (a copy when there are any). */
function withCallHeaders(base: Readonly<Record<string, string>>, extra: Headers): Readonly<Record<string, string>> {
  let out: Record<string, string> | null = null;
  extra.forEach((value, name) => {
    if (CLIENT_OWNED.has(name)) return;
    out ??= { ...base };
    out[name] = value;
  });
  return out ?? base;
}

/** An Arrow answer's streams; bytes that are not Arrow fail as `HttpError`, the body's own failure as itself. */
async function decode(answer: PostAnswer, borrow: BorrowBuffer | null): Promise<BodyStream[]> {
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
