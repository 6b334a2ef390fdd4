/**
 * The identity conformance fixture (src/conformance/identity.ts) against the reference's
 * `vgi_rpc.conformance.identity_fixture`: the same constants, the same answers from the resolver
 * and the minter for every rule, the header authentication, and `conformance.Whoami.v1` reporting
 * a caller as the reference's `WhoamiImpl` writes it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { GrantRefusedError, IdentityUnavailableError } from "../../src/auth/identity.js";
import { AuthFailure, AuthUnavailableError, authenticated } from "../../src/auth/index.js";
import { listProtocols } from "../../src/client/describe.js";
import { proxy } from "../../src/client/typed.js";
import * as F from "../../src/conformance/identity.js";
import { bind, createServer } from "../../src/server/server.js";
import { authRequest } from "../helpers/auth.js";
import { thrown } from "../helpers/errors.js";
import { PYTHON } from "../helpers/reference.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const TOKENS = [
  F.TOKEN_UNKNOWN,
  F.TOKEN_UNAVAILABLE,
  F.TOKEN_AUTH_UNAVAILABLE,
  F.TOKEN_ZERO_TTL,
  F.TOKEN_MINIMAL,
  F.TOKEN_PADDED_PROBE,
  "conformance-padded-probe",
  "anything else",
];
const PURPOSES = [F.REFUSED_PURPOSE, F.MINIMAL_PURPOSE, F.AUTH_UNAVAILABLE_PURPOSE, "conformance"];

/** What the reference's fixture module holds and answers, asked of it directly. */
const REFERENCE = (() => {
  const script = `
import json, sys
from vgi_rpc.conformance import identity_fixture as f
from vgi_rpc.errors import AuthUnavailableError
from vgi_rpc.rpc._token_identity import GrantRefusedError, IdentityUnavailableError
tokens, purposes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def outcome(fn):
    try:
        r = fn()
    except (AuthUnavailableError, IdentityUnavailableError) as e:
        return {"raised": type(e).__name__, "retry_after": e.retry_after}
    except GrantRefusedError as e:
        return {"raised": type(e).__name__, "message": str(e)}
    if r is None:
        return None
    d = {k: getattr(r, k) for k in r.__dataclass_fields__}
    if "expires_at" in d:
        d["expires_at"] = int(d["expires_at"].timestamp() * 1000)
    return d
print(json.dumps({
    "constants": {k: getattr(f, k) for k in (
        "PRINCIPAL_HEADER", "AUTH_TIME_HEADER", "INTROSPECTOR_PRINCIPAL", "OUTSIDER_PRINCIPAL", "MINTER_PRINCIPAL",
        "OTHER_MINTER_PRINCIPAL", "MAX_AUTH_AGE", "SUBJECT_PRINCIPAL", "GRANT_TOKEN_PREFIX", "GRANT_ID",
        "GRANT_AUDIENCE", "GRANT_MAX_TTL", "WHOAMI_PROTOCOL_NAME", "WHOAMI_PROTOCOL_HASH")},
    "keys": [f.GRANT_KEY_CURRENT.hex(), f.GRANT_KEY_PREVIOUS.hex()],
    "resolve": [outcome(lambda t=t: f.conformance_resolve_token(t)) for t in tokens],
    "mint": [outcome(lambda p=p: f.conformance_mint_grant("who@x", p, ["a", "b"], 60)) for p in purposes],
    "whoami": f.WhoamiImpl().whoami(type("Ctx", (), {"auth": __import__("vgi_rpc.rpc", fromlist=["AuthContext"]).AuthContext(
        domain="grant", authenticated=True, principal="zoë", claims={"scopes": ["r"], "grant_id": "g", "purpose": "p"})})()),
}))
`;
  const r = spawnSync(PYTHON, ["-c", script, JSON.stringify(TOKENS), JSON.stringify(PURPOSES)], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as {
    constants: Record<string, string | number>;
    keys: [string, string];
    resolve: unknown[];
    mint: unknown[];
    whoami: string;
  };
})();

/** Our hook's outcome in the shape the script above reports the reference's. */
async function outcome(fn: () => unknown): Promise<unknown> {
  try {
    const r = (await fn()) as Record<string, unknown> | null;
    if (r === null) return null;
    if ("principal" in r)
      return { principal: r.principal, token_name: r.tokenName ?? "", ttl_seconds: r.ttlSeconds ?? 300 };
    return { token: r.token, expires_at: (r.expiresAt as Date).getTime(), grant_id: r.grantId ?? "" };
  } catch (err) {
    if (err instanceof AuthUnavailableError || err instanceof IdentityUnavailableError) {
      return { raised: err.name, retry_after: err.retryAfterSeconds };
    }
    if (err instanceof GrantRefusedError) return { raised: err.name, message: err.message };
    throw err;
  }
}

describe("the identity conformance fixture is the reference's", () => {
  it("pins the same constants and keys", () => {
    const ours: Record<string, string | number> = {};
    for (const k of Object.keys(REFERENCE.constants)) ours[k] = (F as unknown as Record<string, string | number>)[k]!;
    assert.deepEqual(ours, REFERENCE.constants);
    assert.deepEqual(
      [F.GRANT_KEY_CURRENT, F.GRANT_KEY_PREVIOUS].map((k) => Buffer.from(k).toString("hex")),
      REFERENCE.keys,
    );
  });

  it("resolves and mints exactly as the reference's hooks do, rule by rule", async () => {
    const resolved = await Promise.all(TOKENS.map((t) => outcome(() => F.conformanceResolveToken(t))));
    assert.deepEqual(resolved, REFERENCE.resolve);
    const minted = await Promise.all(
      PURPOSES.map((purpose) =>
        outcome(() => F.conformanceMintGrant({ principal: "who@x", purpose, scopes: ["a", "b"], ttlSeconds: 60 })),
      ),
    );
    assert.deepEqual(minted, REFERENCE.mint);
  });

  it("authenticates from the two headers, auth_time verbatim, and lets a bearer without them fall through", async () => {
    const auth = F.conformanceHeaderAuthenticate(
      authRequest({ [F.PRINCIPAL_HEADER]: "p", [F.AUTH_TIME_HEADER]: "not-a-timestamp" }),
    );
    assert.deepEqual([(await auth).principal, (await auth).claims], ["p", { auth_time: "not-a-timestamp" }]);
    assert.deepEqual((await F.conformanceHeaderAuthenticate(authRequest({ [F.PRINCIPAL_HEADER]: "p" }))).claims, {});
    assert.equal((await F.conformanceHeaderAuthenticate(authRequest())).authenticated, false);
    const bearer = thrown(
      () => F.conformanceHeaderAuthenticate(authRequest({ Authorization: "Bearer t" })),
      AuthFailure,
    );
    assert.equal(bearer.final, false);
  });

  it("hosts conformance.Whoami.v1 with its pinned hash, reporting the caller as the reference writes it", async () => {
    const server = createServer({ protocols: [bind(F.WhoamiProtocol, F.createWhoamiImplementation())] });
    const grant = authenticated("grant", "zoë", { scopes: ["r"], grant_id: "g", purpose: "p" });
    const client = memoryClientAs(server, grant);
    try {
      const listed = (await listProtocols(client)).protocols.find((p) => p.name === F.WHOAMI_PROTOCOL_NAME);
      assert.equal(listed?.hash, F.WHOAMI_PROTOCOL_HASH);
      assert.equal(await proxy(client, F.WhoamiProtocol).whoami(), REFERENCE.whoami);
    } finally {
      await client.close();
    }
    const anonymous = memoryClientAs(server);
    try {
      assert.equal(
        await proxy(anonymous, F.WhoamiProtocol).whoami(),
        '{"authenticated":false,"claims":{},"domain":"","principal":""}',
      );
    } finally {
      await anonymous.close();
    }
  });
});
