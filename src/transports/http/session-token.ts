/**
 * The sticky-session token, byte for byte as the reference seals it (`http/server/_sticky.py`):
 *
 *   base64url, unpadded, of   version:u8 (1) | nonce:24 | XChaCha20-Poly1305(plaintext) + tag:16
 *   plaintext                 created_at:u64 LE | server_id_len:u8 | server_id | session_id:12 | expires_at:u64 LE
 *   AAD                       "vgi_rpc.state.v6\0" | identity tail | "\0" | "\0server"
 *
 * where the identity tail is `"\0anonymous"` for an anonymous caller and `"\x01" domain "\0"
 * principal` otherwise (with `"\0" binding` after either when the caller's claims carry a
 * `peer_evidence_binding`, and the prefix `v7` then), the stream tokens' AAD scoped to the server
 * rather than a protocol. The AEAD binds the token to its caller: another caller's token fails to
 * open, as a forged one does. The server id binds it to one instance (checked after opening).
 */
import { frameworkError, type RpcError } from "../../errors.js";
import type { AuthContext } from "../../protocol/context.js";
import { tokenCipher, tokenNonce } from "./aead.js";

/** The envelope's version byte. */
const TOKEN_VERSION = 1;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** Bytes of a session id (24 hex chars). */
export const SESSION_ID_BYTES = 12;
/** The longest header value looked at: a real token is under 120 characters. */
const MAX_TOKEN_CHARS = 1024;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** `SERVER_SCOPE`: a token of the server's, not of any protocol (a protocol name cannot start with NUL). */
const SERVER_SCOPE = "\u0000server";

/** The AAD a session token is sealed under for `auth` (see the module comment). */
export function sessionAad(auth: AuthContext): Uint8Array {
  return utf8.encode(sessionAadText(auth));
}

/** `sessionAad` as text (what is encoded), e.g. to key a cache of opened tokens. */
export function sessionAadText(auth: AuthContext): string {
  const bindingClaim = auth.claims.peer_evidence_binding;
  const binding = typeof bindingClaim === "string" && bindingClaim !== "" ? bindingClaim : null;
  let text = binding === null ? "vgi_rpc.state.v6\u0000" : "vgi_rpc.state.v7\u0000";
  text += auth.authenticated ? `\u0001${auth.domain}\u0000${auth.principal}` : "\u0000anonymous";
  if (binding !== null) text += `\u0000${binding}`;
  return `${text}\u0000${SERVER_SCOPE}`;
}

/** What a session token says. */
export interface SessionTokenFields {
  /** The id of the server instance that minted it. */
  readonly serverId: string;
  /** 12 random bytes. */
  readonly sessionId: Uint8Array;
  /** When the session expires, in whole seconds since the epoch. */
  readonly expiresAt: number;
}

/** A `session_lost` error: every way a token fails reads the same to its sender. */
export function sessionLost(message: string, cause?: unknown): RpcError {
  return frameworkError("session_lost", message, cause === undefined ? {} : { cause });
}

/** Seals a session token (`createdAt`, seconds, defaults to now; `nonce` only for test vectors). */
export function sealSessionToken(
  fields: SessionTokenFields,
  key: Uint8Array,
  aad: Uint8Array,
  createdAt: number = Math.floor(Date.now() / 1000),
  nonce: Uint8Array = tokenNonce(),
): string {
  if (fields.sessionId.byteLength !== SESSION_ID_BYTES) {
    throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes, got ${fields.sessionId.byteLength}`);
  }
  const server = utf8.encode(fields.serverId);
  if (server.byteLength > 255) throw new RangeError(`server id too long (${server.byteLength} bytes); max 255`);
  const plain = new Uint8Array(9 + server.byteLength + SESSION_ID_BYTES + 8);
  const view = new DataView(plain.buffer);
  view.setBigUint64(0, BigInt(createdAt), true);
  plain[8] = server.byteLength;
  plain.set(server, 9);
  plain.set(fields.sessionId, 9 + server.byteLength);
  view.setBigUint64(9 + server.byteLength + SESSION_ID_BYTES, BigInt(fields.expiresAt), true);
  const sealed = tokenCipher.seal(key, nonce, aad, plain);
  const envelope = new Uint8Array(1 + NONCE_BYTES + sealed.byteLength);
  envelope[0] = TOKEN_VERSION;
  envelope.set(nonce, 1);
  envelope.set(sealed, 1 + NONCE_BYTES);
  return Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength).toString("base64url");
}

/**
 * Opens a session token; any failure (not base64url, too short, another version, another key or
 * caller, tampered, a malformed frame) throws a `session_lost` error.
 */
export function openSessionToken(text: string, key: Uint8Array, aad: Uint8Array): SessionTokenFields {
  if (text.length > MAX_TOKEN_CHARS || !BASE64URL.test(text) || text.length % 4 === 1) {
    throw sessionLost("malformed session token");
  }
  const raw = new Uint8Array(Buffer.from(text, "base64url"));
  if (raw.byteLength < 1 + NONCE_BYTES + TAG_BYTES || raw[0] !== TOKEN_VERSION) {
    throw sessionLost("session token verification failed");
  }
  let plain: Uint8Array;
  try {
    plain = tokenCipher.open(key, raw.subarray(1, 1 + NONCE_BYTES), aad, raw.subarray(1 + NONCE_BYTES));
  } catch (err) {
    throw sessionLost("session token verification failed", err);
  }
  if (plain.byteLength < 9) throw sessionLost("malformed session token");
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const serverLength = plain[8]!;
  const idAt = 9 + serverLength;
  if (plain.byteLength !== idAt + SESSION_ID_BYTES + 8) throw sessionLost("malformed session token");
  const expires = view.getBigUint64(idAt + SESSION_ID_BYTES, true);
  return {
    serverId: fromUtf8.decode(plain.subarray(9, idAt)),
    sessionId: plain.slice(idAt, idAt + SESSION_ID_BYTES),
    expiresAt: expires > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(expires),
  };
}
