/**
 * Replies as values. Every step of the core returns either what the next step needs or the reply
 * that ends the request (`Result`); nothing is thrown to answer. The status of every Arrow answer
 * is decided here, by which builder makes it:
 *
 * - `answerReply`: a call's own answer, 200. A method error travels as 200 with
 *   `X-VGI-RPC-Error: true` and the error stream (the reference's rule: clients that drop 5xx
 *   bodies still get the error), a success as plain 200.
 * - `errorStreamReply`: a request refused before or around the call (400 malformed, 403
 *   forbidden, 404 no such method, 415 wrong content type), the error stream under its status.
 * - JSON, HTML and empty replies for what the reference answers outside Arrow.
 */
import type { RecordBatch, Schema } from "apache-arrow";
import type { RpcError } from "../../errors.js";
import type { RpcServer } from "../../server/server.js";
import { EMPTY_SCHEMA } from "../../wire/batches.js";
import { encodeStream } from "../../wire/ipc.js";
import { errorBatch, type Origin } from "../../wire/messages.js";
import { ARROW_CONTENT_TYPE, AUTH_REASON_HEADER, RPC_ERROR_HEADER } from "./headers.js";

/** A reply before the headers every answer carries are added (see respond.ts). */
export interface Reply {
  readonly status: number;
  /** The reply's own headers; more are appended when it is sent. */
  readonly headers: (readonly [string, string])[];
  readonly body: readonly Uint8Array[];
  /** `Content-Type`, or `""` for none. */
  readonly contentType: string;
}

/** A step's outcome: the value the next step needs, or the reply that ends the request. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: Reply };

/** A step's value. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** A step's end of the request. */
export function answer(reply: Reply): { readonly ok: false; readonly reply: Reply } {
  return { ok: false, reply };
}

const utf8 = new TextEncoder();

/** A JSON body under `status`. */
export function jsonReply(status: number, value: unknown): Reply {
  return { status, headers: [], body: [utf8.encode(JSON.stringify(value))], contentType: "application/json" };
}

/** A call's answer stream, 200; flagged `X-VGI-RPC-Error: true` when it is a method error. */
export function answerReply(body: readonly Uint8Array[], failed: boolean): Reply {
  return { status: 200, headers: failed ? [[RPC_ERROR_HEADER, "true"]] : [], body, contentType: ARROW_CONTENT_TYPE };
}

/** `answerReply` for a stream given as schema and batches. */
export function answerBatches(schema: Schema, batches: readonly RecordBatch[], failed: boolean): Reply {
  return answerReply(encodeStream(schema, batches), failed);
}

/** An Arrow answer under a status other than 200 (admission refusals, 403), unflagged. */
export function arrowReply(status: number, schema: Schema, batches: readonly RecordBatch[]): Reply {
  return { status, headers: [], body: encodeStream(schema, batches), contentType: ARROW_CONTENT_TYPE };
}

/**
 * A request refused with one error batch on the empty schema under `status` (400, 403, 404,
 * 415). `origin` stamps the batch; a refusal before any call has an empty request id.
 */
export function errorStreamReply(
  server: RpcServer,
  status: number,
  error: RpcError,
  origin: Origin = { serverId: server.serverId, requestId: "" },
): Reply {
  return arrowReply(status, EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, error, origin, server.includeTracebacks)]);
}

/** The reference's JSON answer to a framework-level failure (413, 415 coding, 400 body). */
export function problemReply(status: number, title: string, description: string): Reply {
  return jsonReply(status, { title, description });
}

/** 401 with the reason code and the standard envelope the reference's clients parse. */
export function unauthorizedReply(reason: string, detail: string, errorKind?: string): Reply {
  const reply = jsonReply(401, {
    error: "unauthorized",
    reason,
    detail,
    ...(errorKind === undefined ? {} : { error_kind: errorKind }),
  });
  reply.headers.push([AUTH_REASON_HEADER, reason], ["Cache-Control", "no-store"], ["WWW-Authenticate", "Bearer"]);
  return reply;
}

/**
 * 503 for an authenticator that could not ask its authority (`AuthUnavailableError`): the
 * reference's JSON envelope and `Retry-After` in whole seconds (rounded up).
 */
export function unavailableReply(retryAfterSeconds: number): Reply {
  const reply = problemReply(503, "503 Service Unavailable", "authentication authority unavailable");
  reply.headers.push(["Retry-After", String(Math.ceil(retryAfterSeconds))], ["Cache-Control", "no-store"]);
  return reply;
}

/** 200 with `Allow`, no body: an `OPTIONS` answer (the capability headers come with every reply). */
export function allowReply(methods: string): Reply {
  return { status: 200, headers: [["Allow", methods]], body: [], contentType: "" };
}

/** No body under `status` (200, 204). */
export function emptyReply(status: number): Reply {
  return { status, headers: [], body: [], contentType: "" };
}

/** 405 with the methods the route takes. */
export function methodNotAllowedReply(methods: string): Reply {
  const reply = jsonReply(405, { title: "405 Method Not Allowed" });
  reply.headers.push(["Allow", methods]);
  return reply;
}

/** The reference's HTML 404, naming where the RPC routes live. */
export function notFoundReply(prefix: string): Reply {
  const body = utf8.encode(
    `<!DOCTYPE html><html><head><meta charset="utf-8"><title>404 Not Found</title></head><body><h1>404 Not Found</h1><p>This is a vgi-rpc service. RPC endpoints live under <code>${prefix.replace(/[<>&"]/g, "")}/{protocol}/{method}</code>.</p></body></html>`,
  );
  return { status: 404, headers: [], body: [body], contentType: "text/html; charset=utf-8" };
}

/** `/health`: the body made once per handler; a `HEAD` gets its length and no body. */
export function healthReply(body: Uint8Array, head: boolean): Reply {
  return {
    status: 200,
    headers: head ? [["Content-Length", String(body.byteLength)]] : [],
    body: head ? [] : [body],
    contentType: "application/json",
  };
}

/** An unexpected failure of the transport itself (a bug, not a refusal). */
export function internalErrorReply(message?: string): Reply {
  return jsonReply(
    500,
    message === undefined
      ? { title: "500 Internal Server Error" }
      : { title: "500 Internal Server Error", description: message },
  );
}

/** The OAuth protected-resource metadata document (`GET`/`HEAD`; else 405). */
export function oauthMetadataReply(method: string, body: Uint8Array): Reply {
  if (method === "OPTIONS") return allowReply("GET, HEAD, OPTIONS");
  if (method !== "GET" && method !== "HEAD") return methodNotAllowedReply("GET, HEAD, OPTIONS");
  return {
    status: 200,
    headers: [["Cache-Control", "public, max-age=60"]],
    body: [body],
    contentType: "application/json",
  };
}

/** An HTML page (never cached: it names the server instance). */
export function htmlReply(body: Uint8Array): Reply {
  return {
    status: 200,
    headers: [["Cache-Control", "no-cache, no-store, must-revalidate, max-age=0"]],
    body: [body],
    contentType: "text/html; charset=utf-8",
  };
}
