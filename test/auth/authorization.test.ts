/**
 * What authenticators grant (scheme, scopes, roles, capabilities from claim paths) and the
 * handler-side helpers that check it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import {
  AuthFailure,
  anonymous,
  apiKeyAuthenticate,
  authenticated,
  authenticatedUser,
  claimAt,
  claimStrings,
  hasCapability,
  jwtAuthenticate,
  mtlsAuthenticate,
  optionalUser,
  requireCapability,
  requireRole,
  withGrants,
} from "../../src/auth/index.js";
import { RpcError } from "../../src/errors.js";
import { securityRefusal } from "../../src/server/security.js";
import { authRequest as req } from "../helpers/auth.js";

function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RpcError, String(err));
    return err.kind;
  }
  return "";
}

describe("authorization", () => {
  it("claimAt reads whole URL-like names, dot paths and explicit segments", () => {
    const claims = {
      "https://example.com/roles": ["admin"],
      realm_access: { roles: ["ops", 3] },
      "a.b": { c: "literal" },
    };
    assert.deepEqual(claimAt(claims, "https://example.com/roles"), ["admin"]);
    assert.deepEqual(claimStrings(claims, "realm_access.roles"), ["ops"]);
    assert.equal(claimAt(claims, ["a.b", "c"]), "literal");
    assert.equal(claimAt(claims, "realm_access.missing.deeper"), undefined);
    assert.deepEqual(claimStrings({ scope: " a  b " }, "scope"), ["a", "b"]);
  });

  it("jwtAuthenticate grants scopes (scope or scp), roles and capabilities from configurable claim paths", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k", alg: "ES256" }] };
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid: "k" })
        .setIssuer("iss")
        .setAudience("aud")
        .setSubject("erin")
        .setExpirationTime("5m")
        .sign(privateKey);
    const plain = jwtAuthenticate({ issuer: "iss", audience: "aud", jwks });
    const a = await plain(req({ authorization: `Bearer ${await sign({ scope: "r w", roles: ["dev"] })}` }));
    assert.equal(a.scheme, "jwt");
    assert.deepEqual(a.scopes, ["r", "w"]);
    assert.deepEqual(a.roles, ["dev"]);
    assert.deepEqual(a.capabilities, []);
    const b = await plain(req({ authorization: `Bearer ${await sign({ scp: ["x"] })}` }));
    assert.deepEqual(b.scopes, ["x"]);
    const oidc = jwtAuthenticate({
      issuer: "iss",
      audience: "aud",
      jwks,
      scheme: "oidc",
      scopesClaim: "permissions",
      rolesClaim: "realm_access.roles",
      capabilitiesClaim: "https://example.com/caps",
    });
    const c = await oidc(
      req({
        authorization: `Bearer ${await sign({
          permissions: ["issues.write"],
          realm_access: { roles: ["maintainer"] },
          "https://example.com/caps": ["export"],
        })}`,
      }),
    );
    assert.deepEqual([c.scheme, c.domain], ["oidc", "jwt"]);
    assert.deepEqual(c.scopes, ["issues.write"]);
    assert.deepEqual(c.roles, ["maintainer"]);
    assert.deepEqual(c.capabilities, ["export"]);
  });

  it("apiKeyAuthenticate maps keys to callers of scheme apikey", async () => {
    const auth = apiKeyAuthenticate({
      keys: {
        "k-1": "worker-1",
        "k-2": authenticated("apikey", "exporter", {}, { capabilities: ["export"] }),
      },
    });
    const one = await auth(req({ "x-api-key": "k-1" }));
    assert.deepEqual([one.scheme, one.principal, one.authenticated], ["apikey", "worker-1", true]);
    assert.deepEqual((await auth(req({ "X-API-Key": "k-2" }))).capabilities, ["export"]);
    await assert.rejects(
      async () => auth(req({ "x-api-key": "k-3" })),
      (e) => e instanceof AuthFailure && e.reason === "invalid_credential",
    );
    await assert.rejects(
      async () => auth(req()),
      (e) => e instanceof AuthFailure && e.reason === "missing_credential",
    );
  });

  it("the scheme defaults to the domain, so existing authenticators name one", async () => {
    assert.equal(authenticated("bearer", "x").scheme, "bearer");
    const mtls = mtlsAuthenticate({ fingerprints: { ab: "svc" } });
    const ctx = await mtls({
      ...req(),
      peerCertificate: { fingerprint256: "ab", subject: "CN=svc", subjectAltName: "" },
    });
    assert.equal(ctx.scheme, "mtls");
    assert.deepEqual(withGrants(ctx, { roles: ["ops"] }).roles, ["ops"]);
  });

  it("helpers tell anonymous (unauthenticated) from forbidden (permission_denied)", () => {
    const alice = authenticated("jwt", "alice", {}, { roles: ["admin"], capabilities: ["export"] });
    const anon = anonymous();
    assert.equal(optionalUser(anon), null);
    assert.equal(optionalUser(alice), alice);
    assert.equal(authenticatedUser(alice), alice);
    assert.equal(
      kindOf(() => authenticatedUser(anon)),
      "unauthenticated",
    );
    assert.equal(hasCapability(alice, "export"), true);
    assert.equal(hasCapability(alice, "delete"), false);
    assert.equal(hasCapability(anon, "export"), false);
    assert.equal(requireCapability(alice, "export"), alice);
    assert.equal(
      kindOf(() => requireCapability(alice, "delete")),
      "permission_denied",
    );
    assert.equal(
      kindOf(() => requireCapability(anon, "export")),
      "unauthenticated",
    );
    assert.equal(requireRole(alice, "admin"), alice);
    assert.equal(
      kindOf(() => requireRole(alice, "owner")),
      "permission_denied",
    );
    assert.equal(
      kindOf(() => requireRole(anon, "admin")),
      "unauthenticated",
    );
  });

  it("a requirement admits any one scheme with all of its scopes", () => {
    const need = { jwt: ["a", "b"], apikey: [] };
    const ok = (auth: ReturnType<typeof authenticated>) => securityRefusal("m", need, auth);
    assert.equal(ok(authenticated("jwt", "x", {}, { scopes: ["b", "a", "c"] })), null);
    assert.equal(ok(authenticated("apikey", "w")), null);
    assert.equal(ok(authenticated("jwt", "x", {}, { scopes: ["a"] }))?.kind, "permission_denied");
    assert.equal(ok(authenticated("mtls", "s", {}, { scopes: ["a", "b"] }))?.kind, "permission_denied");
    assert.equal(securityRefusal("m", need, anonymous())?.kind, "unauthenticated");
    assert.equal(securityRefusal("m", null, anonymous()), null);
    // A scheme named like an Object.prototype key is not a requirement.
    assert.equal(ok(authenticated("toString", "t"))?.kind, "permission_denied");
  });
});
