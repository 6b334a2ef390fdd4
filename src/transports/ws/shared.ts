/**
 * What the WebSocket server and client share, free of `node:` imports so the browser client can
 * use it: close codes and their meaning, the one function mapping a close to an error kind, the
 * inbound byte queue with a read high-water mark (a framer source that can fill a body in place), and splitting outbound bytes into messages.
 *
 * A WebSocket carries exactly the byte stream a pipe carries: binary messages whose concatenation
 * is the stream. Message boundaries mean nothing, so either side may split or merge freely.
 */
import { type ErrorCode, frameworkError, RpcError } from "../../errors.js";
import type { DirectByteSource } from "../../wire/framer.js";

/**
 * The close codes quiver sends, and why.
 * - 1000 normal: the peer closed its side, the session ended.
 * - 1001 going away: the server is shutting down. (A peer that leaves a keep-alive ping unanswered
 *   is dropped without a close frame: it is not listening; its side sees 1006.)
 * - 1003 unsupported data: a text message (the stream is binary only).
 * - 1008 policy violation: the byte stream was not vgi-rpc (framing lost), or too many connections.
 * - 1009 message too big: a message over `maxPayload` (sent by `ws` itself).
 * - 1011 internal error: the server failed outside any call.
 */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  abnormal: 1006,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

/** Maps a close (code and reason) to the typed error a reader sees; null for a clean close. */
export function closeError(code: number, reason: string): RpcError | null {
  if (code === CloseCode.normal || code === 1005) return null;
  const why = reason ? `: ${reason}` : "";
  const detail = [{ "@type": "quiver.WebSocketClose", code, reason }] as const;
  if (code === CloseCode.messageTooBig) {
    return new RpcError(`WebSocket closed with 1009 (message too big)${why}`, {
      type: "RpcError",
      code: "RESOURCE_EXHAUSTED",
      kind: "message_too_large",
      details: detail,
    });
  }
  const named: Record<number, [string, ErrorCode]> = {
    1001: ["going away", "UNAVAILABLE"],
    1002: ["protocol error", "INTERNAL"],
    1003: ["unsupported data", "INVALID_ARGUMENT"],
    1006: ["connection dropped", "UNAVAILABLE"],
    1008: ["policy violation", "FAILED_PRECONDITION"],
    1011: ["internal error", "INTERNAL"],
    1013: ["try again later", "UNAVAILABLE"],
  };
  const [name, errCode] = named[code] ?? ["closed", "UNAVAILABLE"];
  const err = frameworkError("transport_error", `WebSocket closed with ${code} (${name})${why}`);
  return new RpcError(err.message, { type: err.type, code: errCode, kind: err.kind, details: detail });
}

/**
 * Inbound bytes as an async iterable, with a high-water mark: `pause` is called when more than
 * `highWaterMark` bytes wait unread, `resume` once the reader has taken them.
 *
 * Its iterator is a `DirectByteSource`: while the framer waits for a large body (`readInto`),
 * arriving messages are copied straight into that body's buffer (taken from `allocate` when given,
 * the large-body pool on a Node server) instead of being queued and then copied together.
 */
export class ByteQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  private ended = false;
  private error: RpcError | null = null;
  private wake: (() => void) | null = null;
  /** The pending `readInto`: its buffer, how much is filled, and how to settle it. */
  private target: Uint8Array | null = null;
  private filled = 0;
  private settle: ((n: number) => void) | null = null;
  private reject: ((err: RpcError) => void) | null = null;

  constructor(
    private readonly highWaterMark: number,
    private readonly pause: () => void,
    private readonly resume: () => void,
    private readonly allocate?: (n: number) => Uint8Array,
  ) {}

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.queued;
  }

  push(chunk: Uint8Array): void {
    if (this.ended || chunk.byteLength === 0) return;
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
  end(error: RpcError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (this.target !== null) this.finishTarget(error);
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private finishTarget(err: RpcError | null): void {
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
      if (this.ended) {
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
    if (this.ended) return this.error !== null ? Promise.reject(this.error) : Promise.resolve(at);
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

/**
 * Regroups chunks into messages of at most `max` bytes: small chunks are merged into one copy,
 * large ones sent as views.
 */
export function* messagesOf(chunks: readonly Uint8Array[], max: number): Generator<Uint8Array> {
  let small: Uint8Array[] = [];
  let smallBytes = 0;
  const merge = (): Uint8Array => {
    const one = small.length === 1 ? small[0]! : new Uint8Array(smallBytes);
    if (small.length > 1) {
      let at = 0;
      for (const s of small) {
        one.set(s, at);
        at += s.byteLength;
      }
    }
    small = [];
    smallBytes = 0;
    return one;
  };
  const mergeBelow = Math.min(max, 64 * 1024);
  for (const c of chunks) {
    if (c.byteLength === 0) continue;
    if (c.byteLength < mergeBelow && smallBytes + c.byteLength <= max) {
      small.push(c);
      smallBytes += c.byteLength;
      continue;
    }
    if (smallBytes > 0) yield merge();
    if (c.byteLength < mergeBelow) {
      small.push(c);
      smallBytes = c.byteLength;
      continue;
    }
    for (let at = 0; at < c.byteLength; at += max) yield c.subarray(at, Math.min(c.byteLength, at + max));
  }
  if (smallBytes > 0) yield merge();
}
