import type { Logger } from "pino";

/**
 * What a handler sees of its call: identity, request id, transport facts, and the in-band
 * client log. Implemented by the dispatch core; declared here so method types can name it.
 */

/** Client-log levels, as the reference spells them on the wire. */
export type LogLevel = "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE";

/** Every level a log batch may carry, including the error batch's `EXCEPTION`. */
export type WireLogLevel = LogLevel | "EXCEPTION";

/** Who is calling. Pipes and sockets without auth are anonymous. */
export interface AuthContext {
  /** Authentication scheme or realm (`""` when anonymous). */
  readonly domain: string;
  readonly authenticated: boolean;
  /** The caller's identity (`""` when anonymous). */
  readonly principal: string;
  /** Verified claims (e.g. JWT claims); empty when anonymous. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** The anonymous caller. */
export const ANONYMOUS: AuthContext = Object.freeze({
  domain: "",
  authenticated: false,
  principal: "",
  claims: Object.freeze({}),
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

/** Per-call context handed to every handler. */
export interface CallContext {
  readonly auth: AuthContext;
  /** 16 hex chars, minted per call (or taken from the transport). */
  readonly requestId: string;
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
   * Queues a `Set-Cookie` on the response. Only a unary call served over HTTP can set cookies;
   * anywhere else this throws an `RpcError` of kind `cookie_not_allowed` and nothing is written.
   */
  setCookie(name: string, value: string, options?: CookieOptions): void;
  /** Queues a cookie deletion (same rules as `setCookie`). */
  deleteCookie(name: string, options?: CookieOptions): void;
}
