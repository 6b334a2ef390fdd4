/**
 * Request authentication for request transports (HTTP): what an authenticator sees, what it
 * returns, and the failure it throws. An authenticator that throws makes the transport answer
 * 401 with a reason code; one that returns fills `ctx.auth` for the handler.
 */
import { frameworkError, RpcError, UnavailableError } from "../errors.js";
import { ANONYMOUS, type AuthContext, type CallContext } from "../protocol/context.js";

export type { AuthContext } from "../protocol/context.js";

/** The TLS client certificate of a request, when the connection presented one. */
export interface PeerCertificate {
  /** SHA-256 of the DER certificate as lowercase hex without separators. */
  readonly fingerprint256: string;
  /** The subject distinguished name, e.g. `CN=client,O=Example`. */
  readonly subject: string;
  /** Subject alternative names as Node reports them (`DNS:a, URI:spiffe://...`). */
  readonly subjectAltName: string;
}

/** What an authenticator is given: the request line, headers and connection facts. */
export interface AuthRequest {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  readonly headers: Headers;
  /** The immediate peer's address (`""` when unknown). */
  readonly remoteAddr: string;
  /** The verified client certificate of a TLS connection, or null. */
  readonly peerCertificate: PeerCertificate | null;
}

/** Resolves a request's caller. Throw (any error) to refuse it with 401. */
export type Authenticator = (request: AuthRequest) => AuthContext | Promise<AuthContext>;

/** The reason codes a 401 carries (`VGI-Auth-Reason`), the reference's closed set. */
export type AuthReason =
  | "missing_credential"
  | "invalid_credential"
  | "expired_credential"
  | "insufficient_scope"
  | "proxy_required"
  | "unauthorized";

/** A refused credential, with the reason code the 401 carries. */
export class AuthFailure extends Error {
  /**
   * True when no later authenticator may accept the request instead: `chainAuthenticate` stops at
   * this refusal (a sealed grant that did not verify must not fall through to a resolver that might
   * answer for it). Default: false, the chain moves on.
   */
  readonly final: boolean;

  constructor(
    readonly reason: AuthReason,
    message: string,
    options?: { readonly cause?: unknown; readonly final?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AuthFailure";
    this.final = options?.final ?? false;
  }
}

/**
 * The authority that decides about a credential could not be asked (a store or identity provider
 * down, a timeout, a 5xx): not a refusal. Over HTTP an authenticator that throws it answers 503
 * with `Retry-After`, never 401, so callers do not re-authenticate against a service that is merely
 * down; `chainAuthenticate` passes it on instead of trying the next authenticator. Thrown by a
 * `vgi_rpc.Identity.v2` hook (`resolveToken`, `mintGrant`), the call fails with
 * `identity_unavailable` carrying the same retry hint. The reference's `AuthUnavailableError`.
 * As a call's error: code `UNAVAILABLE`, a `vgi_rpc.RetryInfo` detail.
 */
export class AuthUnavailableError extends UnavailableError {
  constructor(detail = "", options: { readonly retryAfterSeconds?: number; readonly cause?: unknown } = {}) {
    super(detail, { fallback: "authentication service unavailable", type: "AuthUnavailableError", ...options });
  }
}

/**
 * What is wrong with a credential an authenticator factory was configured with:
 * - `missing`: not a string at all (`undefined`, `null`, a number), e.g. an unset variable used
 *   as a `Map` key, or a key mapped to no caller;
 * - `empty`: the empty string;
 * - `blank`: only whitespace;
 * - `placeholder`: the text `undefined` or `null` (any case), what a missing value becomes in a
 *   template or a computed key (`{ [process.env.KEY!]: ... }` with `KEY` unset);
 * - `whitespace`: whitespace no presented credential can carry (around an API key, anywhere in a
 *   bearer token), so it could never match: often a stray `\r` or newline from a secrets file;
 * - `duplicate`: the same credential configured twice (after normalisation);
 * - `malformed`: not in the credential's format (a fingerprint that is not hex).
 */
export type CredentialProblem =
  | "missing"
  | "empty"
  | "blank"
  | "placeholder"
  | "whitespace"
  | "duplicate"
  | "malformed";

/**
 * A factory refused its configuration (thrown at construction, never per request). The message
 * names the factory, the option, the entry's position and the problem, never the credential.
 */
export class AuthConfigError extends TypeError {
  constructor(
    /** The factory, e.g. `apiKeyAuthenticate`. */
    readonly factory: string,
    /** The option holding the credential, e.g. `keys`. */
    readonly option: string,
    /** The entry's position in the option (0-based, in iteration order). */
    readonly index: number,
    readonly problem: CredentialProblem,
    message: string,
  ) {
    super(message);
    this.name = "AuthConfigError";
  }
}

/** The reason code for anything an authenticator threw. */
export function authReasonOf(err: unknown): AuthReason {
  return err instanceof AuthFailure ? err.reason : "unauthorized";
}

/** The anonymous caller. */
export function anonymous(): AuthContext {
  return ANONYMOUS;
}

/** What an authenticated caller holds besides its identity (see `AuthContext`). */
export interface GrantOptions {
  /** The security scheme that produced the identity. Default: the domain. */
  readonly scheme?: string;
  /** Scopes the credential grants. Default: none. */
  readonly scopes?: readonly string[];
  /** Roles the caller holds. Default: none. */
  readonly roles?: readonly string[];
  /** Capabilities the caller holds. Default: none. */
  readonly capabilities?: readonly string[];
}

const list = (values: readonly string[] | undefined): readonly string[] => Object.freeze([...new Set(values ?? [])]);

/** An authenticated caller. */
export function authenticated(
  domain: string,
  principal: string,
  claims: Readonly<Record<string, unknown>> = {},
  grants: GrantOptions = {},
): AuthContext {
  return Object.freeze({
    domain,
    scheme: grants.scheme ?? domain,
    authenticated: true,
    principal,
    claims: Object.freeze({ ...claims }),
    scopes: list(grants.scopes),
    roles: list(grants.roles),
    capabilities: list(grants.capabilities),
  });
}

/** The same caller with more (or different) grants: for authenticators that enrich a result. */
export function withGrants(auth: AuthContext, grants: GrantOptions): AuthContext {
  return Object.freeze({
    ...auth,
    scheme: grants.scheme ?? auth.scheme,
    scopes: grants.scopes ? list(grants.scopes) : auth.scopes,
    roles: grants.roles ? list(grants.roles) : auth.roles,
    capabilities: grants.capabilities ? list(grants.capabilities) : auth.capabilities,
  });
}

const authOf = (ctx: CallContext | AuthContext): AuthContext => ("auth" in ctx ? ctx.auth : ctx);

/** The caller when authenticated, else null (for methods that serve anonymous callers differently). */
export function optionalUser(ctx: CallContext | AuthContext): AuthContext | null {
  const auth = authOf(ctx);
  return auth.authenticated ? auth : null;
}

/** The authenticated caller; throws an `RpcError` of kind `unauthenticated` for an anonymous one. */
export function authenticatedUser(ctx: CallContext | AuthContext): AuthContext {
  const auth = authOf(ctx);
  if (!auth.authenticated) {
    throw frameworkError("unauthenticated", "Authentication required: this method does not accept anonymous callers.");
  }
  return auth;
}

/** Whether the caller holds `capability` (false for anonymous callers). */
export function hasCapability(ctx: CallContext | AuthContext, capability: string): boolean {
  const auth = authOf(ctx);
  return auth.authenticated && auth.capabilities.includes(capability);
}

/**
 * Returns the caller if it holds `capability`; throws `unauthenticated` for an anonymous caller
 * and `permission_denied` for one without it.
 */
export function requireCapability(ctx: CallContext | AuthContext, capability: string): AuthContext {
  const auth = authenticatedUser(ctx);
  if (!auth.capabilities.includes(capability)) {
    throw frameworkError("permission_denied", `Permission denied: capability '${capability}' is required.`);
  }
  return auth;
}

/**
 * Returns the caller if it holds `role`; throws `unauthenticated` for an anonymous caller and
 * `permission_denied` for one without it.
 */
export function requireRole(ctx: CallContext | AuthContext, role: string): AuthContext {
  const auth = authenticatedUser(ctx);
  if (!auth.roles.includes(role))
    throw frameworkError("permission_denied", `Permission denied: role '${role}' is required.`);
  return auth;
}

/**
 * Throws a `PermissionError` (code `PERMISSION_DENIED`, no kind) unless the caller is
 * authenticated, as the reference's `require_authenticated` does. Accepts the handler's context or
 * its `auth`. Prefer `authenticatedUser`, which throws the `unauthenticated` kind.
 */
export function requireAuthenticated(ctx: CallContext | AuthContext): AuthContext {
  const auth = authOf(ctx);
  if (!auth.authenticated) {
    throw new RpcError("Authentication required: this method does not accept anonymous callers.", {
      type: "PermissionError",
      code: "PERMISSION_DENIED",
    });
  }
  return auth;
}
