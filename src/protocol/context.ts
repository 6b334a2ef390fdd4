import type { Logger } from "pino";

/**
 * What a handler sees of its call: identity, request id, transport facts, and the in-band
 * client log. Implemented by the dispatch core; declared here so method types can name it.
 */

/** Client-log levels, as the reference spells them on the wire. */
export type LogLevel = "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE";

/** Every level a log batch may carry, including the error batch's `EXCEPTION`. */
export type WireLogLevel = LogLevel | "EXCEPTION";

/**
 * Who is calling. Pipes and sockets without auth are anonymous. Build one with `authenticated()`
 * (from `quiver-rpc/auth`) rather than as a literal, so new fields get their defaults.
 */
export interface AuthContext {
  /** Authentication realm (`""` when anonymous); written to logs as `auth_domain`. */
  readonly domain: string;
  /**
   * The security scheme that produced this identity: what its authenticator names (the JWT, API-key
   * and mTLS factories name theirs; a bearer factory keeps the scheme of the context it returns, which
   * `authenticated()` sets to the domain unless given `{ scheme }`). Methods' `security` requirements
   * name schemes. `""` when anonymous.
   */
  readonly scheme: string;
  readonly authenticated: boolean;
  /** The caller's identity (`""` when anonymous). */
  readonly principal: string;
  /** Verified claims (e.g. JWT claims); empty when anonymous. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** OAuth scopes the credential grants (JWT `scope`/`scp` by default); what `security` requirements check. */
  readonly scopes: readonly string[];
  /** Roles the caller holds (from a claim path or a custom authenticator). */
  readonly roles: readonly string[];
  /** Fine-grained capabilities the caller holds (from a claim path or a custom authenticator). */
  readonly capabilities: readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/** The anonymous caller. */
export const ANONYMOUS: AuthContext = Object.freeze({
  domain: "",
  scheme: "",
  authenticated: false,
  principal: "",
  claims: Object.freeze({}),
  scopes: NONE,
  roles: NONE,
  capabilities: NONE,
});

/** Extra JSON-serializable fields attached to a client log message. */
export type LogExtra = Readonly<Record<string, unknown>>;

/** Attributes of a `Set-Cookie` header. */
export interface CookieOptions {
  /** Absolute expiry. */
  readonly expires?: Date;
  /** Lifetime in seconds (`Max-Age`). */
  readonly maxAge?: number;
  readonly domain?: string;
  /** Default: `/`. */
  readonly path?: string;
  /** Default: false. */
  readonly secure?: boolean;
  /** Default: true. */
  readonly httpOnly?: boolean;
  readonly sameSite?: "Strict" | "Lax" | "None";
  /** CHIPS partitioned cookie. Default: false. */
  readonly partitioned?: boolean;
}

/** Values a method declared with `inject`, resolved before its handler runs. */
export type Injected = Readonly<Record<string, unknown>>;

/**
 * Per-call context handed to every handler. `I` is what the method's `inject` resolved (empty when
 * it declares none), so reading an undeclared injected value does not compile.
 */
export interface CallContext<I extends object = Record<never, never>> {
  readonly auth: AuthContext;
  /**
   * Aborted when the call should stop: its caller went away, the stream was cancelled, the call's
   * deadline passed (the server's `callTimeoutMs` or the client's `timeoutMs`), or the server is
   * shutting down and the grace for calls in flight ran out. `signal.reason` is an `RpcError`
   * (kind `cancelled` or `deadline_exceeded`). Pass it to what the handler awaits (`fetch`,
   * timers, queries) so work nobody will read stops; a unary call aborted this way has already been
   * answered with the reason, and what its handler returns afterwards is dropped.
   */
  readonly signal: AbortSignal;
  /**
   * The call's id: the client's (`vgi_rpc.request_id` request metadata, or the `X-Request-ID`
   * HTTP header) when it sent a well-formed one, else 16 hex chars minted per call. Always set.
   */
  readonly requestId: string;
  /**
   * The client's idempotency key: the `Idempotency-Key` HTTP header, or the `idempotency_key`
   * request metadata key; `null` when the client sent none.
   */
  readonly idempotencyKey: string | null;
  /**
   * Returns the idempotency key, or throws an `RpcError` of kind `idempotency_key_required`
   * (code `INVALID_ARGUMENT`) when the client sent none: call it first in mutating methods.
   */
  requireIdempotencyKey(): string;
  /** What the method's `inject` resolvers returned, by name (stream `init` and unary handlers). */
  readonly injected: Readonly<I>;
  /** 12 hex chars, fixed for the server's life. */
  readonly serverId: string;
  /** The protocol that owns the method being served. */
  readonly protocol: string;
  readonly method: string;
  /** Transport name: `pipe`, `unix`, `tcp`, `http`, `ws`. */
  readonly transport: string;
  /** Transport facts such as `remote_addr` and `user_agent`, when the transport knows them. */
  readonly transportMetadata: Readonly<Record<string, string>>;
  /**
   * A pino logger bound to this call (`server_id`, `method`, `request_id`, `transport`, and when
   * known `principal`, `auth_domain`, `remote_addr`); a child of the server's logger.
   */
  readonly logger: Logger;
  /** Raw request metadata (the request batch's custom metadata). */
  readonly requestMetadata: ReadonlyMap<string, string>;
  /**
   * Sends a log record to the caller, in band and in order with the data. Inside a unary call or a
   * stream's init, records are buffered and written before the result.
   */
  clientLog(level: LogLevel, message: string, extra?: LogExtra): void;
  /** Cookies the request carried (HTTP only; empty elsewhere). */
  readonly cookies: ReadonlyMap<string, string>;
  /**
   * False when the request (or the WebSocket upgrade that opened its connection) carried cookies
   * and nothing shows it was not forged by another site's page: no `Origin` from a trusted page, no
   * CSRF token header matching its cookie. Handlers that change state for a cookie-authenticated
   * caller call `requireCsrf(ctx)`. True on every request without cookies and on pipes and sockets.
   */
  readonly csrfVerified: boolean;
  /**
   * Queues a `Set-Cookie` on the response. Only a unary call served over HTTP can set cookies;
   * anywhere else this throws an `RpcError` of kind `cookie_not_allowed` and nothing is written.
   */
  setCookie(name: string, value: string, options?: CookieOptions): void;
  /** Queues a cookie deletion (same rules as `setCookie`). */
  deleteCookie(name: string, options?: CookieOptions): void;
  /**
   * The state of the sticky session this request is bound to (`openSession` earlier in this
   * session, on this server instance), or null: the same object on every call of the session, so
   * narrow it with `instanceof` or a type guard. Always null off HTTP and on a server without
   * sticky sessions (`HttpServerOptions.sticky`).
   */
  readonly session: unknown;
  /** The bound session's id (24 hex chars, for logs), or null. */
  readonly sessionId: string | null;
  /**
   * Opens a sticky session holding `state` in this server instance's memory for the calls that
   * follow: the answer carries a sealed `VGI-Session` token, bound to this instance and to the
   * caller, which the client sends back. `state` lives until `closeSession`, its lifetime
   * (`ttlSeconds`, default the server's `sticky.defaultTtlSeconds`), an idle timeout, a
   * `DELETE {prefix}/__session__` or the server's shutdown; then its `close()` method, if it has
   * one, is called. Throws a `RuntimeError` (as the reference, word for word) off HTTP, without
   * sticky sessions, when the client did not send `VGI-Session-Accept: true`, or when a session
   * is already bound; an `RpcError` of kind `server_draining` while the sessions drain;
   * `session_limit` at `maxSessions`; a `RangeError` for a `ttlSeconds` outside (0, `maxTtlSeconds`].
   */
  openSession(state: unknown, options?: SessionOptions): void;
  /**
   * Closes the bound session (its state's `close()` runs now) and tells the client to drop its
   * token; idempotent, and harmless when no session is bound. Throws a `RuntimeError` off HTTP or
   * without sticky sessions.
   */
  closeSession(): void;
}

/** Options of `CallContext.openSession`. */
export interface SessionOptions {
  /** The session's lifetime in seconds, from now. Default: the server's `sticky.defaultTtlSeconds`. */
  readonly ttlSeconds?: number;
}
