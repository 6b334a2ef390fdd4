/**
 * Frames Arrow IPC messages out of a byte stream that arrives in arbitrary pieces. Pure: it pulls
 * from any `AsyncIterator<Uint8Array>` and never reads a byte past the message it returns, so
 * several IPC streams can follow each other on one connection.
 */
import { MessageHeader } from "apache-arrow/fb/message-header";
import type { Message } from "apache-arrow/ipc/metadata/message";
import type { Schema } from "apache-arrow/schema";
import { frameworkError, NonIpcBytesError } from "../errors.js";
import { decodeMessage, decodeSchema, type Frame, RefusedMessage } from "./ipc.js";

/** Limits applied while framing. */
export interface FramerOptions {
  /** Largest message (metadata + body) accepted, in bytes. Default: 4 GiB. */
  readonly maxMessageBytes?: number;
  /**
   * Largest message header (the flatbuffer before the body). Headers are small; a huge one means
   * the bytes are not Arrow. Default: 16 MiB.
   */
  readonly maxMetadataBytes?: number;
  /**
   * Where borrowed bodies go (see `next`). Framers reading one stream's answers in turn (an HTTP
   * stream's responses) share one, so each body reuses the last one's memory. Default: the framer's own.
   */
  readonly borrowBuffer?: BorrowBuffer;
}

/** A schema message's schema (cached by its bytes), malformed ones mapped to a protocol error. */
function decodeSchemaOrThrow(message: Message, metadata: Uint8Array) {
  try {
    return decodeSchema(message, metadata);
  } catch (err) {
    throw frameworkError("protocol_error", `malformed Arrow IPC message: ${(err as Error).message}`, { cause: err });
  }
}

/** What the next read found. */
export type FrameResult = Frame | "eos" | "end";

/**
 * A byte source that can also put the next bytes where the caller wants them. The framer hands
 * it a large message body's final buffer, so the bytes land there once (a socket reads straight
 * into it) instead of arriving in pieces that are then copied together.
 */
export interface DirectByteSource extends AsyncIterator<Uint8Array> {
  /**
   * Fills `target` with the bytes that follow everything `next()` has returned. Resolves to
   * `target.byteLength`, or to fewer bytes when the stream ends first; rejects as `next()` would.
   */
  readInto(target: Uint8Array): Promise<number>;
  /**
   * Where large bodies should live: `n` bytes, contents undefined, at offset 0 of their own
   * ArrayBuffer. A Node source hands out pooled memory here (see transports/node/buffer-pool.ts).
   */
  allocate?(n: number): Uint8Array;
  /**
   * The last `n` bytes `next()` returned are spent: the reader copied or decoded them and keeps
   * no view of them, so the source may read later bytes into their memory. A source that hands
   * out views of a reused buffer (socket-source.ts) gets back the room a large message's first
   * read took there; others need not implement it.
   */
  recycle?(n: number): void;
}

/**
 * Most memory a body's declared length commits before its bytes arrive (see `readDirect`): a
 * 20-byte header claiming a 4 GiB body must not make the reader allocate 4 GiB.
 */
const AHEAD_OF_DATA_BYTES = 64 * 1024 * 1024;

/** Bodies with at least this many bytes still to come are read with `readInto` when the source has it. */
const DIRECT_READ_MIN = 64 * 1024;

function isDirect(source: AsyncIterator<Uint8Array>): source is DirectByteSource {
  return typeof (source as Partial<DirectByteSource>).readInto === "function";
}

const DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024 * 1024;

/** Node's Buffer when present (the wire layer also runs in browsers). */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer;

/**
 * `n` bytes the caller overwrites entirely, starting at offset 0 of their own ArrayBuffer (so
 * 8-byte aligned). Under Node they are not zero-filled first: zeroing a large message's buffer
 * would touch every page once more before the copy does.
 */
function uninitialised(n: number): Uint8Array {
  if (NodeBuffer === undefined) return new Uint8Array(n);
  const b = NodeBuffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** Borrowed bodies are read into one buffer, grown in steps of this many bytes. */
const BORROW_STEP = 1024 * 1024;

/** The one buffer borrowed record-batch bodies are read into, each over the last. */
export class BorrowBuffer {
  private buffer: Uint8Array | null = null;

  /**
   * The first `n` bytes of the buffer (grown, never shrunk, until `release`), from `allocate` when
   * given: the source's large-body memory, so a borrowing stream reuses what earlier bodies left
   * idle instead of adding a buffer of its own beside it.
   */
  take(n: number, allocate?: (n: number) => Uint8Array): Uint8Array {
    if (this.buffer === null || this.buffer.byteLength < n) {
      // (Given memory is taken at the body's size: a pool rounds sizes its own way.)
      this.buffer = allocate === undefined ? uninitialised(Math.ceil(n / BORROW_STEP) * BORROW_STEP) : allocate(n);
    }
    return this.buffer.subarray(0, n);
  }

  /** Drops the buffer (the borrowing stream ended): the memory goes once no batch views it. */
  release(): void {
    this.buffer = null;
  }
}

/** A message's prefix and decoded header, its body still to read. */
interface Header {
  readonly message: Message;
  /** 4, or 8 with the continuation marker. */
  readonly prefix: number;
  readonly metadataLength: number;
  readonly schema: Schema | undefined;
}

export class MessageFramer {
  private chunks: Uint8Array[] = [];
  /** A header `poll` consumed whose body it left to `next`. */
  private parked: Header | null = null;
  /** The buffer borrowed record-batch bodies are read into (see `next`). */
  private readonly scratch: BorrowBuffer;
  private buffered = 0;
  private done = false;
  private readonly maxMessageBytes: number;
  private readonly maxMetadataBytes: number;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    opts: FramerOptions = {},
  ) {
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE;
    this.maxMetadataBytes = opts.maxMetadataBytes ?? 16 * 1024 * 1024;
    this.scratch = opts.borrowBuffer ?? new BorrowBuffer();
  }

  /** Bytes received but not yet framed. */
  get pending(): number {
    return this.buffered;
  }

  /** True once the source has ended and every byte has been framed. */
  get exhausted(): boolean {
    return this.done && this.buffered === 0 && this.parked === null;
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.done) return false;
      const r = await this.source.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      if (r.value.byteLength > 0) {
        this.chunks.push(r.value);
        this.buffered += r.value.byteLength;
      }
    }
    return true;
  }

  /** True when the next `n` buffered bytes sit in one chunk (`take(n)` then returns a view). */
  private inOneChunk(n: number): boolean {
    const first = this.chunks[0];
    return first !== undefined && first.byteLength >= n;
  }

  /** Removes `n` buffered bytes; a view when they sit in one chunk, else one copy (into `into`). */
  private take(n: number, into?: Uint8Array): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.byteLength >= n) {
      const out = first.subarray(0, n);
      if (first.byteLength === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = into ?? uninitialised(n);
    let at = 0;
    let used = 0;
    while (at < n) {
      const c = this.chunks[used]!;
      const k = Math.min(c.byteLength, n - at);
      out.set(k === c.byteLength ? c : c.subarray(0, k), at);
      at += k;
      if (k === c.byteLength) used++;
      else this.chunks[used] = c.subarray(k);
    }
    // One splice, not a shift per chunk: a large message spans hundreds of 64 KiB reads.
    if (used > 0) this.chunks.splice(0, used);
    this.buffered -= n;
    return out;
  }

  /**
   * `h`'s body, of which fewer bytes are buffered, from a source that can fill it in place: the
   * buffered bytes are copied into its final buffer (and their memory given back to the source)
   * and the source reads the rest straight there.
   */
  private async readDirect(h: Header, borrow: boolean): Promise<Uint8Array> {
    const n = h.message.bodyLength;
    const source = this.source as DirectByteSource;
    const pooled = source.allocate === undefined ? undefined : (size: number) => source.allocate!(size);
    const allocate = (size: number): Uint8Array =>
      borrow ? this.scratch.take(size, pooled) : (pooled ?? uninitialised)(size);
    // A length is only a claim until its bytes arrive: memory is committed at most
    // AHEAD_OF_DATA_BYTES ahead of what was received, growing as the body arrives (a larger body
    // costs one more copy of what came before each growth, a small price at that size).
    let out = allocate(Math.min(n, Math.max(AHEAD_OF_DATA_BYTES, this.buffered)));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    this.chunks = [];
    if (borrow) this.spent(h, at);
    this.buffered = 0;
    for (;;) {
      const want = out.byteLength - at;
      if ((await source.readInto(out.subarray(at))) < want) {
        this.done = true;
        throw frameworkError("protocol_error", "byte stream ended inside an IPC message body");
      }
      at = out.byteLength;
      if (at === n) return out;
      const grown = allocate(Math.min(n, 2 * at));
      grown.set(out.subarray(0, at));
      out = grown;
    }
  }

  /**
   * `h`'s prefix and header and the first `bodyBytes` of its body were copied or decoded, and the
   * framer holds no byte after them: they were the last the source handed out, and it may reuse
   * their memory (`DirectByteSource.recycle`).
   *
   * Only for borrowed bodies. With owned 10k-row bodies (each a fresh ~280 KB of malloc'd memory),
   * a slab that is never replaced made the client 1.5-3x slower in most runs: glibc gave freed bodies'
   * memory back to the kernel and faulted it in again, about 5x the page faults per batch
   * (`bench/cpu-per-call.ts`, `ROWS=10000`, under `/usr/bin/time`); with a fresh slab every few batches
   * it does so far less often.
   */
  private spent(h: Header, bodyBytes: number): void {
    (this.source as Partial<DirectByteSource>).recycle?.(h.prefix + h.metadataLength + bodyBytes);
  }

  /** Drops the reused body buffer (a borrowing stream ended): the memory goes once no batch views it. */
  releaseBorrowed(): void {
    this.scratch.release();
  }

  private async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) {
        throw frameworkError("protocol_error", "byte stream ended inside an IPC message body");
      }
      const k = Math.min(left, this.buffered);
      let drop = k;
      while (drop > 0) {
        const c = this.chunks[0]!;
        const d = Math.min(drop, c.byteLength);
        if (d === c.byteLength) this.chunks.shift();
        else this.chunks[0] = c.subarray(d);
        drop -= d;
      }
      this.buffered -= k;
      left -= k;
    }
  }

  /** The little-endian int32 at `offset` of the buffered bytes (no allocation when it sits in one chunk). */
  private peekInt32(offset: number): number {
    let skip = offset;
    for (const c of this.chunks) {
      if (skip >= c.byteLength) {
        skip -= c.byteLength;
        continue;
      }
      if (c.byteLength - skip >= 4) return c[skip]! | (c[skip + 1]! << 8) | (c[skip + 2]! << 16) | (c[skip + 3]! << 24);
      break;
    }
    let v = 0;
    let at = 0;
    skip = offset;
    for (const c of this.chunks) {
      if (skip >= c.byteLength) {
        skip -= c.byteLength;
        continue;
      }
      for (let k = skip; k < c.byteLength && at < 4; k++, at++) v |= c[k]! << (8 * at);
      skip = 0;
      if (at === 4) break;
    }
    return v;
  }

  /**
   * The next message's prefix and header when they are buffered: `"eos"` for an end-of-stream
   * marker (consumed), the decoded header (consumed, its body not yet), or else how many buffered
   * bytes reading it needs first (the prefix, then all of the header; nothing consumed). Throws on
   * a length that cannot be Arrow.
   */
  private header(): Header | "eos" | number {
    if (this.buffered < 4) return 4;
    let prefix = 4;
    let length = this.peekInt32(0);
    if (length === -1) {
      if (this.buffered < 8) return 8;
      prefix = 8;
      length = this.peekInt32(4);
    }
    if (length === 0) {
      this.take(prefix);
      return "eos";
    }
    if (length < 0 || length > Math.min(this.maxMessageBytes, this.maxMetadataBytes)) {
      throw NonIpcBytesError.of(length, this.chunks); // its message shows the first bytes, escaped
    }
    if (this.buffered < prefix + length) return prefix + length;
    this.take(prefix);
    const metadata = this.take(length);
    const message = decodeMessage(metadata);
    const schema =
      message.headerType === MessageHeader.Schema && !(message instanceof RefusedMessage)
        ? decodeSchemaOrThrow(message, metadata)
        : undefined;
    const bodyLength = message.bodyLength;
    if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) {
      throw frameworkError("protocol_error", `invalid IPC body length ${bodyLength}`);
    }
    return { message, prefix, metadataLength: length, schema };
  }

  /** True while the next message's prefix is not buffered whole (for the error when the bytes end). */
  private inPrefix(): boolean {
    return this.buffered < 4 || (this.buffered < 8 && this.peekInt32(0) === -1);
  }

  /** True when `h`'s message is over `maxMessageBytes`: its body is skipped and the read fails. */
  private oversized(h: Header): boolean {
    return h.message.bodyLength + h.metadataLength > this.maxMessageBytes;
  }

  /** The frame of `h` with its body. */
  private frame(h: Header, body: Uint8Array, borrowed: boolean): Frame {
    // Arrow buffers are read through typed arrays, which need 8-byte aligned views.
    // (Node Buffers' own slice() is a view, so copy through Uint8Array.)
    const aligned = body.byteOffset % 8 === 0 ? body : Uint8Array.prototype.slice.call(body);
    const wireBytes = h.prefix + h.metadataLength + h.message.bodyLength;
    if (h.schema !== undefined) return { message: h.message, body: aligned, wireBytes, schema: h.schema };
    return borrowed
      ? { message: h.message, body: aligned, wireBytes, borrowed }
      : { message: h.message, body: aligned, wireBytes };
  }

  /**
   * The next message when it is already buffered whole, without waiting: what `next(borrow)`
   * would resolve to, or null when it must be called (more bytes are needed, or the body is read
   * another way). Throws as `next` would reject. A small message usually arrives whole, so a
   * reader polls first and saves the promises and microtask turns of an async read.
   */
  poll(): Frame | "eos" | null {
    if (this.parked !== null) return null;
    const h = this.header();
    if (typeof h === "number") return null;
    if (h === "eos") return h;
    const bodyLength = h.message.bodyLength;
    if (bodyLength === 0) return this.frame(h, new Uint8Array(0), false);
    if (bodyLength > this.buffered || this.oversized(h)) {
      this.parked = h; // `next` reads the body (or skips it and fails)
      return null;
    }
    // (Never borrowed: after a read, the framer holds at most one piece, so a body it can frame
    // without reading is a view of what arrived.)
    return this.frame(h, this.take(bodyLength), false);
  }

  /**
   * Reads the next message. `"eos"` is an end-of-stream marker; `"end"` means the source ended
   * cleanly between messages. A source ending inside a message is a `protocol_error`.
   *
   * With `borrow`, a large record-batch body (`DIRECT_READ_MIN` bytes or more) that cannot be a
   * view of what arrived (read from a `DirectByteSource`, or arrived in pieces) goes into a buffer
   * this framer reuses for the next borrowed body, instead of memory of its own: whatever is decoded
   * from it is valid only until the next `next(true)`. Dictionary batches, schemas and small bodies
   * are never borrowed.
   */
  async next(borrow = false): Promise<FrameResult> {
    let h = this.parked;
    this.parked = null;
    while (h === null) {
      const got = this.header();
      if (got === "eos") return got;
      if (typeof got !== "number") {
        h = got;
        break;
      }
      if (!(await this.fill(got))) {
        if (this.buffered === 0) return "end";
        const where = this.inPrefix() ? "prefix" : "header";
        throw frameworkError("protocol_error", `byte stream ended inside an IPC message ${where}`);
      }
    }
    const { message } = h;
    const bodyLength = message.bodyLength;
    if (this.oversized(h)) {
      // Consume the body so the connection stays framed; the caller answers with an error.
      await this.skip(bodyLength);
      throw frameworkError(
        "message_too_large",
        `IPC message of ${bodyLength + h.metadataLength} bytes exceeds the limit of ${this.maxMessageBytes} bytes`,
      );
    }
    if (bodyLength === 0) return this.frame(h, new Uint8Array(0), false);
    if (bodyLength - this.buffered >= DIRECT_READ_MIN && isDirect(this.source)) {
      const borrowed = borrow && message.headerType === MessageHeader.RecordBatch;
      return this.frame(h, await this.readDirect(h, borrowed), borrowed);
    }
    // Pieces are queued and copied together once the body is complete: measured faster than
    // copying each 64 KiB piece as it arrives (a TCP server reading 30 MB exchange batches).
    if (this.buffered < bodyLength && !(await this.fill(bodyLength))) {
      throw frameworkError("protocol_error", "byte stream ended inside an IPC message body");
    }
    // A body in one piece stays a view of what arrived. One in pieces is copied together; a large
    // one, when borrowing, into the reused buffer (a fresh one per batch is external memory that
    // drives V8 into a major collection every few dozen batches).
    if (this.inOneChunk(bodyLength)) return this.frame(h, this.take(bodyLength), false);
    const borrowed = borrow && bodyLength >= DIRECT_READ_MIN && message.headerType === MessageHeader.RecordBatch;
    const last = this.buffered === bodyLength;
    const body = this.take(bodyLength, borrowed ? this.scratch.take(bodyLength) : undefined);
    if (last && borrowed) this.spent(h, bodyLength);
    return this.frame(h, body, borrowed);
  }
}
