/**
 * The error model. One `RpcError` class carries what the reference puts on an EXCEPTION batch:
 * the exception type name, message, the canonical `error_code`, an optional open-set
 * `error_kind`, and optional structured `error_details`.
 */

/** The canonical codes (gRPC's sixteen, minus OK), by name as they travel on the wire. */
export const ERROR_CODES = [
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Reads a wire code, mapping anything unrecognised to `UNKNOWN`. */
export function parseErrorCode(value: unknown): ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value)
    ? (value as ErrorCode)
    : "UNKNOWN";
}

/**
 * Error kinds the framework itself raises (the set is open: applications may use their own).
 * - `method_not_implemented`: the protocol has no such method (or a retired built-in was called).
 * - `protocol_not_specified`: a raw-transport request without `vgi_rpc.protocol`.
 * - `protocol_not_supported`: the named protocol is not hosted here.
 * - `protocol_version_mismatch`: the client's `vgi_rpc.protocol_version` differs in major.minor.
 * - `protocol_error`: malformed framing or metadata (bad IPC, missing keys, wrong row count).
 * - `invalid_request`: the request does not match the method's parameter contract.
 * - `transport_error`: the peer vanished or the byte stream failed.
 * - `message_too_large`: a message exceeded a configured size limit.
 * - `server_draining`: the server is shutting down and refuses new calls.
 * - `cookie_not_allowed`: a cookie was set outside a unary HTTP call.
 * - `session_lost`: an HTTP sticky-session token did not resolve to a live session here (forged,
 *   another caller's, minted by another instance, expired, closed or evicted).
 * - `session_limit`: a sticky-session bound was reached (`maxSessions`, or too many requests
 *   waiting on one session).
 * - `unauthenticated`: the method has security requirements and the caller is anonymous (HTTP 401).
 * - `permission_denied`: the caller is authenticated but satisfies none of the method's security
 *   requirements (wrong scheme or missing scope), or lacks a role or capability a handler
 *   requires (HTTP 403).
 * - `idempotency_key_required`: a method called `ctx.requireIdempotencyKey()` and the client sent
 *   no `Idempotency-Key`.
 * - `cancelled`: the call was aborted before it finished: its peer went away, or its listener shut
 *   down and the grace for calls in flight ran out.
 * - `deadline_exceeded`: the call ran past its deadline (the server's `callTimeoutMs`, or the
 *   client's timeout sent with the request).
 * - `resource_exhausted`: the caller is over a quota (`quotaInterceptor`): refused at admission
 *   (HTTP 429 with `Retry-After`) or a stream ended after the batch that crossed it; the details
 *   carry `vgi_rpc.RetryInfo` and `vgi_rpc.QuotaFailure`.
 * - `introspection_refused`, `token_unresolved`, `stale_auth`, `grant_refused`,
 *   `identity_unavailable`: `vgi_rpc.Identity.v2`'s five (docs/identity.md).
 */
export type FrameworkErrorKind =
  | "method_not_implemented"
  | "protocol_not_specified"
  | "protocol_not_supported"
  | "protocol_version_mismatch"
  | "protocol_error"
  | "invalid_request"
  | "transport_error"
  | "message_too_large"
  | "server_draining"
  | "cookie_not_allowed"
  | "session_lost"
  | "session_limit"
  | "unauthenticated"
  | "permission_denied"
  | "idempotency_key_required"
  | "cancelled"
  | "deadline_exceeded"
  | "resource_exhausted"
  | "introspection_refused"
  | "token_unresolved"
  | "stale_auth"
  | "grant_refused"
  | "identity_unavailable";

/** A structured error detail (`vgi_rpc.error_details` entry); `@type` names its schema. */
export type ErrorDetail = Readonly<Record<string, unknown>> & { readonly "@type": string };

/** A `vgi_rpc.QuotaFailure` error detail: which limits were hit (the reference's `QuotaFailure`). */
export function quotaFailure(
  violations: readonly { readonly subject: string; readonly description: string }[],
): ErrorDetail {
  return { "@type": "vgi_rpc.QuotaFailure", violations: violations.map((v) => ({ ...v })) };
}

/**
 * A `vgi_rpc.RetryInfo` error detail: wait at least `seconds` before retrying. A whole number
 * travels as an integer, as the reference's `RetryInfo.to_json()` writes it.
 */
export function retryInfo(seconds: number): ErrorDetail {
  return { "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: seconds };
}

export interface RpcErrorOptions {
  /** Exception type name as the reference reports it (`ValueError`, `RuntimeError`, ...). */
  readonly type?: string;
  readonly code?: ErrorCode;
  readonly kind?: string;
  readonly details?: readonly ErrorDetail[];
  /** Server-side traceback text, when the error came off the wire. */
  readonly remoteTraceback?: string;
  readonly cause?: unknown;
}

/** An RPC failure, raised by handlers to choose what the client sees, and surfaced by clients. */
export class RpcError extends Error {
  /** Exception type name on the wire (`exception_type`). */
  readonly type: string;
  readonly code: ErrorCode;
  /** `error_kind`, or `""` when unclassified. */
  readonly kind: string;
  readonly details: readonly ErrorDetail[];
  readonly remoteTraceback: string;

  constructor(message: string, opts: RpcErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "RpcError";
    this.type = opts.type ?? "RpcError";
    this.code = opts.code ?? "UNKNOWN";
    this.kind = opts.kind ?? "";
    this.details = opts.details ?? [];
    this.remoteTraceback = opts.remoteTraceback ?? "";
  }

  /** Wraps anything thrown into an `RpcError`, keeping an `RpcError` as is. */
  static from(err: unknown): RpcError {
    if (err instanceof RpcError) return err;
    if (err instanceof Error) return new RpcError(err.message, { type: err.name, cause: err });
    return new RpcError(String(err), { cause: err });
  }
}

/**
 * An answer that is not knowable now (an authority or store could not be asked): code
 * `UNAVAILABLE` and a `vgi_rpc.RetryInfo` detail saying when to ask again. The base of
 * `AuthUnavailableError` and `IdentityUnavailableError`; throw one of those.
 */
export class UnavailableError extends RpcError {
  /** Seconds the caller should wait before asking again. */
  readonly retryAfterSeconds: number;
  /** The operator-facing text as given (`""` when none); never a credential. */
  readonly detail: string;

  constructor(
    detail: string,
    opts: {
      /** The message when `detail` is empty. */
      readonly fallback: string;
      readonly type: string;
      readonly kind?: string;
      /** Default: 5. A finite number >= 0, else a `RangeError`. */
      readonly retryAfterSeconds?: number;
      readonly cause?: unknown;
    },
  ) {
    const retryAfterSeconds = opts.retryAfterSeconds ?? 5;
    if (!Number.isFinite(retryAfterSeconds) || retryAfterSeconds < 0) {
      throw new RangeError(`retryAfterSeconds must be a finite number >= 0, got ${retryAfterSeconds}`);
    }
    super(detail || opts.fallback, {
      type: opts.type,
      code: "UNAVAILABLE",
      ...(opts.kind === undefined ? {} : { kind: opts.kind }),
      details: [retryInfo(retryAfterSeconds)],
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.name = opts.type;
    this.detail = detail;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Python's `ValueError`: an argument has the right type but a bad value. */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ValueError";
  }
}

/** Python's `RuntimeError`: a failure that fits no other category. */
export class RuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RuntimeError";
  }
}

/** Why a value was refused: which Python exception the reference would name for it. */
export type InvalidValueType = "OverflowError" | "TypeError" | "ValueError";

const INVALID_VALUE_CODES: Readonly<Record<InvalidValueType, ErrorCode>> = {
  OverflowError: "OUT_OF_RANGE",
  TypeError: "INVALID_ARGUMENT",
  ValueError: "INVALID_ARGUMENT",
};

/**
 * A value outside its declared Arrow type's domain, refused where it was about to be written:
 * out of range (`OverflowError`, as the reference's pyarrow raises for an int64 that does not
 * fit), the wrong JS type or a non-integer for an integer type (`TypeError`), or the right JS type
 * with a value the type cannot hold (`ValueError`: a string with a lone surrogate, a fixed-size
 * value of another length, a time of day past midnight). Nothing is sent: on a client it is thrown
 * before the request is written; on a server it fails the call and reaches the caller as an error
 * of the same type and message. The message names the method, where the value was going
 * (parameter, result, header, output or input field), the field with the path inside it,
 * the value and the type.
 */
export class InvalidValueError extends RpcError {
  /** The method the value belongs to (`""` when built outside a call). */
  method = "";
  /** `parameter`, `result`, `header field`, `output field`, `input field`, or `field` when no call is named. */
  role = "field";
  /** The top-level field name (`""` until known). */
  field = "";
  /** Where inside the field: `[2]`, `.x`, `["key"]` (`""` for the field itself). */
  path = "";
  /**
   * Index of the offending value in the values being built; at the top level, its row in the
   * batch (shown in the message only for batches of more than one row).
   */
  row: number;

  constructor(
    type: InvalidValueType,
    /** What is wrong with the value, e.g. `300 is out of range for uint8 (0 to 255)`. */
    readonly problem: string,
    /** The refused value as it was given. */
    readonly value: unknown,
    /** The declared type (its canonical token: `int64`, `timestamp(us,tz=UTC)`, ...). */
    readonly arrowType: string,
    row: number,
  ) {
    super(problem, { type, code: INVALID_VALUE_CODES[type] });
    this.name = "InvalidValueError";
    this.row = row;
  }
}

/** The row count of the batch an `InvalidValueError` was located in, when it has more than one. */
const batchRows = new WeakMap<InvalidValueError, number>();

/** The message: the method, where the value was going, the field with its path, the row, the problem. */
function describeInvalidValue(err: InvalidValueError): string {
  const where =
    err.field === ""
      ? `value${err.path}`
      : err.role === "result"
        ? `result${err.path}`
        : `${err.role} '${err.field}${err.path}'`;
  const row = (batchRows.get(err) ?? 1) > 1 ? ` (row ${err.row})` : "";
  return `${err.method === "" ? "" : `${err.method}() `}${where}${row}: ${err.problem}`;
}

/**
 * Prefixes the path of `err` with a segment inside a container, the container's value at `row`;
 * returns `err`. For the codecs that build nested values (not exported from the package).
 */
export function nestInvalidValue(err: InvalidValueError, segment: string, row: number): InvalidValueError {
  err.path = segment + err.path;
  err.row = row;
  err.message = describeInvalidValue(err);
  return err;
}

/**
 * Names the method, the role and the top-level field of `err` (`rows`: the batch's row count);
 * returns `err`. For the code that knows the call (not exported from the package).
 */
export function locateInvalidValue(
  err: InvalidValueError,
  method: string,
  role: string,
  field: string,
  rows = 1,
): InvalidValueError {
  err.method = method;
  err.role = role;
  err.field = field;
  batchRows.set(err, rows);
  err.message = describeInvalidValue(err);
  return err;
}

/** A framework error: an `RpcError` with a framework kind and code. */
export function frameworkError(
  kind: FrameworkErrorKind,
  message: string,
  opts: Omit<RpcErrorOptions, "kind"> = {},
): RpcError {
  const defaults: Record<FrameworkErrorKind, [string, ErrorCode]> = {
    method_not_implemented: ["MethodNotImplementedError", "UNIMPLEMENTED"],
    protocol_not_specified: ["ProtocolNotSpecifiedError", "INVALID_ARGUMENT"],
    protocol_not_supported: ["ProtocolNotSupportedError", "UNIMPLEMENTED"],
    protocol_version_mismatch: ["ProtocolVersionError", "FAILED_PRECONDITION"],
    protocol_error: ["ProtocolError", "INVALID_ARGUMENT"],
    invalid_request: ["TypeError", "INVALID_ARGUMENT"],
    transport_error: ["TransportError", "UNAVAILABLE"],
    message_too_large: ["MessageTooLargeError", "RESOURCE_EXHAUSTED"],
    server_draining: ["ServerDrainingError", "UNAVAILABLE"],
    cookie_not_allowed: ["CookieNotAllowedError", "FAILED_PRECONDITION"],
    session_lost: ["SessionLostError", "ABORTED"],
    session_limit: ["SessionLimitError", "RESOURCE_EXHAUSTED"],
    unauthenticated: ["AuthenticationError", "UNAUTHENTICATED"],
    permission_denied: ["PermissionError", "PERMISSION_DENIED"],
    idempotency_key_required: ["IdempotencyKeyRequiredError", "INVALID_ARGUMENT"],
    cancelled: ["CancelledError", "CANCELLED"],
    deadline_exceeded: ["DeadlineExceededError", "DEADLINE_EXCEEDED"],
    resource_exhausted: ["ResourceExhaustedError", "RESOURCE_EXHAUSTED"],
    introspection_refused: ["IntrospectionRefusedError", "PERMISSION_DENIED"],
    token_unresolved: ["TokenUnresolvedError", "NOT_FOUND"],
    stale_auth: ["StaleAuthError", "UNAUTHENTICATED"],
    grant_refused: ["GrantRefusedError", "PERMISSION_DENIED"],
    identity_unavailable: ["IdentityUnavailableError", "UNAVAILABLE"],
  };
  const [type, code] = defaults[kind];
  return new RpcError(message, { type: opts.type ?? type, code: opts.code ?? code, kind, ...opts });
}

/** How many bytes a `NonIpcBytesError` shows. */
export const NON_IPC_PREVIEW_BYTES = 48;

/**
 * `bytes` (at most `max` of them, read across the pieces in order) as a double-quoted string:
 * printable ASCII as is, `\n` `\r` `\t` `\"` `\\` escaped, every other byte as `\xNN`, and `…` before
 * the closing quote when bytes were left out. Safe to print and to log.
 */
export function bytesPreview(bytes: readonly Uint8Array[], max = NON_IPC_PREVIEW_BYTES): string {
  let out = '"';
  let shown = 0;
  let more = false;
  for (const piece of bytes) {
    for (const b of piece) {
      if (shown === max) {
        more = true;
        break;
      }
      shown++;
      if (b === 0x0a) out += "\\n";
      else if (b === 0x0d) out += "\\r";
      else if (b === 0x09) out += "\\t";
      else if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
      else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
      else out += `\\x${b.toString(16).padStart(2, "0")}`;
    }
    if (more) break;
  }
  return `${out}${more ? "…" : ""}"`;
}

/**
 * Bytes where an Arrow IPC message should start that cannot be one (a `protocol_error`): most
 * often text a peer printed on a stream that carries IPC. `preview` shows them (see
 * `bytesPreview`), so a client can say what its worker wrote.
 */
export class NonIpcBytesError extends RpcError {
  constructor(
    /** The length prefix the bytes would have meant. */
    readonly messageLength: number,
    /** The first buffered bytes, quoted and escaped. */
    readonly preview: string,
  ) {
    super(`invalid IPC message length ${messageLength}: not an Arrow IPC stream (the bytes start ${preview})`, {
      type: "ProtocolError",
      code: "INVALID_ARGUMENT",
      kind: "protocol_error",
    });
    this.name = "NonIpcBytesError";
  }

  /** The error for `buffered` bytes (the pieces not yet framed) whose prefix read as `length`. */
  static of(length: number, buffered: readonly Uint8Array[]): NonIpcBytesError {
    return new NonIpcBytesError(length, bytesPreview(buffered));
  }
}
