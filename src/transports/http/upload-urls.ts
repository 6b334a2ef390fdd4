/**
 * `POST {prefix}/__upload_url__/init`: vends upload URL pairs, as the reference's
 * `_UploadUrlResource`. The request is a standard request batch for method `__upload_url__` with
 * an optional int64 `count` (clamped to 1-100, default 1); the answer is one batch of `count` rows
 * `(upload_url utf8, download_url utf8, expires_at timestamp[us, UTC])`, or an error batch on that
 * schema when the provider fails. The body was already held to `maxRequestBytes` (413), so an
 * oversized request allocates nothing.
 */
import { DataType, type RecordBatch } from "apache-arrow";
import { RpcError } from "../../errors.js";
import type { UploadUrlProvider } from "../../external/storage.js";
import { batchFromColumns, schemaOf } from "../../protocol/batch.js";
import { t } from "../../protocol/types.js";
import type { ServerCore } from "../../server/types.js";
import { METHOD_KEY } from "../../wire/keys.js";
import { errorBatch } from "../../wire/messages.js";
import { decodeIpcBody } from "./ipc-body.js";
import { answerBatches, errorStreamReply, type Reply } from "./replies.js";
import { typeError } from "./requests.js";

/** The reserved method, and the segment it is routed under. */
export const UPLOAD_URL_METHOD = "__upload_url__";
const MAX_UPLOAD_URL_COUNT = 100;

const FIELDS = {
  upload_url: t.utf8().optional(),
  download_url: t.utf8().optional(),
  expires_at: t.timestamp("us", "UTC").optional(),
};
const SCHEMA = schemaOf(FIELDS);

/** The requested count, clamped as the reference clamps it (a missing or non-integer count is 1). */
function countOf(request: RecordBatch): number {
  const i = request.schema.fields.findIndex((f) => f.name === "count");
  const field = request.schema.fields[i];
  if (i < 0 || request.numRows < 1 || field === undefined || !DataType.isInt(field.type)) return 1;
  const value = request.getChildAt(i)?.get(0) as bigint | number | null | undefined;
  if (typeof value !== "bigint" && typeof value !== "number") return 1;
  const raw = BigInt(value);
  return Number(raw < 1n ? 1n : raw > BigInt(MAX_UPLOAD_URL_COUNT) ? BigInt(MAX_UPLOAD_URL_COUNT) : raw);
}

export async function serveUploadUrls(
  server: ServerCore,
  provider: UploadUrlProvider,
  body: Uint8Array,
): Promise<Reply> {
  let request: RecordBatch | undefined;
  try {
    request = (await decodeIpcBody(body, server.maxMessageBytes)).batches[0];
  } catch (err) {
    return errorStreamReply(server, 400, RpcError.from(err));
  }
  if (request === undefined) return errorStreamReply(server, 400, typeError("Upload URL request carries no batch"));
  const method = request.metadata.get(METHOD_KEY);
  if (method !== UPLOAD_URL_METHOD) {
    return errorStreamReply(
      server,
      400,
      typeError(`Method mismatch: expected '${UPLOAD_URL_METHOD}', got '${method ?? "None"}'`),
    );
  }
  const count = countOf(request);
  try {
    const urls = await Promise.all(Array.from({ length: count }, () => provider.uploadUrl(schemaOf({}))));
    const batch = batchFromColumns(FIELDS, {
      upload_url: urls.map((u) => u.uploadUrl),
      download_url: urls.map((u) => u.downloadUrl),
      expires_at: urls.map((u) => BigInt(u.expiresAt.getTime()) * 1000n),
    });
    return answerBatches(SCHEMA, [batch], false);
  } catch (err) {
    const origin = { serverId: server.serverId, requestId: "" };
    return answerBatches(SCHEMA, [errorBatch(SCHEMA, err, origin, server.includeTracebacks)], true);
  }
}
