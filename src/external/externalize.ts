/**
 * The server's side of external storage: batches above a threshold are uploaded as Arrow IPC
 * streams and replaced on the wire by pointer batches, as the reference's
 * `maybe_externalize_batch` (unary results, stream headers) and `maybe_externalize_collector`
 * (one stream turn: its log batches and its data batch in one object, one pointer for all) do.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { RecordBatch, Schema } from "apache-arrow";
import { encodeBody } from "../codec/compression.js";
import { RuntimeError } from "../errors.js";
import { concatBytes, encodeStream } from "../wire/ipc.js";
import { classifyBatch } from "../wire/messages.js";
import type { FetchOptions } from "./fetch.js";
import { makePointerBatch, totalBufferSize } from "./pointer.js";
import { ExternalResolver } from "./resolve.js";
import type { ContentEncoding, ExternalStorage } from "./storage.js";

/** Compression applied to externalized objects before upload. */
export interface ExternalCompression {
  /** Default `zstd`. */
  readonly algorithm?: ContentEncoding;
  /** Codec level: zstd 1-22 (default 3), gzip 1-9 (default 6). */
  readonly level?: number;
}

/** `ServerOptions.external`: where and when the server externalizes its output batches. */
export interface ExternalizePolicy {
  readonly storage: ExternalStorage;
  /**
   * A batch whose buffers hold at least this many bytes (pyarrow's `get_total_buffer_size()`)
   * is externalized. Default: 1 MiB (1_048_576), the reference's default.
   */
  readonly thresholdBytes?: number;
  /** Compress objects before upload (the client decodes by `Content-Encoding`). Default: none. */
  readonly compression?: ExternalCompression;
  /**
   * How the server fetches pointers its clients send in place of a request or an exchange input
   * (resolved on every transport while `external` is set). Default: `FetchOptions`' defaults,
   * https URLs only.
   */
  readonly fetch?: FetchOptions;
}

/** The default externalization threshold: 1 MiB, as the reference. */
export const DEFAULT_EXTERNALIZE_THRESHOLD = 1_048_576;

/** A policy with its defaults filled in. */
export interface CheckedPolicy {
  readonly storage: ExternalStorage;
  readonly thresholdBytes: number;
  readonly compression: ExternalCompression | undefined;
  /** Resolves client-sent pointers. */
  readonly inbound: ExternalResolver;
}

/** Checks a policy given to `createServer`; returns it normalized. */
export function checkPolicy(policy: ExternalizePolicy): CheckedPolicy {
  const threshold = policy.thresholdBytes ?? DEFAULT_EXTERNALIZE_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new RangeError(`external.thresholdBytes must be a non-negative integer, got ${String(threshold)}`);
  }
  if (typeof policy.storage?.upload !== "function") throw new TypeError("external.storage must have upload()");
  const algorithm = policy.compression?.algorithm;
  if (algorithm !== undefined && algorithm !== "zstd" && algorithm !== "gzip") {
    throw new RangeError(`external.compression.algorithm must be 'zstd' or 'gzip', got '${String(algorithm)}'`);
  }
  return {
    storage: policy.storage,
    thresholdBytes: threshold,
    compression: policy.compression,
    inbound: new ExternalResolver(policy.fetch),
  };
}

/** A published object: the URL and the hex SHA-256 of its raw IPC bytes. */
export interface Uploaded {
  readonly url: string;
  readonly sha256: string;
  /** Raw (pre-compression) bytes uploaded. */
  readonly rawBytes: number;
}

/**
 * Hashes, optionally compresses, and uploads one serialized IPC stream: the one path every
 * externalized payload takes (the reference's `_upload_ipc_bytes`).
 */
export async function uploadIpc(
  ipc: Uint8Array,
  schema: Schema,
  storage: ExternalStorage,
  compression: ExternalCompression | undefined,
  signal?: AbortSignal,
): Promise<Uploaded> {
  const sha256 = createHash("sha256").update(ipc).digest("hex");
  let body = ipc;
  let contentEncoding: ContentEncoding | undefined;
  if (compression !== undefined) {
    const algorithm = compression.algorithm ?? "zstd";
    if (algorithm === "gzip") {
      // The reference maps its zstd-shaped default level (3) to gzip's 6.
      const level = compression.level === undefined || compression.level === 3 ? 6 : compression.level;
      body = gzipSync(ipc, { level });
      contentEncoding = "gzip";
    } else {
      const coded = await encodeBody("zstd", ipc, { zstd: compression.level ?? 3 });
      if (coded === null) throw new Error("external storage: zstd compression is unavailable");
      body = coded;
      contentEncoding = "zstd";
    }
  }
  const url = await storage.upload(body, schema, {
    ...(contentEncoding === undefined ? {} : { contentEncoding }),
    ...(signal === undefined ? {} : { signal }),
  });
  return { url, sha256, rawBytes: ipc.byteLength };
}

/** `batches` as one IPC stream on `schema`. */
export function serializeStream(schema: Schema, batches: readonly RecordBatch[]): Uint8Array {
  return concatBytes(encodeStream(schema, batches));
}

type Policy = CheckedPolicy;

/**
 * A per-response cap on externalized bytes (HTTP's `maxExternalizedResponseBytes`): what one
 * response may upload, checked before each upload (against the batch's buffer size, as the
 * reference predicts it) and after (against the bytes uploaded). Uploaded bytes cannot be taken
 * back, so it is hard on every kind of call.
 */
export interface ExternalBudget {
  readonly limit: number;
  /** Raw IPC bytes this response has uploaded so far. */
  used: number;
}

function overshoot(bytes: number, budget: ExternalBudget, method: string): RuntimeError {
  return new RuntimeError(
    `Externalised payload exceeds max_externalized_response_bytes (${bytes} > ${budget.limit}) for method '${method}'`,
  );
}

/**
 * The call's signal for `ExternalStorage.upload`, or a function giving it: read only when an upload
 * happens (a call makes its signal on first use, and most results stay under the threshold).
 */
export type UploadSignal = AbortSignal | (() => AbortSignal);

/** Uploads `batches` as one stream under `budget` (null: none); the pointer for them. */
async function uploadUnder(
  schema: Schema,
  batches: readonly RecordBatch[],
  predicted: number,
  policy: Policy,
  budget: ExternalBudget | null,
  method: string,
  signal: UploadSignal | undefined,
): Promise<RecordBatch> {
  if (budget !== null && budget.used + predicted > budget.limit)
    throw overshoot(budget.used + predicted, budget, method);
  const callSignal = typeof signal === "function" ? signal() : signal;
  const up = await uploadIpc(serializeStream(schema, batches), schema, policy.storage, policy.compression, callSignal);
  if (budget !== null) {
    budget.used += up.rawBytes;
    if (budget.used > budget.limit) throw overshoot(budget.used, budget, method);
  }
  return makePointerBatch(schema, up.url, up.sha256);
}

/**
 * A unary result or stream header: the pointer replacing `batch` when it has rows and is at or
 * above the threshold, else `batch` itself. `signal` (the call's, see `UploadSignal`) goes to
 * `ExternalStorage.upload`.
 */
export async function externalizeBatch(
  batch: RecordBatch,
  policy: Policy,
  budget: ExternalBudget | null = null,
  method = "",
  signal?: UploadSignal,
): Promise<RecordBatch> {
  if (batch.numRows === 0) return batch;
  const size = totalBufferSize(batch);
  if (size < policy.thresholdBytes) return batch;
  return uploadUnder(batch.schema, [batch], size, policy, budget, method, signal);
}

/**
 * One stream turn (its log batches and at most one data batch, in order): when the data batch
 * is at or above the threshold, the whole turn as one uploaded stream and one pointer in its
 * place; else the batches unchanged.
 */
export async function externalizeTurn(
  schema: Schema,
  batches: readonly RecordBatch[],
  policy: Policy,
  budget: ExternalBudget | null = null,
  method = "",
  signal?: UploadSignal,
): Promise<readonly RecordBatch[]> {
  const data = batches.find((b) => classifyBatch(b) === "data");
  if (data === undefined) return batches;
  const size = totalBufferSize(data);
  if (size < policy.thresholdBytes) return batches;
  return [await uploadUnder(schema, batches, size, policy, budget, method, signal)];
}

/**
 * A reference to an already-published unary result (the reference's `ExternalRef`): a unary
 * handler may return one in place of its value, and the server answers with its pointer batch
 * directly, whether or not it externalizes and whatever its threshold. The object at `url` must
 * be an IPC stream on the method's result schema holding one 1-row batch (see `publishExternal`).
 */
export class ExternalRef {
  readonly url: string;
  readonly sha256: string | null;

  constructor(url: string, sha256: string | null = null) {
    if (url === "") throw new RangeError("ExternalRef.url must be non-empty");
    if (sha256 !== null && !/^[0-9a-f]{64}$/.test(sha256)) {
      throw new RangeError("ExternalRef.sha256 must be 64 lowercase hex characters (or null)");
    }
    this.url = url;
    this.sha256 = sha256;
  }

  /** The pointer batch announcing this ref on `schema` (the method's result schema). */
  pointerBatch(schema: Schema): RecordBatch {
    return makePointerBatch(schema, this.url, this.sha256);
  }
}

/**
 * Publishes a 1-row unary result batch once (serialized, hashed, compressed and uploaded as the
 * per-call externalizer does) and returns a reusable `ExternalRef`; `includeSha256: false` leaves
 * the digest out, so clients skip the content check.
 */
export async function publishExternal(
  batch: RecordBatch,
  storage: ExternalStorage,
  compression?: ExternalCompression,
  opts: { readonly includeSha256?: boolean } = {},
): Promise<ExternalRef> {
  if (batch.numRows !== 1)
    throw new RangeError(`publishExternal expects a 1-row result batch, got ${batch.numRows} rows`);
  const up = await uploadIpc(serializeStream(batch.schema, [batch]), batch.schema, storage, compression);
  return new ExternalRef(up.url, opts.includeSha256 === false ? null : up.sha256);
}
