/**
 * The HTTP client's failures that are not the server's method errors: an answer that is not a
 * vgi-rpc Arrow answer (`HttpError` with its status), or no answer at all (status 0). No `node:`
 * imports.
 */
import { type ErrorCode, frameworkError, RpcError } from "../../errors.js";
import { AUTH_REASON_HEADER } from "./headers.js";

/** An HTTP-level failure: a response that is not a vgi-rpc Arrow answer, or no response at all. */
export class HttpError extends RpcError {
  /** The HTTP status, or 0 when no response arrived (network failure, timeout, abort). */
  readonly status: number;
  /** The `VGI-Auth-Reason` of a 401 (`unauthorized`, `expired_credential`, ...), else `""`. */
  readonly authReason: string;
  /** The answer's `Retry-After`, in ms, or null. */
  readonly retryAfterMs: number | null;

  constructor(
    message: string,
    opts: {
      status: number;
      type: string;
      code: ErrorCode;
      kind: string;
      authReason?: string;
      retryAfterMs?: number | null;
      cause?: unknown;
    },
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
    this.retryAfterMs = opts.retryAfterMs ?? null;
  }
}

const decoder = new TextDecoder();

/**
 * A `Retry-After` value in ms (delta-seconds or an HTTP date), or null when absent or unreadable
 * (a delay past 2^53 ms, which no timer could wait, is unreadable too).
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const ms = Number(v) * 1000;
    return Number.isSafeInteger(ms) ? ms : null;
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The first 200 bytes of a body as text, for error messages. */
export function preview(bytes: Uint8Array): string {
  return decoder.decode(bytes.subarray(0, 200));
}

/** The error for a response whose body is not Arrow. */
export function statusError(
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
    const reason = str("reason") || headers.header(AUTH_REASON_HEADER) || "unauthorized";
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
  const retryAfterMs = parseRetryAfter(headers.header("retry-after"));
  if (status === 429) {
    return new HttpError(message, {
      status,
      type: "HttpError",
      code: "RESOURCE_EXHAUSTED",
      kind: "transport_error",
      retryAfterMs,
    });
  }
  if (status >= 500) {
    return new HttpError(message, {
      status,
      type: "HttpError",
      code: "UNAVAILABLE",
      kind: "transport_error",
      retryAfterMs,
    });
  }
  return new HttpError(message, { status, type: "HttpError", code: "INVALID_ARGUMENT", kind: "protocol_error" });
}

/** Why a request got no answer, as the error the call fails with. */
export type NoAnswer = "closed" | "timeout" | "network";

/** The error for a request that got no answer: the client closed, the request timed out, or the network failed. */
export function noAnswerError(why: NoAnswer, err: unknown, url: string, timeoutMs: number): HttpError {
  if (why === "closed") {
    return new HttpError("the client is closed", {
      status: 0,
      type: "TransportError",
      code: "UNAVAILABLE",
      kind: "transport_error",
      cause: err,
    });
  }
  if (why === "timeout") {
    return new HttpError(`no response from ${url} within ${timeoutMs} ms`, {
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

/** A failed status whose Arrow body carried no error batch. */
export function unexpectedStatus(status: number, what: string): RpcError {
  return frameworkError("protocol_error", `HTTP ${status}: ${what}`, { type: "ProtocolError" });
}
