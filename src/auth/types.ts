/**
 * Request authentication for request transports (HTTP): what an authenticator sees, what it
 * returns, and the failure it throws. An authenticator that throws makes the transport answer
 * 401 with a reason code; one that returns fills `ctx.auth` for the handler.
 */
import { RpcError } from "../errors.js";
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
  constructor(
    readonly reason: AuthReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AuthFailure";
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

/** An authenticated caller. */
export function authenticated(
  domain: string,
  principal: string,
  claims: Readonly<Record<string, unknown>> = {},
): AuthContext {
  return Object.freeze({ domain, authenticated: true, principal, claims: Object.freeze({ ...claims }) });
}

/**
 * Throws a `PermissionError` (code `PERMISSION_DENIED`) unless the caller is authenticated; call it
 * first thing in a handler that needs a caller. Accepts the handler's context or its `auth`.
 */
export function requireAuthenticated(ctx: CallContext | AuthContext): AuthContext {
  const auth = "auth" in ctx ? ctx.auth : ctx;
  if (!auth.authenticated) {
    throw new RpcError("Authentication required: this method does not accept anonymous callers.", {
      type: "PermissionError",
      code: "PERMISSION_DENIED",
    });
  }
  return auth;
}
