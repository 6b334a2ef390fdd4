/**
 * Where externalized batches go: one small interface (`ExternalStorage`), and the reference's
 * fake storage protocol (`vgi_rpc/conformance/fake_storage.py`) behind it for tests and the
 * conformance runs. quiver never deletes what it uploads: expire objects with the store's own
 * lifecycle rules, as the reference asks of its operators.
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Schema } from "apache-arrow";
import { RpcError } from "../errors.js";

/** A content coding applied to an uploaded object (stored so that fetchers can decode it). */
export type ContentEncoding = "zstd" | "gzip";

/** A storage backend for externalized batches. */
export interface ExternalStorage {
  /**
   * Stores `data` (a complete Arrow IPC stream, encoded with `contentEncoding` when given) and
   * resolves with a URL a client can GET it from (typically pre-signed). May be called
   * concurrently. `signal`, when given, is the call's: it aborts when the call ends early (its
   * deadline, its client gone, the server shutting down), and the upload should stop then; the call
   * does not wait for it.
   */
  upload(
    data: Uint8Array,
    schema: Schema,
    opts: { readonly contentEncoding?: ContentEncoding; readonly signal?: AbortSignal },
  ): Promise<string>;
}

/** A pre-signed URL pair for a client upload: PUT to one, GET from the other (signatures are per method). */
export interface UploadUrl {
  readonly uploadUrl: string;
  readonly downloadUrl: string;
  readonly expiresAt: Date;
}

/** An upload's signal: aborts after `ms`, or with `signal` (the call's, see `upload`), whichever is first. */
export function uploadSignal(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

/**
 * Vends upload URL pairs (the reference's `UploadUrlProvider`): what the HTTP server's
 * `__upload_url__/init` route answers with (`HttpServerOptions.uploadUrls`). May be called
 * concurrently.
 */
export interface UploadUrlProvider {
  uploadUrl(schema: Schema): Promise<UploadUrl>;
}

/**
 * A storage backend failed to store an object or to sign its URLs (the S3 and GCS backends throw
 * it, with the SDK's error as `cause`). A call whose output it was externalizing fails with it.
 */
export class ExternalStorageError extends RpcError {
  /** Which backend: `s3`, `gcs`, `fake`. */
  readonly backend: string;
  /** The HTTP status the store answered, when it answered one. */
  readonly status: number | null;

  constructor(message: string, backend: string, opts: { status?: number | null; cause?: unknown } = {}) {
    super(message, {
      type: "RuntimeError",
      code: "UNAVAILABLE",
      kind: "external_storage_failed",
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.name = "ExternalStorageError";
    this.backend = backend;
    this.status = opts.status ?? null;
  }
}

/** What `POST /alloc` answers. */
interface Allocation {
  readonly object_url?: unknown;
  readonly upload_url?: unknown;
  readonly download_url?: unknown;
}

/**
 * The reference's fake storage service as an `ExternalStorage`: `POST {base}/alloc` vends an
 * upload (PUT-only) and a download (GET/HEAD-only) URL for a new blob, the bytes are PUT to the
 * first (with `Content-Encoding` when coded), and the second is returned. Serve one with
 * `python -m vgi_rpc.conformance.fake_storage --port 0`, or `serveFakeStorage` in the tests.
 */
export class FakeStorage implements ExternalStorage, UploadUrlProvider {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  /** Allocates a blob: its URL pair (valid for an hour, as the reference's adapter says). */
  async uploadUrl(_schema?: Schema): Promise<UploadUrl> {
    const alloc = await this.alloc({}, AbortSignal.timeout(this.timeoutMs));
    return { uploadUrl: alloc.upload, downloadUrl: alloc.download, expiresAt: new Date(Date.now() + 3_600_000) };
  }

  private async alloc(body: object, signal: AbortSignal): Promise<{ upload: string; download: string }> {
    const allocRes = await fetch(`${this.baseUrl}/alloc`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    if (!allocRes.ok) {
      throw new ExternalStorageError(`fake storage: POST /alloc answered ${allocRes.status}`, "fake", {
        status: allocRes.status,
      });
    }
    const alloc = (await allocRes.json()) as Allocation;
    const legacy = typeof alloc.object_url === "string" ? alloc.object_url : undefined;
    const upload = typeof alloc.upload_url === "string" ? alloc.upload_url : legacy;
    const download = typeof alloc.download_url === "string" ? alloc.download_url : legacy;
    if (upload === undefined || download === undefined) {
      throw new ExternalStorageError("fake storage: /alloc named no URLs", "fake");
    }
    return { upload, download };
  }

  async upload(
    data: Uint8Array,
    _schema: Schema,
    opts: { readonly contentEncoding?: ContentEncoding; readonly signal?: AbortSignal } = {},
  ): Promise<string> {
    const signal = uploadSignal(opts.signal, this.timeoutMs);
    const { upload: uploadUrl, download: downloadUrl } = await this.alloc(
      opts.contentEncoding === undefined ? {} : { content_encoding: opts.contentEncoding },
      signal,
    );
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (opts.contentEncoding !== undefined) headers["content-encoding"] = opts.contentEncoding;
    const status = await put(uploadUrl, data, headers, signal);
    if (status < 200 || status >= 300) {
      throw new ExternalStorageError(`fake storage: PUT answered ${status}`, "fake", { status });
    }
    return downloadUrl;
  }
}

/**
 * PUTs `body` with node:http(s), resolving with the status once the answer is read. Not `fetch`:
 * undici takes twice as long over a large body (a 30 MB PUT on loopback: 82 ms against 42).
 */
function put(url: string, body: Uint8Array, headers: Record<string, string>, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = URL.canParse(url) ? new URL(url) : null;
    if (target === null || (target.protocol !== "http:" && target.protocol !== "https:")) {
      reject(new ExternalStorageError("fake storage: /alloc named an upload URL that is not http(s)", "fake"));
      return;
    }
    const mod = target.protocol === "https:" ? https : http;
    const req = mod.request(
      target,
      { method: "PUT", headers: { ...headers, "content-length": String(body.byteLength) }, signal },
      (res) => {
        res.on("error", reject);
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    req.on("error", (err) =>
      reject(new ExternalStorageError(`fake storage: PUT failed: ${err.message}`, "fake", { cause: err })),
    );
    req.end(body);
  });
}
