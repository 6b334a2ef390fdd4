/**
 * Reading a Node socket (TCP, Unix, a worker's stdio) as a byte source the framer can steer.
 *
 * A socket created with `onread: source.onread` reads into buffers this source chooses instead of
 * a fresh 64 KiB buffer per read: small reads go into a reused slab (handed out as views), and
 * while the framer waits for a large message body (`readInto`), the kernel reads straight into
 * that body's final buffer, which `allocate` takes from the large-body pool (buffer-pool.ts). The
 * slab's bytes stay put while views of them may be held; those the framer copied out (a large
 * message's header and first body bytes) it gives back (`recycle`), so the next read reuses them. A
 * 30 MB batch then costs one kernel copy into pages already faulted in, where per-read buffers
 * cost two copies and 460 short-lived allocations that the kernel has to fault in and zero again
 * and again.
 *
 * Should a socket not honour `onread`, `attach` also reads its `data` events (Node's own 64 KiB
 * pieces); `readInto` then copies each piece into the target as it arrives. The socket servers
 * read their accepted connections through one too (see `adopt` in socket/server.ts).
 */
import type { Socket } from "node:net";
import { frameworkError } from "../../errors.js";
import type { DirectByteSource } from "../../wire/framer.js";
import { bodyBuffer } from "./buffer-pool.js";

/** Options of `socketSource`. */
export interface SocketSourceOptions {
  /** Received-but-unread bytes above which the socket stops reading. Default: 1 MiB. */
  readonly highWaterMark?: number;
  /**
   * Bytes of each slab small reads share. Default 256 KiB; a server with many connections gives
   * each a smaller one (a slab is held while its connection lives).
   */
  readonly slabBytes?: number;
}

/** The reading half of a socket as a framer source; `onread` goes into the socket's options. */
export interface SocketSource extends DirectByteSource, AsyncIterable<Uint8Array> {
  /** Pass as `onread` when creating the socket (`net.connect`, `new net.Socket`). */
  readonly onread: {
    readonly buffer: () => Uint8Array;
    readonly callback: (bytes: number, buffer: Uint8Array) => boolean;
  };
  /** Follows `socket` (end, errors, close; `data` when it was created without `onread`). Call once. */
  attach(socket: Socket): this;
  /** See `DirectByteSource.recycle`: the room of the last read's spent bytes is read into again. */
  recycle(n: number): void;
}

/** Bytes per slab by default: small reads share one, so a read costs no allocation. */
const SLAB_BYTES = 256 * 1024;
/** A read gets at least this much room; a slab with less left is replaced. */
const MIN_READ = 16 * 1024;
/**
 * A read into the slab gets at most this much room (Node's own read size). A large message's
 * first read then brings its header and the start of its body, and the framer has the rest read
 * straight into the body's buffer (`readInto`); a read of the whole slab would land the body in
 * the slab instead, to be copied out.
 */
const MAX_SLAB_READ = 64 * 1024;
/**
 * Room offered for each of the two reads after a large body (a `readInto`) is complete. Node asks
 * for a read's buffer as soon as the read before it is delivered, before the framer has seen that
 * one: the read after a large message's header was offered its room before the framer asked for
 * the body's buffer, and its bytes are copied there. The next message after a large one is likely
 * large too: its header's read and the read after it are kept this small, so that a few KiB are
 * copied where 64 KiB each were, and the rest of the body is read straight into its buffer.
 */
const AFTER_BODY_READ = 4 * 1024;

/** Node's Buffer allocation without zero-filling (every byte is written before it is read). */
function uninitialised(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** A byte source over a Node socket; see the module comment. */
export function socketSource(opts: SocketSourceOptions = {}): SocketSource {
  const highWaterMark = opts.highWaterMark ?? 1024 * 1024;
  let socket: Socket | null = null;
  const queue: Uint8Array[] = [];
  let queued = 0;
  let paused = false;
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;

  /** Bytes received so far: read regions start at the same offset mod 8 as the stream position. */
  let position = 0;
  const slabBytes = Math.max(opts.slabBytes ?? SLAB_BYTES, 2 * MIN_READ);
  let slab = uninitialised(slabBytes);
  /** First free byte of the slab; views before it may be held by readers. */
  let slabFree = 0;
  /**
   * The last read queued from the slab: its slab, where it starts and ends there, and `position`
   * after it. While no byte has arrived since and none is queued, its bytes are the last handed
   * out (see `recycle`).
   */
  let lastSlab = slab;
  let lastStart = 0;
  let lastEnd = 0;
  let lastPosition = -1;

  /** Reads still to be offered `AFTER_BODY_READ` bytes of room (see there). */
  let shortReads = 0;

  /** The pending `readInto`: its buffer, how much is filled, and how to settle it. */
  let target: Uint8Array | null = null;
  let filled = 0;
  let settle: ((n: number) => void) | null = null;
  let reject: ((err: Error) => void) | null = null;

  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  const finishTarget = (err: Error | null) => {
    const s = settle;
    const r = reject;
    const n = filled;
    target = null;
    settle = null;
    reject = null;
    shortReads = 2;
    if (err !== null) r?.(err);
    else s?.(n);
  };

  const resumeIfDrained = () => {
    if (paused && queued <= highWaterMark / 2) {
      paused = false;
      socket?.resume();
    }
  };

  /** Takes in `chunk` (bytes received, already in place): fills the target first, queues the rest. */
  const received = (chunk: Uint8Array): boolean => {
    if (target !== null) {
      const k = Math.min(chunk.byteLength, target.byteLength - filled);
      target.set(k === chunk.byteLength ? chunk : chunk.subarray(0, k), filled);
      filled += k;
      if (filled === target.byteLength) finishTarget(null);
      if (k === chunk.byteLength) return true;
      chunk = chunk.subarray(k);
    }
    queue.push(chunk);
    queued += chunk.byteLength;
    notify();
    if (queued > highWaterMark) {
      paused = true;
      return false;
    }
    return true;
  };

  const end = (err: Error | null) => {
    if (ended) return;
    ended = true;
    failure = err;
    if (target !== null) finishTarget(err);
    notify();
  };

  const source: SocketSource = {
    onread: {
      buffer() {
        if (target !== null) return target.subarray(filled);
        let start = slabFree + ((((position - slabFree) % 8) + 8) % 8);
        if (slabBytes - start < MIN_READ) {
          slab = uninitialised(slabBytes);
          slabFree = 0;
          start = position % 8;
        }
        const room = shortReads > 0 ? AFTER_BODY_READ : MAX_SLAB_READ;
        return slab.subarray(start, Math.min(slabBytes, start + room));
      },
      callback(bytes, buffer) {
        position += bytes;
        // Straight into the target: nothing to copy or queue.
        if (target !== null && buffer.buffer === target.buffer && buffer.byteOffset === target.byteOffset + filled) {
          filled += bytes;
          if (filled === target.byteLength) finishTarget(null);
          return true;
        }
        if (shortReads > 0) shortReads--;
        const before = queued;
        const more = received(buffer.subarray(0, bytes));
        // Queued views keep their slab bytes; bytes copied into a target leave the space reusable.
        if (queued > before) {
          lastSlab = slab;
          lastStart = buffer.byteOffset - slab.byteOffset;
          lastEnd = lastStart + bytes;
          lastPosition = position;
          slabFree = lastEnd;
        }
        return more;
      },
    },

    attach(s) {
      socket = s;
      s.on("data", (d: Buffer) => {
        position += d.byteLength;
        if (!received(d) && !s.isPaused()) s.pause();
      });
      s.on("end", () => end(null));
      s.on("error", (err) => end(err));
      s.on("close", () => end(ended ? null : frameworkError("transport_error", "the connection closed")));
      return source;
    },

    async next(): Promise<IteratorResult<Uint8Array>> {
      for (;;) {
        const c = queue.shift();
        if (c !== undefined) {
          queued -= c.byteLength;
          resumeIfDrained();
          return { done: false, value: c };
        }
        if (ended) {
          if (failure !== null) throw failure;
          return { done: true, value: undefined };
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },

    readInto(into: Uint8Array): Promise<number> {
      if (target !== null) return Promise.reject(new Error("a readInto is already pending"));
      let at = 0;
      while (at < into.byteLength && queue.length > 0) {
        const c = queue[0]!;
        const k = Math.min(c.byteLength, into.byteLength - at);
        into.set(k === c.byteLength ? c : c.subarray(0, k), at);
        at += k;
        queued -= k;
        if (k === c.byteLength) queue.shift();
        else queue[0] = c.subarray(k);
      }
      if (at === into.byteLength) {
        resumeIfDrained();
        return Promise.resolve(at);
      }
      if (ended) return failure !== null ? Promise.reject(failure) : Promise.resolve(at);
      return new Promise<number>((resolve, rejectRead) => {
        target = into;
        filled = at;
        settle = resolve;
        reject = rejectRead;
        resumeIfDrained();
      });
    },

    allocate: bodyBuffer,

    recycle(n) {
      // The spent bytes must be the last handed out, and the slab's last: nothing arrived since
      // (in the slab, a target or a `data` event) and nothing is queued after them. Only the last
      // read's part of them is given back: earlier reads may sit elsewhere.
      if (queue.length > 0 || lastSlab !== slab || lastPosition !== position) return;
      slabFree = Math.min(slabFree, Math.max(lastStart, lastEnd - n));
    },

    [Symbol.asyncIterator]() {
      return source;
    },
  };
  return source;
}
