/**
 * Sealed grants against the reference's published vectors (vgi-rpc 0.52.2's
 * grant_token_vectors.json): minting byte for byte, every accept and reject case, the
 * configuration's refusals, and tokens crossing between the reference and us in both directions.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  decodeGrantPayload,
  encodeGrantPayload,
  GRANT_TOKEN_PREFIX,
  GrantInvalidError,
  grantKeyId,
  grantKeys,
  grantKeysFromEnv,
  mintGrantToken,
  parseGrantKeys,
  verifyGrantToken,
} from "../../src/auth/grants.js";
import { thrown } from "../helpers/errors.js";
import { PYTHON, referencePackageFile } from "../helpers/reference.js";

const VECTORS_PATH = referencePackageFile("conformance/grant_token_vectors.json");

interface MintCase {
  readonly name: string;
  readonly minting_key_b64: string;
  readonly audience: string;
  readonly max_ttl_seconds: number;
  readonly nonce_hex: string;
  readonly now: number;
  readonly request: {
    readonly principal: string;
    readonly scopes: string[];
    readonly purpose: string;
    readonly ttl_seconds: number;
    readonly grant_id: string;
  };
  readonly claims: {
    readonly principal: string;
    readonly scopes: string[];
    readonly purpose: string;
    readonly grant_id: string;
    readonly issued_at: number;
    readonly expires_at: number;
  };
  readonly kid_hex: string;
  readonly aad_hex: string;
  readonly payload_hex: string;
  readonly token: string;
}

interface VerifyCase {
  readonly name: string;
  readonly token: string;
  readonly now?: number;
  readonly verify_keys_b64?: string[];
  readonly audience?: string;
  readonly expired?: boolean;
}

const V: {
  readonly defaults: {
    readonly verify_keys_b64: string[];
    readonly audience: string;
    readonly max_ttl_seconds: number;
    readonly clock_skew_seconds: number;
    readonly now: number;
  };
  readonly mint: readonly MintCase[];
  readonly accept: readonly VerifyCase[];
  readonly reject: readonly VerifyCase[];
} = JSON.parse(readFileSync(VECTORS_PATH, "utf8"));

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const fromHex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));

function keysFor(c: VerifyCase) {
  return parseGrantKeys(c.verify_keys_b64 ?? V.defaults.verify_keys_b64, {
    audience: c.audience ?? V.defaults.audience,
    maxTtlSeconds: V.defaults.max_ttl_seconds,
    clockSkewSeconds: V.defaults.clock_skew_seconds,
  });
}

const invalid = (fn: () => unknown): GrantInvalidError => thrown(fn, GrantInvalidError);

describe("sealed grant tokens (the reference's vectors)", () => {
  for (const c of V.mint) {
    it(`mints '${c.name}' byte for byte: kid, payload and token`, () => {
      const keys = parseGrantKeys([c.minting_key_b64], { audience: c.audience, maxTtlSeconds: c.max_ttl_seconds });
      assert.equal(hex(grantKeyId(keys.keys[0]!)), c.kid_hex);
      const { token, claims } = mintGrantToken(keys, {
        principal: c.request.principal,
        scopes: c.request.scopes,
        purpose: c.request.purpose,
        ttlSeconds: c.request.ttl_seconds,
        now: c.now,
        grantId: c.request.grant_id,
        nonce: fromHex(c.nonce_hex),
      });
      assert.equal(token, c.token);
      assert.deepEqual(claims, {
        principal: c.claims.principal,
        scopes: c.claims.scopes,
        purpose: c.claims.purpose,
        grantId: c.claims.grant_id,
        issuedAt: c.claims.issued_at,
        expiresAt: c.claims.expires_at,
      });
      assert.equal(hex(encodeGrantPayload(claims)), c.payload_hex);
      assert.deepEqual(decodeGrantPayload(fromHex(c.payload_hex)), claims);
    });

    it(`verifies '${c.name}' under its own key at issue time plus a minute`, () => {
      const keys = parseGrantKeys([c.minting_key_b64], { audience: c.audience, maxTtlSeconds: c.max_ttl_seconds });
      const claims = verifyGrantToken(keys, c.token, { now: c.now + 60 });
      assert.equal(claims.principal, c.claims.principal);
      assert.deepEqual([...claims.scopes], c.claims.scopes);
      assert.equal(claims.expiresAt, c.claims.expires_at);
    });
  }

  for (const c of V.accept) {
    it(`accepts '${c.name}'`, () => {
      const claims = verifyGrantToken(keysFor(c), c.token, { now: c.now ?? V.defaults.now });
      assert.equal(claims.principal, "alice@example.com");
    });
  }

  for (const c of V.reject) {
    it(`refuses '${c.name}' with expired=${c.expired}`, () => {
      const err = invalid(() => verifyGrantToken(keysFor(c), c.token, { now: c.now ?? V.defaults.now }));
      assert.equal(err.expired, c.expired);
      assert.ok(
        !err.message.includes(c.token.slice(GRANT_TOKEN_PREFIX.length, 30)),
        "the message never holds the token",
      );
    });
  }

  it("refuses a token over 4096 characters and one that is not base64url before opening anything", () => {
    const keys = keysFor({ name: "", token: "" });
    assert.match(invalid(() => verifyGrantToken(keys, `${GRANT_TOKEN_PREFIX}${"A".repeat(4100)}`)).message, /too long/);
    assert.match(invalid(() => verifyGrantToken(keys, `${GRANT_TOKEN_PREFIX}abc+def`)).message, /base64url/);
    assert.match(invalid(() => verifyGrantToken(keys, `${GRANT_TOKEN_PREFIX}A`)).message, /base64url/);
    // "AB" decodes to one byte with non-zero trailing bits; its canonical spelling is "AA".
    assert.match(invalid(() => verifyGrantToken(keys, `${GRANT_TOKEN_PREFIX}AB`)).message, /canonical/);
    assert.match(invalid(() => verifyGrantToken(keys, `${GRANT_TOKEN_PREFIX}AAAAAAAAAAA`)).message, /key/);
  });

  it("refuses a truncated or trailing payload, and one that is not UTF-8", () => {
    const basic = V.mint[0]!;
    const payload = fromHex(basic.payload_hex);
    assert.match(invalid(() => decodeGrantPayload(payload.subarray(0, payload.length - 1))).message, /truncated/);
    assert.match(invalid(() => decodeGrantPayload(Uint8Array.from([...payload, 0]))).message, /trailing/);
    const bad = Uint8Array.from(payload);
    bad[20] = 0xff; // inside grant_id "g-0001"
    assert.match(invalid(() => decodeGrantPayload(bad)).message, /UTF-8/);
  });

  it("caps a requested lifetime at the configuration's maximum and refuses a non-positive one", () => {
    const keys = grantKeys([new Uint8Array(32).fill(1)], { maxTtlSeconds: 60 });
    const { claims } = mintGrantToken(keys, { principal: "p", scopes: [], purpose: "", ttlSeconds: 10_000, now: 1000 });
    assert.equal(claims.expiresAt - claims.issuedAt, 60);
    assert.throws(() => mintGrantToken(keys, { principal: "p", scopes: [], purpose: "", ttlSeconds: 0 }), RangeError);
    assert.throws(() => mintGrantToken(keys, { principal: "p", scopes: [], purpose: "", ttlSeconds: 1.5 }), RangeError);
    assert.throws(
      () => mintGrantToken(keys, { principal: "x".repeat(70_000), scopes: [], purpose: "", ttlSeconds: 5 }),
      /65535/,
    );
  });

  it("mints with a fresh random nonce and grant id each time, and verifies what it minted", () => {
    const keys = grantKeys([new Uint8Array(32).fill(7)]);
    const a = mintGrantToken(keys, { principal: "p", scopes: ["s"], purpose: "x", ttlSeconds: 60 });
    const b = mintGrantToken(keys, { principal: "p", scopes: ["s"], purpose: "x", ttlSeconds: 60 });
    assert.notEqual(a.token, b.token);
    assert.notEqual(a.claims.grantId, b.claims.grantId);
    assert.match(a.claims.grantId, /^[0-9a-f]{32}$/);
    assert.deepEqual(verifyGrantToken(keys, a.token), a.claims);
  });
});

describe("grant configuration", () => {
  const key = (fill: number) => new Uint8Array(32).fill(fill);

  it("refuses no key, a key of the wrong length, a repeated key, and unusable limits", () => {
    assert.throws(() => grantKeys([]), /at least one key/);
    assert.throws(() => grantKeys([new Uint8Array(31)]), /exactly 32 bytes/);
    assert.throws(() => grantKeys([key(1), key(1)]), /distinct/);
    assert.throws(() => grantKeys([key(1)], { maxTtlSeconds: 0 }), RangeError);
    assert.throws(() => grantKeys([key(1)], { clockSkewSeconds: -1 }), RangeError);
    assert.throws(() => grantKeys([key(1)], { audience: "a".repeat(65_536) }), RangeError);
  });

  it("parses standard base64 keys, padded or not, and names a bad key by position only", () => {
    const b64 = Buffer.from(key(3)).toString("base64");
    assert.deepEqual(parseGrantKeys([b64]).keys[0], key(3));
    assert.deepEqual(parseGrantKeys([` ${b64.replace(/=+$/, "")} `]).keys[0], key(3));
    assert.throws(() => parseGrantKeys([b64, "not*base64"]), /grant key #2 is not valid base64/);
    assert.throws(() => parseGrantKeys([Buffer.from(new Uint8Array(16)).toString("base64")]), /decodes to 16 bytes/);
  });

  it("reads VGI_RPC_GRANT_* like the reference: off without keys, minting key first", () => {
    assert.equal(grantKeysFromEnv({}), null);
    assert.equal(grantKeysFromEnv({ VGI_RPC_GRANT_KEYS: "  " }), null);
    const [a, b] = [Buffer.from(key(4)).toString("base64"), Buffer.from(key(5)).toString("base64")];
    const keys = grantKeysFromEnv({
      VGI_RPC_GRANT_KEYS: `${a}, ${b},`,
      VGI_RPC_GRANT_AUDIENCE: "aud",
      VGI_RPC_GRANT_MAX_TTL_SECONDS: "120",
    });
    assert.ok(keys !== null);
    assert.deepEqual(keys.keys, [key(4), key(5)]);
    assert.equal(keys.audience, "aud");
    assert.equal(keys.maxTtlSeconds, 120);
    assert.throws(() => grantKeysFromEnv({ VGI_RPC_GRANT_KEYS: a, VGI_RPC_GRANT_MAX_TTL_SECONDS: "1h" }), /integer/);
  });
});

describe("sealed grants cross between the reference and quiver", () => {
  const KEY = new Uint8Array(32).map((_, i) => 0x10 + i);
  const script = `
import json, sys, time
from vgi_rpc.grants import GrantKeys, mint_grant_token, verify_grant_token
keys = GrantKeys(keys=(bytes(range(0x10, 0x30)),), audience="cross", max_ttl_seconds=3600)
ours = verify_grant_token(keys, sys.argv[1])
token, _ = mint_grant_token(keys, principal="zoë", scopes=["r", "w"], purpose="back", ttl_seconds=600)
print(json.dumps({"principal": ours.principal, "scopes": list(ours.scopes), "grant_id": ours.grant_id, "token": token}))
`;

  it("the reference verifies a grant quiver minted, and quiver verifies one the reference minted (random nonces)", () => {
    const keys = grantKeys([KEY], { audience: "cross", maxTtlSeconds: 3600 });
    const mine = mintGrantToken(keys, { principal: "ålice", scopes: ["read"], purpose: "p", ttlSeconds: 300 });
    const r = spawnSync(PYTHON, ["-c", script, mine.token], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { principal: string; scopes: string[]; grant_id: string; token: string };
    assert.deepEqual([out.principal, out.scopes, out.grant_id], ["ålice", ["read"], mine.claims.grantId]);
    const theirs = verifyGrantToken(keys, out.token);
    assert.deepEqual([theirs.principal, [...theirs.scopes], theirs.purpose], ["zoë", ["r", "w"], "back"]);
    assert.equal(theirs.expiresAt - theirs.issuedAt, 600);
  });
});
