/** Writing byte chunks to a Node writable with backpressure and bounded write sizes. */
import type { Writable } from "node:stream";
import { frameworkError } from "../../errors.js";
import { MAX_WRITE_BYTES, outgoingPieces } from "../../wire/ipc.js";
import { joinBuffers } from "../buffer-pool.js";

export { MAX_WRITE_BYTES };

export interface Sink {
  /** Writes chunks in order; resolves once the stream accepts more; rejects if the peer is gone. */
  readonly write: (chunks: readonly Uint8Array[]) => Promise<void>;
  /** Resolves when everything written so far has been handed to the OS. */
  flush(): Promise<void>;
  /** True after the peer went away (EPIPE, ECONNRESET, destroyed). */
  readonly broken: boolean;
}

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
    const pieces = outgoingPieces(chunks, joinBuffers);
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
