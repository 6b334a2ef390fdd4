/**
 * Serving over stdin/stdout: the worker side of a pipe. stdout carries IPC bytes only; anything
 * else a worker prints must go to stderr.
 */
import { fstatSync } from "node:fs";
import { type ConnectOpts, Socket, type SocketConstructorOpts } from "node:net";
import type { Readable, Writable } from "node:stream";
import type { AuthContext } from "../../protocol/context.js";
import type { Connection, SharedMemoryAccess } from "../../server/connection.js";
import type { RpcServer } from "../../server/server.js";
import { pipeSharedMemory } from "../shm/negotiate.js";
import { writableSink } from "./sink.js";
import { socketSource } from "./source.js";

export interface StdioServeOptions {
  /**
   * Byte source. Default: standard input (read through a socket on fd 0 when it is a pipe or a
   * socket, else `process.stdin`).
   */
  readonly input?: Readable;
  /** Byte sink. Default: `process.stdout`. */
  readonly output?: Writable;
  /**
   * The shared-memory side channel: `true` offers it when this process can map segments (the
   * reason is logged once when it cannot), `false` refuses it, or supply your own. Default: true.
   */
  readonly sharedMemory?: boolean | SharedMemoryAccess;
  /** Who the process on the other end of the pipe is (every call runs as it). Default: anonymous. */
  readonly auth?: AuthContext;
}

/**
 * Standard input as a socket read through `socketSource` (requests, and exchange batches, land
 * straight in their message buffers) when it is a pipe or a socket; null otherwise (a file, a
 * terminal), where `process.stdin` is read as usual. `process.stdin` itself is left alone: it
 * starts reading only when someone reads it, and nothing else may read the request stream.
 */
function stdinSource(): AsyncIterable<Uint8Array> | null {
  try {
    const st = fstatSync(0);
    if (!st.isFIFO() && !st.isSocket()) return null;
    const source = socketSource();
    // `onread` is read by the Socket constructor (net.connect hands it its options that way).
    const options: SocketConstructorOpts & Pick<ConnectOpts, "onread"> = {
      fd: 0,
      readable: true,
      writable: false,
      onread: source.onread,
    };
    return source.attach(new Socket(options));
  } catch {
    return null;
  }
}

/**
 * Serves `server` on a pipe pair until the peer closes its end (or goes away), then resolves.
 * A vanished peer (EOF, EPIPE) ends the session cleanly rather than throwing.
 */
export async function serveStdio(server: RpcServer, opts: StdioServeOptions = {}): Promise<void> {
  const input = opts.input ?? stdinSource() ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const sink = writableSink(output);
  const shm = opts.sharedMemory ?? true;
  const sharedMemory = shm === false ? undefined : shm === true ? await pipeSharedMemory(server.logger) : shm;
  const conn: Connection = {
    input: input as AsyncIterable<Uint8Array>,
    write: sink.write,
    flush: sink.flush,
    transport: "pipe",
    ...(sharedMemory ? { sharedMemory } : {}),
    ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
  };
  try {
    await server.serveConnection(conn);
  } catch (err) {
    if (!sink.broken) throw err;
  } finally {
    await sink.flush();
  }
}
