/** Sealed state tokens at the byte level: layout, round trip, tamper, key, AAD, kind and expiry. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { xchacha20poly1305 } from "@noble/ciphers/chacha";
import {
  openStateToken,
  STATE_TOKEN_VERSION,
  StateTokenError,
  sealStateToken,
  tokenFromBase64,
  tokenToBase64,
} from "../../src/wire/state-token.js";

const key = new Uint8Array(32).map((_, i) => i);
const nonce = new Uint8Array(24).fill(0xab);
const aad = new TextEncoder().encode("aad");
const fields = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new TextEncoder().encode("state")];

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StateTokenError, String(err));
    return err.reason;
  }
  assert.fail("expected a StateTokenError");
}

describe("state tokens", () => {
  it("lays out version, nonce, then the AEAD of kind, issue time and length-prefixed fields", () => {
    const token = sealStateToken("cursor", fields, { key, aad, now: 1_700_000_000, nonce });
    assert.equal(token[0], STATE_TOKEN_VERSION);
    assert.deepEqual(token.subarray(1, 25), nonce);
    const plain = xchacha20poly1305(key, nonce, aad).decrypt(token.subarray(25));
    const expected = new Uint8Array([
      1, // cursor
      0,
      0,
      0,
      0,
      0x65,
      0x53,
      0xf1,
      0x00, // 1_700_000_000 big-endian
      0,
      0,
      0,
      3,
      1,
      2,
      3,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      5,
      ...new TextEncoder().encode("state"),
    ]);
    assert.deepEqual(plain, expected);
    assert.equal(token.byteLength, 1 + 24 + expected.byteLength + 16);
  });

  it("round-trips through base64 and opens within its lifetime", () => {
    const token = sealStateToken("call", fields, { key, aad, now: 1000 });
    const back = tokenFromBase64(tokenToBase64(token));
    assert.deepEqual(back, token);
    assert.deepEqual(openStateToken("call", back, { key, aad, ttlSeconds: 60, now: 1059 }), fields);
    assert.deepEqual(openStateToken("call", back, { key, aad, ttlSeconds: 0, now: 10 ** 9 }), fields);
  });

  it("refuses every flipped bit, a wrong key, a wrong AAD and the wrong kind", () => {
    const token = sealStateToken("cursor", fields, { key, aad, now: 1000, nonce });
    const opts = { key, aad, ttlSeconds: 60, now: 1000 };
    for (let i = 1; i < token.byteLength; i++) {
      const bad = Uint8Array.from(token);
      bad[i]! ^= 0x01;
      assert.equal(
        reason(() => openStateToken("cursor", bad, opts)),
        "forged",
        `byte ${i}`,
      );
    }
    const other = Uint8Array.from(token);
    other[0] = 9;
    assert.equal(
      reason(() => openStateToken("cursor", other, opts)),
      "malformed",
    );
    assert.equal(
      reason(() => openStateToken("cursor", token, { ...opts, key: new Uint8Array(32) })),
      "forged",
    );
    assert.equal(
      reason(() => openStateToken("cursor", token, { ...opts, aad: new TextEncoder().encode("other") })),
      "forged",
    );
    assert.equal(
      reason(() => openStateToken("call", token, opts)),
      "wrong_kind",
    );
    assert.equal(
      reason(() => openStateToken("cursor", token.subarray(0, 30), opts)),
      "malformed",
    );
  });

  it("expires after its lifetime", () => {
    const token = sealStateToken("cursor", fields, { key, aad, now: 1000 });
    assert.equal(
      reason(() => openStateToken("cursor", token, { key, aad, ttlSeconds: 60, now: 1061 })),
      "expired",
    );
  });

  it("is refused when it claims an issue time further ahead than its lifetime, and accepted within it", () => {
    const token = sealStateToken("cursor", fields, { key, aad, now: 1000 });
    assert.deepEqual(openStateToken("cursor", token, { key, aad, ttlSeconds: 60, now: 940 }), fields);
    assert.equal(
      reason(() => openStateToken("cursor", token, { key, aad, ttlSeconds: 60, now: 939 })),
      "expired",
    );
  });

  it("rejects keys of the wrong size and non-base64 text", () => {
    assert.throws(() => sealStateToken("cursor", [], { key: new Uint8Array(16), aad }), TypeError);
    assert.equal(
      reason(() => tokenFromBase64("***")),
      "malformed",
    );
  });
});
