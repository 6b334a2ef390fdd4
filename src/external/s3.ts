/**
 * Amazon S3 (or any S3-compatible store) as an `ExternalStorage` and `UploadUrlProvider`, through
 * the AWS SDK v3, as the reference's `vgi_rpc/s3.py`: objects go to `{prefix}{uuid4 hex}.arrow`
 * (`.arrow.zst` when zstd-coded) with their `Content-Encoding` stored, and are handed out as
 * pre-signed GET URLs; client uploads get a pre-signed PUT and GET pair for one new key.
 *
 * The SDK (`@aws-sdk/client-s3`, `@aws-sdk/s3-request-presigner`) is an optional peer dependency,
 * loaded by `createS3Storage`. quiver never deletes what it uploads: give the bucket a lifecycle
 * rule expiring the prefix.
 */
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import type { Schema } from "apache-arrow";
import { type BucketStorage, type BucketStorageOptions, checkStoreOptions, objectKey, storageFailure } from "./keys.js";
import { loadSdk } from "./sdk.js";
import { type ContentEncoding, ExternalStorageError, type UploadUrl, uploadSignal } from "./storage.js";

export { type BucketStorage, type BucketStorageOptions, MAX_PRESIGN_EXPIRY_SECONDS } from "./keys.js";
export { MissingSdkError } from "./sdk.js";
export { ExternalStorageError } from "./storage.js";

/** Where objects go, and how long their URLs live (`createS3Storage`). */
export interface S3StorageOptions extends BucketStorageOptions {
  /**
   * Configuration of the `S3Client` created for this storage: `region`, `endpoint` and
   * `forcePathStyle` for an S3-compatible store, `credentials`. Default: the SDK's (region and
   * credentials from the environment). Not with `client`.
   */
  readonly clientConfig?: S3ClientConfig;
  /** An `S3Client` to use instead of creating one. Default: one made from `clientConfig`. */
  readonly client?: S3Client;
}

/** S3 storage for `ServerOptions.external` and `HttpServerOptions.uploadUrls`. */
export interface S3Storage extends BucketStorage {
  /** The SDK client it uses. */
  readonly client: S3Client;
}

/**
 * S3 storage: loads the AWS SDK (failing with `MissingSdkError` naming the packages when it is not
 * installed) and checks the options. The client is created now, from `clientConfig`; requests
 * start with the first upload.
 */
export async function createS3Storage(opts: S3StorageOptions): Promise<S3Storage> {
  const { prefix, presignExpirySeconds, uploadTimeoutMs } = checkStoreOptions("S3 storage", opts, [
    "client",
    "clientConfig",
  ]);
  const sdk = await loadSdk(
    "quiver-rpc/external/s3",
    ["@aws-sdk/client-s3", "@aws-sdk/s3-request-presigner"],
    async () => {
      const [s3, presigner] = await Promise.all([
        import("@aws-sdk/client-s3"),
        import("@aws-sdk/s3-request-presigner"),
      ]);
      return { ...s3, getSignedUrl: presigner.getSignedUrl };
    },
  );
  // Checksums only where S3 requires them: with the SDK's default ("WHEN_SUPPORTED") a pre-signed
  // PUT URL carries the CRC32 of an empty body, and S3 refuses the upload made to it.
  const client = opts.client ?? new sdk.S3Client({ requestChecksumCalculation: "WHEN_REQUIRED", ...opts.clientConfig });
  const bucket = opts.bucket;
  const fail = (doing: string, err: unknown): never => {
    throw storageFailure(
      "s3",
      bucket,
      doing,
      err,
      (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode,
    );
  };
  const sign = async (method: "GET" | "PUT", key: string): Promise<string> => {
    const input = { Bucket: bucket, Key: key };
    const expiry = { expiresIn: presignExpirySeconds };
    try {
      return method === "GET"
        ? await sdk.getSignedUrl(client, new sdk.GetObjectCommand(input), expiry)
        : await sdk.getSignedUrl(client, new sdk.PutObjectCommand(input), expiry);
    } catch (err) {
      return fail("URL signing", err);
    }
  };
  return {
    bucket,
    prefix,
    presignExpirySeconds,
    client,
    async upload(
      data: Uint8Array,
      _schema: Schema,
      o: { readonly contentEncoding?: ContentEncoding; readonly signal?: AbortSignal } = {},
    ) {
      const key = objectKey(prefix, o.contentEncoding);
      try {
        await client.send(
          new sdk.PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: data,
            ContentType: "application/octet-stream",
            ...(o.contentEncoding === undefined ? {} : { ContentEncoding: o.contentEncoding }),
          }),
          // The SDK sets no request timeout of its own: this bounds the upload, retries included,
          // and stops it when the call ends early.
          { abortSignal: uploadSignal(o.signal, uploadTimeoutMs) },
        );
      } catch (err) {
        fail("upload", err);
      }
      return sign("GET", key);
    },
    async uploadUrl(_schema?: Schema): Promise<UploadUrl> {
      const key = objectKey(prefix);
      const expiresAt = new Date(Date.now() + presignExpirySeconds * 1000);
      // No ContentType on the PUT: a signed Content-Type would refuse a client sending another
      // (the reference's client sends application/vnd.apache.arrow.stream, quiver's octet-stream).
      const [uploadUrl, downloadUrl] = await Promise.all([sign("PUT", key), sign("GET", key)]);
      if (/[?&]x-amz-checksum-/i.test(uploadUrl)) {
        throw new ExternalStorageError(
          "S3 upload URL signing: the S3Client adds a checksum of an empty body to pre-signed PUT URLs, which S3 " +
            'refuses uploads to; create it with requestChecksumCalculation: "WHEN_REQUIRED"',
          "s3",
        );
      }
      return { uploadUrl, downloadUrl, expiresAt };
    },
  };
}
