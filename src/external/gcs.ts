/**
 * Google Cloud Storage as an `ExternalStorage` and `UploadUrlProvider`, through
 * `@google-cloud/storage`, as the reference's `vgi_rpc/gcs.py`: objects go to
 * `{prefix}{uuid4 hex}.arrow` (`.arrow.zst` when zstd-coded) with their `Content-Encoding` stored,
 * and are handed out as V4 signed GET URLs; client uploads get a signed PUT and GET pair for one new
 * object.
 *
 * The SDK is an optional peer dependency, loaded by `createGcsStorage`. Signing needs credentials
 * that can sign (a service account key, or the IAM signBlob permission). quiver never deletes what
 * it uploads: give the bucket a lifecycle rule deleting the prefix.
 */
import type { Storage, StorageOptions } from "@google-cloud/storage";
import type { Schema } from "apache-arrow";
import { type BucketStorage, type BucketStorageOptions, checkStoreOptions, objectKey, storageFailure } from "./keys.js";
import { loadSdk } from "./sdk.js";
import type { ContentEncoding, UploadUrl } from "./storage.js";

export { type BucketStorage, type BucketStorageOptions, MAX_PRESIGN_EXPIRY_SECONDS } from "./keys.js";
export { MissingSdkError } from "./sdk.js";
export { ExternalStorageError } from "./storage.js";

/** Where objects go, and how long their URLs live (`createGcsStorage`). */
export interface GcsStorageOptions extends BucketStorageOptions {
  /**
   * Options of the `Storage` client created for this storage: `projectId`, `credentials` or
   * `keyFilename`, `apiEndpoint` for an emulator. Default: the SDK's (Application Default
   * Credentials). Not with `storage`.
   */
  readonly storageOptions?: StorageOptions;
  /** A `Storage` client to use instead of creating one. Default: one made from `storageOptions`. */
  readonly storage?: Storage;
}

/** GCS storage for `ServerOptions.external` and `HttpServerOptions.uploadUrls`. */
export interface GcsStorage extends BucketStorage {
  /** The SDK client it uses. */
  readonly storage: Storage;
}

/**
 * GCS storage: loads `@google-cloud/storage` (failing with `MissingSdkError` naming it when it is
 * not installed) and checks the options. Requests start with the first upload.
 */
export async function createGcsStorage(opts: GcsStorageOptions): Promise<GcsStorage> {
  const { prefix, presignExpirySeconds, uploadTimeoutMs } = checkStoreOptions("GCS storage", opts, [
    "storage",
    "storageOptions",
  ]);
  const sdk = await loadSdk(
    "quiver-rpc/external/gcs",
    ["@google-cloud/storage"],
    () => import("@google-cloud/storage"),
  );
  // The SDK gives every request the client's `timeout` (none unless set), overriding one given
  // per call: so the upload's bound is the client's, unless `storageOptions` sets its own.
  const storage = opts.storage ?? new sdk.Storage({ timeout: uploadTimeoutMs, ...opts.storageOptions });
  const bucketName = opts.bucket;
  const bucket = storage.bucket(bucketName);
  const fail = (doing: string, err: unknown): never => {
    // An ApiError's code is the HTTP status; a GaxiosError's is in its response.
    const e = err as { code?: unknown; response?: { status?: unknown } } | null;
    throw storageFailure("gcs", bucketName, doing, err, typeof e?.code === "number" ? e.code : e?.response?.status);
  };
  const sign = async (name: string, action: "read" | "write"): Promise<string> => {
    try {
      const [url] = await bucket.file(name).getSignedUrl({
        version: "v4",
        action,
        expires: Date.now() + presignExpirySeconds * 1000,
      });
      return url;
    } catch (err) {
      return fail("URL signing", err);
    }
  };
  return {
    bucket: bucketName,
    prefix,
    presignExpirySeconds,
    storage,
    async upload(data: Uint8Array, _schema: Schema, o: { readonly contentEncoding?: ContentEncoding } = {}) {
      const name = objectKey(prefix, o.contentEncoding);
      try {
        await bucket.file(name).save(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
          resumable: false,
          contentType: "application/octet-stream",
          ...(o.contentEncoding === undefined ? {} : { metadata: { contentEncoding: o.contentEncoding } }),
        });
      } catch (err) {
        fail("upload", err);
      }
      return sign(name, "read");
    },
    async uploadUrl(_schema?: Schema): Promise<UploadUrl> {
      const name = objectKey(prefix);
      const expiresAt = new Date(Date.now() + presignExpirySeconds * 1000);
      // Unlike the reference, the PUT does not sign a Content-Type: a signed one refuses a client
      // sending another (the reference's client sends application/vnd.apache.arrow.stream to a URL
      // its GCS backend signs for application/octet-stream).
      const [uploadUrl, downloadUrl] = await Promise.all([sign(name, "write"), sign(name, "read")]);
      return { uploadUrl, downloadUrl, expiresAt };
    },
  };
}
