/** Every ready-made authenticator: accepted, refused (with its reason), and chain order. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import {
  AuthConfigError,
  type Authenticator,
  AuthFailure,
  type AuthRequest,
  AuthUnavailableError,
  anonymous,
  apiKeyAuthenticate,
  authenticated,
  bearerAuthenticate,
  bearerAuthenticateStatic,
  type CredentialProblem,
  chainAuthenticate,
  jwtAuthenticate,
  mtlsAuthenticate,
  mtlsAuthenticateXfcc,
  type PeerCertificate,
  parseXfcc,
  requireAuthenticated,
} from "../../src/auth/index.js";
import { RpcError } from "../../src/errors.js";
import { authRequest as req } from "../helpers/auth.js";
import { freePort } from "../helpers/object-stores.js";

async function refusal(auth: Authenticator, request: AuthRequest): Promise<AuthFailure> {
  try {
    await auth(request);
  } catch (err) {
    assert.ok(err instanceof AuthFailure, `expected AuthFailure, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the authenticator to refuse");
}

const cert: PeerCertificate = {
  fingerprint256: "ab12cd34",
  subject: "CN=client-1,O=Example",
  subjectAltName: "DNS:client-1.example",
};

describe("authenticators", { timeout: 30_000 }, () => {
  it("anonymous() and requireAuthenticated()", () => {
    assert.equal(anonymous().authenticated, false);
    assert.throws(
      () => requireAuthenticated(anonymous()),
      (e: unknown) => e instanceof RpcError && e.type === "PermissionError" && e.code === "PERMISSION_DENIED",
    );
    assert.equal(requireAuthenticated(authenticated("d", "p")).principal, "p");
  });

  it("bearerAuthenticate hands the token to its validator", async () => {
    const auth = bearerAuthenticate({
      validate: (token) => {
        if (token !== "good") throw new AuthFailure("invalid_credential", "bad token");
        return authenticated("bearer", "bob");
      },
    });
    assert.equal((await auth(req({ authorization: "Bearer good" }))).principal, "bob");
    assert.equal((await refusal(auth, req({ authorization: "Bearer nope" }))).reason, "invalid_credential");
    assert.equal((await refusal(auth, req())).reason, "missing_credential");
    assert.equal((await refusal(auth, req({ authorization: "Basic eDp5" }))).reason, "invalid_credential");
  });

  it("bearerAuthenticateStatic matches pre-shared tokens", async () => {
    const auth = bearerAuthenticateStatic({
      tokens: new Map([
        ["t-alice", authenticated("static", "alice")],
        ["t-bob", authenticated("static", "bob")],
      ]),
    });
    assert.equal((await auth(req({ authorization: "Bearer t-bob" }))).principal, "bob");
    assert.equal((await refusal(auth, req({ authorization: "Bearer t-bo" }))).reason, "invalid_credential");
    assert.equal((await refusal(auth, req())).reason, "missing_credential");
  });

  describe("jwtAuthenticate", () => {
    const issuer = "https://issuer.example";
    const audience = "quiver-api";

    async function keyPair(kid: string) {
      const { privateKey, publicKey } = await generateKeyPair("ES256");
      const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
      const sign = (claims: Record<string, unknown>, opts: { aud?: string; exp?: number | string } = {}) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: "ES256", kid })
          .setIssuer(issuer)
          .setAudience(opts.aud ?? audience)
          .setIssuedAt()
          .setExpirationTime(opts.exp ?? "5m")
          .sign(privateKey);
      return { jwk, sign };
    }

    it("accepts a valid token and refuses expired, wrong-audience, unknown-key and missing ones", async () => {
      const k1 = await keyPair("k1");
      const stranger = await keyPair("k9");
      const auth = jwtAuthenticate({ issuer, audience: [audience, "other"], jwks: { keys: [k1.jwk] } });
      const ctx = await auth(req({ authorization: `Bearer ${await k1.sign({ sub: "carol", scope: "read" })}` }));
      assert.equal(ctx.principal, "carol");
      assert.equal(ctx.domain, "jwt");
      assert.equal(ctx.claims.scope, "read");
      const expired = await k1.sign({ sub: "carol" }, { exp: Math.floor(Date.now() / 1000) - 60 });
      assert.equal((await refusal(auth, req({ authorization: `Bearer ${expired}` }))).reason, "expired_credential");
      const wrongAud = await k1.sign({ sub: "carol" }, { aud: "someone-else" });
      const aud = await refusal(auth, req({ authorization: `Bearer ${wrongAud}` }));
      assert.equal(aud.reason, "invalid_credential");
      assert.match(aud.message, /aud/);
      const unknown = await stranger.sign({ sub: "mallory" });
      assert.equal((await refusal(auth, req({ authorization: `Bearer ${unknown}` }))).reason, "invalid_credential");
      assert.equal((await refusal(auth, req())).reason, "missing_credential");
    });

    it("follows key rotation at the JWKS endpoint", async () => {
      const k1 = await keyPair("k1");
      const k2 = await keyPair("k2");
      let served: JWK[] = [k1.jwk];
      const http = createServer((_q, s) => {
        s.writeHead(200, { "content-type": "application/json" });
        s.end(JSON.stringify({ keys: served }));
      });
      await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
      const port = (http.address() as { port: number }).port;
      try {
        const auth = jwtAuthenticate({
          issuer,
          audience,
          jwksUri: `http://127.0.0.1:${port}/jwks.json`,
          jwksCooldownMs: 0,
        });
        assert.equal((await auth(req({ authorization: `Bearer ${await k1.sign({ sub: "a" })}` }))).principal, "a");
        served = [k1.jwk, k2.jwk];
        assert.equal((await auth(req({ authorization: `Bearer ${await k2.sign({ sub: "b" })}` }))).principal, "b");
        // A token signed by a key the endpoint never published is refused.
        const never = await (await keyPair("k3")).sign({ sub: "x" });
        assert.equal((await refusal(auth, req({ authorization: `Bearer ${never}` }))).reason, "invalid_credential");
      } finally {
        http.close();
        http.closeAllConnections();
      }
    });
    it("a JWKS endpoint that cannot be had is AuthUnavailableError (503), not a refused token", {
      timeout: 20_000,
    }, async () => {
      const k1 = await keyPair("k1");
      const token = await k1.sign({ sub: "a" });
      const sockets = new Set<import("node:net").Socket>();
      let answer: "silent" | "500" | "garbage" | "keys" = "silent";
      const http = createServer((_q, s) => {
        if (answer === "silent") return;
        if (answer === "500") s.writeHead(500).end();
        else if (answer === "garbage") s.writeHead(200, { "content-type": "application/json" }).end("not json");
        else s.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [k1.jwk] }));
      });
      http.on("connection", (c) => sockets.add(c));
      await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
      const port = (http.address() as { port: number }).port;
      const closedPort = await freePort();
      try {
        const make = (p: number) =>
          jwtAuthenticate({
            issuer,
            audience,
            jwksUri: `http://127.0.0.1:${p}/jwks.json`,
            jwksCooldownMs: 0,
            jwksTimeoutMs: 200,
          });
        for (const [what, p] of [
          ["silent", port],
          ["500", port],
          ["garbage", port],
          ["refused", closedPort],
        ] as const) {
          if (what !== "refused") answer = what;
          const err = await Promise.resolve()
            .then(() => make(p)(req({ authorization: `Bearer ${token}` })))
            .catch((e: unknown) => e);
          assert.ok(err instanceof AuthUnavailableError, `${what}: ${String(err)}`);
        }
        answer = "keys";
        const auth = make(port);
        assert.equal((await auth(req({ authorization: `Bearer ${token}` }))).principal, "a");
        // A token no published key signed is still refused, not unavailable.
        const never = await (await keyPair("k3")).sign({ sub: "x" });
        assert.equal((await refusal(auth, req({ authorization: `Bearer ${never}` }))).reason, "invalid_credential");
      } finally {
        for (const c of sockets) c.destroy();
        http.close();
      }
    });
  });

  it("mtlsAuthenticate by fingerprint and by subject", async () => {
    const byFp = mtlsAuthenticate({ fingerprints: { "AB:12:CD:34": "svc-a" } });
    const ctx = await byFp(req({}, cert));
    assert.equal(ctx.principal, "svc-a");
    assert.equal(ctx.domain, "mtls");
    assert.equal((await refusal(byFp, req({}, { ...cert, fingerprint256: "ffff" }))).reason, "invalid_credential");
    assert.equal((await refusal(byFp, req())).reason, "missing_credential");

    const bySubject = mtlsAuthenticate({ subject: { allowed: ["client-1"] } });
    assert.equal((await bySubject(req({}, cert))).principal, "client-1");
    const other = { ...cert, subject: "CN=client-2,O=Example" };
    assert.equal((await refusal(bySubject, req({}, other))).reason, "invalid_credential");
    const custom = mtlsAuthenticate({ subject: { principal: (c) => c.subjectAltName.replace(/^DNS:/, "") } });
    assert.equal((await custom(req({}, cert))).principal, "client-1.example");
  });

  it("mtlsAuthenticateXfcc parses Envoy's header", async () => {
    const header =
      'By=spiffe://proxy;Hash=abc;Subject="CN=client-7,O=Example, Inc";URI=spiffe://client;DNS=a.example;DNS=b.example,Hash=def;Subject="CN=proxy"';
    const elements = parseXfcc(header);
    assert.equal(elements.length, 2);
    assert.deepEqual(elements[0]!.dns, ["a.example", "b.example"]);
    assert.equal(elements[0]!.subject, "CN=client-7,O=Example, Inc");
    const auth = mtlsAuthenticateXfcc();
    const ctx = await auth(req({ "x-forwarded-client-cert": header }));
    assert.equal(ctx.principal, "client-7");
    assert.equal(ctx.claims.uri, "spiffe://client");
    assert.equal(
      (await mtlsAuthenticateXfcc({ selectElement: "last" })(req({ "x-forwarded-client-cert": header }))).principal,
      "proxy",
    );
    assert.equal((await refusal(auth, req())).reason, "proxy_required");
  });

  it("chainAuthenticate tries members in order and combines reasons", async () => {
    const calls: string[] = [];
    const refuse =
      (name: string, reason: "missing_credential" | "invalid_credential" | "insufficient_scope"): Authenticator =>
      () => {
        calls.push(name);
        throw new AuthFailure(reason, `${name} refused`);
      };
    const accept =
      (name: string): Authenticator =>
      () => {
        calls.push(name);
        return authenticated("chain", name);
      };
    assert.equal(
      (await chainAuthenticate(refuse("a", "missing_credential"), accept("b"), accept("c"))(req())).principal,
      "b",
    );
    assert.deepEqual(calls, ["a", "b"]);
    calls.length = 0;
    const all = await refusal(
      chainAuthenticate(refuse("a", "missing_credential"), refuse("b", "invalid_credential")),
      req(),
    );
    assert.equal(all.reason, "invalid_credential");
    assert.match(all.message, /a refused; b refused/);
    const none = await refusal(
      chainAuthenticate(refuse("a", "missing_credential"), refuse("b", "missing_credential")),
      req(),
    );
    assert.equal(none.reason, "missing_credential");
    calls.length = 0;
    const forbidden = await refusal(chainAuthenticate(refuse("a", "insufficient_scope"), accept("b")), req());
    assert.equal(forbidden.reason, "insufficient_scope");
    assert.deepEqual(calls, ["a"]);
    assert.throws(() => chainAuthenticate(), TypeError);
  });
});

describe("credential configuration", () => {
  const alice = authenticated("bearer", "alice");
  /** Asserts `build` throws an AuthConfigError for `problem` at `index`, never quoting `secret`. */
  function refused(build: () => unknown, problem: CredentialProblem, index: number, secret?: string): AuthConfigError {
    try {
      build();
    } catch (err) {
      assert.ok(err instanceof AuthConfigError, `expected AuthConfigError, got ${String(err)}`);
      assert.ok(err instanceof TypeError);
      assert.equal(err.problem, problem, err.message);
      assert.equal(err.index, index, err.message);
      assert.match(err.message, new RegExp(`entry #${index + 1}`));
      if (secret !== undefined)
        assert.ok(!err.message.includes(secret), `the message quotes the credential: ${err.message}`);
      return err;
    }
    assert.fail(`expected AuthConfigError (${problem})`);
  }

  it("apiKeyAuthenticate refuses an unset environment variable used as a key, at construction", () => {
    const env: Record<string, string | undefined> = { GOOD: "k-good-1" };
    // \`{ [process.env.X!]: ... }\` with X unset: the key is the text "undefined".
    const err = refused(
      () => apiKeyAuthenticate({ keys: { [env.GOOD!]: "a", [env.UNSET!]: "nightly-export" } }),
      "placeholder",
      1,
    );
    assert.equal(err.factory, "apiKeyAuthenticate");
    assert.equal(err.option, "keys");
    assert.match(err.message, /"undefined".*unset/);
    // With a Map the key is undefined itself.
    refused(() => apiKeyAuthenticate({ keys: new Map([[env.UNSET as string, "x"]]) }), "missing", 0);
    refused(() => apiKeyAuthenticate({ keys: { null: "x" } }), "placeholder", 0);
    refused(() => apiKeyAuthenticate({ keys: { NULL: "x" } }), "placeholder", 0);
  });

  it("apiKeyAuthenticate refuses empty, blank and padded keys without quoting them", () => {
    refused(() => apiKeyAuthenticate({ keys: { "": "x" } }), "empty", 0);
    refused(() => apiKeyAuthenticate({ keys: { "k-1": "a", " \t ": "x" } }), "blank", 1);
    // A key read from a file with a CRLF line ending could never match: the header value is trimmed.
    refused(() => apiKeyAuthenticate({ keys: { "k-very-secret-value\r": "x" } }), "whitespace", 0, "k-very-secret");
    refused(() => apiKeyAuthenticate({ keys: { " k-very-secret-value": "x" } }), "whitespace", 0, "k-very-secret");
  });

  it("apiKeyAuthenticate refuses a key mapped to no caller, and a table that is not a map", () => {
    const unset: string | undefined = undefined;
    refused(() => apiKeyAuthenticate({ keys: { "k-1": unset as unknown as string } }), "missing", 0, "k-1");
    refused(() => apiKeyAuthenticate({ keys: { "k-1": "" } }), "missing", 0);
    // An array of pairs would make "0" and "1" the keys.
    assert.throws(
      () => apiKeyAuthenticate({ keys: [["k-1", "a"]] as unknown as Record<string, string> }),
      /keys must be a Map or an object/,
    );
  });

  it("bearerAuthenticateStatic refuses missing, placeholder and whitespace-holding tokens", () => {
    refused(() => bearerAuthenticateStatic({ tokens: { undefined: alice } }), "placeholder", 0);
    refused(() => bearerAuthenticateStatic({ tokens: { "": alice } }), "empty", 0);
    refused(() => bearerAuthenticateStatic({ tokens: { "   ": alice } }), "blank", 0);
    refused(() => bearerAuthenticateStatic({ tokens: new Map([[null as unknown as string, alice]]) }), "missing", 0);
    // A bearer token cannot hold whitespace on the wire, so this one could never be presented.
    refused(() => bearerAuthenticateStatic({ tokens: { "tok-a": alice, "tok en": alice } }), "whitespace", 1, "tok en");
    refused(
      () => bearerAuthenticateStatic({ tokens: { "tok-a": undefined as unknown as typeof alice } }),
      "missing",
      0,
      "tok-a",
    );
  });

  it("mtlsAuthenticate refuses repeated, placeholder and malformed fingerprints", () => {
    const dup = refused(
      () => mtlsAuthenticate({ fingerprints: { "AB:12:CD:34": "svc-a", ab12cd34: "svc-b" } }),
      "duplicate",
      1,
    );
    assert.match(dup.message, /same fingerprint as entry #1/);
    refused(() => mtlsAuthenticate({ fingerprints: { undefined: "svc" } }), "placeholder", 0);
    refused(() => mtlsAuthenticate({ fingerprints: { "AB:ZZ": "svc" } }), "malformed", 0);
    refused(() => mtlsAuthenticate({ fingerprints: { "AB:12": "" } }), "missing", 0);
  });

  it("jwtAuthenticate refuses an issuer or audience left unset", () => {
    const jwks = { keys: [] };
    const env: Record<string, string | undefined> = {};
    refused(() => jwtAuthenticate({ issuer: env.ISSUER!, audience: "aud", jwks }), "missing", 0);
    refused(() => jwtAuthenticate({ issuer: "iss", audience: `${env.AUDIENCE}`, jwks }), "placeholder", 0);
    refused(() => jwtAuthenticate({ issuer: ["iss", " "], audience: "aud", jwks }), "blank", 1);
  });

  it("well-formed credentials still authenticate", async () => {
    const keys = apiKeyAuthenticate({ keys: { "k-1": "worker", "k-2": alice } });
    assert.equal((await keys(req({ "x-api-key": " k-1 " }))).principal, "worker");
    const tokens = bearerAuthenticateStatic({ tokens: new Map([["tok-1", alice]]) });
    assert.equal((await tokens(req({ authorization: "Bearer tok-1" }))).principal, "alice");
  });
});
