/**
 * The HTTP server's stream tokens: the OpenSSL-backed XChaCha20-Poly1305 against the draft's test
 * vector and `@noble/ciphers`, the nonce pool, and the cache of opened call tokens.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { afterEach, describe, it, mock } from "node:test";
import { xchacha20poly1305 } from "@noble/ciphers/chacha";
import { schemaOf } from "../../src/protocol/batch.js";
import type { AuthContext } from "../../src/protocol/context.js";
import { defineProtocol, producer } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { coreOf } from "../../src/server/types.js";
import { tokenCipher, tokenNonce } from "../../src/transports/http/aead.js";
import { openCallToken, sealCallToken, type TokenKeyring } from "../../src/transports/http/tokens.js";
import { EMPTY_SCHEMA } from "../../src/wire/batches.js";
import { tokenFromBase64, tokenToBase64 } from "../../src/wire/state-token.js";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

describe("the HTTP token cipher", () => {
  it("matches draft-irtf-cfrg-xchacha-03's AEAD_XChaCha20_Poly1305 test vector, and opens it", () => {
    const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
    const aad = hex("50515253c0c1c2c3c4c5c6c7");
    const plain = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = tokenCipher.seal(key, nonce, aad, plain);
    assert.equal(
      Buffer.from(sealed).toString("hex"),
      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e" +
        "c0875924c1c7987947deafd8780acf49",
    );
    assert.deepEqual(tokenCipher.open(key, nonce, aad, sealed), plain);
  });

  it("seals what @noble/ciphers seals, opens its output, and refuses tampering, at any byte offset", () => {
    for (let round = 0; round < 200; round++) {
      // Inputs at odd offsets inside larger buffers, as token fields arrive (the nonce at offset 1).
      const view = (n: number) => {
        const at = 1 + (round % 5);
        const backing = new Uint8Array(n + at);
        backing.set(randomBytes(n + at));
        return backing.subarray(at);
      };
      const key = new Uint8Array(randomBytes(35).buffer, 1 + (round % 3), 32);
      const nonce = view(24);
      const aad = view(round % 40);
      const plain = view(round * 7);
      const theirs = xchacha20poly1305(key, nonce, aad).encrypt(plain);
      const ours = tokenCipher.seal(key, nonce, aad, plain);
      assert.deepEqual(ours, theirs);
      assert.deepEqual(tokenCipher.open(key, nonce, aad, theirs), plain);
      assert.deepEqual(xchacha20poly1305(key, nonce, aad).decrypt(ours), plain);
      const tampered = ours.slice();
      tampered[round % tampered.byteLength]! ^= 1;
      assert.throws(() => tokenCipher.open(key, nonce, aad, tampered));
      const otherAad = new Uint8Array([...aad, 1]);
      assert.throws(() => tokenCipher.open(key, nonce, otherAad, ours));
    }
  });

  it("hands out distinct 24-byte nonces across pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const n = tokenNonce();
      assert.equal(n.byteLength, 24);
      seen.add(Buffer.from(n).toString("hex"));
    }
    assert.equal(seen.size, 1000);
  });
});

describe("token base64", () => {
  it("round-trips every byte value and tokens longer than one 4 KiB run, as Buffer encodes them", () => {
    for (const n of [0, 1, 255, 256, 4095, 4096, 4097, 10_000]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 131 + 7) & 0xff);
      const text = tokenToBase64(bytes);
      assert.equal(text, Buffer.from(bytes).toString("base64"));
      assert.deepEqual(tokenFromBase64(text), bytes);
    }
  });
});

const Svc = defineProtocol(
  "test.Tokens.v1",
  {},
  {
    a: producer({}, { output: { x: t.int64() }, state: { n: t.int64() } }),
    b: producer({}, { output: { x: t.int64() }, state: { n: t.int64() } }),
  },
);
const handler = { init: () => ({ state: { n: 0n } }), produce: (_s: unknown, out: { finish(): void }) => out.finish() };
const server = createServer({ protocols: [bind(Svc, { a: handler, b: handler })] });
const methodA = coreOf(server).resolve("test.Tokens.v1", "a");
const methodB = coreOf(server).resolve("test.Tokens.v1", "b");
const alice = { domain: "test", principal: "alice", authenticated: true, claims: {} } as unknown as AuthContext;
const bob = { domain: "test", principal: "bob", authenticated: true, claims: {} } as unknown as AuthContext;

function keyring(entries: number, ttlSeconds = 60): TokenKeyring & { openedCalls: Map<string, unknown> } {
  return { key: new Uint8Array(32).fill(9), ttlSeconds, openedCalls: new Map(), callTokenCacheEntries: entries };
}

function callToken(keys: TokenKeyring, streamId: string, method = methodA, auth = alice): string {
  const data = {
    callId: new Uint8Array(16).fill(streamId.length),
    streamId,
    outputSchema: schemaOf({ x: t.int64() }),
    inputSchema: EMPTY_SCHEMA,
    responseLimit: 65536,
  };
  return sealCallToken(data, method, auth, keys);
}

describe("the call-token cache", () => {
  afterEach(() => mock.timers.reset());

  it("opens a stream's call token once: later turns get the same data", async () => {
    const keys = keyring(8);
    const text = callToken(keys, "s1");
    const first = await openCallToken(text, methodA, alice, keys);
    assert.equal(first.streamId, "s1");
    assert.equal(first.responseLimit, 65536);
    assert.equal(keys.openedCalls.size, 1);
    assert.equal(await openCallToken(text, methodA, alice, keys), first);
  });

  it("never answers for another method or caller: their AAD differs, so the token does not open", async () => {
    const keys = keyring(8);
    const text = callToken(keys, "s1");
    await openCallToken(text, methodA, alice, keys);
    await assert.rejects(openCallToken(text, methodB, alice, keys), /Invalid call token/);
    await assert.rejects(openCallToken(text, methodA, bob, keys), /Invalid call token/);
    assert.equal(keys.openedCalls.size, 1);
  });

  it("checks a cached token's lifetime on every use", async () => {
    mock.timers.enable({ apis: ["Date"], now: 1_700_000_000_000 });
    const keys = keyring(8, 60);
    const text = callToken(keys, "s1");
    await openCallToken(text, methodA, alice, keys);
    mock.timers.tick(59_000);
    await openCallToken(text, methodA, alice, keys);
    mock.timers.tick(2_000);
    await assert.rejects(openCallToken(text, methodA, alice, keys), /Call token expired/);
    assert.equal(keys.openedCalls.size, 0, "an expired entry is dropped");
  });

  it("keeps at most callTokenCacheEntries, dropping the least recently used", async () => {
    const keys = keyring(2);
    const [t1, t2, t3] = ["s1", "s22", "s333"].map((id) => callToken(keys, id));
    await openCallToken(t1!, methodA, alice, keys);
    await openCallToken(t2!, methodA, alice, keys);
    await openCallToken(t1!, methodA, alice, keys); // t1 is now the most recent
    await openCallToken(t3!, methodA, alice, keys);
    assert.equal(keys.openedCalls.size, 2);
    const kept = [...keys.openedCalls.keys()].map((k) => k.slice(k.lastIndexOf("\n") + 1));
    assert.deepEqual(kept, [t1, t3]);
  });
});
