/**
 * `vgi_rpc.Identity.v2`'s policy seam, as the reference's `rpc/_token_identity.py` defines it: the
 * hooks a worker supplies (`resolveToken`, `mintGrant`), what they return, the errors that reach
 * the wire with a stable `error_kind`, and the guards the framework applies before any hook runs.
 * The framework owns the guards and none of the policy: who may introspect and what shape of
 * credential is refused outright are decided here; what a credential resolves to and whether a
 * grant is minted are the worker's.
 *
 * The five kinds, each with its canonical code:
 * - `introspection_refused` (`PERMISSION_DENIED`): the caller may not introspect. Definitive.
 * - `token_unresolved` (`NOT_FOUND`): the credential did not resolve. Definitive, and uniform:
 *   unknown, malformed, JWS-shaped, over-long and blank are one answer with one message.
 * - `stale_auth` (`UNAUTHENTICATED`): the caller has not authenticated recently enough to mint.
 * - `grant_refused` (`PERMISSION_DENIED`): the worker declined to mint.
 * - `identity_unavailable` (`UNAVAILABLE`): the answer is not knowable now; carries `RetryInfo`.
 */
import { frameworkError, RpcError, UnavailableError } from "../errors.js";
import type { AuthContext } from "../protocol/context.js";
import { type GrantKeys, mintGrantToken } from "./grants.js";
import { AuthUnavailableError } from "./types.js";

/** The identity an opaque credential authenticates as. It never carries claims. */
export interface TokenIdentity {
  /** The canonical principal, in the form the worker itself derives. */
  readonly principal: string;
  /** A human-readable name of the credential for audit trails, never the credential. Default: `""`. */
  readonly tokenName?: string;
  /**
   * How long the caller may cache this answer, in whole seconds (>= 0): on any path the asker serves
   * without re-presenting the credential, also the revocation lag. 0 means do not cache, and stays
   * 0. Default: 300 (only when omitted).
   */
  readonly ttlSeconds?: number;
}

/** A standing delegation credential, minted for the calling user. */
export interface IssuedGrant {
  /** The credential: opaque to the framework, never parsed, never logged. */
  readonly token: string;
  /**
   * When the worker stops honouring it: a declaration (the real lifetime lives inside the token),
   * carried as `timestamp[us, UTC]`. Required: a minter that must state a lifetime has thought about one.
   */
  readonly expiresAt: Date;
  /** Correlation handle for the audit trail; not a credential, not secret. Default: `""`. */
  readonly grantId?: string;
}

/** What `issue_grant` asks a `MintGrant` hook for. */
export interface GrantRequest {
  /** The caller's authenticated principal: the subject is always the caller, never a parameter. */
  readonly principal: string;
  /** Why the grant is wanted, for the audit trail. */
  readonly purpose: string;
  /** What the grant may do; the worker decides what these mean. */
  readonly scopes: readonly string[];
  /**
   * Requested lifetime in seconds: a request, not an instruction (the returned `expiresAt` is
   * authoritative). The wire carries an int64; values past 2^53 arrive rounded.
   */
  readonly ttlSeconds: number;
}

/**
 * Resolves an opaque credential: its identity, or null when the store answered and the credential
 * is unknown. Throw `IdentityUnavailableError` (or `AuthUnavailableError`, translated with its
 * retry hint) when the answer is not knowable. Receives the credential exactly as sent (untrimmed).
 */
export type ResolveToken = (token: string) => TokenIdentity | null | Promise<TokenIdentity | null>;

/**
 * Mints a grant for `request.principal`. Throw `GrantRefusedError` to decline, `AuthUnavailableError`
 * or `IdentityUnavailableError` when the grant store cannot be reached.
 */
export type MintGrant = (request: GrantRequest) => IssuedGrant | Promise<IssuedGrant>;

/** Longest credential the guards look at: 4096 UTF-8 bytes, measured on the credential as it arrived. */
export const MAX_TOKEN_BYTES = 4096;
/** Default `maxAuthAgeSeconds`: 900. */
export const DEFAULT_MAX_AUTH_AGE_SECONDS = 900;
/** `TokenIdentity.ttlSeconds` when a resolver omits it. */
export const DEFAULT_TOKEN_TTL_SECONDS = 300;

/** The answer is not knowable now (a backing store down, a 5xx upstream): `identity_unavailable`, transient. */
export class IdentityUnavailableError extends UnavailableError {
  constructor(detail = "", options: { readonly retryAfterSeconds?: number; readonly cause?: unknown } = {}) {
    super(detail, {
      fallback: "identity lookup unavailable",
      type: "IdentityUnavailableError",
      kind: "identity_unavailable",
      ...options,
    });
  }
}

/** The worker declines to mint this grant: `grant_refused`, definitive. Thrown by a `MintGrant` hook. */
export class GrantRefusedError extends RpcError {
  constructor(message: string) {
    super(message, { type: "GrantRefusedError", code: "PERMISSION_DENIED", kind: "grant_refused" });
    this.name = "GrantRefusedError";
  }
}

/** `introspection_refused`: the caller is not on the introspector allowlist. */
export function introspectionRefused(message: string): RpcError {
  return frameworkError("introspection_refused", message);
}

/** `token_unresolved`, always with the same message: which guard refused must not be readable. */
export function tokenUnresolved(): RpcError {
  return frameworkError("token_unresolved", "unresolved");
}

/** `stale_auth`: actionable (re-authenticate), so the message says why. */
export function staleAuth(message: string): RpcError {
  return frameworkError("stale_auth", message);
}

/**
 * Characters trimmed before the JWS shape test: Python's `str.isspace()` set, which the reference
 * strips and which covers the spec's floor (U+0009-U+000D, U+0020, U+0085, U+00A0). JavaScript's
 * `trim()` differs (it keeps U+0085 and U+001C-U+001F, strips U+FEFF), so it is not used.
 */
const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const TRIM = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");
/** Three dot-separated base64url segments: a JWS, validated locally and never routed to a resolver. */
const JWS_SHAPED = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** `token` without leading and trailing whitespace (Python's `str.strip()`). */
export function trimCredential(token: string): string {
  return token.replace(TRIM, "");
}

/** Bytes of `text` as UTF-8. */
const utf8Bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/**
 * Refuses (`token_unresolved`) a credential that is blank, longer than 4096 UTF-8 bytes as it
 * arrived, or JWS-shaped once trimmed. Trimming is for the shape test only: the resolver is
 * handed the credential untrimmed.
 */
export function rejectJwsShaped(token: string): void {
  const candidate = trimCredential(token);
  if (candidate === "" || utf8Bytes(token) > MAX_TOKEN_BYTES || JWS_SHAPED.test(candidate)) throw tokenUnresolved();
}

/** Refuses (`introspection_refused`) a caller that is anonymous or not on the allowlist. */
export function checkIntrospector(auth: AuthContext, principals: ReadonlySet<string>): string {
  const caller = auth.principal || "";
  if (!auth.authenticated || !principals.has(caller)) throw introspectionRefused("caller is not an introspector");
  return caller;
}

/** Python's `float()` of text: a decimal number with optional sign, exponent and surrounding whitespace. */
const FLOAT_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function authTimeOf(raw: unknown): number | null {
  if (typeof raw === "number") return raw;
  if (typeof raw === "bigint") return Number(raw);
  if (typeof raw === "string") {
    const text = trimCredential(raw).replace(/_/g, "");
    return FLOAT_TEXT.test(text) ? Number(text) : null;
  }
  return null;
}

/**
 * Returns the caller's `auth_time` claim (seconds since the epoch), or refuses (`stale_auth`) a
 * caller that is anonymous, carries no `auth_time`, carries one that is not a finite number, or
 * authenticated more than `maxAuthAgeSeconds` ago. A grant carries no `auth_time`, so a grant can
 * never mint another; transports with no authenticated principal fail closed. A future `auth_time`
 * passes, as in the reference. Unlike the reference, NaN and infinities are refused.
 */
export function checkFreshness(auth: AuthContext, maxAuthAgeSeconds: number, now = Date.now() / 1000): number {
  if (!auth.authenticated || !auth.principal) throw staleAuth("caller is not authenticated");
  const raw = auth.claims.auth_time;
  if (raw === undefined || raw === null) {
    throw staleAuth("credential carries no auth_time; only a recently authenticated user may mint a grant");
  }
  const authTime = authTimeOf(raw);
  if (authTime === null || !Number.isFinite(authTime)) throw staleAuth("credential carries an unusable auth_time");
  const age = now - authTime;
  if (age > maxAuthAgeSeconds) {
    throw staleAuth(
      `last authentication was ${age.toFixed(0)}s ago, which exceeds the ${maxAuthAgeSeconds.toFixed(0)}s ceiling for minting a grant; re-authenticate`,
    );
  }
  return authTime;
}

/**
 * The transport-auth "could not find out" raised by a hook, as `identity_unavailable` with the
 * same retry hint; anything else unchanged.
 */
export function translateUnavailable(err: unknown): unknown {
  if (err instanceof AuthUnavailableError) {
    return new IdentityUnavailableError(err.detail || "identity lookup unavailable", {
      retryAfterSeconds: err.retryAfterSeconds,
      cause: err,
    });
  }
  return err;
}

/**
 * The `MintGrant` hook that issues sealed grants under `keys` (what a server installs when grant
 * keys are configured and no hook is): the requested lifetime capped at `keys.maxTtlSeconds`,
 * `expiresAt` the sealed claim's. A lifetime that is not a positive integer, or a field too long
 * to seal, is refused with `grant_refused`.
 */
export function sealedGrantMinter(keys: GrantKeys): MintGrant {
  return (request) => {
    if (!Number.isInteger(request.ttlSeconds) || request.ttlSeconds <= 0) {
      throw new GrantRefusedError("ttl_seconds must be positive");
    }
    let minted: ReturnType<typeof mintGrantToken>;
    try {
      minted = mintGrantToken(keys, {
        principal: request.principal,
        scopes: request.scopes,
        purpose: request.purpose,
        ttlSeconds: request.ttlSeconds,
      });
    } catch (err) {
      throw new GrantRefusedError((err as Error).message);
    }
    return { token: minted.token, expiresAt: new Date(minted.claims.expiresAt * 1000), grantId: minted.claims.grantId };
  };
}
