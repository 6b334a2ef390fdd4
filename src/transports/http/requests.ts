/**
 * The request batch of a call route: decoded from the body, checked against the path, and the
 * replies admission can end a call with.
 */
import type { RecordBatch } from "apache-arrow";
import { frameworkError, RpcError } from "../../errors.js";
import { isPointerBatch } from "../../external/pointer.js";
import { asRequest } from "../../external/resolve.js";
import type { ResolvedMethod, RpcServer } from "../../server/server.js";
import { coreOf } from "../../server/types.js";
import { EMPTY_SCHEMA, withMetadata } from "../../wire/batches.js";
import { CALL_STATE_KEY, METHOD_KEY, PROTOCOL_KEY, STREAM_STATE_KEY } from "../../wire/keys.js";
import { errorBatch, type Origin } from "../../wire/messages.js";
import type { Answer } from "./calls.js";
import { decodeIpcBody } from "./ipc-body.js";
import {
  answer,
  answerBatches,
  arrowReply,
  errorStreamReply,
  ok,
  type Reply,
  type Result,
  unauthorizedReply,
} from "./replies.js";

/** The `TypeError` the reference answers a request that does not fit its route with. */
export function typeError(message: string): RpcError {
  return new RpcError(message, { type: "TypeError", code: "INVALID_ARGUMENT" });
}

/**
 * The body's first batch (null: none); 400 when the body is not a readable Arrow stream. A pointer
 * batch is resolved (while the server externalizes): a request (`role` `"request"`: unary, init)
 * keeps the pointer's dispatch metadata; an exchange input (`"input"`) gets the payload's metadata,
 * with the pointer's state tokens, as the reference reads them before resolving.
 */
export async function decodeRequest(
  server: RpcServer,
  body: Uint8Array,
  role: "request" | "input" = "request",
): Promise<Result<RecordBatch | null>> {
  let batch: RecordBatch | null;
  try {
    const decoded = await decodeIpcBody(body, server.maxMessageBytes);
    batch = decoded.batches[0] ?? null;
  } catch (err) {
    return answer(errorStreamReply(server, 400, RpcError.from(err)));
  }
  const policy = coreOf(server).external;
  if (batch === null || policy === null || !isPointerBatch(batch)) return ok(batch);
  // A client-sent pointer: the request (or exchange input) it stands for, fetched before dispatch;
  // a failed fetch is the call's error, as the reference answers it.
  try {
    const resolved = await policy.inbound.resolve(batch);
    if (role === "request") return ok(asRequest(batch, resolved));
    const metadata = new Map(resolved.metadata);
    for (const key of [STREAM_STATE_KEY, CALL_STATE_KEY]) {
      const token = batch.metadata.get(key);
      if (token !== undefined) metadata.set(key, token);
    }
    return ok(withMetadata(resolved, metadata));
  } catch (err) {
    const origin = { serverId: server.serverId, requestId: "" };
    return answer(
      answerBatches(
        EMPTY_SCHEMA,
        [errorBatch(EMPTY_SCHEMA, RpcError.from(err), origin, server.includeTracebacks)],
        true,
      ),
    );
  }
}

/**
 * Checks the request's metadata against the path: the method must match; the protocol must agree
 * when present, and is filled in from the path when absent. 400 otherwise.
 */
export function checkRequest(
  server: RpcServer,
  request: RecordBatch | null,
  resolved: ResolvedMethod | null,
  method: string,
): Result<RecordBatch | null> {
  if (request === null) return ok(null);
  const md = request.metadata;
  const ipcMethod = md.get(METHOD_KEY);
  if (ipcMethod !== undefined && ipcMethod !== method) {
    return answer(
      errorStreamReply(
        server,
        400,
        typeError(
          `Method name mismatch: URL path has '${method}' but Arrow IPC custom_metadata 'vgi_rpc.method' has '${ipcMethod}'. These must match.`,
        ),
      ),
    );
  }
  if (resolved === null) return ok(request);
  const declared = md.get(PROTOCOL_KEY);
  if (declared === undefined || declared === "") {
    const patched = new Map(md);
    patched.set(PROTOCOL_KEY, resolved.protocol.name);
    return ok(withMetadata(request, patched));
  }
  if (declared !== resolved.protocol.name) {
    return answer(
      errorStreamReply(
        server,
        400,
        frameworkError(
          "protocol_not_supported",
          `Protocol mismatch: the request path resolved to '${resolved.protocol.name}' but the Arrow IPC custom_metadata 'vgi_rpc.protocol' says '${declared}'. These must agree.`,
        ),
      ),
    );
  }
  return ok(request);
}

/**
 * A call the method's security requirements refused, as HTTP says it: an anonymous caller gets
 * the standard 401 envelope (what the reference's clients parse for any 401); an identified one
 * a 403 carrying the error stream. Null for any other error.
 */
export function refusalReply(server: RpcServer, error: RpcError | null, origin: Origin): Reply | null {
  if (error?.kind === "unauthenticated") {
    return unauthorizedReply("missing_credential", error.message, error.kind);
  }
  if (error?.kind === "permission_denied") return errorStreamReply(server, 403, error, origin);
  return null;
}

/**
 * A call refused for a quota (`resource_exhausted`), as HTTP says it: 429 with `Retry-After` (the
 * error's `vgi_rpc.RetryInfo`, whole seconds rounded up) and the error stream, which the client
 * reads as the call's error. Null for any other error.
 */
export function exhaustedReply(error: RpcError | null, refused: Answer): Reply | null {
  if (error?.kind !== "resource_exhausted") return null;
  const reply = arrowReply(429, refused.schema, refused.batches);
  const delay = error.details.find((d) => d["@type"] === "vgi_rpc.RetryInfo")?.retry_delay_seconds;
  if (typeof delay === "number" && Number.isFinite(delay)) {
    reply.headers.push(["Retry-After", String(Math.max(1, Math.ceil(delay)))]);
  }
  return reply;
}

/** The reply to a request admission answered itself: a refusal, 400 for an error, else 200. */
export function admissionReply(server: RpcServer, error: RpcError | null, origin: Origin, refused: Answer): Reply {
  return refusalReply(server, error, origin) ?? arrowReply(error !== null ? 400 : 200, refused.schema, refused.batches);
}
