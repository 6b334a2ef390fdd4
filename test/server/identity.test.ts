/**
 * `vgi_rpc.Identity.v2` hosted by our server: absent unless configured, narrowed to its
 * configured methods (the pinned protocol hashes, read back through reflection), its guards and
 * error kinds end to end over an in-memory pipe, a stdio pipe pair, a Unix socket and TCP (each
 * naming its caller per connection, as IDENTITY_CONFORMANCE_FIXTURE.md §7 asks every port to
 * cover), and over HTTP the loop sealed grants close: minted by `issue_grant`, accepted back as
 * bearers, never minting another.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Field, List, type Utf8 } from "apache-arrow";
import { grantKeys, verifyGrantToken } from "../../src/auth/grants.js";
import {
  GrantRefusedError,
  IdentityUnavailableError,
  type MintGrant,
  type ResolveToken,
} from "../../src/auth/identity.js";
import { type Authenticator, AuthUnavailableError, anonymous, authenticated } from "../../src/auth/types.js";
import { describeProtocol, listProtocols } from "../../src/client/describe.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import type { AuthContext, CallContext } from "../../src/protocol/context.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import {
  decodeIssuedGrant,
  decodeTokenIdentity,
  IDENTITY_PROTOCOL,
  type IdentityOptions,
  IdentityProtocol,
} from "../../src/server/identity.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { connectHttp, HttpError, listenHttp } from "../../src/transports/http/index.js";
import { rejected } from "../helpers/errors.js";
import { memoryClientAs, type Harness as SessionHarness, sessionHarnesses } from "../helpers/session-harness.js";

const BOTH = "145267755ff90d5c3313d79c7ff771306f2530626380d01cb0e57a951d0f9ec3";
const INTROSPECT_ONLY = "4039fbf6db3e64ae234e0be605b977477150ace892f10b6c691920eaf925e7ac";
const GRANT_ONLY = "4199df7403c9ca1a02c4c524b405a999eb1489614a1480873ffc23a0e5b0d312";
const JWS = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

const Echo = defineProtocol("test.Echo", {}, { who: unary({}, t.utf8()) });
const echo = bind(Echo, {
  who: (_p: Record<string, never>, ctx: CallContext) =>
    JSON.stringify({ domain: ctx.auth.domain, principal: ctx.auth.principal, claims: ctx.auth.claims }),
});

/** Answers for anything but three fixed credentials, so a refusal can only come from a guard. */
const resolveToken: ResolveToken = (token) => {
  if (token === "unknown") return null;
  if (token === "down") throw new IdentityUnavailableError("store down", { retryAfterSeconds: 5 });
  if (token === "auth-down") throw new AuthUnavailableError("authority down", { retryAfterSeconds: 7 });
  if (token === "zero") return { principal: "subject", tokenName: "n", ttlSeconds: 0 };
  if (token === "minimal") return { principal: "subject" };
  return { principal: "subject", tokenName: token === "  padded  " ? "padded" : "n", ttlSeconds: 60 };
};
const mintGrant: MintGrant = ({ principal, purpose, scopes, ttlSeconds }) => {
  if (purpose === "refuse") throw new GrantRefusedError("refused by policy");
  if (purpose === "down") throw new AuthUnavailableError("grant store down", { retryAfterSeconds: 7 });
  return {
    token: `${principal}|${scopes.join(",")}|${ttlSeconds}`,
    expiresAt: new Date(Date.UTC(2030, 0, 1)),
    grantId: "g",
  };
};
const both: IdentityOptions = { resolveToken, introspectPrincipals: ["proxy"], mintGrant };

function serverWith(identity?: IdentityOptions): RpcServer {
  return createServer({ protocols: [echo], ...(identity === undefined ? {} : { identity }) });
}

const memoryClient = memoryClientAs;

const refusedWith = (p: Promise<unknown>): Promise<RpcError> => rejected(p, RpcError);

describe("hosting vgi_rpc.Identity.v2", () => {
  it("is absent unless configured, and absent when no hook is", async () => {
    for (const server of [serverWith(), serverWith({})]) {
      const client = memoryClient(server);
      const hosted = (await listProtocols(client)).protocols.map((p) => p.name);
      assert.deepEqual(hosted, ["test.Echo", "vgi_rpc.Reflection.v1"]);
      await client.close();
    }
  });

  it("is listed after reflection with the pinned hash of exactly its configured methods", async () => {
    const keys = grantKeys([new Uint8Array(32).fill(3)]);
    for (const [identity, hash, methods] of [
      [both, BOTH, ["introspect_token", "issue_grant"]],
      [{ resolveToken, introspectPrincipals: ["proxy"] }, INTROSPECT_ONLY, ["introspect_token"]],
      [{ mintGrant }, GRANT_ONLY, ["issue_grant"]],
      [{ grantKeys: keys }, GRANT_ONLY, ["issue_grant"]],
    ] as const) {
      const client = memoryClient(serverWith(identity));
      const listing = await listProtocols(client);
      assert.deepEqual(
        listing.protocols.map((p) => p.name),
        ["test.Echo", "vgi_rpc.Reflection.v1", IDENTITY_PROTOCOL],
      );
      assert.equal(listing.protocols[2]!.hash, hash);
      const description = await describeProtocol(client, IDENTITY_PROTOCOL);
      assert.deepEqual([...description.methods.keys()], methods);
      for (const m of description.methods.values()) {
        assert.deepEqual([m.methodType, m.hasReturn, m.hasHeader], ["unary", true, false]);
      }
      const issue = description.methods.get("issue_grant");
      if (issue !== undefined) {
        assert.deepEqual(
          issue.paramsSchema.fields.map((f) => f.name),
          ["purpose", "scopes", "ttl_seconds"],
        );
        const scopes = issue.paramsSchema.fields[1]!;
        assert.ok(scopes.type instanceof List && (scopes.type.children[0] as Field<Utf8>).nullable);
      }
      await client.close();
    }
  });

  it("refuses a configuration that would be an open oracle or means nothing", () => {
    assert.throws(() => serverWith({ resolveToken }), /introspectPrincipals must name at least one principal/);
    assert.throws(() => serverWith({ resolveToken, introspectPrincipals: [""] }), /at least one principal/);
    assert.throws(() => serverWith({ introspectPrincipals: ["proxy"] }), /nothing to introspect/);
    assert.throws(() => serverWith({ mintGrant, maxAuthAgeSeconds: 0 }), RangeError);
  });

  it("does not route the method whose hook is absent", async () => {
    const client = memoryClient(
      serverWith({ resolveToken, introspectPrincipals: ["proxy"] }),
      authenticated("d", "u", { auth_time: Date.now() / 1000 }),
    );
    const err = await refusedWith(
      proxy(client, IdentityProtocol).issue_grant({ purpose: "p", scopes: [], ttl_seconds: 60n }),
    );
    assert.equal(err.kind, "method_not_implemented");
    await client.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Raw transports: the caller is named per connection.

type Who = "introspector" | "outsider" | "minter" | "anonymous";
const IDENTITY: Record<Who, AuthContext> = {
  introspector: authenticated("local", "proxy"),
  outsider: authenticated("local", "bob"),
  minter: authenticated("local", "alice", { auth_time: Math.floor(Date.now() / 1000) - 60 }),
  anonymous: anonymous(),
};

type Harness = SessionHarness<Who>;
const harnesses = sessionHarnesses(IDENTITY);

for (const [name, make] of Object.entries(harnesses)) {
  describe(`Identity.v2 over ${name}, callers named per connection`, () => {
    let harness: Harness;
    before(async () => {
      harness = await make(serverWith(both));
    });
    after(() => harness.close());

    const call = async <T>(
      who: Who,
      fn: (id: ReturnType<typeof proxy<typeof IdentityProtocol>>) => Promise<T>,
    ): Promise<T> => {
      const client = await harness.connect(who);
      try {
        return await fn(proxy(client, IdentityProtocol));
      } finally {
        await client.close();
      }
    };

    it("resolves a credential for an allowlisted connection, untrimmed, ttl 0 kept and defaults filled", async () => {
      const got = await call("introspector", async (id) => [
        decodeTokenIdentity(await id.introspect_token({ token: "opaque" })),
        decodeTokenIdentity(await id.introspect_token({ token: "  padded  " })),
        decodeTokenIdentity(await id.introspect_token({ token: "zero" })),
        decodeTokenIdentity(await id.introspect_token({ token: "minimal" })),
      ]);
      assert.deepEqual(got, [
        { principal: "subject", tokenName: "n", ttlSeconds: 60 },
        { principal: "subject", tokenName: "padded", ttlSeconds: 60 },
        { principal: "subject", tokenName: "n", ttlSeconds: 0 },
        { principal: "subject", tokenName: "", ttlSeconds: 300 },
      ]);
    });

    it("refuses a connection off the allowlist or anonymous before looking at the credential", async () => {
      for (const who of ["outsider", "anonymous"] as const) {
        for (const token of ["opaque", JWS, "unknown"]) {
          const err = await refusedWith(call(who, (id) => id.introspect_token({ token })));
          assert.deepEqual(
            [err.kind, err.code, err.type],
            ["introspection_refused", "PERMISSION_DENIED", "IntrospectionRefusedError"],
          );
          assert.ok(!err.message.includes(token));
        }
      }
    });

    it("answers every rejected credential alike, and an outage apart with its retry hint", async () => {
      const seen = new Set<string>();
      for (const token of ["unknown", JWS, `\u0085${JWS}\u00a0`, "é".repeat(2100), "   "]) {
        const err = await refusedWith(call("introspector", (id) => id.introspect_token({ token })));
        seen.add(`${err.kind}|${err.code}|${err.type}|${err.message}`);
      }
      assert.deepEqual([...seen], ["token_unresolved|NOT_FOUND|TokenUnresolvedError|unresolved"]);
      for (const [token, hint] of [
        ["down", 5],
        ["auth-down", 7],
      ] as const) {
        const err = await refusedWith(call("introspector", (id) => id.introspect_token({ token })));
        assert.deepEqual(
          [err.kind, err.code, err.type],
          ["identity_unavailable", "UNAVAILABLE", "IdentityUnavailableError"],
        );
        assert.deepEqual(err.details, [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: hint }]);
      }
    });

    it("mints for the calling connection only when it authenticated recently", async () => {
      const grant = decodeIssuedGrant(
        await call("minter", (id) => id.issue_grant({ purpose: "p", scopes: ["r", "w"], ttl_seconds: 60n })),
      );
      assert.deepEqual(grant, { token: "alice|r,w|60", expiresAt: new Date(Date.UTC(2030, 0, 1)), grantId: "g" });
      for (const who of ["anonymous", "introspector"] as const) {
        const err = await refusedWith(
          call(who, (id) => id.issue_grant({ purpose: "p", scopes: [], ttl_seconds: 60n })),
        );
        assert.deepEqual([err.kind, err.code, err.type], ["stale_auth", "UNAUTHENTICATED", "StaleAuthError"]);
      }
      const refused = await refusedWith(
        call("minter", (id) => id.issue_grant({ purpose: "refuse", scopes: [], ttl_seconds: 1n })),
      );
      assert.deepEqual(
        [refused.kind, refused.code, refused.message],
        ["grant_refused", "PERMISSION_DENIED", "refused by policy"],
      );
      const down = await refusedWith(
        call("minter", (id) => id.issue_grant({ purpose: "down", scopes: [], ttl_seconds: 1n })),
      );
      assert.equal(down.kind, "identity_unavailable");
      assert.deepEqual(down.details, [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 7 }]);
      const nulls = await refusedWith(
        call("minter", (id) =>
          id.issue_grant({ purpose: "p", scopes: ["a", null as unknown as string], ttl_seconds: 1n }),
        ),
      );
      assert.deepEqual([nulls.code, nulls.message], ["INVALID_ARGUMENT", "scopes must not contain null"]);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP: sealed grants and resolved tokens accepted back as bearers.

describe("Identity.v2 over HTTP: the bearer loop", () => {
  const keys = grantKeys([new Uint8Array(32).fill(0x21), new Uint8Array(32).fill(0x22)], {
    audience: "test",
    maxTtlSeconds: 600,
  });
  /** A deployment authenticator: an API key names a caller and carries a fresh auth_time. */
  const apiKey: Authenticator = (req) => {
    const key = req.headers.get("x-api-key");
    if (key === null) throw new Error("no API key");
    return authenticated("apikey", key, { auth_time: Math.floor(Date.now() / 1000) - 5 });
  };
  let url: string;
  let close: () => Promise<void>;
  before(async () => {
    const server = serverWith({ resolveToken, introspectPrincipals: ["proxy"], grantKeys: keys });
    const listener = await listenHttp(server, { authenticate: apiKey });
    url = listener.url;
    close = () => listener.close();
  });
  after(() => close());

  const who = async (headers: Record<string, string>) =>
    JSON.parse(await proxy(connectHttp(url, { headers }), Echo).who()) as {
      domain: string;
      principal: string;
      claims: unknown;
    };

  it("mints a sealed grant that then authenticates as its principal, domain grant, no auth_time", async () => {
    const id = proxy(connectHttp(url, { headers: { "X-API-Key": "alice" } }), IdentityProtocol);
    const grant = decodeIssuedGrant(
      await id.issue_grant({ purpose: "nightly", scopes: ["read"], ttl_seconds: 99_999n }),
    );
    const claims = verifyGrantToken(keys, grant.token);
    assert.deepEqual(
      [claims.principal, claims.expiresAt - claims.issuedAt, claims.grantId],
      ["alice", 600, grant.grantId],
    );
    assert.equal(grant.expiresAt.getTime(), claims.expiresAt * 1000);
    assert.deepEqual(await who({ Authorization: `Bearer ${grant.token}` }), {
      domain: "grant",
      principal: "alice",
      claims: { grant_id: grant.grantId, scopes: ["read"], purpose: "nightly" },
    });
    const again = proxy(connectHttp(url, { headers: { Authorization: `Bearer ${grant.token}` } }), IdentityProtocol);
    const err = await refusedWith(again.issue_grant({ purpose: "child", scopes: [], ttl_seconds: 60n }));
    assert.equal(err.kind, "stale_auth", "a grant never mints a grant");
  });

  it("refuses a tampered grant 401 without falling through to the resolver, which would accept anything", async () => {
    const id = proxy(connectHttp(url, { headers: { "X-API-Key": "alice" } }), IdentityProtocol);
    const { token } = decodeIssuedGrant(await id.issue_grant({ purpose: "p", scopes: [], ttl_seconds: 60n }));
    const mid = token.length - 10;
    const tampered = token.slice(0, mid) + (token[mid] === "A" ? "B" : "A") + token.slice(mid + 1);
    const err = await refusedWith(who({ Authorization: `Bearer ${tampered}` }));
    assert.ok(err instanceof HttpError);
    assert.deepEqual([err.status, err.authReason], [401, "invalid_credential"]);
  });

  it("authenticates a resolved bearer, refuses an unknown one, and answers an outage 503 with Retry-After", async () => {
    assert.deepEqual(await who({ Authorization: "Bearer opaque" }), {
      domain: "token",
      principal: "subject",
      claims: { token_name: "n" },
    });
    const unknown = await refusedWith(who({ Authorization: "Bearer unknown" }));
    assert.ok(unknown instanceof HttpError && unknown.status === 401);
    const jws = await refusedWith(who({ Authorization: `Bearer ${JWS}` }));
    assert.ok(jws instanceof HttpError && jws.status === 401, "a JWS is never resolved");
    for (const [token, hint] of [
      ["down", "5"],
      ["auth-down", "7"],
    ] as const) {
      const res = await fetch(`${url}/test.Echo/who`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), hint);
      await res.body?.cancel();
    }
  });

  it("leaves the deployment's authenticator alone with identityBearer: false", async () => {
    const server = serverWith({ resolveToken, introspectPrincipals: ["proxy"], grantKeys: keys });
    const listener = await listenHttp(server, { authenticate: apiKey, identityBearer: false });
    try {
      const err = await refusedWith(
        proxy(connectHttp(listener.url, { headers: { Authorization: "Bearer opaque" } }), Echo).who(),
      );
      assert.ok(err instanceof HttpError && err.status === 401);
    } finally {
      await listener.close();
    }
  });
});
