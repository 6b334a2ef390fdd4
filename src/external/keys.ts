/**
 * What the S3 and GCS backends share: their options' checks and the reference's key layout.
 */
import { randomUUID } from "node:crypto";
import { type ContentEncoding, type ExternalStorage, ExternalStorageError, type UploadUrlProvider } from "./storage.js";

/** Where a bucket storage puts objects, and how long their URLs live. */
export interface BucketStorageOptions {
  /** The bucket objects are stored in. Required. */
  readonly bucket: string;
  /** Prefix of every object's key (give the bucket a lifecycle rule expiring it). Default `"vgi-rpc/"`. */
  readonly prefix?: string;
  /** Lifetime of the signed GET and PUT URLs, in seconds (1 to 604 800, the signing limit). Default 3600. */
  readonly presignExpirySeconds?: number;
  /**
   * How long one upload may take, in ms: a store that stops answering fails the upload
   * (`ExternalStorageError`) instead of holding the call. S3: the whole upload, the SDK's retries
   * included. GCS: each request of the client made from `storageOptions` (its `timeout`, unless
   * `storageOptions` sets one; a client passed as `storage` keeps its own). Default 300 000.
   */
  readonly uploadTimeoutMs?: number;
}

/** What the S3 and GCS storages share: a bucket, a key prefix, a URL lifetime. */
export interface BucketStorage extends ExternalStorage, UploadUrlProvider {
  readonly bucket: string;
  /** Prefix of every object's key. */
  readonly prefix: string;
  /** Lifetime of the URLs it signs, in seconds. */
  readonly presignExpirySeconds: number;
}

/** The longest a pre-signed URL may live (SigV4 and GCS V4 signing both stop at 7 days). */
export const MAX_PRESIGN_EXPIRY_SECONDS = 604_800;

/**
 * Checks the options shared by the S3 and GCS backends (and that no more than one of the two
 * `exclusive` ones is given); returns prefix, lifetime and upload timeout with defaults.
 */
export function checkStoreOptions<O extends BucketStorageOptions>(
  what: string,
  opts: O,
  exclusive: readonly [keyof O & string, keyof O & string],
): { prefix: string; presignExpirySeconds: number; uploadTimeoutMs: number } {
  const [a, b] = exclusive;
  if (opts[a] !== undefined && opts[b] !== undefined) throw new TypeError(`${what}: give ${a} or ${b}, not both`);
  if (typeof opts.bucket !== "string" || opts.bucket === "") {
    throw new TypeError(`${what}: bucket must be a non-empty string`);
  }
  const prefix = opts.prefix ?? "vgi-rpc/";
  if (typeof prefix !== "string") throw new TypeError(`${what}: prefix must be a string`);
  const presignExpirySeconds = opts.presignExpirySeconds ?? 3600;
  if (
    !Number.isSafeInteger(presignExpirySeconds) ||
    presignExpirySeconds < 1 ||
    presignExpirySeconds > MAX_PRESIGN_EXPIRY_SECONDS
  ) {
    throw new RangeError(
      `${what}: presignExpirySeconds must be an integer from 1 to ${MAX_PRESIGN_EXPIRY_SECONDS}, got ${String(presignExpirySeconds)}`,
    );
  }
  const uploadTimeoutMs = opts.uploadTimeoutMs ?? 300_000;
  if (!Number.isSafeInteger(uploadTimeoutMs) || uploadTimeoutMs < 1) {
    throw new RangeError(`${what}: uploadTimeoutMs must be a positive integer, got ${String(uploadTimeoutMs)}`);
  }
  return { prefix, presignExpirySeconds, uploadTimeoutMs };
}

/** A new object key: `{prefix}{uuid4 hex}.arrow`, `.arrow.zst` for zstd-coded objects (the reference's layout). */
export function objectKey(prefix: string, contentEncoding?: ContentEncoding): string {
  return `${prefix}${randomUUID().replace(/-/g, "")}${contentEncoding === "zstd" ? ".arrow.zst" : ".arrow"}`;
}

/** An SDK's failure as the `ExternalStorageError` a backend throws: the SDK error's name and the HTTP status. */
export function storageFailure(
  backend: "s3" | "gcs",
  bucket: string,
  doing: string,
  err: unknown,
  status: unknown,
): ExternalStorageError {
  const name = (err as { name?: unknown } | null)?.name;
  const code = typeof status === "number" ? status : null;
  return new ExternalStorageError(
    `${backend.toUpperCase()} ${doing} in bucket '${bucket}' failed: ${typeof name === "string" ? name : "Error"}${code === null ? "" : ` (HTTP ${code})`}`,
    backend,
    { status: code, cause: err },
  );
}
