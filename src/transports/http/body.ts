/**
 * The request body: read under `maxRequestBytes`, decoded from its content coding under the same
 * cap (see inflate.ts), and its content type checked.
 */

import { DECODABLE_ENCODINGS, type Encoding } from "../../codec/compression.js";
import { DecompressionLimitExceeded, inflateBody } from "../../codec/inflate.js";
import { RpcError } from "../../errors.js";
import type { RpcServer } from "../../server/server.js";
import { concatBytes } from "../../wire/ipc.js";
import { ARROW_CONTENT_TYPE } from "./headers.js";
import { answer, errorStreamReply, ok, problemReply, type Reply, type Result } from "./replies.js";
import type { BodyTooLarge, UniversalRequest } from "./universal.js";

/** The limits a body is read under. */
export interface BodyLimits {
  /** Largest body, before and after decoding (null: none). */
  readonly maxRequestBytes: number | null;
  /** Largest window a zstd frame may declare. */
  readonly maxZstdWindowBytes: number;
}

/**
 * Reads the whole body and decodes its content coding. 413 past the cap (before or after
 * decoding), 415 for a coding not spoken, 400 for a body that cannot be read or decoded.
 */
export async function readRequestBody(req: UniversalRequest, limits: BodyLimits): Promise<Result<Uint8Array>> {
  const cap = limits.maxRequestBytes;
  let raw: Uint8Array | BodyTooLarge;
  try {
    raw = await req.readBody(cap);
  } catch (err) {
    return answer(problemReply(400, "Bad Request", `Failed to read the request body: ${(err as Error).message}`));
  }
  if ("tooLarge" in raw) {
    return answer(
      problemReply(
        413,
        "Request body exceeds max_request_bytes",
        `Request body of at least ${raw.tooLarge} bytes exceeds the server's advertised max_request_bytes=${cap}.`,
      ),
    );
  }
  const coding = (req.headers.get("content-encoding") ?? "").trim().toLowerCase();
  if (coding === "" || coding === "identity") return ok(raw);
  if (!(DECODABLE_ENCODINGS as readonly string[]).includes(coding)) {
    return answer(
      problemReply(
        415,
        "Unsupported Content-Encoding",
        `Content-Encoding '${coding}' is not supported by this server; supported: ${DECODABLE_ENCODINGS.join(", ")}`,
      ),
    );
  }
  try {
    return ok(
      await inflateBody(coding as Encoding, raw, { maxBytes: cap, maxZstdWindowBytes: limits.maxZstdWindowBytes }),
    );
  } catch (err) {
    if (err instanceof DecompressionLimitExceeded) {
      return answer(
        problemReply(
          413,
          "Request body exceeds max_request_bytes after decompression",
          `Decompressed ${coding} request body exceeds the server's advertised max_request_bytes=${cap}: ${err.message}.`,
        ),
      );
    }
    return answer(
      problemReply(
        400,
        "Decompression Error",
        `Failed to decompress ${coding} request body: ${(err as Error).message}`,
      ),
    );
  }
}

/** 415 unless the request says its body is an Arrow IPC stream; null when it does. */
export function contentTypeRefusal(server: RpcServer, headers: Headers): Reply | null {
  const ct = headers.get("content-type") ?? "";
  if (ct === ARROW_CONTENT_TYPE) return null;
  return errorStreamReply(
    server,
    415,
    new RpcError(
      `Expected Content-Type: '${ARROW_CONTENT_TYPE}', got '${ct}'. All vgi-rpc HTTP requests must use Content-Type: ${ARROW_CONTENT_TYPE}`,
      { type: "TypeError", code: "INVALID_ARGUMENT" },
    ),
  );
}

/**
 * Reads a whole body from an iterable source under `limit` (`declared`: its `Content-Length`, or
 * null). The iterator is pulled by hand and never `return()`ed on refusal: ending a `for await`
 * early would destroy the request (and with it the socket) before the 413 could be written.
 */
export async function readCapped(
  source: AsyncIterable<Uint8Array>,
  declared: number | null,
  limit: number | null,
): Promise<Uint8Array | BodyTooLarge> {
  if (limit !== null && declared !== null && declared > limit) return { tooLarge: declared };
  const it = source[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    total += r.value.byteLength;
    if (limit !== null && total > limit) return { tooLarge: total };
    chunks.push(r.value);
  }
  return concatBytes(chunks);
}
