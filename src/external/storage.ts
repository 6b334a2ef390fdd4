/**
 * Where externalized batches go: one small interface (`ExternalStorage`), and the reference's
 * fake storage protocol (`vgi_rpc/conformance/fake_storage.py`) behind it for tests and the
 * conformance runs. quiver never deletes what it uploads: expire objects with the store's own
 * lifecycle rules, as the reference asks of its operators.
 */
import type { Schema } from "apache-arrow";

/** A content coding applied to an uploaded object (stored so that fetchers can decode it). */
export type ContentEncoding = "zstd" | "gzip";

/** A storage backend for externalized batches. */
export interface ExternalStorage {
  /**
   * Stores `data` (a complete Arrow IPC stream, encoded with `contentEncoding` when given) and
   * resolves with a URL a client can GET it from (typically pre-signed). May be called
   * concurrently.
   */
  upload(data: Uint8Array, schema: Schema, opts: { readonly contentEncoding?: ContentEncoding }): Promise<string>;
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
export class FakeStorage implements ExternalStorage {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  async upload(
    data: Uint8Array,
    _schema: Schema,
    opts: { readonly contentEncoding?: ContentEncoding } = {},
  ): Promise<string> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const allocRes = await fetch(`${this.baseUrl}/alloc`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(opts.contentEncoding === undefined ? {} : { content_encoding: opts.contentEncoding }),
      signal,
    });
    if (!allocRes.ok) throw new Error(`fake storage: POST /alloc answered ${allocRes.status}`);
    const alloc = (await allocRes.json()) as Allocation;
    const legacy = typeof alloc.object_url === "string" ? alloc.object_url : undefined;
    const uploadUrl = typeof alloc.upload_url === "string" ? alloc.upload_url : legacy;
    const downloadUrl = typeof alloc.download_url === "string" ? alloc.download_url : legacy;
    if (uploadUrl === undefined || downloadUrl === undefined) throw new Error("fake storage: /alloc named no URLs");
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (opts.contentEncoding !== undefined) headers["content-encoding"] = opts.contentEncoding;
    const put = await fetch(uploadUrl, { method: "PUT", headers, body: data as Uint8Array<ArrayBuffer>, signal });
    await put.arrayBuffer();
    if (!put.ok) throw new Error(`fake storage: PUT answered ${put.status}`);
    return downloadUrl;
  }
}
