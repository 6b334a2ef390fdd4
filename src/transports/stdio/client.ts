/**
 * Client side of a pipe: `pipeConnect` speaks over any readable/writable pair, and
 * `connectSubprocess` spawns a worker and speaks over its stdin/stdout (its stderr is passed
 * through, ignored or piped). A worker that exits makes every pending read fail with `transport_error`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer as createNetServer, type OnReadOpts, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { type ClientOptions, RpcClient } from "../../client/client.js";
import type { ClientTransport } from "../../client/transport.js";
import { frameworkError, NonIpcBytesError } from "../../errors.js";
import { widenSendBuffer } from "../node/send-buffer.js";
import { CLOSE_FLUSH_MS, flushWithin, writableSink } from "../node/sink.js";
import { type SocketSource, socketSource } from "../node/socket-source.js";
import { SharedMemoryChannel, segmentOf } from "../shm/client.js";
import { createSegment, type OwnedSegment, sharedMemorySupport, workerTakesSharedMemory } from "../shm/negotiate.js";
import type { SegmentAccess } from "../shm/pointer.js";

/**
 * A client transport over a readable (server → client) and a writable (client → server).
 * `source`: the readable's reader when it is a socket created with `onread: source.onread`.
 */
export function pipeTransport(
  readable: Readable,
  writable: Writable,
  name = "pipe",
  source?: SocketSource,
): ClientTransport {
  const sink = writableSink(writable);
  readable.on("error", () => {});
  return {
    name,
    input: source ? source.attach(readable as Socket) : (readable as AsyncIterable<Uint8Array>),
    write: sink.write,
    close: async () => {
      if (!writable.destroyed && !writable.writableEnded) {
        // Queued bytes may go first, for at most CLOSE_FLUSH_MS; a peer that stopped reading gets
        // its end of input by the pipe being dropped with them.
        if (await flushWithin(sink, CLOSE_FLUSH_MS)) writable.end();
        else writable.destroy();
      }
      readable.destroy();
    },
  };
}

export interface PipeClientOptions extends ClientOptions {
  /**
   * A shared-memory segment the worker can attach (`ShmSegment.create(size)` from
   * `quiver-rpc/shm`): requests advertise it, batches of 128 KiB and more travel through it as
   * pointer batches, and the worker may answer through it. Used as given, without asking the
   * worker first (`workerTakesSharedMemory` asks); the caller owns the segment. Replaces
   * `sideChannel`. Default: none.
   */
  readonly shm?: SegmentAccess;
}

/** A client over a pipe: an `RpcClient` that can use a shared-memory segment beside the pipe. */
export class PipeClient extends RpcClient {
  constructor(transport: ClientTransport, opts: PipeClientOptions = {}) {
    const { shm, ...clientOpts } = opts;
    super(transport, shm === undefined ? clientOpts : { ...clientOpts, sideChannel: new SharedMemoryChannel(shm) });
  }

  /** The shared-memory segment calls use, or null when batches travel on the pipe only. */
  get sharedMemory(): SegmentAccess | null {
    return segmentOf(this.sideChannel);
  }

  /**
   * Starts (or, with null, stops) using a shared-memory segment for the calls that follow. The
   * caller owns the segment and must keep it mapped while the client uses it.
   */
  useSharedMemory(segment: SegmentAccess | null): void {
    this.useSideChannel(segment === null ? null : new SharedMemoryChannel(segment));
  }
}

/**
 * A client over any duplex pipe (e.g. a worker's stdout and stdin). With `shm`, that segment is
 * used from the first call, without asking the worker; the caller keeps owning it.
 */
export function pipeConnect(readable: Readable, writable: Writable, opts: PipeClientOptions = {}): PipeClient {
  return new PipeClient(pipeTransport(readable, writable), opts);
}

export interface SubprocessOptions extends Omit<ClientOptions, "sideChannel"> {
  /**
   * Offer the worker a shared-memory segment of `size` total bytes (64 KiB header included):
   * the client creates it, asks the worker with `__transport_options__` before the first call,
   * uses it only if the worker says yes, and unlinks it on `close()`. Without shared-memory
   * support here, or with a worker that declines, calls use the pipe alone. Default: none.
   */
  readonly shm?: { readonly size: number };
  /**
   * The worker's stderr: `"inherit"` (default), `"ignore"`, `"pipe"` (read it from
   * `client.process.stderr`, and keep reading it: a worker blocks once that pipe is full), or an
   * open file descriptor the worker writes to (e.g. a log file opened for appending; the caller
   * keeps owning and closes it).
   */
  readonly stderr?: "inherit" | "ignore" | "pipe" | number;
  /** Environment and working directory for the worker. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** How long spawning may take before failing, in ms. Default: 10 000. */
  readonly spawnTimeoutMs?: number;
  /**
   * After `close()` ends the worker's stdin, how long to wait for it to exit before killing it
   * (SIGTERM, then SIGKILL after the same delay again), in ms. Default: 5 000.
   */
  readonly exitTimeoutMs?: number;
  /**
   * After the worker exits, how long its stdout may stay open (held by a grandchild) before the
   * client gives up on it, in ms. Default: 1 000.
   */
  readonly exitGraceMs?: number;
}

/**
 * A client on a spawned worker; `process` is the child; `close()` ends stdin and reaps it. The
 * child's stdout is the client's own socket, so `process.stdout` is null (unless the socket pair
 * could not be made and `spawn` made the pipe).
 */
export interface SubprocessClient extends PipeClient {
  readonly process: ChildProcess;
}

/** Creates the segment `opts.shm` asks for, or null when this process cannot map segments. */
async function offerSegment(size: number): Promise<OwnedSegment | null> {
  const support = await sharedMemorySupport();
  if (!support.available) return null;
  return createSegment(size);
}

/**
 * A connected pair of Unix stream sockets: `ours`, created with `onread`, and `theirs`, to be
 * the worker's stdout. libuv gives a worker's stdout a socket pair too; making it here lets our
 * end be created with `onread`, so the worker's batches land straight in their message buffers
 * (see `socketSource`); the worker's end gets a send buffer that holds a mid-size batch
 * (`widenSendBuffer`). Null where that cannot be done (Windows, no usable temp directory): the
 * caller then lets `spawn` make the pipe. (The bench's raw pipe baseline reads through one too.)
 */
export async function outputPair(onread: OnReadOpts): Promise<{ ours: Socket; theirs: Socket } | null> {
  if (process.platform === "win32") return null;
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), "quiver-"));
  } catch {
    return null;
  }
  const server = createNetServer({ pauseOnConnect: true });
  let ours: Socket | null = null;
  try {
    const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
    const path = join(dir, "stdout.sock");
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, resolve);
    });
    const socket = connect({ path, onread });
    ours = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const theirs = await accepted;
    widenSendBuffer(theirs);
    return { ours: socket, theirs };
  } catch {
    ours?.destroy();
    return null;
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Spawns `cmd args` and connects to it over its pipes. Rejects with `transport_error` if the
 * worker cannot be spawned in time.
 */
export async function connectSubprocess(
  cmd: string,
  args: readonly string[] = [],
  opts: SubprocessOptions = {},
): Promise<SubprocessClient> {
  const source = socketSource();
  const pair = await outputPair(source.onread);
  let child: ChildProcess;
  try {
    child = spawn(cmd, [...args], {
      stdio: ["pipe", pair?.theirs ?? "pipe", opts.stderr ?? "inherit"],
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
  } catch (err) {
    pair?.ours.destroy();
    throw err;
  } finally {
    // The worker holds its own copy of its stdout now (spawn duplicates it synchronously).
    pair?.theirs.destroy();
  }
  const spawnTimeout = opts.spawnTimeoutMs ?? 10_000;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      pair?.ours.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(frameworkError("transport_error", `worker '${cmd}' did not start within ${spawnTimeout} ms`));
    }, spawnTimeout);
    child.once("spawn", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(frameworkError("transport_error", `cannot start worker '${cmd}': ${err.message}`, { cause: err }));
    });
  });
  const stdout: Readable = pair?.ours ?? child.stdout!;
  const stdin = child.stdin!;
  stdin.on("error", () => {});
  widenSendBuffer(stdin as Socket);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  let closing = false;
  void exited.then(() => {
    // A worker that is gone cannot answer; if a grandchild keeps stdout open, stop waiting.
    const grace = setTimeout(() => {
      if (!stdout.destroyed) stdout.destroy(new Error(`worker exited (code ${child.exitCode ?? child.signalCode})`));
    }, opts.exitGraceMs ?? 1_000);
    grace.unref();
  });
  const base = pipeTransport(stdout, stdin, "subprocess", pair ? source : undefined);
  const exitTimeout = opts.exitTimeoutMs ?? 5_000;
  let segment: OwnedSegment | null = null;
  const dropSegment = () => {
    const s = segment;
    segment = null;
    if (s === null) return;
    try {
      s.close();
    } finally {
      s.unlink();
    }
  };
  const transport: ClientTransport = {
    name: "subprocess",
    input: base.input,
    write: base.write,
    explainReadError: (err) =>
      err instanceof NonIpcBytesError
        ? frameworkError(
            "transport_error",
            `worker wrote non-IPC bytes to stdout: ${err.preview}. A worker's stdout carries the IPC stream only; ` +
              "its logs and prints belong on stderr (a quiver worker's serveStdio sends process.stdout writes there " +
              "while it serves, but not what is printed before serving starts or written to fd 1 directly)",
            { cause: err },
          )
        : err,
    close: async () => {
      if (closing) return exited;
      closing = true;
      if (!stdin.destroyed && !stdin.writableEnded) stdin.end();
      const wait = (ms: number) =>
        Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
      if (!(await wait(exitTimeout))) {
        child.kill("SIGTERM");
        if (!(await wait(exitTimeout))) child.kill("SIGKILL");
      }
      await exited;
      stdout.destroy();
      dropSegment();
    },
  };
  const { shm, ...clientOpts } = opts;
  const client = new PipeClient(transport, clientOpts) as SubprocessClient;
  Object.defineProperty(client, "process", { value: child, enumerable: true });
  if (shm !== undefined) {
    try {
      segment = await offerSegment(shm.size);
      if (segment !== null && (await workerTakesSharedMemory(client))) client.useSharedMemory(segment);
      else dropSegment();
    } catch (err) {
      dropSegment();
      await client.close().catch(() => {});
      throw err;
    }
  }
  return client;
}
