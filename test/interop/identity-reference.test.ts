/**
 * Our client calling `vgi_rpc.Identity.v2` on the reference (vgi-rpc 0.52.2): its conformance
 * worker, which hosts `issue_grant` alone when `VGI_RPC_GRANT_KEYS` is set (over a pipe, where no
 * caller is authenticated, so every mint fails closed), and a reference worker with the fixture's
 * hooks and header authentication over HTTP (test/interop/identity_reference_worker.py): both
 * methods, every error kind, its sealed grants opened by our verifier and ours accepted by it.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GRANT_TOKEN_PREFIX, mintGrantToken, verifyGrantToken } from "../../src/auth/grants.js";
import { listProtocols } from "../../src/client/describe.js";
import { proxy } from "../../src/client/typed.js";
import {
  AUTH_TIME_HEADER,
  conformanceGrantKeys,
  GRANT_EXPIRES_AT,
  INTROSPECTOR_PRINCIPAL,
  MINTER_PRINCIPAL,
  OUTSIDER_PRINCIPAL,
  PRINCIPAL_HEADER,
  SUBJECT_PRINCIPAL,
} from "../../src/conformance/identity.js";
import { RpcError } from "../../src/errors.js";
import {
  decodeIssuedGrant,
  decodeTokenIdentity,
  IDENTITY_PROTOCOL,
  IdentityProtocol,
} from "../../src/server/identity.js";
import { connectHttp, HttpError } from "../../src/transports/http/index.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { python, referenceWorker, within } from "../client/helpers.js";
import { rejected } from "../helpers/errors.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const BOTH = "145267755ff90d5c3313d79c7ff771306f2530626380d01cb0e57a951d0f9ec3";
const GRANT_ONLY = "4199df7403c9ca1a02c4c524b405a999eb1489614a1480873ffc23a0e5b0d312";
const JWS = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

const refusedWith = (p: Promise<unknown>): Promise<RpcError> => rejected(p, RpcError);

/** Starts the Python identity worker and waits (bounded) for its `PORT:<n>` line. */
async function startReference(...args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(python(), [join(ROOT, "test/interop/identity_reference_worker.py"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const kill = setTimeout(() => child.kill("SIGKILL"), 120_000);
  kill.unref();
  child.once("exit", () => clearTimeout(kill));
  const port = await within(
    new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const m = /^PORT:(\d+)$/m.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`reference worker exited (${code}) before PORT`)));
    }),
    30_000,
    "the reference identity worker",
  );
  return { url: `http://127.0.0.1:${port}`, child };
}

const stop = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await exited;
};

describe("the reference's conformance worker with VGI_RPC_GRANT_KEYS, over a pipe", () => {
  it("hosts issue_grant alone (the grant-only hash), and refuses an unauthenticated pipe stale_auth", async () => {
    const key = Buffer.from(new Uint8Array(32).fill(0x42)).toString("base64");
    const [cmd, args] = referenceWorker("--pipe", "--describe");
    const client = await connectSubprocess(cmd, args, { env: { ...process.env, VGI_RPC_GRANT_KEYS: key } });
    try {
      const identity = (await listProtocols(client)).protocols.find((p) => p.name === IDENTITY_PROTOCOL);
      assert.equal(identity?.hash, GRANT_ONLY);
      const err = await refusedWith(
        proxy(client, IdentityProtocol).issue_grant({ purpose: "p", scopes: [], ttl_seconds: 60n }),
      );
      assert.deepEqual([err.kind, err.code, err.type], ["stale_auth", "UNAUTHENTICATED", "StaleAuthError"]);
      const absent = await refusedWith(proxy(client, IdentityProtocol).introspect_token({ token: "t" }));
      assert.equal(absent.kind, "method_not_implemented");
    } finally {
      await client.close();
    }
  });
});

describe("the reference hosting both identity hooks, over HTTP", () => {
  let url: string;
  let child: ChildProcess;
  before(async () => {
    ({ url, child } = await startReference());
  });
  after(() => stop(child));

  const as = (principal: string | null, authTime: string | null = null) =>
    proxy(
      connectHttp(url, {
        headers: {
          ...(principal === null ? {} : { [PRINCIPAL_HEADER]: principal }),
          ...(authTime === null ? {} : { [AUTH_TIME_HEADER]: authTime }),
        },
      }),
      IdentityProtocol,
    );

  it("lists the both-methods hash our server reports", async () => {
    const listing = await listProtocols(connectHttp(url));
    assert.equal(listing.protocols.find((p) => p.name === IDENTITY_PROTOCOL)?.hash, BOTH);
  });

  it("introspects for the allowlisted caller, and our client decodes the reference's TokenIdentity", async () => {
    const id = as(INTROSPECTOR_PRINCIPAL);
    assert.deepEqual(decodeTokenIdentity(await id.introspect_token({ token: "anything" })), {
      principal: SUBJECT_PRINCIPAL,
      tokenName: "conformance-subject",
      ttlSeconds: 300,
    });
    assert.deepEqual(decodeTokenIdentity(await id.introspect_token({ token: "conformance-minimal-token" })), {
      principal: SUBJECT_PRINCIPAL,
      tokenName: "",
      ttlSeconds: 300,
    });
  });

  it("refuses with the kinds, codes, types and retry hints our server sends", async () => {
    // Each call starts when its case runs: a call started early could reject before it is awaited.
    const cases: [() => Promise<unknown>, string, string, string][] = [
      [
        () => as(OUTSIDER_PRINCIPAL).introspect_token({ token: "x" }),
        "introspection_refused",
        "PERMISSION_DENIED",
        "IntrospectionRefusedError",
      ],
      [
        () => as(INTROSPECTOR_PRINCIPAL).introspect_token({ token: `${JWS}\u0085` }),
        "token_unresolved",
        "NOT_FOUND",
        "TokenUnresolvedError",
      ],
      [
        () => as(MINTER_PRINCIPAL).issue_grant({ purpose: "p", scopes: [], ttl_seconds: 60n }),
        "stale_auth",
        "UNAUTHENTICATED",
        "StaleAuthError",
      ],
    ];
    for (const [call, kind, code, type] of cases) {
      const err = await refusedWith(call());
      assert.deepEqual([err.kind, err.code, err.type], [kind, code, type]);
    }
    const down = await refusedWith(
      as(INTROSPECTOR_PRINCIPAL).introspect_token({ token: "conformance-auth-unavailable-token" }),
    );
    assert.deepEqual([down.kind, down.code], ["identity_unavailable", "UNAVAILABLE"]);
    assert.deepEqual(down.details, [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 7 }]);
  });

  it("mints for a fresh caller, and our client decodes the reference's IssuedGrant timestamp", async () => {
    const fresh = String(Date.now() / 1000 - 60);
    const grant = decodeIssuedGrant(
      await as(MINTER_PRINCIPAL, fresh).issue_grant({ purpose: "x", scopes: ["a", "b"], ttl_seconds: 5n }),
    );
    assert.deepEqual(grant, {
      token: `conformance-grant-for:${MINTER_PRINCIPAL}|a,b`,
      expiresAt: GRANT_EXPIRES_AT,
      grantId: "conformance-grant-id",
    });
  });
});

describe("the reference minting and accepting sealed grants, over HTTP", () => {
  let url: string;
  let child: ChildProcess;
  before(async () => {
    ({ url, child } = await startReference("--grants"));
  });
  after(() => stop(child));

  it("mints a grant our verifier opens under the fixture keys", async () => {
    const id = proxy(
      connectHttp(url, {
        headers: { [PRINCIPAL_HEADER]: MINTER_PRINCIPAL, [AUTH_TIME_HEADER]: String(Date.now() / 1000) },
      }),
      IdentityProtocol,
    );
    const grant = decodeIssuedGrant(await id.issue_grant({ purpose: "nightly", scopes: ["r"], ttl_seconds: 100_000n }));
    assert.ok(grant.token.startsWith(GRANT_TOKEN_PREFIX));
    const claims = verifyGrantToken(conformanceGrantKeys(), grant.token);
    assert.deepEqual(
      [claims.principal, [...claims.scopes], claims.expiresAt - claims.issuedAt],
      [MINTER_PRINCIPAL, ["r"], 3600],
    );
    assert.equal(grant.expiresAt.getTime(), claims.expiresAt * 1000);
  });

  it("accepts a grant we minted as a bearer (then refuses it a grant, stale_auth) and refuses a forged one 401", async () => {
    const { token } = mintGrantToken(conformanceGrantKeys(), {
      principal: "ours",
      scopes: [],
      purpose: "p",
      ttlSeconds: 60,
    });
    const asGrant = proxy(connectHttp(url, { headers: { Authorization: `Bearer ${token}` } }), IdentityProtocol);
    const stale = await refusedWith(asGrant.issue_grant({ purpose: "child", scopes: [], ttl_seconds: 60n }));
    assert.equal(stale.kind, "stale_auth", "authenticated by our grant, which carries no auth_time");
    const forged = `${token.slice(0, -3)}${token.endsWith("AAA") ? "BBB" : "AAA"}`;
    const asForged = proxy(connectHttp(url, { headers: { Authorization: `Bearer ${forged}` } }), IdentityProtocol);
    const refused = await refusedWith(asForged.issue_grant({ purpose: "child", scopes: [], ttl_seconds: 60n }));
    assert.ok(refused instanceof HttpError);
    assert.deepEqual([refused.status, refused.authReason], [401, "invalid_credential"]);
  });
});
