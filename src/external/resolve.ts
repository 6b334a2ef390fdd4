/**
 * The client's side of external storage: a pointer batch is fetched, verified (SHA-256 of the
 * raw IPC bytes when the pointer names one, the schema against the pointer's), its log batches
 * handed on, and its one data batch returned with the payload's own metadata plus
 * `vgi_rpc.location.fetch_ms` and `vgi_rpc.location.source`, as the reference's
 * `resolve_external_location` does.
 */
import { createHash } from "node:crypto";
import type { RecordBatch, Schema } from "apache-arrow";
import { typeText } from "../protocol/type-tokens.js";
import { batchFromData } from "../wire/batches.js";
import { decodeStreamBytes } from "../wire/ipc.js";
import { classifyBatch, errorFromMetadata } from "../wire/messages.js";
import {
  ExternalFetchError,
  type FetchConfig,
  type FetchOptions,
  fetchConfig,
  fetchObject,
  PermanentFetchError,
  withRetries,
} from "./fetch.js";
import {
  isPointerBatch,
  LOCATION_FETCH_MS_KEY,
  LOCATION_KEY,
  LOCATION_SHA256_KEY,
  LOCATION_SOURCE_KEY,
  pointerTarget,
  redactUrl,
} from "./pointer.js";

function sameSchema(a: Schema, b: Schema): boolean {
  return (
    a.fields.length === b.fields.length &&
    a.fields.every((f, i) => f.name === b.fields[i]!.name && typeText(f.type) === typeText(b.fields[i]!.type))
  );
}

/**
 * Resolves pointer batches for one client (or server): holds the fetch configuration and bounds
 * how many resolutions run at once.
 */
export class ExternalResolver {
  private readonly config: FetchConfig;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(opts: FetchOptions = {}) {
    this.config = fetchConfig(opts);
  }

  /**
   * The batch `pointer` stands for. Log batches of the fetched stream go to `onLog`; an error
   * batch in it is thrown as the `RpcError` it carries. Fails with `ExternalFetchError`.
   */
  async resolve(pointer: RecordBatch, onLog?: (log: RecordBatch) => void): Promise<RecordBatch> {
    if (!isPointerBatch(pointer)) return pointer;
    const { url, sha256 } = pointerTarget(pointer);
    await this.acquire();
    try {
      const started = performance.now();
      const data = await withRetries(url, this.config, async (signal) => {
        const bytes = await fetchObject(url, this.config, signal);
        if (sha256 !== null) {
          const actual = createHash("sha256").update(bytes).digest("hex");
          if (actual !== sha256) {
            throw new PermanentFetchError(
              `SHA-256 checksum mismatch for ${redactUrl(url)}: expected ${sha256}, got ${actual}`,
            );
          }
        }
        return bytes;
      });
      const elapsed = performance.now() - started;
      return this.unpack(pointer.schema, url, data, elapsed, onLog);
    } finally {
      this.release();
    }
  }

  private unpack(
    schema: Schema,
    url: string,
    bytes: Uint8Array,
    elapsedMs: number,
    onLog: ((log: RecordBatch) => void) | undefined,
  ): RecordBatch {
    const fail = (message: string, cause?: unknown): never => {
      throw new ExternalFetchError(message, url, cause === undefined ? {} : { cause });
    };
    let decoded: ReturnType<typeof decodeStreamBytes>;
    try {
      decoded = decodeStreamBytes(bytes, `ExternalLocation stream from ${redactUrl(url)}`);
    } catch (err) {
      return fail(
        `ExternalLocation stream from ${redactUrl(url)} is not a valid IPC stream: ${(err as Error).message}`,
        err,
      );
    }
    if (decoded === null) return fail(`ExternalLocation stream from ${redactUrl(url)} holds no schema`);
    const data: RecordBatch[] = [];
    for (const b of decoded.batches) {
      if (b.metadata.has(LOCATION_KEY)) {
        fail(`Redirect loop detected: fetched batch from ${redactUrl(url)} contains ${LOCATION_KEY}`);
      }
      const kind = classifyBatch(b);
      if (kind === "log") onLog?.(b);
      else if (kind === "error") throw errorFromMetadata(b.metadata);
      else data.push(b);
    }
    if (data.length === 0) fail(`No data batch found in ExternalLocation stream from ${redactUrl(url)}`);
    if (data.length > 1) {
      fail(`Multiple data batches (${data.length}) found in ExternalLocation stream from ${redactUrl(url)}`);
    }
    if (!sameSchema(decoded.schema, schema)) {
      fail(
        `Schema mismatch in ExternalLocation from ${redactUrl(url)}: the fetched stream's schema is not the pointer's`,
      );
    }
    const batch = data[0]!;
    const metadata = new Map(batch.metadata);
    metadata.set(LOCATION_FETCH_MS_KEY, elapsedMs.toFixed(1));
    metadata.set(LOCATION_SOURCE_KEY, url);
    return batchFromData(schema, batch.data.children, batch.numRows, metadata);
  }

  private acquire(): Promise<void> {
    if (this.active < this.config.maxConcurrentFetches) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.active--;
  }
}

/**
 * A resolved request batch as a server dispatches it: the fetched columns under the pointer's own
 * metadata (method, protocol, versions, trace context), less the pointer keys — the reference takes
 * a request's dispatch metadata from the outer batch, always.
 */
export function asRequest(pointer: RecordBatch, resolved: RecordBatch): RecordBatch {
  const metadata = new Map(pointer.metadata);
  metadata.delete(LOCATION_KEY);
  metadata.delete(LOCATION_SHA256_KEY);
  return batchFromData(resolved.schema, resolved.data.children, resolved.numRows, metadata);
}
