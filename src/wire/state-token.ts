/**
 * Sealed, expiring state tokens for stateless stream continuation (HTTP). Pure: no I/O, no clock
 * or randomness beyond what the caller passes in (defaults: `Date.now()` and WebCrypto).
 *
 * Layout of a sealed token (bytes):
 *
 *   [0]      version (1)
 *   [1..25)  XChaCha20-Poly1305 nonce (24 bytes)
 *   [25..)   ciphertext || 16-byte Poly1305 tag
 *
 * The plaintext is: kind (1 byte), issued-at (u64 big-endian, seconds since the epoch), then
 * the fields, each a u32 big-endian length followed by its bytes. The additional authenticated
 * data binds the token to whatever the caller chooses (protocol, method, caller identity), so a
 * token replayed against another method or by another principal fails to open.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha";

/** The token layout version this module writes and reads. */
export const STATE_TOKEN_VERSION = 1;
/** Bytes of key material the AEAD takes. */
export const STATE_TOKEN_KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES;

/** What a token carries: `cursor` (per-turn state) or `call` (fixed for the stream's life). */
export type StateTokenKind = "cursor" | "call";

const KIND_BYTE: Record<StateTokenKind, number> = { cursor: 1, call: 2 };

/** Why a token did not open. */
export type StateTokenFailure = "malformed" | "forged" | "expired" | "wrong_kind";

/** A token that cannot be used; `reason` says why. */
export class StateTokenError extends Error {
  constructor(
    readonly reason: StateTokenFailure,
    message: string,
  ) {
    super(message);
    this.name = "StateTokenError";
  }
}

/**
 * XChaCha20-Poly1305 (24-byte nonce, 16-byte tag), as tokens are sealed. The default is
 * `@noble/ciphers` (pure JavaScript, runs anywhere); a Node server passes a faster one of the same
 * cipher (the HTTP transport's, which uses OpenSSL).
 */
export interface TokenCipher {
  /** `plain` sealed: ciphertext followed by the tag. */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): Uint8Array;
  /** The plaintext of `sealed` (ciphertext and tag); throws when it does not authenticate. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array;
}

/** XChaCha20-Poly1305 from `@noble/ciphers`. */
export const nobleXChaCha20Poly1305: TokenCipher = {
  seal: (key, nonce, aad, plain) => xchacha20poly1305(key, nonce, aad).encrypt(plain),
  open: (key, nonce, aad, sealed) => xchacha20poly1305(key, nonce, aad).decrypt(sealed),
};

export interface SealOptions {
  /** 32-byte AEAD key. */
  readonly key: Uint8Array;
  /** Additional authenticated data the opener must present identically. */
  readonly aad: Uint8Array;
  /** Issue time in seconds since the epoch. Default: now. */
  readonly now?: number;
  /**
   * 24-byte nonce, never used twice with one key: pass one only from a CSPRNG (the HTTP server
   * draws from a pooled `randomFillSync`) or in tests. Default: random (WebCrypto).
   */
  readonly nonce?: Uint8Array;
  /** Default: `nobleXChaCha20Poly1305`. */
  readonly cipher?: TokenCipher;
}

export interface OpenOptions {
  readonly key: Uint8Array;
  readonly aad: Uint8Array;
  /** Lifetime in seconds; a token issued longer ago than this is expired. 0 disables expiry. */
  readonly ttlSeconds: number;
  /** Current time in seconds since the epoch. Default: now. */
  readonly now?: number;
  /** Default: `nobleXChaCha20Poly1305`. */
  readonly cipher?: TokenCipher;
}

/** An opened token: its fields and when it was issued. */
export interface OpenedToken {
  readonly fields: Uint8Array[];
  /** Seconds since the epoch. */
  readonly issuedAt: number;
}

function checkKey(key: Uint8Array): void {
  if (key.byteLength !== STATE_TOKEN_KEY_BYTES) {
    throw new TypeError(`state token key must be ${STATE_TOKEN_KEY_BYTES} bytes, got ${key.byteLength}`);
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Seals `fields` into a token of `kind`. */
export function sealStateToken(kind: StateTokenKind, fields: readonly Uint8Array[], opts: SealOptions): Uint8Array {
  checkKey(opts.key);
  const nonce = opts.nonce ?? globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  if (nonce.byteLength !== NONCE_BYTES) throw new TypeError(`nonce must be ${NONCE_BYTES} bytes`);
  let size = 1 + 8;
  for (const f of fields) size += 4 + f.byteLength;
  const plain = new Uint8Array(size);
  const view = new DataView(plain.buffer);
  plain[0] = KIND_BYTE[kind];
  view.setBigUint64(1, BigInt(Math.floor(opts.now ?? nowSeconds())), false);
  let at = 9;
  for (const f of fields) {
    view.setUint32(at, f.byteLength, false);
    plain.set(f, at + 4);
    at += 4 + f.byteLength;
  }
  const sealed = (opts.cipher ?? nobleXChaCha20Poly1305).seal(opts.key, nonce, opts.aad, plain);
  const out = new Uint8Array(HEADER_BYTES + sealed.byteLength);
  out[0] = STATE_TOKEN_VERSION;
  out.set(nonce, 1);
  out.set(sealed, HEADER_BYTES);
  return out;
}

/** Opens a token of `kind`, returning its fields; throws `StateTokenError` when it cannot be used. */
export function openStateToken(kind: StateTokenKind, token: Uint8Array, opts: OpenOptions): Uint8Array[] {
  return openStateTokenWithTime(kind, token, opts).fields;
}

/**
 * The error for a token issued at `issuedAt` that has outlived `ttlSeconds` at `now`, or that
 * claims to be issued more than `ttlSeconds` ahead of `now` (a clock that far off, or a token
 * minted to outlive its lifetime; the lifetime itself is the tolerance for skew between
 * instances). Null: still valid.
 */
export function expiry(issuedAt: number, ttlSeconds: number, now: number = nowSeconds()): StateTokenError | null {
  if (ttlSeconds <= 0) return null;
  if (now - issuedAt > ttlSeconds) {
    return new StateTokenError("expired", `state token expired ${now - issuedAt - ttlSeconds} s ago`);
  }
  if (issuedAt - now > ttlSeconds) {
    return new StateTokenError("expired", `state token claims to be issued ${issuedAt - now} s in the future`);
  }
  return null;
}

/** `openStateToken`, with the token's issue time. */
export function openStateTokenWithTime(kind: StateTokenKind, token: Uint8Array, opts: OpenOptions): OpenedToken {
  checkKey(opts.key);
  if (token.byteLength < HEADER_BYTES + TAG_BYTES + 9) {
    throw new StateTokenError("malformed", `state token is too short (${token.byteLength} bytes)`);
  }
  if (token[0] !== STATE_TOKEN_VERSION) {
    throw new StateTokenError("malformed", `unsupported state token version ${token[0]}`);
  }
  const nonce = token.subarray(1, HEADER_BYTES);
  let plain: Uint8Array;
  try {
    plain = (opts.cipher ?? nobleXChaCha20Poly1305).open(opts.key, nonce, opts.aad, token.subarray(HEADER_BYTES));
  } catch {
    throw new StateTokenError(
      "forged",
      "state token failed authentication (tampered, issued by a server with another key, or for another caller or method)",
    );
  }
  if (plain[0] !== KIND_BYTE[kind]) {
    throw new StateTokenError("wrong_kind", `state token is not a ${kind} token`);
  }
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const issuedAt = Number(view.getBigUint64(1, false));
  const expired = expiry(issuedAt, opts.ttlSeconds, opts.now);
  if (expired !== null) throw expired;
  const fields: Uint8Array[] = [];
  let at = 9;
  while (at < plain.byteLength) {
    if (at + 4 > plain.byteLength) throw new StateTokenError("malformed", "state token field header is truncated");
    const len = view.getUint32(at, false);
    if (at + 4 + len > plain.byteLength) throw new StateTokenError("malformed", "state token field is truncated");
    fields.push(plain.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return { fields, issuedAt };
}

/** Standard base64 (how tokens travel in `#b64` metadata values). */
export function tokenToBase64(token: Uint8Array): string {
  // Latin-1 text of the bytes, a run of code units per call (a string built a byte at a time
  // cost a 500-byte token ~7 us), then base64.
  let s = "";
  for (let at = 0; at < token.byteLength; at += 4096) {
    s += String.fromCharCode.apply(null, token.subarray(at, at + 4096) as unknown as number[]);
  }
  return btoa(s);
}

/** Decodes a `#b64` metadata value; throws `StateTokenError("malformed")` for non-base64 text. */
export function tokenFromBase64(text: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(text.trim());
  } catch {
    throw new StateTokenError("malformed", "state token is not valid base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
