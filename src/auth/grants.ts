/**
 * Sealed grants: the credential `vgi_rpc.Identity.v2`'s `issue_grant` mints when a deployment
 * configures grant keys, and accepts back as an ordinary bearer. Byte for byte the reference's
 * `vgi_rpc/grants.py` (its `grant_token_vectors.json` pins the format, checked in tests):
 *
 *     "vgig1." || base64url_nopad( kid(8) || envelope )
 *     envelope = 0x01 || nonce(24) || XChaCha20-Poly1305(payload, aad)   (ciphertext || tag(16))
 *     kid      = SHA-256("vgi_rpc.grant.kid.v1\0" || key)[0:8]
 *     aad      = "vgi_rpc.grant.v1\0" || kid || UTF-8(audience)
 *     payload  = issued_at i64 LE || expires_at i64 LE || grant_id, principal, purpose
 *                (each u16 LE length || UTF-8) || scope count u16 LE || scopes (u16 length || UTF-8)
 *
 * A sealed grant is valid until it expires: there is no revocation list. The levers are a short
 * maximum lifetime (`maxTtlSeconds`) and key rotation (the first key mints, every key verifies;
 * dropping a key revokes every grant it sealed).
 */
import { createHash, randomBytes } from "node:crypto";
import { concatBytes } from "../wire/ipc.js";
import { nobleXChaCha20Poly1305 } from "../wire/state-token.js";

/** Every sealed grant starts with this; the version is in the prefix, so another format is another prefix. */
export const GRANT_TOKEN_PREFIX = "vgig1.";
/** Environment variable of `grantKeysFromEnv`: comma-separated standard base64 keys, minting key first. */
export const GRANT_KEYS_ENV = "VGI_RPC_GRANT_KEYS";
/** Environment variable of `grantKeysFromEnv`: the audience bound into every grant. */
export const GRANT_AUDIENCE_ENV = "VGI_RPC_GRANT_AUDIENCE";
/** Environment variable of `grantKeysFromEnv`: the lifetime ceiling in seconds. */
export const GRANT_MAX_TTL_ENV = "VGI_RPC_GRANT_MAX_TTL_SECONDS";
/** Default ceiling on a grant's lifetime: 7 days (expiry is a sealed grant's only revocation). */
export const DEFAULT_GRANT_MAX_TTL_SECONDS = 7 * 24 * 3600;
/** Default allowance for the minting and the verifying clock disagreeing: 60 s. */
export const DEFAULT_GRANT_CLOCK_SKEW_SECONDS = 60;
/** Longest token text the verifier looks at (4096 characters, the reference's cap). */
export const MAX_GRANT_TOKEN_CHARS = 4096;
/** Bytes of a grant key. */
export const GRANT_KEY_BYTES = 32;

const KID_BYTES = 8;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const ENVELOPE_VERSION = 1;
const MAX_FIELD = 0xffff;
const KID_DOMAIN = new TextEncoder().encode("vgi_rpc.grant.kid.v1\0");
const AAD_DOMAIN = new TextEncoder().encode("vgi_rpc.grant.v1\0");
const B64URL = /^[A-Za-z0-9_-]+$/;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A token with the grant prefix that could not be accepted: malformed, sealed with a key this
 * deployment does not hold, for another audience, tampered, or outside its lifetime. One type for
 * every cause, so a forged token and a stale one look alike except for `expired`, which is true
 * only once the token was proven authentic. The message never contains the token.
 */
export class GrantInvalidError extends Error {
  constructor(
    message: string,
    /** Authentic, but not yet valid or past its expiry (beyond the clock skew). */
    readonly expired = false,
  ) {
    super(message);
    this.name = "GrantInvalidError";
  }
}

/** A deployment's grant configuration: made by `grantKeys`, `parseGrantKeys` or `grantKeysFromEnv`. */
export interface GrantKeys {
  /** 32-byte keys, the minting key first; every key verifies. */
  readonly keys: readonly Uint8Array[];
  /** Bound into every token's associated data: deployments with different audiences cannot accept each other's grants. */
  readonly audience: string;
  /** Ceiling on a grant's lifetime in seconds, at minting and at verification. */
  readonly maxTtlSeconds: number;
  /** Tolerance applied to `issuedAt` and `expiresAt` when verifying, in seconds. */
  readonly clockSkewSeconds: number;
}

/** Options of `grantKeys` and `parseGrantKeys`. */
export interface GrantKeysOptions {
  /** The audience bound into every grant. Default: `""`. */
  readonly audience?: string;
  /** Ceiling on a grant's lifetime, in seconds (positive). Default: 604 800 (7 days). */
  readonly maxTtlSeconds?: number;
  /** Clock skew allowed when verifying, in seconds (>= 0). Default: 60. */
  readonly clockSkewSeconds?: number;
}

/** `SHA-256("vgi_rpc.grant.kid.v1\0" || key)[0:8]`: the id a token names its sealing key by. */
export function grantKeyId(key: Uint8Array): Uint8Array {
  const digest = createHash("sha256").update(KID_DOMAIN).update(key).digest();
  return new Uint8Array(digest.subarray(0, KID_BYTES));
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);

/**
 * A grant configuration from raw keys, minting key first. Throws a `TypeError` or `RangeError`
 * for no key, a key that is not exactly 32 bytes, two keys with one id, a lifetime that is not a
 * positive integer, a negative skew, or an audience over 65 535 UTF-8 bytes.
 */
export function grantKeys(keys: readonly Uint8Array[], options: GrantKeysOptions = {}): GrantKeys {
  if (keys.length === 0) throw new TypeError("grant configuration needs at least one key");
  const copies = keys.map((key, i) => {
    if (!(key instanceof Uint8Array) || key.byteLength !== GRANT_KEY_BYTES) {
      throw new TypeError(`grant key #${i + 1} must be exactly ${GRANT_KEY_BYTES} bytes`);
    }
    return new Uint8Array(key);
  });
  const ids = copies.map(grantKeyId);
  if (ids.some((id, i) => ids.findIndex((other) => sameBytes(other, id)) !== i)) {
    throw new TypeError("grant keys must be distinct");
  }
  const audience = options.audience ?? "";
  const maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_GRANT_MAX_TTL_SECONDS;
  const clockSkewSeconds = options.clockSkewSeconds ?? DEFAULT_GRANT_CLOCK_SKEW_SECONDS;
  if (!Number.isSafeInteger(maxTtlSeconds) || maxTtlSeconds <= 0) {
    throw new RangeError(`maxTtlSeconds must be a positive integer, got ${maxTtlSeconds}`);
  }
  if (!Number.isSafeInteger(clockSkewSeconds) || clockSkewSeconds < 0) {
    throw new RangeError(`clockSkewSeconds must be an integer >= 0, got ${clockSkewSeconds}`);
  }
  if (typeof audience !== "string" || utf8.encode(audience).byteLength > MAX_FIELD) {
    throw new RangeError("audience must be a string of at most 65535 UTF-8 bytes");
  }
  return Object.freeze({ keys: Object.freeze(copies), audience, maxTtlSeconds, clockSkewSeconds });
}

/**
 * A grant configuration from keys written as standard base64 (padded or not) of exactly 32 bytes
 * each, minting key first. A key that is not such text throws a `TypeError` naming its position
 * (never its text): a worker refuses to start rather than run with a key it misread.
 */
export function parseGrantKeys(encoded: readonly string[], options: GrantKeysOptions = {}): GrantKeys {
  const keys = encoded.map((text, i) => {
    const stripped = text.trim();
    const padded = stripped + "=".repeat((4 - (stripped.length % 4)) % 4);
    if (stripped === "" || padded.length % 4 !== 0 || !B64.test(padded)) {
      throw new TypeError(`grant key #${i + 1} is not valid base64`);
    }
    const key = new Uint8Array(Buffer.from(padded, "base64"));
    if (key.byteLength !== GRANT_KEY_BYTES) {
      throw new TypeError(
        `grant key #${i + 1} decodes to ${key.byteLength} bytes; exactly ${GRANT_KEY_BYTES} are required`,
      );
    }
    return key;
  });
  return grantKeys(keys, options);
}

/**
 * The grant configuration in `VGI_RPC_GRANT_KEYS` (comma-separated base64 keys, minting key first),
 * `VGI_RPC_GRANT_AUDIENCE` and `VGI_RPC_GRANT_MAX_TTL_SECONDS`, as the reference reads them; null
 * when no key is set (grants off). Throws for a malformed key or lifetime. Unlike the reference,
 * quiver never reads these by itself: pass the result to `ServerOptions.identity.grantKeys`.
 */
export function grantKeysFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): GrantKeys | null {
  const raw = (env[GRANT_KEYS_ENV] ?? "").trim();
  if (raw === "") return null;
  const ttlRaw = (env[GRANT_MAX_TTL_ENV] ?? "").trim();
  let maxTtlSeconds = DEFAULT_GRANT_MAX_TTL_SECONDS;
  if (ttlRaw !== "") {
    if (!/^[+-]?\d+$/.test(ttlRaw))
      throw new TypeError(`${GRANT_MAX_TTL_ENV}=${JSON.stringify(ttlRaw)} is not an integer`);
    maxTtlSeconds = Number(ttlRaw);
  }
  const keys = raw.split(",").filter((part) => part.trim() !== "");
  return parseGrantKeys(keys, { audience: env[GRANT_AUDIENCE_ENV] ?? "", maxTtlSeconds });
}

/** What a verified grant says. Times are whole seconds since the Unix epoch. */
export interface GrantClaims {
  /** Whose standing delegation this is: the caller it was minted for. */
  readonly principal: string;
  /** What it may do; the worker interprets them. */
  readonly scopes: readonly string[];
  /** Why it was minted, for the audit trail. */
  readonly purpose: string;
  /** Correlation handle (not secret). */
  readonly grantId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** What `mintGrantToken` mints. */
export interface GrantMintRequest {
  readonly principal: string;
  readonly scopes: readonly string[];
  readonly purpose: string;
  /** Requested lifetime in seconds (a positive integer); capped at the configuration's `maxTtlSeconds`. */
  readonly ttlSeconds: number;
  /** The clock, in seconds since the epoch. Default: now. For tests and vectors. */
  readonly now?: number;
  /** The grant id. Default: 16 random bytes as hex. For tests and vectors. */
  readonly grantId?: string;
  /** A fixed 24-byte nonce, for test vectors only: reusing a nonce under one key breaks the cipher. Default: random. */
  readonly nonce?: Uint8Array;
}

const aadOf = (keys: GrantKeys, kid: Uint8Array): Uint8Array =>
  concatBytes([AAD_DOMAIN, kid, utf8.encode(keys.audience)]);

function packText(parts: Uint8Array[], value: string, what: string): void {
  const bytes = utf8.encode(value);
  if (bytes.byteLength > MAX_FIELD) throw new RangeError(`grant ${what} is longer than 65535 UTF-8 bytes`);
  const length = new Uint8Array(2);
  new DataView(length.buffer).setUint16(0, bytes.byteLength, true);
  parts.push(length, bytes);
}

/** The sealed payload of `claims`, exactly as the reference lays it out. */
export function encodeGrantPayload(claims: GrantClaims): Uint8Array {
  if (claims.scopes.length > MAX_FIELD) throw new RangeError("a grant carries at most 65535 scopes");
  const times = new Uint8Array(16);
  const view = new DataView(times.buffer);
  view.setBigInt64(0, BigInt(claims.issuedAt), true);
  view.setBigInt64(8, BigInt(claims.expiresAt), true);
  const parts: Uint8Array[] = [times];
  packText(parts, claims.grantId, "grant_id");
  packText(parts, claims.principal, "principal");
  packText(parts, claims.purpose, "purpose");
  const count = new Uint8Array(2);
  new DataView(count.buffer).setUint16(0, claims.scopes.length, true);
  parts.push(count);
  for (const scope of claims.scopes) packText(parts, scope, "scope");
  return concatBytes(parts);
}

/** Parses a payload strictly (exact lengths, valid UTF-8, no trailing bytes); `GrantInvalidError` otherwise. */
export function decodeGrantPayload(payload: Uint8Array): GrantClaims {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  const take = (n: number): number => {
    if (at + n > payload.byteLength) throw new GrantInvalidError("grant payload is truncated");
    const start = at;
    at += n;
    return start;
  };
  const text = (): string => {
    const length = view.getUint16(take(2), true);
    const start = take(length);
    try {
      return strictUtf8.decode(payload.subarray(start, start + length));
    } catch {
      throw new GrantInvalidError("grant payload is not UTF-8");
    }
  };
  const times = take(16);
  const issued = view.getBigInt64(times, true);
  const expires = view.getBigInt64(times + 8, true);
  const grantId = text();
  const principal = text();
  const purpose = text();
  const count = view.getUint16(take(2), true);
  const scopes: string[] = [];
  for (let i = 0; i < count; i++) scopes.push(text());
  if (at !== payload.byteLength) throw new GrantInvalidError("grant payload has trailing bytes");
  const safe = (v: bigint) => v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
  if (!safe(issued) || !safe(expires)) throw new GrantInvalidError("grant lifetime is out of range");
  return { principal, scopes, purpose, grantId, issuedAt: Number(issued), expiresAt: Number(expires) };
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");

/** Unpadded base64url with exactly one spelling per byte string (non-zero trailing bits refused). */
function b64urlStrict(text: string): Uint8Array {
  if (!B64URL.test(text) || text.length % 4 === 1) throw new GrantInvalidError("grant token is not unpadded base64url");
  const raw = new Uint8Array(Buffer.from(text, "base64url"));
  if (b64url(raw) !== text) throw new GrantInvalidError("grant token is not canonical base64url");
  return raw;
}

/**
 * Mints a sealed grant with the configuration's first key. Throws a `RangeError` for a lifetime
 * that is not a positive integer or a field too long to encode.
 */
export function mintGrantToken(
  keys: GrantKeys,
  request: GrantMintRequest,
): { readonly token: string; readonly claims: GrantClaims } {
  const { ttlSeconds } = request;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a positive integer, got ${ttlSeconds}`);
  }
  const issuedAt = request.now === undefined ? Math.floor(Date.now() / 1000) : Math.trunc(request.now);
  if (!Number.isSafeInteger(issuedAt))
    throw new RangeError(`now must be a whole number of seconds, got ${request.now}`);
  const claims: GrantClaims = {
    principal: request.principal,
    scopes: [...request.scopes],
    purpose: request.purpose,
    grantId: request.grantId ?? randomBytes(16).toString("hex"),
    issuedAt,
    expiresAt: issuedAt + Math.min(ttlSeconds, keys.maxTtlSeconds),
  };
  const key = keys.keys[0]!;
  const kid = grantKeyId(key);
  const nonce = request.nonce ?? new Uint8Array(randomBytes(NONCE_BYTES));
  if (nonce.byteLength !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const sealed = nobleXChaCha20Poly1305.seal(key, nonce, aadOf(keys, kid), encodeGrantPayload(claims));
  const token = GRANT_TOKEN_PREFIX + b64url(concatBytes([kid, Uint8Array.of(ENVELOPE_VERSION), nonce, sealed]));
  return { token, claims };
}

/**
 * Verifies a sealed grant and returns its claims; throws `GrantInvalidError` for every cause.
 * The order is the reference's: prefix, length, base64url, key id, AEAD open, payload, then the
 * lifetime (which is inside the ciphertext, so only trusted once the tag verified).
 */
export function verifyGrantToken(keys: GrantKeys, token: string, options: { readonly now?: number } = {}): GrantClaims {
  if (!token.startsWith(GRANT_TOKEN_PREFIX)) throw new GrantInvalidError("not a sealed grant");
  if (token.length > MAX_GRANT_TOKEN_CHARS) throw new GrantInvalidError("grant token is too long");
  const raw = b64urlStrict(token.slice(GRANT_TOKEN_PREFIX.length));
  const kid = raw.subarray(0, KID_BYTES);
  const key = keys.keys.find((k) => sameBytes(grantKeyId(k), kid));
  if (key === undefined) throw new GrantInvalidError("grant was sealed with a key this deployment does not hold");
  const envelope = raw.subarray(KID_BYTES);
  if (envelope.byteLength < 1 + NONCE_BYTES + TAG_BYTES || envelope[0] !== ENVELOPE_VERSION) {
    throw new GrantInvalidError("grant failed verification");
  }
  let payload: Uint8Array;
  try {
    payload = nobleXChaCha20Poly1305.open(
      key,
      envelope.subarray(1, 1 + NONCE_BYTES),
      aadOf(keys, new Uint8Array(kid)),
      envelope.subarray(1 + NONCE_BYTES),
    );
  } catch {
    throw new GrantInvalidError("grant failed verification");
  }
  const claims = decodeGrantPayload(payload);
  if (claims.principal === "") throw new GrantInvalidError("grant names no principal");
  if (claims.expiresAt <= claims.issuedAt || claims.expiresAt - claims.issuedAt > keys.maxTtlSeconds) {
    throw new GrantInvalidError("grant lifetime exceeds this deployment's maximum");
  }
  const now = options.now ?? Date.now() / 1000;
  const skew = keys.clockSkewSeconds;
  if (claims.issuedAt > now + skew) throw new GrantInvalidError("grant is not yet valid", true);
  if (now >= claims.expiresAt + skew) throw new GrantInvalidError("grant has expired", true);
  return claims;
}
