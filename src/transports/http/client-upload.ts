/**
 * The HTTP client uploading a request its server refused as too large (413), as the reference's
 * client does: it asks the server for an upload URL pair (`POST {prefix}/__upload_url__/init`),
 * PUTs the request's IPC bytes there, and sends a pointer batch in their place (the request's
 * schema and metadata, plus `vgi_rpc.location` and `vgi_rpc.location.sha256`), which a server
 * with external storage resolves. No `node:` imports: the digest is Web Crypto's, the PUT `fetch`.
 */
import type { RecordBatch } from "apache-arrow";
import { requestBatch } from "../../client/client.js";
import { frameworkError } from "../../errors.js";
import { makePointerBatch, redactUrl } from "../../external/pointer.js";
import { batchFromRows } from "../../protocol/batch.js";
import { t } from "../../protocol/types.js";
import { withMetadata } from "../../wire/batches.js";
import { concatBytes, decodeStreamBytes, encodeStream } from "../../wire/ipc.js";
import { classifyBatch, errorFromMetadata } from "../../wire/messages.js";
import type { RpcResponse } from "./client-requests.js";

/** `HttpClientOptions.uploads`: how requests over the server's cap are uploaded. */
export interface UploadOptions {
  /**
   * Called on each vended URL before it is used; throws to refuse. Default: https URLs only.
   * `null` validates nothing.
   */
  readonly urlValidator?: ((url: string) => void) | null;
  /** The `fetch` the PUT goes through. Default: `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /**
   * How long the PUT may take, in ms, its answer included; longer fails the call with a
   * `transport_error` (a store that stops answering). Default: 300 000.
   */
  readonly timeoutMs?: number;
}

function httpsOnly(url: string): void {
  if (!/^https:/i.test(url)) throw new Error(`upload URL ${redactUrl(url)} is not https`);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** The first batch's string column `name`, row 0. */
function text(batch: RecordBatch, name: string): string {
  const v: unknown = batch.getChild(name)?.get(0);
  if (typeof v !== "string" || v === "") throw frameworkError("protocol_error", `upload URL answer has no ${name}`);
  return v;
}

/**
 * Uploads `body` (one request's IPC stream) through a URL pair from `post`ing to `uploadRoute`;
 * returns the pointer body to send instead.
 */
export async function uploadRequest(
  body: readonly Uint8Array[],
  uploadRoute: string,
  post: (url: string, body: readonly Uint8Array[]) => Promise<RpcResponse>,
  opts: UploadOptions,
): Promise<Uint8Array[]> {
  const fields = { count: t.int64() };
  const ask = requestBatch(batchFromRows(fields, [{ count: 1n }]), { protocol: "", method: "__upload_url__" });
  const res = await post(uploadRoute, encodeStream(ask.schema, [ask]));
  const answer = (res.streams[0]?.batches ?? []).filter((b) => {
    const kind = classifyBatch(b);
    if (kind === "error") throw errorFromMetadata(b.metadata);
    return kind === "data";
  })[0];
  if (answer === undefined || answer.numRows < 1) {
    throw frameworkError("protocol_error", "the server's upload URL answer holds no URL pair");
  }
  const uploadUrl = text(answer, "upload_url");
  const downloadUrl = text(answer, "download_url");
  const validate = opts.urlValidator === undefined ? httpsOnly : opts.urlValidator;
  try {
    validate?.(uploadUrl);
    validate?.(downloadUrl);
  } catch (err) {
    throw frameworkError("transport_error", `upload URL rejected: ${(err as Error).message}`);
  }
  const bytes = concatBytes(body);
  const timeoutMs = opts.timeoutMs ?? 300_000;
  let put: Response;
  try {
    put = await (opts.fetch ?? globalThis.fetch)(uploadUrl, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: bytes as Uint8Array<ArrayBuffer>,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await put.arrayBuffer();
  } catch (err) {
    const e = err as Error;
    const why = e?.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (e?.message ?? String(err));
    throw frameworkError("transport_error", `upload to ${redactUrl(uploadUrl)} failed: ${why}`, { cause: err });
  }
  if (!put.ok) throw frameworkError("transport_error", `upload to ${redactUrl(uploadUrl)} answered HTTP ${put.status}`);
  const request = decodeStreamBytes(bytes, "request")?.batches[0];
  if (request === undefined) throw frameworkError("protocol_error", "the request to upload holds no batch");
  const pointer = makePointerBatch(request.schema, downloadUrl, await sha256Hex(bytes));
  // The request's own metadata (method, protocol, tokens) rides on the pointer, as the reference's.
  const outer = withMetadata(pointer, new Map([...request.metadata, ...pointer.metadata]));
  return encodeStream(request.schema, [outer]);
}
