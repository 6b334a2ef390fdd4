/**
 * Decoding compressed request bodies (`Content-Encoding: gzip | zstd`) without trusting them: the
 * decoded size is counted as it is produced and the body refused the moment it passes the cap,
 * never inflated first; the work runs off the event loop (gzip) or in slices between which the
 * loop runs (zstd), so one client's bomb does not stall another's call.
 *
 * gzip goes through node:zlib's streaming `Gunzip`, whose inflation runs on libuv's thread pool;
 * the loop only counts and keeps its 64 KiB output chunks. Inflation costs at most about a thousandth
 * of a millisecond per KiB of output (deflate's ratio is at most ~1032:1), so the cap bounds it.
 *
 * zstd has no node:zlib codec on Node 20, so it is decoded in JavaScript by `fzstd`, whose
 * streaming `Decompress` works synchronously per push and, per block, moves its whole window (it
 * slides it by copying) and allocates it per frame: a frame header may ask for a window of up to
 * 2 GiB, which a single-segment frame sets to its declared content size. So before fzstd sees a
 * frame, its header is read here: a declared content size over the cap is refused (413), as is a
 * window over `maxZstdWindowBytes` (400, as libzstd refuses windows over its limit). The blocks are
 * then pushed one at a time (their headers are read here too), so one push decodes at most a few
 * blocks of at most 128 KiB of output each, the running total is checked after each, and the loop
 * gets a turn every 2 ms (`SLICE_MS`). Because tiny blocks each cost a whole window move, each block
 * is also charged its window (plus a fixed overhead) against a work budget: what a body at the cap
 * would cost in full 128 KiB blocks at the largest window allowed; a body over it is refused (413).
 */
import { createGunzip } from "node:zlib";
import { Decompress } from "fzstd";
import { bodyBuffer, POOLED_MIN_BYTES } from "../transports/node/buffer-pool.js";
import { concatBytes } from "../wire/ipc.js";
import type { Encoding } from "./compression.js";

/** Default `maxZstdWindowBytes`: 8 MiB, the largest window zstd's levels 1-19 use. */
export const DEFAULT_MAX_ZSTD_WINDOW_BYTES = 8 * 1024 * 1024;

/** A decoded body went over the cap, or would cost more to decode than a body at the cap. */
export class DecompressionLimitExceeded extends Error {
  constructor(
    readonly limit: number,
    message = `decompressed body exceeds ${limit} bytes`,
  ) {
    super(message);
    this.name = "DecompressionLimitExceeded";
  }
}

/** The limits a body is decoded under. */
export interface InflateLimits {
  /** Largest decoded body, in bytes (null: no cap, and no zstd work budget). */
  readonly maxBytes: number | null;
  /** Largest window a zstd frame may declare, in bytes. */
  readonly maxZstdWindowBytes: number;
}

/** Decodes a request body under `limits`; throws `DecompressionLimitExceeded`, or another error for a corrupt body. */
export function inflateBody(encoding: Encoding, data: Uint8Array, limits: InflateLimits): Promise<Uint8Array> {
  return encoding === "gzip" ? gunzipCapped(data, limits.maxBytes) : unzstdCapped(data, limits);
}

/**
 * A body's decoded output, counted. Its first MiB is kept as the decoder's chunks; the rest is
 * copied into 1 MiB slabs from the large-body pool, so the decoders' own chunks (64-128 KiB each,
 * malloc'd) die young and their memory is reused: kept up to the cap, they would leave that much
 * in the allocator, which the process keeps after the body is gone. The slabs go back to the pool,
 * which releases what it holds after its idle time.
 */
class Output {
  private readonly parts: Uint8Array[] = [];
  private slab: Uint8Array | null = null;
  private used = 0;
  /** Bytes decoded so far. */
  total = 0;

  add(chunk: Uint8Array): void {
    this.total += chunk.byteLength;
    if (this.total <= POOLED_MIN_BYTES) {
      if (chunk.byteLength > 0) this.parts.push(chunk);
      return;
    }
    let rest = chunk;
    while (rest.byteLength > 0) {
      if (this.slab === null || this.used === this.slab.byteLength) {
        if (this.slab !== null) this.parts.push(this.slab);
        this.slab = bodyBuffer(POOLED_MIN_BYTES);
        this.used = 0;
      }
      const k = Math.min(rest.byteLength, this.slab.byteLength - this.used);
      this.slab.set(k === rest.byteLength ? rest : rest.subarray(0, k), this.used);
      this.used += k;
      rest = rest.subarray(k);
    }
  }

  /** The whole body (from the large-body pool when large: its batches view it). */
  body(): Uint8Array {
    const parts = this.slab === null ? this.parts : [...this.parts, this.slab.subarray(0, this.used)];
    return concatBytes(parts, this.total >= POOLED_MIN_BYTES ? bodyBuffer : undefined);
  }

  /** Lets the output go (a refused body: the decoder may outlive the call a while). */
  drop(): void {
    this.parts.length = 0;
    this.slab = null;
  }
}

// ---------------------------------------------------------------------------------------------
// gzip

/** Output chunk size of the streaming inflater: the cap is checked (and passed by) at most this much at a time. */
const GZIP_CHUNK_BYTES = 64 * 1024;

function gunzipCapped(data: Uint8Array, limit: number | null): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const gunzip = createGunzip({ chunkSize: GZIP_CHUNK_BYTES });
    const output = new Output();
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      // The stream outlives this call until its last pool job returns: let the output go now.
      output.drop();
      gunzip.destroy();
      reject(err);
    };
    gunzip.on("data", (chunk: Buffer) => {
      if (settled) return;
      if (limit !== null && output.total + chunk.byteLength > limit) {
        fail(new DecompressionLimitExceeded(limit));
        return;
      }
      output.add(chunk);
    });
    gunzip.on("end", () => {
      if (settled) return;
      settled = true;
      resolve(output.body());
    });
    gunzip.on("error", fail);
    gunzip.end(data);
  });
}

// ---------------------------------------------------------------------------------------------
// zstd

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames carry magic numbers 0x184D2A50-0x184D2A5F. */
const SKIPPABLE_MAGIC = 0x184d2a50;
/** A block regenerates at most this much (and at most its frame's window). */
const MAX_BLOCK_BYTES = 128 * 1024;
/** What a block costs fzstd besides its window move and output, as bytes of work. */
const BLOCK_OVERHEAD_BYTES = 16 * 1024;
/** The loop gets a turn after at most about this much decoding. */
const SLICE_MS = 2;

/** A zstd frame header, as RFC 8878 section 3.1.1 lays it out. */
interface FrameHeader {
  /** Bytes of the magic number and header. */
  readonly bytes: number;
  readonly windowBytes: number;
  /** The declared content size, or null when the frame does not declare it. */
  readonly contentBytes: number | null;
  readonly checksum: boolean;
}

function u32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

/** Little-endian unsigned integer of `n` bytes (n <= 8; exact up to 2^53). */
function uintLE(data: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + data[at + i]!;
  return v;
}

function truncated(): Error {
  return new Error("zstd body is truncated");
}

/** Reads the frame header at `at` (the magic number is checked by the caller). */
function readFrameHeader(data: Uint8Array, at: number): FrameHeader {
  if (at + 5 > data.byteLength) throw truncated();
  const fhd = data[at + 4]!;
  if (fhd & 0x08) throw new Error("zstd frame header sets its reserved bit");
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  let p = at + 5;
  let windowBytes = 0;
  if (!singleSegment) {
    if (p + 1 > data.byteLength) throw truncated();
    const wd = data[p++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowBytes = base + (base / 8) * (wd & 7);
  }
  if (p + dictBytes + fcsBytes > data.byteLength) throw truncated();
  // fzstd has no dictionaries: it would decode such a frame's references to one as zeros.
  if (dictBytes > 0 && uintLE(data, p, dictBytes) !== 0) throw new Error("zstd frame needs a dictionary");
  p += dictBytes;
  let contentBytes: number | null = null;
  if (fcsBytes > 0) contentBytes = uintLE(data, p, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
  p += fcsBytes;
  if (singleSegment) windowBytes = contentBytes ?? 0;
  return { bytes: p - at, windowBytes, contentBytes, checksum: (fhd & 0x04) !== 0 };
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function unzstdCapped(data: Uint8Array, limits: InflateLimits): Promise<Uint8Array> {
  const limit = limits.maxBytes;
  const maxWindow = limits.maxZstdWindowBytes;
  const budget =
    limit === null
      ? null
      : (Math.ceil(limit / MAX_BLOCK_BYTES) + 1) * (maxWindow + MAX_BLOCK_BYTES + BLOCK_OVERHEAD_BYTES);
  const output = new Output();
  let work = 0;
  const decoder = new Decompress((chunk) => {
    if (limit !== null && output.total + chunk.byteLength > limit) throw new DecompressionLimitExceeded(limit);
    output.add(chunk);
  });
  let sliceStart = performance.now();
  const push = async (bytes: Uint8Array, charge: number) => {
    work += charge;
    if (budget !== null && work > budget) {
      throw new DecompressionLimitExceeded(
        limit ?? 0,
        `zstd body costs more to decode than a ${limit}-byte body would (tiny blocks, each moving a large window)`,
      );
    }
    decoder.push(bytes, false);
    if (performance.now() - sliceStart >= SLICE_MS) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  };
  let at = 0;
  while (at < data.byteLength) {
    if (at + 4 > data.byteLength) throw truncated();
    const magic = u32(data, at);
    if ((magic & 0xfffffff0) === SKIPPABLE_MAGIC) {
      if (at + 8 > data.byteLength) throw truncated();
      const end = at + 8 + u32(data, at + 4);
      if (end > data.byteLength) throw truncated();
      await push(data.subarray(at, end), BLOCK_OVERHEAD_BYTES);
      at = end;
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new Error("not a zstd frame");
    const frame = readFrameHeader(data, at);
    if (frame.contentBytes !== null && limit !== null && output.total + frame.contentBytes > limit) {
      throw new DecompressionLimitExceeded(
        limit,
        `zstd frame declares ${frame.contentBytes} bytes of content, over the ${limit}-byte cap`,
      );
    }
    if (frame.windowBytes > maxWindow) {
      throw new Error(
        `zstd frame needs a ${frame.windowBytes}-byte window, over this server's limit of ${maxWindow} bytes`,
      );
    }
    const window = frame.windowBytes;
    const maxBlock = Math.min(MAX_BLOCK_BYTES, window);
    await push(data.subarray(at, at + frame.bytes), window);
    at += frame.bytes;
    for (;;) {
      if (at + 3 > data.byteLength) throw truncated();
      const header = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16);
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      if (type === 3) throw new Error("zstd block of the reserved type");
      if (size > maxBlock) throw new Error(`zstd block of ${size} bytes, over its frame's ${maxBlock}-byte maximum`);
      const end = at + 3 + (type === 1 ? 1 : size);
      if (end > data.byteLength) throw truncated();
      await push(data.subarray(at, end), window + (type === 2 ? maxBlock : size) + BLOCK_OVERHEAD_BYTES);
      at = end;
      if (header & 1) break;
    }
    if (frame.checksum) {
      if (at + 4 > data.byteLength) throw truncated();
      await push(data.subarray(at, at + 4), 0);
      at += 4;
    }
  }
  decoder.push(new Uint8Array(0), true);
  return output.body();
}
