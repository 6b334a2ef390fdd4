/**
 * Proxy proof: the reference's vectors (minted and derived by vgi-rpc 0.52.2), every refusal
 * reason, the nonce cache's bounds, the gate's modes, requireAll, and the HTTP 401's proxy note.
 * The reference's own TestProxyProof group runs against quiver's worker in test/python-http.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  deriveProofSecret,
  mintProof,
  NonceCache,
  ProofError,
  parseProofSecrets,
  proxyProofGate,
  requireAll,
  verifyProof,
} from "../../src/auth/proxy-proof.js";
import { AuthFailure, type AuthRequest, authenticated } from "../../src/auth/types.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createHttpHandler, type UniversalRequest } from "../../src/transports/http/index.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { requestBytes } from "../helpers/raw-peer.js";

const SECRET = new Uint8Array(32).fill(0x11);
const KID = "conformance-proxy";
const ORIGIN = "conformance-origin";
const secrets = { [KID]: SECRET };

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProofError, String(err));
    assert.equal(err.reason, "proxy_required");
    assert.equal(err.message, "proxy proof required");
    return err.proofReason;
  }
  return "accepted";
}

describe("proxy proof tokens", () => {
  it("mints and derives as the reference does (its vectors)", () => {
    assert.equal(
      mintProof(SECRET, KID, ORIGIN, { now: 1_700_000_000, nonce: "AAAAAAAAAAAAAAAAAAAAAA" }),
      "v1.conformance-proxy.1700000000.AAAAAAAAAAAAAAAAAAAAAA.pbkCqAOjBHRZQEdGllYzePRph5t7AfpPDYCuvS5JqL8",
    );
    assert.equal(
      Buffer.from(deriveProofSecret(SECRET, "edge-proxy", "worker-7")).toString("hex"),
      "75c2b658520cdf6ed02a7a45a0244d6e56904e0d7e30f57d2066138b63443007",
    );
  });

  it("verifies a good proof and names every way one fails", () => {
    const now = 1_700_000_000;
    const good = mintProof(SECRET, KID, ORIGIN, { now, nonce: "AAAAAAAAAAAAAAAAAAAAAA" });
    assert.deepEqual(verifyProof(good, { secrets, originId: ORIGIN, now }), {
      verified: "true",
      proxy: KID,
      kid: KID,
      origin_id: ORIGIN,
      reason: "ok",
    });
    const v = (token: string, at = now, originId = ORIGIN) =>
      reason(() => verifyProof(token, { secrets, originId, now: at }));
    assert.equal(v("garbage"), "malformed");
    assert.equal(v(`${good}x`), "malformed");
    assert.equal(v(good.replace("v1.", "v2.")), "malformed");
    assert.equal(v("x".repeat(600)), "malformed");
    assert.equal(v(mintProof(SECRET, "other-kid", ORIGIN, { now })), "unknown_kid");
    assert.equal(v(good, now + 31), "expired");
    assert.equal(v(good, now - 31), "not_yet_valid");
    assert.equal(v(good, now, "another-worker"), "bad_mac");
    assert.equal(v(`${good.slice(0, -1)}${good.endsWith("A") ? "B" : "A"}`), "bad_mac");
    const cache = new NonceCache(30_000);
    verifyProof(good, { secrets, originId: ORIGIN, now, nonceCache: cache });
    assert.equal(
      reason(() => verifyProof(good, { secrets, originId: ORIGIN, now, nonceCache: cache })),
      "replayed",
    );
  });

  it("bounds the nonce cache by time and by count", () => {
    let clock = 0;
    const cache = new NonceCache(1000, 3, () => clock);
    for (const n of ["a", "b", "c", "d"]) assert.equal(cache.checkAndAdd(n), true);
    assert.equal(cache.evicted, 1);
    assert.equal(cache.checkAndAdd("a"), true, "the oldest was dropped for room");
    assert.equal(cache.checkAndAdd("d"), false);
    clock = 2000;
    assert.equal(cache.checkAndAdd("d"), true, "expired entries are forgotten");
  });

  it("parses secrets strictly", () => {
    assert.deepEqual(Object.keys(parseProofSecrets(`a:${"11".repeat(32)}, b:${"22".repeat(32)}`)), ["a", "b"]);
    assert.throws(() => parseProofSecrets("a"), /expected 'kid:hex'/);
    assert.throws(() => parseProofSecrets(`a:${"1".repeat(63)}`), /not valid hex/);
    assert.throws(() => parseProofSecrets(`a:${"11".repeat(31)}`), /must be 32 bytes/);
    assert.throws(() => parseProofSecrets(`bad kid:${"11".repeat(32)}`), /kid must match/);
    assert.throws(() => parseProofSecrets(" , "), /no secrets/);
  });
});

const req = (headers: Record<string, string>): AuthRequest => ({
  method: "POST",
  path: "/",
  headers: new Headers(headers),
  remoteAddr: "127.0.0.1",
  peerCertificate: null,
});

describe("the proof gate and requireAll", () => {
  it("requires a proof before the credential, and records it in the caller's claims", async () => {
    const rejected: string[] = [];
    const gate = proxyProofGate({ mode: "require", originId: ORIGIN, secrets, onReject: (r) => rejected.push(r) });
    let innerRuns = 0;
    const auth = requireAll(gate, (r) => {
      innerRuns++;
      if (r.headers.get("authorization") !== "Bearer alice") throw new AuthFailure("invalid_credential", "who?");
      return authenticated("bearer", "alice", { team: "x" });
    });
    await assert.rejects(Promise.resolve(auth(req({ authorization: "Bearer alice" }))), ProofError);
    assert.equal(innerRuns, 0);
    const ctx = await auth(req({ authorization: "Bearer alice", "vgi-proxy-proof": mintProof(SECRET, KID, ORIGIN) }));
    assert.equal(ctx.principal, "alice");
    assert.equal(ctx.claims.team, "x");
    assert.equal((ctx.claims.vgi_proxy_proof as { proxy: string }).proxy, KID);
    assert.deepEqual(rejected, ["no_proof"]);
    assert.throws(() => requireAll((() => authenticated("x", "y")) as never), /expects a PreconditionGate/);
  });

  it("in allow mode serves every request, recording whether it was proved", async () => {
    const auth = requireAll(proxyProofGate({ mode: "allow", originId: ORIGIN, secrets }));
    const none = await auth(req({}));
    assert.deepEqual(none.claims.vgi_proxy_proof, {
      verified: "false",
      proxy: "",
      kid: "",
      origin_id: ORIGIN,
      reason: "no_proof",
    });
    const proved = await auth(req({ "vgi-proxy-proof": mintProof(SECRET, KID, ORIGIN) }));
    assert.equal(proved.principal, KID);
  });

  it("refuses configurations that cannot work", () => {
    assert.throws(() => proxyProofGate({ mode: "require", originId: "", secrets }), /originId/);
    assert.throws(() => proxyProofGate({ mode: "require", originId: ORIGIN, secrets: {} }), /at least one secret/);
    assert.throws(
      () => proxyProofGate({ mode: "require", originId: ORIGIN, secrets: { [KID]: new Uint8Array(8) } }),
      /32 bytes/,
    );
    assert.throws(() => proxyProofGate({ mode: "off" as "allow", originId: ORIGIN, secrets }), /mode/);
  });
});

describe("a proof-gated HTTP service", () => {
  const Echo = defineProtocol("quiver.Proof.v1", {}, { ping: unary({}, t.utf8()) });
  const handler = createHttpHandler(createServer({ protocols: [bind(Echo, { ping: () => "pong" })] }), {
    authenticate: requireAll(proxyProofGate({ mode: "require", originId: ORIGIN, secrets })),
  });
  const post = (headers: Record<string, string>): UniversalRequest => ({
    ...req({ "content-type": "application/vnd.apache.arrow.stream", ...headers }),
    path: `/${Echo.name}/ping`,
    readBody: async () => concatBytes(requestBytes("ping", {}, {}, {}, Echo.name, null)),
  });

  it("answers every refusal alike, with the proxy note, and advertises that it requires proofs", async () => {
    const bodies = new Set<string>();
    for (const proof of [undefined, "garbage", mintProof(SECRET, "nope", ORIGIN)]) {
      const res = await handler.handle(post(proof === undefined ? {} : { "vgi-proxy-proof": proof }));
      assert.equal(res.status, 401);
      const h = new Map(res.headers.map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(h.get("vgi-auth-reason"), "proxy_required");
      assert.equal(h.get("vgi-auth-proxy-required"), "true");
      assert.equal(h.get("vgi-proxy-proof-required"), "true");
      const body = JSON.parse(new TextDecoder().decode(concatBytes(res.body)));
      assert.match(body.proxy_hint, /must set the VGI-Proxy-Proof header/);
      bodies.add(JSON.stringify(body));
    }
    assert.equal(bodies.size, 1, "refusals differ");
    const ok = await handler.handle(post({ "vgi-proxy-proof": mintProof(SECRET, KID, ORIGIN) }));
    assert.equal(ok.status, 200);
  });
});
