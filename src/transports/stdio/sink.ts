/** Writing byte chunks to a Node writable with backpressure and bounded write sizes. */
import type { Writable } from "node:stream";
import { frameworkError } from "../../errors.js";

/** Largest single write handed to the OS, well under INT_MAX. */
export const MAX_WRITE_BYTES = 1 << 30;

export interface Sink {
  /** Writes chunks in order; resolves once the stream accepts more; rejects if the peer is gone. */
  readonly write: (chunks: readonly Uint8Array[]) => Promise<void>;
  /** Resolves when everything written so far has been handed to the OS. */
  flush(): Promise<void>;
  /** True after the peer went away (EPIPE, ECONNRESET, destroyed). */
  readonly broken: boolean;
}

/** Small chunks are coalesced into one write; large ones go as views, split below INT_MAX. */
const COALESCE_BELOW = 64 * 1024;

export function writableSink(stream: Writable): Sink {
  let broken: Error | null = null;
  stream.on("error", (err) => {
    broken = err;
  });
  const gone = () =>
    frameworkError("transport_error", `peer went away: ${broken?.message ?? "stream closed"}`, { cause: broken });

  const waitDrain = () =>
    new Promise<void>((resolve, reject) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", closed);
        resolve();
      };
      const closed = () => {
        stream.off("drain", done);
        stream.off("close", closed);
        reject(gone());
      };
      stream.on("drain", done);
      stream.on("close", closed);
    });

  const write = async (chunks: readonly Uint8Array[]): Promise<void> => {
    if (broken || stream.destroyed) throw gone();
    const pieces: Uint8Array[] = [];
    let small: Uint8Array[] = [];
    let smallBytes = 0;
    const flushSmall = () => {
      if (small.length === 0) return;
      if (small.length === 1) pieces.push(small[0]!);
      else pieces.push(Buffer.concat(small, smallBytes));
      small = [];
      smallBytes = 0;
    };
    for (const c of chunks) {
      if (c.byteLength < COALESCE_BELOW) {
        small.push(c);
        smallBytes += c.byteLength;
        continue;
      }
      flushSmall();
      for (let at = 0; at < c.byteLength; at += MAX_WRITE_BYTES) {
        pieces.push(c.subarray(at, Math.min(c.byteLength, at + MAX_WRITE_BYTES)));
      }
    }
    flushSmall();
    let needDrain = false;
    for (const p of pieces) {
      if (!stream.write(p)) needDrain = true;
      if (needDrain && p.byteLength >= MAX_WRITE_BYTES) {
        await waitDrain();
        needDrain = false;
      }
    }
    if (needDrain) await waitDrain();
    if (broken) throw gone();
  };

  return {
    write,
    get broken() {
      return broken !== null;
    },
    flush: () =>
      new Promise<void>((resolve) => {
        if (broken || stream.destroyed || stream.writableLength === 0) resolve();
        else stream.write(new Uint8Array(0), () => resolve());
      }),
  };
}
