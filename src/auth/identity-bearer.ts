/**
 * Bearer authenticators that close the `vgi_rpc.Identity.v2` loop (the reference's
 * `http/_grant_auth.py`): `issue_grant` mints a credential that automation later presents as an
 * ordinary bearer, and `resolveToken` answers which principal an opaque credential is; these two
 * authenticators feed both back into authentication. An HTTP handler for a server hosting identity
 * appends them after its own `authenticate` by itself (`HttpServerOptions.identityBearer`).
 *
 * Routing is by prefix, strict both ways: a bearer without `vgig1.` never reaches the grant
 * verifier, and one with it that does not verify is refused outright (401, final) and never
 * reaches `resolveToken`, which might answer for it.
 */
import { ANONYMOUS } from "../protocol/context.js";
import { bearerToken, chainAuthenticate } from "./factories.js";
import { GRANT_TOKEN_PREFIX, GrantInvalidError, type GrantKeys, verifyGrantToken } from "./grants.js";
import { IdentityUnavailableError, MAX_TOKEN_BYTES, type ResolveToken, rejectJwsShaped } from "./identity.js";
import { proxyHeadersOf } from "./proxy-proof.js";
import { type Authenticator, AuthFailure, AuthUnavailableError, authenticated } from "./types.js";

/** `AuthContext.domain` (and scheme) of a request authenticated by a sealed grant. */
export const GRANT_AUTH_DOMAIN = "grant";
/** `AuthContext.domain` (and scheme) of a request authenticated through `resolveToken`. */
export const TOKEN_AUTH_DOMAIN = "token";

/**
 * Accepts sealed grants minted under `keys` as bearer credentials: domain and scheme `grant`, the
 * grant's principal, claims `{ grant_id, scopes, purpose }` (and the grant's scopes as
 * `AuthContext.scopes`), and no `auth_time`, so a grant-authenticated caller cannot mint a grant.
 * A bearer without the `vgig1.` prefix is refused so a chain moves on; one with it that does not
 * verify is refused with `final` set (`expired_credential` when authentic but out of its lifetime,
 * else `invalid_credential`).
 */
export function grantAuthenticate(keys: GrantKeys): Authenticator {
  return (request) => {
    const token = bearerToken(request);
    if (!token.startsWith(GRANT_TOKEN_PREFIX)) throw new AuthFailure("invalid_credential", "not a sealed grant");
    try {
      const claims = verifyGrantToken(keys, token);
      return authenticated(
        GRANT_AUTH_DOMAIN,
        claims.principal,
        { grant_id: claims.grantId, scopes: [...claims.scopes], purpose: claims.purpose },
        { scopes: claims.scopes },
      );
    } catch (err) {
      if (!(err instanceof GrantInvalidError)) throw err;
      throw new AuthFailure(
        err.expired ? "expired_credential" : "invalid_credential",
        `sealed grant rejected: ${err.message}`,
        {
          final: true,
        },
      );
    }
  };
}

/**
 * Accepts bearer credentials the worker's `resolveToken` resolves: domain and scheme `token`, the
 * resolved principal, claims `{ token_name }`. The hook never sees a `vgig1.` token, a JWS-shaped
 * one, a blank one or one over 4096 UTF-8 bytes (refused so a chain moves on). Null from the hook
 * is refused the same way; an outage (`IdentityUnavailableError` or `AuthUnavailableError`) is
 * thrown as `AuthUnavailableError`: 503 with the hook's `Retry-After`, never 401.
 */
export function resolveTokenAuthenticate(resolveToken: ResolveToken): Authenticator {
  return async (request) => {
    const token = bearerToken(request);
    if (token.startsWith(GRANT_TOKEN_PREFIX)) {
      throw new AuthFailure("invalid_credential", "sealed grants are not resolved by resolveToken");
    }
    if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_BYTES) {
      throw new AuthFailure("invalid_credential", "bearer credential rejected");
    }
    try {
      rejectJwsShaped(token);
    } catch {
      throw new AuthFailure("invalid_credential", "a blank or JWS-shaped bearer is not resolved by resolveToken");
    }
    let identity: Awaited<ReturnType<ResolveToken>>;
    try {
      identity = await resolveToken(token);
    } catch (err) {
      if (err instanceof IdentityUnavailableError) {
        throw new AuthUnavailableError(err.detail || "identity lookup unavailable", {
          retryAfterSeconds: err.retryAfterSeconds,
          cause: err,
        });
      }
      throw err;
    }
    if (identity === null || identity === undefined) {
      throw new AuthFailure("invalid_credential", "bearer credential did not resolve");
    }
    return authenticated(TOKEN_AUTH_DOMAIN, identity.principal, { token_name: identity.tokenName ?? "" });
  };
}

/** Anonymous when the request carries no `Authorization` header; a header nothing accepted is refused. */
const anonymousWithoutCredentials: Authenticator = (request) => {
  if (request.headers.has("authorization")) {
    throw new AuthFailure("invalid_credential", "bearer credential not accepted");
  }
  return ANONYMOUS;
};

/** Where identity credentials come from: a server's sealed-grant keys and `resolveToken` hook. */
export interface IdentityBearerSources {
  readonly grantKeys: GrantKeys | null;
  readonly resolveToken: ResolveToken | null;
}

/**
 * `authenticate` followed by the identity bearer authenticators, in the reference's order: the
 * deployment's own first (JWT, static, ...), then sealed grants (a cheap prefix check), then
 * `resolveToken`. With neither source, `authenticate` unchanged. With no `authenticate`, a
 * request without an `Authorization` header stays anonymous and one whose bearer nothing accepts
 * is refused. `authenticate` must refuse a credential it does not recognise: one that answers
 * anonymous for every request ends the chain before the identity members run. Throws a
 * `TypeError` when `authenticate` relies on proxy-injected evidence (`proxyHeadersOf`: a
 * proxy-proof gate, mTLS from a header), as the reference does: the bearers would let a caller
 * around the proxy in.
 */
export function identityAuthenticate(
  authenticate: Authenticator | undefined,
  sources: IdentityBearerSources,
): Authenticator | undefined {
  const members: Authenticator[] = [];
  if (sources.grantKeys !== null) members.push(grantAuthenticate(sources.grantKeys));
  if (sources.resolveToken !== null) members.push(resolveTokenAuthenticate(sources.resolveToken));
  if (members.length === 0) return authenticate;
  if (authenticate === undefined) return chainAuthenticate(...members, anonymousWithoutCredentials);
  if (proxyHeadersOf(authenticate).length > 0) {
    // As the reference refuses it: the bearers would be an OR beside the proxy's evidence.
    throw new TypeError(
      "this server's authenticate depends on proxy-injected evidence, and accepting sealed grants or " +
        "resolveToken bearers would be an OR beside it that bypasses that requirement. Compose it yourself " +
        "(requireAll(gate, chainAuthenticate(inner, grantAuthenticate(keys), resolveTokenAuthenticate(hook)))) " +
        "and pass identityBearer: false.",
    );
  }
  return chainAuthenticate(authenticate, ...members);
}
