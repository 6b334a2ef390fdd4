/**
 * The two tokens an HTTP stream travels with, as the reference splits them: the call token
 * (sealed once at init: call id, stream id, output and input schemas, the response limit in force)
 * and the cursor token (re-sealed every turn: call id and the handler's state as one Arrow row).
 * Both are bound to the protocol, the method and the caller, so neither opens elsewhere.
 */
import type { Schema } from "apache-arrow";
import { frameworkError, type RpcError } from "../../errors.js";
import { batchFromRows, rowsFromBatch } from "../../protocol/batch.js";
import type { AuthContext } from "../../protocol/context.js";
import type { FieldSpecs, RowOf } from "../../protocol/types.js";
import type { ResolvedMethod } from "../../server/server.js";
import { EOS, encodeSchemaMessage } from "../../wire/ipc.js";
import {
  expiry,
  openStateTokenWithTime,
  StateTokenError,
  type StateTokenKind,
  sealStateToken,
  tokenFromBase64,
  tokenToBase64,
} from "../../wire/state-token.js";
import { tokenCipher, tokenNonce } from "./aead.js";
import { decodeIpcBody, encodeIpcBody } from "./ipc-body.js";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Key, lifetime and clock for sealing and opening. */
export interface TokenKeyring {
  readonly key: Uint8Array;
  readonly ttlSeconds: number;
  /**
   * Call tokens opened before, by their AAD and text: a stream sends the same call token every
   * turn, so it is decrypted and its schemas decoded once, then only its lifetime is checked.
   * Bounded to `callTokenCacheEntries`, least recently used first out. Absent: no cache.
   */
  readonly openedCalls?: Map<string, OpenedCall>;
  /** Most entries `openedCalls` keeps. */
  readonly callTokenCacheEntries?: number;
}

/** A cached call token. */
export interface OpenedCall {
  readonly data: CallTokenData;
  readonly issuedAt: number;
}

/** What the call token carries. */
export interface CallTokenData {
  readonly callId: Uint8Array;
  readonly streamId: string;
  readonly outputSchema: Schema;
  readonly inputSchema: Schema;
  /** The response limit in force at init (tightens later turns), or null. */
  readonly responseLimit: number | null;
}

function aadText(kind: StateTokenKind, method: ResolvedMethod, auth: AuthContext): string {
  return JSON.stringify([
    "quiver-rpc/http-stream",
    kind,
    method.protocol.name,
    method.name,
    auth.domain,
    auth.principal,
  ]);
}

function aad(kind: StateTokenKind, method: ResolvedMethod, auth: AuthContext): Uint8Array {
  return utf8.encode(aadText(kind, method, auth));
}

/** A 400-class token failure, worded for the client. */
export function tokenError(message: string, cause?: unknown): RpcError {
  return frameworkError("invalid_request", message, { type: "RuntimeError", code: "INVALID_ARGUMENT", cause });
}

/** A token that did not open, worded for the client. */
function unusable(kind: StateTokenKind, err: StateTokenError): RpcError {
  const what = kind === "cursor" ? "State token" : "Call token";
  const why =
    err.reason === "expired"
      ? `${what} expired: ${err.message}. Start the stream again.`
      : `Invalid ${what.toLowerCase()}: ${err.message}`;
  return tokenError(why, err);
}

function open(kind: StateTokenKind, text: string, aadBytes: Uint8Array, keys: TokenKeyring) {
  try {
    return openStateTokenWithTime(kind, tokenFromBase64(text), {
      key: keys.key,
      aad: aadBytes,
      ttlSeconds: keys.ttlSeconds,
      cipher: tokenCipher,
    });
  } catch (err) {
    if (err instanceof StateTokenError) throw unusable(kind, err);
    throw err;
  }
}

function seal(kind: StateTokenKind, fields: readonly Uint8Array[], aadBytes: Uint8Array, keys: TokenKeyring): string {
  return tokenToBase64(
    sealStateToken(kind, fields, { key: keys.key, aad: aadBytes, cipher: tokenCipher, nonce: tokenNonce() }),
  );
}

/** Seals a stream's call token (base64 text for `vgi_rpc.call_state#b64`). */
export function sealCallToken(
  data: CallTokenData,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): string {
  const fields = [
    data.callId,
    utf8.encode(data.streamId),
    encodeSchemaMessage(data.outputSchema),
    encodeSchemaMessage(data.inputSchema),
    utf8.encode(data.responseLimit === null ? "" : String(data.responseLimit)),
  ];
  return seal("call", fields, aad("call", method, auth), keys);
}

async function schemaFrom(bytes: Uint8Array): Promise<Schema> {
  const body = new Uint8Array(bytes.byteLength + EOS.byteLength);
  body.set(bytes, 0);
  body.set(EOS, bytes.byteLength);
  return (await decodeIpcBody(body)).schema;
}

/**
 * Opens a call token. With `keys.openedCalls`, a token opened before (same text, same method and
 * caller) is taken from there, its lifetime checked again.
 */
export async function openCallToken(
  text: string,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): Promise<CallTokenData> {
  const aadString = aadText("call", method, auth);
  const cache = keys.openedCalls;
  const cacheKey = `${aadString}\n${text}`;
  const hit = cache?.get(cacheKey);
  if (cache !== undefined && hit !== undefined) {
    // Taken out either way: an expired entry is dropped, a live one goes back as most recent.
    cache.delete(cacheKey);
    const expired = expiry(hit.issuedAt, keys.ttlSeconds);
    if (expired !== null) throw unusable("call", expired);
    cache.set(cacheKey, hit);
    return hit.data;
  }
  const { fields, issuedAt } = open("call", text, utf8.encode(aadString), keys);
  if (fields.length !== 5) throw tokenError("Invalid call token: unexpected layout");
  let data: CallTokenData;
  try {
    const limitText = fromUtf8.decode(fields[4]);
    data = {
      callId: fields[0]!,
      streamId: fromUtf8.decode(fields[1]),
      outputSchema: await schemaFrom(fields[2]!),
      inputSchema: await schemaFrom(fields[3]!),
      responseLimit: limitText === "" ? null : Number(limitText),
    };
  } catch (err) {
    throw tokenError(`Failed to deserialize call token: ${(err as Error).message}`, err);
  }
  if (cache !== undefined) {
    cache.set(cacheKey, { data, issuedAt });
    const limit = keys.callTokenCacheEntries ?? 0;
    for (const oldest of cache.keys()) {
      if (cache.size <= limit) break;
      cache.delete(oldest);
    }
  }
  return data;
}

function stateFields(method: ResolvedMethod): { fields: FieldSpecs; schema: Schema } {
  const decl = method.decl;
  if (decl.kind === "unary" || method.schemas.state === null) throw new Error("unary methods have no stream state");
  return { fields: decl.state, schema: method.schemas.state };
}

/** Seals a cursor token carrying `state` for the call `callId`. */
export function sealCursorToken(
  callId: Uint8Array,
  state: Record<string, unknown>,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): string {
  const { fields, schema } = stateFields(method);
  const batch = batchFromRows(fields, [state as RowOf<FieldSpecs>], undefined, schema, {
    method: method.name,
    role: "stream state",
  });
  const stateBytes = encodeIpcBody(schema, [batch]);
  return seal("cursor", [callId, stateBytes], aad("cursor", method, auth), keys);
}

/** Opens a cursor token: its call id and the handler state it carries. */
export async function openCursorToken(
  text: string,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): Promise<{ callId: Uint8Array; state: Record<string, unknown> }> {
  const { fields } = open("cursor", text, aad("cursor", method, auth), keys);
  if (fields.length !== 2) throw tokenError("Invalid state token: unexpected layout");
  try {
    const { fields: specs } = stateFields(method);
    const decoded = await decodeIpcBody(fields[1]!);
    const row = decoded.batches[0];
    if (row === undefined || row.numRows !== 1) throw new Error("state row is missing");
    const state = rowsFromBatch(specs, row)[0] as Record<string, unknown>;
    return { callId: fields[0]!, state };
  } catch (err) {
    throw tokenError(`Failed to deserialize state: ${(err as Error).message}`, err);
  }
}
