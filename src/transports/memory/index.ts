/**
 * An in-memory duplex byte pipe: two ends, each with an input iterable and a writer. For tests
 * and for embedding a server in the same process as its caller.
 */
import type { AuthContext } from "../../protocol/context.js";
import type { Connection } from "../../server/connection.js";

/** One direction: chunks written at one end come out of the other end's iterator. */
class ByteQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private waiter: (() => void) | null = null;
  private closed = false;

  push(chunks: readonly Uint8Array[]): void {
    if (this.closed) throw new Error("write after close");
    // Copy: the writer may reuse its buffers once write() resolves.
    for (const c of chunks) if (c.byteLength > 0) this.chunks.push(Uint8Array.prototype.slice.call(c));
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const c = this.chunks.shift();
      if (c !== undefined) {
        yield c;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
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
  const toServer = new ByteQueue();
  const toClient = new ByteQueue();
  const end = (inbound: ByteQueue, outbound: ByteQueue): MemoryEnd => ({
    input: inbound,
    write: async (chunks) => {
      if (outbound.isClosed) throw new Error("peer closed");
      outbound.push(chunks);
    },
    close: () => outbound.close(),
  });
  return {
    server: { ...end(toServer, toClient), transport, ...(auth !== undefined ? { auth } : {}) },
    client: end(toClient, toServer),
  };
}
