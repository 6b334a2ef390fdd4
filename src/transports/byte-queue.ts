/**
 * Inbound bytes pushed by an event source (WebSocket messages, an HTTP response's chunks, the
 * writes of an in-memory pipe's other end) as a framer source with a read high-water mark. No
 * `node:` imports: browser clients use it too.
 */
import type { DirectByteSource } from "../wire/framer.js";

/**
 * Inbound bytes as an async iterable, with a high-water mark: `pause` is called when more than
 * `highWaterMark` bytes wait unread, `resume` once the reader has taken them.
 *
 * Its iterator is a `DirectByteSource`: while the framer waits for a large body (`readInto`),
 * arriving chunks are copied straight into that body's buffer (taken from `allocate` when given,
 * the large-body pool on a Node server) instead of being queued and then copied together.
 */
export class ByteQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  /** The pending `readInto`: its buffer, how much is filled, and how to settle it. */
  private target: Uint8Array | null = null;
  private filled = 0;
  private settle: ((n: number) => void) | null = null;
  private reject: ((err: Error) => void) | null = null;

  constructor(
    private readonly highWaterMark: number,
    private readonly pause: () => void,
    private readonly resume: () => void,
    private readonly allocate?: (n: number) => Uint8Array,
  ) {}

  /** True once `end` was called: later pushes are dropped. */
  get ended(): boolean {
    return this.done;
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.queued;
  }

  push(chunk: Uint8Array): void {
    if (this.done || chunk.byteLength === 0) return;
    const target = this.target;
    if (target !== null) {
      const k = Math.min(chunk.byteLength, target.byteLength - this.filled);
      target.set(k === chunk.byteLength ? chunk : chunk.subarray(0, k), this.filled);
      this.filled += k;
      if (this.filled === target.byteLength) this.finishTarget(null);
      if (k === chunk.byteLength) return;
      chunk = chunk.subarray(k);
    }
    this.chunks.push(chunk);
    this.queued += chunk.byteLength;
    if (!this.paused && this.queued > this.highWaterMark) {
      this.paused = true;
      this.pause();
    }
    this.notify();
  }

  /** Ends the stream: cleanly (null) or with an error thrown after the queued bytes are read. */
  end(error: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    if (this.target !== null) this.finishTarget(error);
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private finishTarget(err: Error | null): void {
    const settle = this.settle;
    const reject = this.reject;
    const n = this.filled;
    this.target = null;
    this.settle = null;
    this.reject = null;
    if (err !== null) reject?.(err);
    else settle?.(n);
  }

  private resumeIfDrained(): void {
    if (this.paused && this.queued <= this.highWaterMark / 2) {
      this.paused = false;
      this.resume();
    }
  }

  private async next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const c = this.chunks.shift();
      if (c !== undefined) {
        this.queued -= c.byteLength;
        this.resumeIfDrained();
        return { done: false, value: c };
      }
      if (this.done) {
        if (this.error) throw this.error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private readInto(into: Uint8Array): Promise<number> {
    if (this.target !== null) return Promise.reject(new Error("a readInto is already pending"));
    let at = 0;
    while (at < into.byteLength && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.byteLength, into.byteLength - at);
      into.set(k === c.byteLength ? c : c.subarray(0, k), at);
      at += k;
      this.queued -= k;
      if (k === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.resumeIfDrained();
    if (at === into.byteLength) return Promise.resolve(at);
    if (this.done) return this.error !== null ? Promise.reject(this.error) : Promise.resolve(at);
    return new Promise<number>((resolve, reject) => {
      this.target = into;
      this.filled = at;
      this.settle = resolve;
      this.reject = reject;
    });
  }

  [Symbol.asyncIterator](): DirectByteSource {
    const source: DirectByteSource = {
      next: () => this.next(),
      readInto: (into) => this.readInto(into),
    };
    if (this.allocate !== undefined) source.allocate = this.allocate;
    return source;
  }
}
