/**
 * ExternalLocation pointer batches, as the reference (`vgi_rpc/external.py`) writes and reads
 * them: a zero-row batch on the payload's schema whose custom metadata holds `vgi_rpc.location`
 * (the URL of an Arrow IPC stream) and, optionally, `vgi_rpc.location.sha256` (the lowercase hex
 * SHA-256 of that stream's raw, pre-compression bytes). A zero-row batch that also carries
 * `vgi_rpc.log_level` is a log batch, never a pointer.
 */
import type { Data, RecordBatch, Schema } from "apache-arrow";
import { emptyBatch } from "../wire/batches.js";
import { LOCATION_KEY, LOG_LEVEL_KEY } from "../wire/keys.js";

export { LOCATION_KEY };
/** Hex SHA-256 of the raw IPC bytes a pointer names (optional on the wire). */
export const LOCATION_SHA256_KEY = "vgi_rpc.location.sha256";
/** Stamped on a resolved batch: how long the fetch took, in ms with one decimal. */
export const LOCATION_FETCH_MS_KEY = "vgi_rpc.location.fetch_ms";
/** Stamped on a resolved batch: the URL it was fetched from (provenance, as the reference sends it). */
export const LOCATION_SOURCE_KEY = "vgi_rpc.location.source";

/** True for a pointer batch: zero rows, `vgi_rpc.location` present, not a log batch. */
export function isPointerBatch(batch: RecordBatch): boolean {
  const md = batch.metadata;
  return batch.numRows === 0 && md.has(LOCATION_KEY) && !md.has(LOG_LEVEL_KEY);
}

/** The zero-row pointer batch on `schema` naming `url` (and the digest, when given). */
export function makePointerBatch(schema: Schema, url: string, sha256?: string | null): RecordBatch {
  const md = new Map<string, string>([[LOCATION_KEY, url]]);
  if (sha256 !== undefined && sha256 !== null) md.set(LOCATION_SHA256_KEY, sha256);
  return emptyBatch(schema, md);
}

/** What a pointer batch names. */
export interface PointerTarget {
  readonly url: string;
  readonly sha256: string | null;
}

/** Reads a pointer batch's URL and digest (the batch must satisfy `isPointerBatch`). */
export function pointerTarget(batch: RecordBatch): PointerTarget {
  return { url: batch.metadata.get(LOCATION_KEY) ?? "", sha256: batch.metadata.get(LOCATION_SHA256_KEY) ?? null };
}

/**
 * The bytes a batch's buffers hold, as pyarrow's `RecordBatch.get_total_buffer_size()` counts
 * them (every buffer of every column, children and dictionaries included, whole even when
 * sliced): the externalization threshold is compared with this.
 */
export function totalBufferSize(batch: RecordBatch): number {
  let total = 0;
  const seen = new Set<unknown>();
  const visit = (d: Data): void => {
    for (const buf of [d.values, d.valueOffsets, d.nullBitmap, d.typeIds] as (ArrayBufferView | undefined)[]) {
      if (buf !== undefined && buf !== null && !seen.has(buf)) {
        seen.add(buf);
        total += buf.byteLength;
      }
    }
    for (const c of d.children) visit(c);
    const dict = d.dictionary;
    if (dict !== undefined) for (const chunk of dict.data) visit(chunk);
  };
  for (const c of batch.data.children) visit(c);
  return total;
}

/**
 * A URL with its credentials removed (userinfo, query, fragment), as the reference's `redact_url`
 * renders it for errors and logs: pre-signed URLs carry their signature in the query.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.host === "") return "<invalid-url>";
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "<invalid-url>";
  }
}
