/**
 * An in-memory duplex byte pipe: two ends, each with an input iterable and a writer. For tests
 * and for embedding a server in the same process as its caller.
 *
 * @module quiver-rpc/memory
 */
import type { AuthContext } from "../../protocol/context.js";
import type { Connection } from "../../server/connection.js";
import { ByteQueue } from "../byte-queue.js";

/** One direction: chunks written at one end come out of the other end's iterator, unbounded. */
function direction(): ByteQueue {
  const ignore = () => {};
  return new ByteQueue(Number.POSITIVE_INFINITY, ignore, ignore);
}

/** One end of a memory pipe. */
export interface MemoryEnd {
  readonly input: AsyncIterable<Uint8Array>;
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /** Ends this end's output (the peer sees EOF). */
  close(): void;
}

/** A connected pair; `server` is ready to hand to `RpcServer.serveConnection`. */
export interface MemoryPipe {
  readonly server: Connection & { close(): void };
  readonly client: MemoryEnd;
}

/** A connected pair; calls on it run as `auth` (default: anonymous). */
export function memoryPipe(transport = "memory", auth?: AuthContext): MemoryPipe {
  const toServer = direction();
  const toClient = direction();
  const end = (inbound: ByteQueue, outbound: ByteQueue): MemoryEnd => ({
    input: inbound,
    write: async (chunks) => {
      if (outbound.ended) throw new Error("peer closed");
      // Copied: the writer may reuse its buffers once write() resolves.
      for (const c of chunks) outbound.push(Uint8Array.prototype.slice.call(c));
    },
    close: () => outbound.end(null),
  });
  return {
    server: { ...end(toServer, toClient), transport, ...(auth !== undefined ? { auth } : {}) },
    client: end(toClient, toServer),
  };
}
