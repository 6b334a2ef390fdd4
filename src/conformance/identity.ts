/**
 * The pinned deployment policy of the `vgi_rpc.Identity.v2` conformance group (the reference's
 * `vgi_rpc/conformance/identity_fixture.py`, restated in `IDENTITY_CONFORMANCE_FIXTURE.md`), and
 * `conformance.Whoami.v1`, the probe the grant worker hosts. Every value here is one every port's
 * conformance worker must configure identically; none is this port's choice.
 *
 * !!! The authentication below is header-driven and trivially spoofable by anyone who can reach
 * the port. It exists to give the shared suite a deterministic authenticated caller without an
 * identity provider. It is a TEST FIXTURE and must never be deployed. !!!
 */
import { type GrantKeys, grantKeys } from "../auth/grants.js";
import {
  GrantRefusedError,
  IdentityUnavailableError,
  type IssuedGrant,
  type MintGrant,
  type ResolveToken,
} from "../auth/identity.js";
import { type Authenticator, AuthFailure, AuthUnavailableError, anonymous, authenticated } from "../auth/types.js";
import type { CallContext } from "../protocol/context.js";
import { defineProtocol, type Implementation, unary } from "../protocol/methods.js";
import { pyJsonDumps } from "../protocol/python-text.js";
import { t } from "../protocol/types.js";
import type { IdentityOptions } from "../server/identity.js";

/** Header naming the authenticated principal; absent means unauthenticated. */
export const PRINCIPAL_HEADER = "X-Conformance-Principal";
/** Header whose value goes into `claims.auth_time` verbatim, as a string, unparsed. */
export const AUTH_TIME_HEADER = "X-Conformance-Auth-Time";
/** `AuthContext.domain` of a header-authenticated caller. */
export const CONFORMANCE_AUTH_DOMAIN = "conformance";

/** The one principal on the introspector allowlist. */
export const INTROSPECTOR_PRINCIPAL = "conformance-introspector";
/** An authenticated principal not on the allowlist. */
export const OUTSIDER_PRINCIPAL = "conformance-outsider";
/** The two callers the group mints as: the grant's subject is the caller, never a parameter. */
export const MINTER_PRINCIPAL = "minter@conformance.example";
export const OTHER_MINTER_PRINCIPAL = "other-minter@conformance.example";
/** `max_auth_age` the fixture configures: the documented default. */
export const MAX_AUTH_AGE = 900;

/** The identity every resolvable credential maps to. */
export const SUBJECT_PRINCIPAL = "subject@conformance.example";
export const SUBJECT_TOKEN_NAME = "conformance-subject";
export const SUBJECT_TTL = 300;
/** The one credential the resolver reports unknown. */
export const TOKEN_UNKNOWN = "conformance-unknown-token";
/** Resolved by raising the identity-unavailable error with a 5 s hint. */
export const TOKEN_UNAVAILABLE = "conformance-unavailable-token";
export const UNAVAILABLE_RETRY_AFTER = 5;
/** Resolved by raising the transport-auth unavailable error with a 7 s hint (the framework translates it). */
export const TOKEN_AUTH_UNAVAILABLE = "conformance-auth-unavailable-token";
export const AUTH_UNAVAILABLE_RETRY_AFTER = 7;
/** Resolves with `ttlSeconds: 0`, which must reach the wire as 0. */
export const TOKEN_ZERO_TTL = "conformance-zero-ttl-token";
/** Resolves to an identity with only its principal set. */
export const TOKEN_MINIMAL = "conformance-minimal-token";
/** Two leading and two trailing spaces; resolves to a distinguishable token name. */
export const TOKEN_PADDED_PROBE = "  conformance-padded-probe  ";
export const TOKEN_PADDED_PROBE_NAME = "conformance-padded";

/** Prefix of a minted grant's token; the caller's principal, `|` and the scopes follow. */
export const GRANT_TOKEN_PREFIX = "conformance-grant-for:";
export const SCOPE_SEPARATOR = "|";
/** 2030-01-01T00:00:00Z: fixed, so the wire value can be asserted exactly. */
export const GRANT_EXPIRES_AT = new Date(Date.UTC(2030, 0, 1));
export const GRANT_ID = "conformance-grant-id";
/** The purpose the minter refuses. */
export const REFUSED_PURPOSE = "conformance-refused";
/** The purpose that mints a grant without `grantId`. */
export const MINIMAL_PURPOSE = "conformance-minimal";
/** The purpose the minter answers with the transport-auth unavailable error. */
export const AUTH_UNAVAILABLE_PURPOSE = "conformance-auth-unavailable";

/** The grant worker's minting key: bytes 0x10..0x2f (published on purpose: a fixture key). */
export const GRANT_KEY_CURRENT = Uint8Array.from({ length: 32 }, (_, i) => 0x10 + i);
/** The previous key, still verifying (rotation): bytes 0x30..0x4f. */
export const GRANT_KEY_PREVIOUS = Uint8Array.from({ length: 32 }, (_, i) => 0x30 + i);
/** Audience bound into the grant worker's tokens. */
export const GRANT_AUDIENCE = "conformance";
/** The grant worker's lifetime ceiling, in seconds. */
export const GRANT_MAX_TTL = 3600;

/**
 * The conformance resolver: answers for almost anything, so a rejection can only have come from
 * a guard. Pure: no clock, no counter, no shared state.
 */
export const conformanceResolveToken: ResolveToken = (token) => {
  if (token === TOKEN_UNAVAILABLE) {
    throw new IdentityUnavailableError("conformance: mapping store unreachable", {
      retryAfterSeconds: UNAVAILABLE_RETRY_AFTER,
    });
  }
  if (token === TOKEN_AUTH_UNAVAILABLE) {
    throw new AuthUnavailableError("conformance: authority unreachable", {
      retryAfterSeconds: AUTH_UNAVAILABLE_RETRY_AFTER,
    });
  }
  if (token === TOKEN_UNKNOWN) return null;
  if (token === TOKEN_ZERO_TTL) return { principal: SUBJECT_PRINCIPAL, tokenName: SUBJECT_TOKEN_NAME, ttlSeconds: 0 };
  if (token === TOKEN_MINIMAL) return { principal: SUBJECT_PRINCIPAL };
  if (token === TOKEN_PADDED_PROBE) {
    return { principal: SUBJECT_PRINCIPAL, tokenName: TOKEN_PADDED_PROBE_NAME, ttlSeconds: SUBJECT_TTL };
  }
  return { principal: SUBJECT_PRINCIPAL, tokenName: SUBJECT_TOKEN_NAME, ttlSeconds: SUBJECT_TTL };
};

/** The conformance minter. `ttlSeconds` is ignored: `expiresAt` is a fixed constant. Pure. */
export const conformanceMintGrant: MintGrant = ({ principal, purpose, scopes }): IssuedGrant => {
  if (purpose === AUTH_UNAVAILABLE_PURPOSE) {
    throw new AuthUnavailableError("conformance: grant store unreachable", {
      retryAfterSeconds: AUTH_UNAVAILABLE_RETRY_AFTER,
    });
  }
  if (purpose === REFUSED_PURPOSE) throw new GrantRefusedError("conformance: this purpose is refused");
  const token = GRANT_TOKEN_PREFIX + principal + SCOPE_SEPARATOR + scopes.join(",");
  if (purpose === MINIMAL_PURPOSE) return { token, expiresAt: GRANT_EXPIRES_AT };
  return { token, expiresAt: GRANT_EXPIRES_AT, grantId: GRANT_ID };
};

/** The grant worker's keys: the current key mints, both verify. */
export function conformanceGrantKeys(): GrantKeys {
  return grantKeys([GRANT_KEY_CURRENT, GRANT_KEY_PREVIOUS], { audience: GRANT_AUDIENCE, maxTtlSeconds: GRANT_MAX_TTL });
}

/** Which fixture worker: `both` hooks, `introspect-only`, or the sealed-`grants` worker. */
export type IdentityFixture = "both" | "introspect-only" | "grants";

/** The identity configuration of one fixture worker. */
export function conformanceIdentity(fixture: IdentityFixture): IdentityOptions {
  const resolve = {
    resolveToken: conformanceResolveToken,
    introspectPrincipals: [INTROSPECTOR_PRINCIPAL],
    maxAuthAgeSeconds: MAX_AUTH_AGE,
  };
  if (fixture === "both") return { ...resolve, mintGrant: conformanceMintGrant };
  if (fixture === "grants") return { ...resolve, grantKeys: conformanceGrantKeys() };
  return resolve;
}

/**
 * The fixture's authentication (TEST ONLY, spoofable): `X-Conformance-Principal` names the
 * caller, `X-Conformance-Auth-Time` goes verbatim into `claims.auth_time`, nothing else into the
 * claims. Without the principal header a request carrying `Authorization` is refused so the
 * identity bearer authenticators after this one get it; one carrying neither is anonymous.
 */
export const conformanceHeaderAuthenticate: Authenticator = (request) => {
  const principal = request.headers.get(PRINCIPAL_HEADER);
  if (principal === null) {
    if (request.headers.has("authorization")) {
      throw new AuthFailure("invalid_credential", "no conformance principal header");
    }
    return anonymous();
  }
  const authTime = request.headers.get(AUTH_TIME_HEADER);
  return authenticated(CONFORMANCE_AUTH_DOMAIN, principal, authTime === null ? {} : { auth_time: authTime });
};

/** Routing key of the probe reporting how a request was authenticated. */
export const WHOAMI_PROTOCOL_NAME = "conformance.Whoami.v1";
/** Pinned digest of `conformance.Whoami.v1`. */
export const WHOAMI_PROTOCOL_HASH = "a280333ba72432020e162cab388a78355969a30aa74f0665ad9d2932d7a10b8f";

/** `conformance.Whoami.v1`, hosted only by the grant worker. */
export const WhoamiProtocol = defineProtocol(WHOAMI_PROTOCOL_NAME, {}, { whoami: unary({}, t.utf8()) });

/**
 * `whoami()`: the caller's `AuthContext` as the reference writes it,
 * `json.dumps({"authenticated", "claims", "domain", "principal"}, sort_keys=True, separators=(",", ":"))`.
 */
export function createWhoamiImplementation(): Implementation<typeof WhoamiProtocol> {
  return {
    whoami: (_params: Record<string, never>, ctx: CallContext) =>
      pyJsonDumps(
        {
          authenticated: ctx.auth.authenticated,
          claims: ctx.auth.claims,
          domain: ctx.auth.domain,
          principal: ctx.auth.principal,
        },
        { compact: true, ensureAscii: true, allowNan: true, sortKeys: true },
      ),
  };
}
