/**
 * The `vgi_rpc.Identity.v2` guards (trim set, JWS shape, byte cap, allowlist, freshness) and the
 * bearer authenticators that accept sealed grants and resolved tokens, each with a resolver that
 * answers for anything, so a refusal can only come from the guard under test.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { GRANT_TOKEN_PREFIX, grantKeys, mintGrantToken } from "../../src/auth/grants.js";
import {
  checkFreshness,
  checkIntrospector,
  IdentityUnavailableError,
  type ResolveToken,
  rejectJwsShaped,
  sealedGrantMinter,
  trimCredential,
} from "../../src/auth/identity.js";
import { grantAuthenticate, identityAuthenticate, resolveTokenAuthenticate } from "../../src/auth/identity-bearer.js";
import { declareProxyHeaders } from "../../src/auth/proxy-proof.js";
import {
  type Authenticator,
  AuthFailure,
  type AuthRequest,
  AuthUnavailableError,
  anonymous,
  authenticated,
} from "../../src/auth/types.js";
import { RpcError } from "../../src/errors.js";
import { authRequest } from "../helpers/auth.js";
import { rejected, thrown } from "../helpers/errors.js";
import { PYTHON } from "../helpers/reference.js";

const JWS = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const FLOOR = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0];

const rpcError = (fn: () => unknown): RpcError => thrown(fn, RpcError);

describe("the credential guards", () => {
  it("trims exactly the characters Python's str.strip() does, across the BMP", () => {
    const r = spawnSync(PYTHON, ["-c", "print(','.join(str(c) for c in range(0x10000) if chr(c).isspace()))"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const python = r.stdout.trim().split(",").map(Number);
    const ours: number[] = [];
    for (let c = 0; c < 0x10000; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      if (trimCredential(`${String.fromCharCode(c)}x`) === "x") ours.push(c);
    }
    assert.deepEqual(ours, python);
    for (const c of FLOOR) assert.ok(python.includes(c), `U+${c.toString(16)} is on the spec's floor`);
  });

  it("refuses a JWS however it is padded, on either side or both", () => {
    const refused = (token: string) => assert.equal(rpcError(() => rejectJwsShaped(token)).kind, "token_unresolved");
    refused(JWS);
    refused(`${JWS}\n\n`);
    for (const c of FLOOR) {
      const pad = String.fromCharCode(c);
      refused(pad + JWS);
      refused(JWS + pad);
      refused(pad + JWS + pad);
    }
  });

  it("lets two- and four-segment credentials and ordinary keys through", () => {
    for (const token of ["opaque-token", "two.segments", "a.b.c.d", "sk_live_abc123", "  padded  "]) {
      rejectJwsShaped(token);
    }
  });

  it("caps the credential at 4096 UTF-8 bytes as it arrived, untrimmed", () => {
    rejectJwsShaped("a".repeat(4096));
    const refused = (token: string) => assert.equal(rpcError(() => rejectJwsShaped(token)).kind, "token_unresolved");
    refused("a".repeat(4097));
    refused("é".repeat(2100)); // 2100 code points and UTF-16 units, 4200 bytes
    refused(`x${" ".repeat(9000)}`); // trims to one character
    for (const blank of ["", " ", "   ", "\n", "\t\r\n"]) refused(blank);
  });

  it("answers every credential refusal with one type, code and message", () => {
    const seen = new Set(
      [JWS, "a".repeat(5000), "   "].map((t) => {
        const e = rpcError(() => rejectJwsShaped(t));
        return `${e.type}|${e.code}|${e.kind}|${e.message}`;
      }),
    );
    assert.deepEqual([...seen], ["TokenUnresolvedError|NOT_FOUND|token_unresolved|unresolved"]);
  });

  it("admits only authenticated callers on the allowlist", () => {
    const allow = new Set(["proxy"]);
    assert.equal(checkIntrospector(authenticated("d", "proxy"), allow), "proxy");
    for (const auth of [authenticated("d", "other"), anonymous()]) {
      const e = rpcError(() => checkIntrospector(auth, allow));
      assert.deepEqual(
        [e.kind, e.code, e.type],
        ["introspection_refused", "PERMISSION_DENIED", "IntrospectionRefusedError"],
      );
    }
  });

  it("requires a usable, recent auth_time to mint", () => {
    const now = 1_000_000;
    const at = (v: unknown) => authenticated("d", "u", v === undefined ? {} : { auth_time: v });
    assert.equal(checkFreshness(at(now - 60), 900, now), now - 60);
    assert.equal(checkFreshness(at(String(now - 60)), 900, now), now - 60);
    assert.equal(checkFreshness(at(` ${now - 1.5} `), 900, now), now - 1.5);
    assert.equal(checkFreshness(at(now + 60), 900, now), now + 60); // the future passes, as in the reference
    for (const bad of [undefined, "not-a-timestamp", "nan", Number.NaN, "inf", true, now - 901]) {
      const e = rpcError(() => checkFreshness(at(bad), 900, now));
      assert.deepEqual([e.kind, e.code, e.type], ["stale_auth", "UNAUTHENTICATED", "StaleAuthError"]);
    }
    assert.match(rpcError(() => checkFreshness(anonymous(), 900, now)).message, /not authenticated/);
    assert.match(rpcError(() => checkFreshness(at(now - 86_400), 900, now)).message, /86400s ago.*900s ceiling/);
  });
});

describe("the sealed-grant minter", () => {
  const keys = grantKeys([new Uint8Array(32).fill(9)], { maxTtlSeconds: 120 });

  it("mints a sealed grant whose expiresAt is the sealed claim's, capped", async () => {
    const before = Math.floor(Date.now() / 1000);
    const grant = await sealedGrantMinter(keys)({ principal: "u", purpose: "p", scopes: ["a"], ttlSeconds: 9999 });
    assert.ok(grant.token.startsWith(GRANT_TOKEN_PREFIX));
    const expires = grant.expiresAt.getTime() / 1000;
    assert.ok(expires >= before + 120 && expires <= before + 121, `expiresAt ${expires}`);
    assert.match(grant.grantId ?? "", /^[0-9a-f]{32}$/);
  });

  it("refuses a non-positive lifetime and an oversized field with grant_refused", () => {
    const mint = sealedGrantMinter(keys);
    for (const request of [
      { principal: "u", purpose: "p", scopes: [], ttlSeconds: 0 },
      { principal: "u", purpose: "p".repeat(70_000), scopes: [], ttlSeconds: 5 },
    ]) {
      const e = rpcError(() => mint(request));
      assert.deepEqual([e.kind, e.code], ["grant_refused", "PERMISSION_DENIED"]);
    }
  });
});

const req = authRequest;
const bearer = (token: string) => req({ Authorization: `Bearer ${token}` });
/** What `auth` throws for `request`, whether it throws at once or rejects. */
const refusal = (auth: Authenticator, request: AuthRequest): Promise<Error> =>
  rejected(
    Promise.resolve().then(() => auth(request)),
    Error,
  );

describe("identity bearer authenticators", () => {
  const keys = grantKeys([new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)], { audience: "here" });
  const calls: string[] = [];
  const resolve: ResolveToken = (token) => {
    calls.push(token);
    if (token === "down") throw new IdentityUnavailableError("store down", { retryAfterSeconds: 9 });
    if (token === "auth-down") throw new AuthUnavailableError("authority down", { retryAfterSeconds: 4 });
    if (token === "unknown") return null;
    return { principal: "subject", tokenName: "name" };
  };

  it("accepts a sealed grant as its principal, with its claims and scopes and no auth_time", async () => {
    const { token, claims } = mintGrantToken(keys, {
      principal: "alice",
      scopes: ["r"],
      purpose: "job",
      ttlSeconds: 60,
    });
    const auth = await grantAuthenticate(keys)(bearer(token));
    assert.deepEqual(
      [auth.domain, auth.scheme, auth.principal, auth.claims, auth.scopes],
      ["grant", "grant", "alice", { grant_id: claims.grantId, scopes: ["r"], purpose: "job" }, ["r"]],
    );
    assert.equal("auth_time" in auth.claims, false);
  });

  it("refuses a bad grant finally, expired or invalid, and passes a non-grant bearer on", async () => {
    const grant = grantAuthenticate(keys);
    const old = mintGrantToken(keys, { principal: "a", scopes: [], purpose: "", ttlSeconds: 60, now: 1_000 }).token;
    const expired = await refusal(grant, bearer(old));
    assert.ok(expired instanceof AuthFailure && expired.final);
    assert.equal(expired.reason, "expired_credential");
    const other = grantKeys([new Uint8Array(32).fill(1)], { audience: "elsewhere" });
    const foreign = mintGrantToken(other, { principal: "a", scopes: [], purpose: "", ttlSeconds: 60 }).token;
    const invalid = await refusal(grant, bearer(foreign));
    assert.ok(invalid instanceof AuthFailure && invalid.final && invalid.reason === "invalid_credential");
    const plain = await refusal(grant, bearer("opaque"));
    assert.ok(plain instanceof AuthFailure && !plain.final);
  });

  it("resolves an opaque bearer through the hook, domain token", async () => {
    const auth = await resolveTokenAuthenticate(resolve)(bearer("opaque"));
    assert.deepEqual([auth.domain, auth.principal, auth.claims], ["token", "subject", { token_name: "name" }]);
  });

  it("never hands the hook a sealed grant, a JWS or an oversized credential", async () => {
    calls.length = 0;
    const auth = resolveTokenAuthenticate(resolve);
    for (const token of [`${GRANT_TOKEN_PREFIX}abc`, JWS, "a".repeat(4097)]) {
      const err = await refusal(auth, bearer(token));
      assert.ok(err instanceof AuthFailure && !err.final && err.reason === "invalid_credential");
    }
    assert.deepEqual(calls, []);
  });

  it("turns an outage into AuthUnavailableError with the hook's hint, never a refusal", async () => {
    const auth = resolveTokenAuthenticate(resolve);
    const down = await refusal(auth, bearer("down"));
    assert.ok(down instanceof AuthUnavailableError && down.retryAfterSeconds === 9);
    const authDown = await refusal(auth, bearer("auth-down"));
    assert.ok(authDown instanceof AuthUnavailableError && authDown.retryAfterSeconds === 4);
  });

  it("composes after the deployment's authenticator: anonymous without credentials, a bad grant stops the chain", async () => {
    const composed = identityAuthenticate(undefined, { grantKeys: keys, resolveToken: resolve });
    assert.ok(composed !== undefined);
    assert.equal((await composed(req())).authenticated, false);
    assert.equal((await composed(bearer("opaque"))).domain, "token");
    const unknown = await refusal(composed, bearer("unknown"));
    assert.ok(unknown instanceof AuthFailure && unknown.reason === "invalid_credential");
    calls.length = 0;
    const forged = `${mintGrantToken(keys, { principal: "a", scopes: [], purpose: "", ttlSeconds: 60 }).token.slice(0, -4)}AAAA`;
    const stopped = await refusal(composed, bearer(forged));
    assert.ok(stopped instanceof AuthFailure && stopped.final);
    assert.deepEqual(calls, [], "a grant-shaped token never reaches resolveToken");
    const down = await refusal(composed, bearer("down"));
    assert.ok(down instanceof AuthUnavailableError, "the chain passes an outage on");

    const own: Authenticator = (r) => {
      if (r.headers.get("x-key") === "k") return authenticated("own", "keyholder");
      throw new AuthFailure("missing_credential", "no key");
    };
    const both = identityAuthenticate(own, { grantKeys: keys, resolveToken: null });
    assert.ok(both !== undefined);
    assert.equal((await both(req({ "x-key": "k" }))).principal, "keyholder");
    const grant = mintGrantToken(keys, { principal: "g", scopes: [], purpose: "", ttlSeconds: 60 }).token;
    assert.equal((await both(bearer(grant))).domain, "grant");
    assert.equal(identityAuthenticate(own, { grantKeys: null, resolveToken: null }), own);
  });

  it("refuses to add bearers beside an authenticator that relies on a proxy's headers, as the reference does", () => {
    const keys = grantKeys([new Uint8Array(32).fill(7)]);
    const own: Authenticator = () => authenticated("mtls", "client");
    const viaProxy = declareProxyHeaders(own, ["x-forwarded-client-cert"]);
    assert.throws(
      () => identityAuthenticate(viaProxy, { grantKeys: keys, resolveToken: null }),
      (err: unknown) => err instanceof TypeError && /proxy-injected evidence/.test(err.message),
    );
    // Without bearer sources nothing is added, so nothing is refused.
    assert.equal(identityAuthenticate(viaProxy, { grantKeys: null, resolveToken: null }), viaProxy);
  });
});
