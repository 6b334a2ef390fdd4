/**
 * Buffers for large incoming message bodies (Node only).
 *
 * Each body a caller receives needs a buffer of its own (batches are kept by their readers), and
 * for a fresh multi-megabyte buffer the kernel faults in and zeroes every page, then unmaps them
 * when the garbage collector frees it: measured on a 30 MB batch, more than the read itself. With
 * the native addon, bodies from `POOLED_MIN_BYTES` up come from its pool instead: external
 * ArrayBuffers whose pages go back to an idle list when collected and are reused by the next body
 * of a similar size. Without the addon, or with the pool disabled, they are plain
 * `Buffer.allocUnsafeSlow` memory.
 *
 * Limits: at most `maxIdleBytes` of freed bodies are kept (`QUIVER_BUFFER_POOL_BYTES`, default
 * 128 MiB; 0 disables the pool), and they are all released after `idleTrimMs` without a pooled
 * allocation (default 5 s), so an idle process does not hold them.
 */
import { loadPool, type NativePool } from "../shm/native.js";

/**
 * Joins a run of small outgoing chunks (see `outgoingPieces`) into memory from Node's small-buffer
 * pool, for the Node writers (pipes and sockets, the HTTP server).
 */
export const joinBuffers = (run: readonly Uint8Array[]): Uint8Array => Buffer.concat(run);

/**
 * Bodies of at least this many bytes come from the pool. Not smaller ones: a pooled buffer is
 * external memory, which V8 frees only in a full (mark-compact) collection, where a malloc'd one
 * goes in the next scavenge. Measured with 300 KB bodies (10k-row batches, 8 held at a time), a
 * pooled one cost 41 us of CPU and a malloc'd one 7.7 us, collection included (59 mark-compacts
 * per 20 000 against none); an ArrayBuffer over a V8 backing store with its own deleter fared
 * the same.
 */
export const POOLED_MIN_BYTES = 1024 * 1024;
/** The environment variable that sets `maxIdleBytes` at start-up. */
export const POOL_BYTES_ENV = "QUIVER_BUFFER_POOL_BYTES";

const DEFAULT_MAX_IDLE = 128 * 1024 * 1024;
const DEFAULT_IDLE_TRIM_MS = 5000;

/** Options of `configureBufferPool`. */
export interface BufferPoolOptions {
  /** Most bytes of freed bodies kept for reuse; 0 turns the pool off. Default 128 MiB. */
  readonly maxIdleBytes?: number;
  /** Idle bodies are released after this long without a pooled allocation. Default 5000 ms. */
  readonly idleTrimMs?: number;
}

/** What the pool holds and how often it served a body (all zero without the addon). */
export interface BufferPoolStats {
  /** True when bodies come from the native pool. */
  readonly active: boolean;
  /** Why not, when `active` is false. */
  readonly reason: string | null;
  readonly idleBytes: number;
  readonly maxIdleBytes: number;
  /** Pooled allocations served from idle memory, and those that mapped new memory. */
  readonly hits: number;
  readonly misses: number;
}

function envLimit(): number {
  const raw = process.env[POOL_BYTES_ENV];
  if (raw === undefined || raw === "") return DEFAULT_MAX_IDLE;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(
      `${POOL_BYTES_ENV} must be a non-negative integer number of bytes, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** Read from the environment on first use (a bad value then throws there, not at import). */
let maxIdleBytes: number | undefined;
let idleTrimMs = DEFAULT_IDLE_TRIM_MS;
let native: { pool: NativePool } | { reason: string } | undefined;
let trimTimer: ReturnType<typeof setInterval> | null = null;
let usedSinceTick = false;

function limit(): number {
  maxIdleBytes ??= envLimit();
  return maxIdleBytes;
}

function pool(): NativePool | null {
  if (limit() === 0) return null;
  if (native === undefined) {
    native = loadPool();
    if ("pool" in native) native.pool.configure(limit());
  }
  return "pool" in native ? native.pool : null;
}

/** Releases idle bodies once a whole `idleTrimMs` passes without a pooled allocation. */
function armTrim(p: NativePool): void {
  usedSinceTick = true;
  if (trimTimer !== null) return;
  trimTimer = setInterval(() => {
    if (usedSinceTick) {
      usedSinceTick = false;
      return;
    }
    p.trim();
    clearInterval(trimTimer!);
    trimTimer = null;
  }, idleTrimMs);
  trimTimer.unref();
}

/** Sets the pool's limits (see the module comment); applies to bodies freed from now on. */
export function configureBufferPool(opts: BufferPoolOptions): void {
  if (opts.maxIdleBytes !== undefined) {
    if (!Number.isSafeInteger(opts.maxIdleBytes) || opts.maxIdleBytes < 0) {
      throw new RangeError("maxIdleBytes must be a non-negative integer");
    }
    maxIdleBytes = opts.maxIdleBytes;
    if (native !== undefined && "pool" in native) {
      native.pool.configure(maxIdleBytes);
      if (maxIdleBytes === 0) native.pool.trim();
    }
  }
  if (opts.idleTrimMs !== undefined) {
    if (!Number.isFinite(opts.idleTrimMs) || opts.idleTrimMs <= 0) throw new RangeError("idleTrimMs must be positive");
    idleTrimMs = opts.idleTrimMs;
    if (trimTimer !== null) {
      clearInterval(trimTimer);
      trimTimer = null;
    }
  }
}

/** Releases every idle body now; returns the bytes released. */
export function trimBufferPool(): number {
  return native !== undefined && "pool" in native ? native.pool.trim() : 0;
}

export function bufferPoolStats(): BufferPoolStats {
  const p = pool();
  if (p === null) {
    const reason = limit() === 0 ? "disabled (maxIdleBytes is 0)" : (native as { reason: string }).reason;
    return { active: false, reason, idleBytes: 0, maxIdleBytes: limit(), hits: 0, misses: 0 };
  }
  const s = p.stats();
  return { active: true, reason: null, idleBytes: s.idleBytes, maxIdleBytes: limit(), hits: s.hits, misses: s.misses };
}

/**
 * `n` bytes for a message body the caller overwrites entirely, at offset 0 of their own
 * ArrayBuffer (so 8-byte aligned); pooled from `POOLED_MIN_BYTES` up when the addon is there.
 */
export function bodyBuffer(n: number): Uint8Array {
  if (n >= POOLED_MIN_BYTES) {
    const p = pool();
    if (p !== null) {
      armTrim(p);
      return new Uint8Array(p.alloc(n));
    }
  }
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}
