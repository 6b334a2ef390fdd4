/**
 * Serving over stdin/stdout: the worker side of a pipe. stdout carries IPC bytes only, so while a
 * session serves on the process's own stdout, what user code writes through `process.stdout`
 * (`console.log`, `process.stdout.write`) is sent to stderr.
 */
import { fstatSync } from "node:fs";
import { type ConnectOpts, Socket, type SocketConstructorOpts } from "node:net";
import type { Readable, Writable } from "node:stream";
import type { AuthContext } from "../../protocol/context.js";
import type { Connection } from "../../server/connection.js";
import { type CloseOptions, ConnectionSet, type TrackedConnection } from "../../server/connections.js";
import { peerGone } from "../../server/dispatcher.js";
import type { RpcServer } from "../../server/server.js";
import { widenSendBuffer } from "../node/send-buffer.js";
import { type WriteChunk, writableSink } from "../node/sink.js";
import { socketSource } from "../node/socket-source.js";
import { pipeSharedMemory } from "../shm/negotiate.js";
import { type SharedMemoryAccess, sharedMemorySideChannel } from "../shm/server.js";

export interface StdioServeOptions {
  /**
   * Byte source. Default: standard input (read through a socket on fd 0 when it is a pipe or a
   * socket, else `process.stdin`).
   */
  readonly input?: Readable;
  /**
   * Byte sink. Default: `process.stdout`, which the session then keeps for IPC: while it serves,
   * writes through `process.stdout` (`console.log`, `console.info`, `process.stdout.write`,
   * streams piped to it) go to stderr instead, and stdout is put back when serving ends. A
   * stream passed here is used as is, and `process.stdout` is left alone.
   */
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
function stdinSource(): { readonly input: AsyncIterable<Uint8Array>; readonly stream: Socket } | null {
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
    const stream = new Socket(options);
    return { input: source.attach(stream), stream };
  } catch {
    return null;
  }
}

/** True while a session holds the process's stdout (see `claimStdout`). */
let stdoutClaimed = false;

/**
 * Takes the process's stdout for IPC. The session keeps the stream on fd 1 and writes to it
 * with the `write` it had; `process.stdout.write` itself (what `console.log` and every other
 * writer through `process.stdout` call) is pointed at `process.stderr` until `release`. One
 * handle stays on fd 1 on purpose: a second libuv handle on the same descriptor would share its
 * poll registration with the first, and a write waiting for the pipe to drain could stall.
 */
function claimStdout(): { readonly output: Writable; readonly write: WriteChunk; release(): void } {
  if (stdoutClaimed) throw new Error("serveStdio is already serving this process's stdout");
  stdoutClaimed = true;
  const stdout = process.stdout;
  const stderr = process.stderr;
  const hadOwn = Object.hasOwn(stdout, "write");
  const previous = stdout.write;
  const toStderr = (...args: unknown[]): boolean => (stderr.write as (...a: unknown[]) => boolean).apply(stderr, args);
  stdout.write = toStderr as typeof stdout.write;
  // A socket pair (what Node's spawn makes) holds only 208 KiB unread by default; a pipe or a file is left as it is.
  if (stdout instanceof Socket) widenSendBuffer(stdout);
  return {
    output: stdout,
    write: (chunk, done) => (previous as WriteChunk).call(stdout, chunk, done),
    release() {
      // Left alone if someone replaced it meanwhile (theirs may wrap ours).
      if (stdout.write === toStderr) {
        if (hadOwn) stdout.write = previous;
        else delete (stdout as { write?: unknown }).write;
      }
      stdoutClaimed = false;
    },
  };
}

/**
 * A worker serving on a pipe pair: a promise of the end of serving (the peer closed its end, went
 * away, or `close` finished), which can also be closed.
 */
export interface StdioWorker extends Promise<void> {
  /**
   * Stops serving gracefully: no new call starts; a call in flight gets `graceMs` to finish, then
   * is aborted (`ctx.signal`, a `cancelled` error to the client). Resolves when serving ended.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/**
 * Serves `server` on a pipe pair until the peer closes its end (or goes away); the returned
 * worker resolves then (`await serveStdio(server)`), or can be closed. A vanished peer (EOF,
 * EPIPE) ends serving cleanly rather than throwing; a write failing because the peer stopped
 * reading aborts the call in flight (`ctx.signal`). On the default output, user code's writes to `process.stdout` go to
 * stderr meanwhile (see `output`).
 */
export function serveStdio(server: RpcServer, opts: StdioServeOptions = {}): StdioWorker {
  const connections = new ConnectionSet();
  const tracked = connections.track(() => {
    const input = opts.input ?? stdin?.stream;
    input?.destroy();
  });
  const stdin = opts.input === undefined ? stdinSource() : null;
  const done = serve(server, opts, stdin, tracked);
  tracked.served(done);
  const worker: StdioWorker = Object.assign(done, {
    close: async (closeOpts?: CloseOptions) => {
      await connections.close(closeOpts);
      await done.catch(() => {});
    },
  });
  const unregister = server.addListener(worker);
  void done.then(unregister, unregister);
  return worker;
}

async function serve(
  server: RpcServer,
  opts: StdioServeOptions,
  stdin: { readonly input: AsyncIterable<Uint8Array>; readonly stream: Socket } | null,
  tracked: TrackedConnection,
): Promise<void> {
  const claim = opts.output === undefined ? claimStdout() : null;
  try {
    const input = opts.input ?? stdin?.input ?? process.stdin;
    const output = claim?.output ?? opts.output!;
    const sink = claim ? writableSink(claim.output, claim.write) : writableSink(output);
    // A pipe tells that its reader went away only when a write fails (EPIPE): then a call still
    // running has no one to answer. End of input is not that: a peer may close its side after
    // its last request and still read the answer.
    output.once("error", () => tracked.peerGone(peerGone("pipe")));
    const shm = opts.sharedMemory ?? true;
    const access = shm === false ? undefined : shm === true ? await pipeSharedMemory(server.logger) : shm;
    const conn: Connection = {
      input: input as AsyncIterable<Uint8Array>,
      write: sink.write,
      flush: sink.flush,
      transport: "pipe",
      closing: tracked.closing,
      signal: tracked.signal,
      ...(access ? { sideChannel: sharedMemorySideChannel(access) } : {}),
      ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
    };
    try {
      await server.serveConnection(conn);
    } catch (err) {
      if (!sink.broken) throw err;
    } finally {
      await sink.flush();
    }
  } finally {
    claim?.release();
  }
}
