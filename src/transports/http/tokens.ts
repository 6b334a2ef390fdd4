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
  openStateToken,
  StateTokenError,
  type StateTokenKind,
  sealStateToken,
  tokenFromBase64,
  tokenToBase64,
} from "../../wire/state-token.js";
import { decodeIpcBody, encodeIpcBody } from "./ipc-body.js";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Key, lifetime and clock for sealing and opening. */
export interface TokenKeyring {
  readonly key: Uint8Array;
  readonly ttlSeconds: number;
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

function aad(kind: StateTokenKind, method: ResolvedMethod, auth: AuthContext): Uint8Array {
  return utf8.encode(
    JSON.stringify(["quiver-rpc/http-stream", kind, method.protocol.name, method.name, auth.domain, auth.principal]),
  );
}

/** A 400-class token failure, worded for the client. */
export function tokenError(message: string, cause?: unknown): RpcError {
  return frameworkError("invalid_request", message, { type: "RuntimeError", code: "INVALID_ARGUMENT", cause });
}

function open(kind: StateTokenKind, text: string, method: ResolvedMethod, auth: AuthContext, keys: TokenKeyring) {
  try {
    return openStateToken(kind, tokenFromBase64(text), {
      key: keys.key,
      aad: aad(kind, method, auth),
      ttlSeconds: keys.ttlSeconds,
    });
  } catch (err) {
    if (err instanceof StateTokenError) {
      const what = kind === "cursor" ? "State token" : "Call token";
      const why =
        err.reason === "expired"
          ? `${what} expired: ${err.message}. Start the stream again.`
          : `Invalid ${what.toLowerCase()}: ${err.message}`;
      throw tokenError(why, err);
    }
    throw err;
  }
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
  return tokenToBase64(sealStateToken("call", fields, { key: keys.key, aad: aad("call", method, auth) }));
}

async function schemaFrom(bytes: Uint8Array): Promise<Schema> {
  const body = new Uint8Array(bytes.byteLength + EOS.byteLength);
  body.set(bytes, 0);
  body.set(EOS, bytes.byteLength);
  return (await decodeIpcBody(body)).schema;
}

/** Opens a call token. */
export async function openCallToken(
  text: string,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): Promise<CallTokenData> {
  const fields = open("call", text, method, auth, keys);
  if (fields.length !== 5) throw tokenError("Invalid call token: unexpected layout");
  try {
    const limitText = fromUtf8.decode(fields[4]);
    return {
      callId: fields[0]!,
      streamId: fromUtf8.decode(fields[1]),
      outputSchema: await schemaFrom(fields[2]!),
      inputSchema: await schemaFrom(fields[3]!),
      responseLimit: limitText === "" ? null : Number(limitText),
    };
  } catch (err) {
    throw tokenError(`Failed to deserialize call token: ${(err as Error).message}`, err);
  }
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
  const batch = batchFromRows(fields, [state as RowOf<FieldSpecs>], undefined, schema);
  const stateBytes = encodeIpcBody(schema, [batch]);
  return tokenToBase64(
    sealStateToken("cursor", [callId, stateBytes], { key: keys.key, aad: aad("cursor", method, auth) }),
  );
}

/** Opens a cursor token: its call id and the handler state it carries. */
export async function openCursorToken(
  text: string,
  method: ResolvedMethod,
  auth: AuthContext,
  keys: TokenKeyring,
): Promise<{ callId: Uint8Array; state: Record<string, unknown> }> {
  const fields = open("cursor", text, method, auth, keys);
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
