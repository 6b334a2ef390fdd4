/**
 * A pool of subprocess workers spoken to over pipes (the reference's `WorkerPool`, `pool.py`):
 * borrowing a worker reuses an idle one started by the same command or spawns one; returning it
 * keeps it warm for the next borrow unless it died, was left mid-call or mid-stream, or the pool
 * already holds `maxIdle` idle workers. Idle workers are ended after `idleTimeoutMs`.
 */
import { closeSync, openSync } from "node:fs";
import { createInterface } from "node:readline";
import type { RecordBatch } from "apache-arrow";
import { type Logger, pino } from "pino";
import type { ClientOptions } from "../../client/client.js";
import type {
  CallChannel,
  CallTarget,
  RequestMetadata,
  StreamChannel,
  StreamOpenOptions,
} from "../../client/transport.js";
import { type ProtocolClient, proxy } from "../../client/typed.js";
import { frameworkError } from "../../errors.js";
import type { ProtocolDecl } from "../../protocol/methods.js";
import { createSegment, type OwnedSegment, sharedMemorySupport, workerTakesSharedMemory } from "../shm/negotiate.js";
import type { SegmentAccess } from "../shm/pointer.js";
import { connectSubprocess, type SubprocessClient } from "../stdio/client.js";

/** Where each worker's stderr goes. */
export type WorkerStderr = "inherit" | "ignore" | "log" | { readonly file: string };

export interface WorkerPoolOptions {
  /** Most idle workers kept, across every command; returning one more ends the oldest idle one. Default: 4. */
  readonly maxIdle?: number;
  /** How long a worker may sit idle before it is ended, in ms. Default: 60 000. */
  readonly idleTimeoutMs?: number;
  /** How often idle workers are checked against `idleTimeoutMs`, in ms. Default: the smaller of `idleTimeoutMs` and 5 000. */
  readonly reapIntervalMs?: number;
  /**
   * Most workers borrowed at once, across every command; a borrow beyond it waits for a return.
   * Set it to `os.availableParallelism()` to keep one busy worker per core. Default: unlimited.
   */
  readonly maxActive?: number;
  /** How long a borrow waits for a slot under `maxActive`, in ms, before failing with `transport_error`. Default: 30 000. */
  readonly borrowTimeoutMs?: number;
  /**
   * Each worker's stderr: `"inherit"` (this process's stderr), `"ignore"`, `"log"` (one `info`
   * record per line on `logger`, with the worker's `worker_pid` and `cmd`), or `{ file }` (appended to
   * that file). Default: `"inherit"`.
   */
  readonly stderr?: WorkerStderr;
  /** Receives the pool's own records (spawns, discards, evictions) and, with `stderr: "log"`, workers' stderr. Default: silent. */
  readonly logger?: Logger;
  /**
   * Give each borrow its own shared-memory segment of this many bytes (64 KiB header included),
   * created when the worker is borrowed and unlinked when it is returned. Used only when this
   * process can map segments and the worker says it takes them (asked once per worker). Default: none.
   */
  readonly shmSize?: number;
  /** Environment for the workers. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory for the workers. Default: this process's. */
  readonly cwd?: string;
  /** Options of each worker's client (`timeoutMs`, `onLog`, `interceptors`, …). Default: the client's defaults. */
  readonly client?: Omit<ClientOptions, "sideChannel">;
  /** How long spawning one worker may take, in ms. Default: 10 000. */
  readonly spawnTimeoutMs?: number;
  /** How long an ended worker has to exit after its stdin closes before it is killed, in ms. Default: 5 000. */
  readonly exitTimeoutMs?: number;
}

/** A snapshot of a pool's counters (the reference's `PoolMetrics`). */
export interface PoolMetrics {
  /** Borrows begun. */
  readonly borrows: number;
  /** Workers spawned. */
  readonly spawns: number;
  /** Borrows served by an idle worker. */
  readonly reuses: number;
  /** Workers returned to the idle set. */
  readonly returns: number;
  /** Workers ended because they died, were left mid-call or mid-stream, or the pool closed. */
  readonly discards: number;
  /** Idle workers ended after `idleTimeoutMs`. */
  readonly evictionsIdle: number;
  /** Idle workers ended to keep at most `maxIdle`. */
  readonly evictionsMax: number;
  /** Workers idle now. */
  readonly idle: number;
  /** Workers borrowed now (spawning included). */
  readonly active: number;
}

/**
 * A borrowed worker. Call it through `proxy(protocol)` or `channel`, then `release()` it; after
 * that both refuse calls, so a kept reference cannot reach the worker's next borrower.
 */
export interface PooledWorker {
  /** The worker's process id. */
  readonly pid: number;
  /** True when an idle worker served this borrow, false when it was spawned for it. */
  readonly reused: boolean;
  /** Calls at the batch level; the pool watches them to tell whether a stream was left open. */
  readonly channel: CallChannel;
  /** This borrow's shared-memory segment, or null when the pool has no `shmSize` or the worker declined. */
  readonly shm: SegmentAccess | null;
  /** A typed proxy on this worker. */
  proxy<P extends ProtocolDecl>(protocol: P): ProtocolClient<P>;
  /**
   * Returns the worker to the pool, or ends it if it died, a call or stream is still open on it,
   * or the pool is closed. Idempotent.
   */
  release(): Promise<void>;
}

/** A pool of subprocess workers; `createWorkerPool` makes one. */
export interface WorkerPool {
  /** Borrows a worker started by `cmd args` (idle one or a new spawn); fails with `transport_error` when the pool is closed. */
  borrow(cmd: string, args?: readonly string[]): Promise<PooledWorker>;
  /** Borrows a worker, runs `fn` with a typed proxy on it, and returns the worker however `fn` ends. */
  withWorker<P extends ProtocolDecl, T>(
    protocol: P,
    cmd: string,
    args: readonly string[],
    fn: (proxy: ProtocolClient<P>, worker: PooledWorker) => Promise<T>,
  ): Promise<T>;
  /** The counters now. */
  readonly metrics: PoolMetrics;
  /** Ends every worker, idle and borrowed (their calls fail with `transport_error`), and refuses later borrows. Idempotent. */
  close(): Promise<void>;
}

/** A spawned worker, borrowed or idle. */
interface Worker {
  readonly key: string;
  readonly client: SubprocessClient;
  /** Whether the worker said it takes a shared-memory segment (asked once, when `shmSize` is set). */
  readonly takesShm: boolean;
  returnedAt: number;
}

/** A worker that is gone (exited or killed) or whose connection failed cannot serve another borrow. */
function dead(w: Worker): boolean {
  const p = w.client.process;
  return p.exitCode !== null || p.signalCode !== null || w.client.isBroken;
}

/** The calls of one borrow: refused once the borrow ends; counts what is still open. */
class BorrowChannel implements CallChannel {
  private calls = 0;
  private readonly streams: StreamChannel[] = [];
  private revoked = false;

  constructor(private readonly inner: CallChannel) {}

  /** True when a unary call is unanswered or a stream has not ended. */
  get abandoned(): boolean {
    return this.calls > 0 || this.streams.some((s) => !s.ended);
  }

  revoke(): void {
    this.revoked = true;
  }

  private enter(): void {
    if (this.revoked) throw frameworkError("transport_error", "this worker was returned to the pool");
  }

  async unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    this.enter();
    this.calls++;
    try {
      return await this.inner.unaryBatch(target, params, extra);
    } finally {
      this.calls--;
    }
  }

  async openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<StreamChannel> {
    this.enter();
    this.calls++;
    try {
      const stream = await this.inner.openStream(target, params, opts);
      this.streams.push(stream);
      return stream;
    } finally {
      this.calls--;
    }
  }
}

/** Creates a pool of subprocess workers. */
export function createWorkerPool(opts: WorkerPoolOptions = {}): WorkerPool {
  const maxIdle = opts.maxIdle ?? 4;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const maxActive = opts.maxActive ?? Number.POSITIVE_INFINITY;
  const borrowTimeoutMs = opts.borrowTimeoutMs ?? 30_000;
  if (!Number.isInteger(maxIdle) || maxIdle < 0)
    throw new RangeError(`maxIdle must be an integer >= 0, got ${maxIdle}`);
  if (!(idleTimeoutMs > 0)) throw new RangeError(`idleTimeoutMs must be positive, got ${idleTimeoutMs}`);
  if (!(maxActive >= 1)) throw new RangeError(`maxActive must be at least 1, got ${maxActive}`);
  if (opts.shmSize !== undefined && !(Number.isSafeInteger(opts.shmSize) && opts.shmSize > 0)) {
    throw new RangeError(`shmSize must be a positive integer, got ${opts.shmSize}`);
  }
  const logger = opts.logger ?? pino({ level: "silent" });
  const stderrMode = opts.stderr ?? "inherit";
  let stderrFd: number | null = null;

  /** Idle workers by command, the most recently returned last (reused first, for warm caches). */
  const idle = new Map<string, Worker[]>();
  /** Borrowed workers (ended too when the pool closes). */
  const borrowed = new Set<Worker>();
  /** Borrows waiting for a slot under `maxActive`. */
  const waiting: Array<() => void> = [];
  const counts = { borrows: 0, spawns: 0, reuses: 0, returns: 0, discards: 0, evictionsIdle: 0, evictionsMax: 0 };
  let active = 0;
  let closed = false;
  /** Workers being ended, so `close()` can wait for all of them. */
  const ending = new Set<Promise<void>>();
  /** Spawns in progress, so `close()` can wait for them (a worker spawned after it is ended at once). */
  const spawning = new Set<Promise<Worker>>();

  const idleCount = () => {
    let n = 0;
    for (const list of idle.values()) n += list.length;
    return n;
  };

  const end = (w: Worker): void => {
    const p = w.client.close().catch(() => {});
    ending.add(p);
    void p.then(() => ending.delete(p));
  };

  /** Frees a borrow's slot, handing it straight to the longest-waiting borrow if there is one. */
  const leave = (): void => {
    const next = waiting.shift();
    if (next === undefined) active--;
    else next();
  };

  /** Removes and returns the idle worker returned longest ago, or null. */
  const takeOldest = (): Worker | null => {
    let oldest: Worker | null = null;
    for (const list of idle.values()) {
      const first = list[0];
      if (first !== undefined && (oldest === null || first.returnedAt < oldest.returnedAt)) oldest = first;
    }
    if (oldest !== null) removeIdle(oldest);
    return oldest;
  };

  const removeIdle = (w: Worker): void => {
    const list = idle.get(w.key);
    if (list === undefined) return;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) idle.delete(w.key);
  };

  const reap = (): void => {
    const now = performance.now();
    for (const list of [...idle.values()]) {
      for (const w of [...list]) {
        if (now - w.returnedAt < idleTimeoutMs) continue;
        removeIdle(w);
        counts.evictionsIdle++;
        logger.info({ worker_pid: w.client.process.pid }, "evicted idle worker (idle timeout)");
        end(w);
      }
    }
  };
  const reaper = setInterval(reap, opts.reapIntervalMs ?? Math.min(idleTimeoutMs, 5_000));
  reaper.unref();

  const stderrOption = (): "inherit" | "ignore" | "pipe" | number => {
    if (stderrMode === "inherit" || stderrMode === "ignore") return stderrMode;
    if (stderrMode === "log") return "pipe";
    stderrFd ??= openSync(stderrMode.file, "a");
    return stderrFd;
  };

  const spawnWorker = async (key: string, cmd: string, args: readonly string[]): Promise<Worker> => {
    const client = await connectSubprocess(cmd, args, {
      ...opts.client,
      stderr: stderrOption(),
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.spawnTimeoutMs === undefined ? {} : { spawnTimeoutMs: opts.spawnTimeoutMs }),
      ...(opts.exitTimeoutMs === undefined ? {} : { exitTimeoutMs: opts.exitTimeoutMs }),
    });
    const pid = client.process.pid;
    if (stderrMode === "log" && client.process.stderr !== null) {
      const lines = createInterface({ input: client.process.stderr, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on("line", (line) => logger.info({ worker_pid: pid, cmd: [cmd, ...args] }, line));
    }
    let takesShm = false;
    if (opts.shmSize !== undefined && (await sharedMemorySupport()).available) {
      takesShm = await workerTakesSharedMemory(client);
    }
    counts.spawns++;
    logger.info({ worker_pid: pid, cmd: [cmd, ...args] }, "spawned worker");
    const worker: Worker = { key, client, takesShm, returnedAt: 0 };
    if (closed) {
      counts.discards++;
      end(worker);
      throw frameworkError("transport_error", "the worker pool is closed");
    }
    return worker;
  };

  /** Takes a borrow slot under `maxActive`, waiting for one to be handed over when all are taken. */
  const takeSlot = (): Promise<void> => {
    if (active < maxActive) {
      active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = waiting.indexOf(grant);
        if (i >= 0) waiting.splice(i, 1);
        reject(
          frameworkError("transport_error", `no worker free within ${borrowTimeoutMs} ms (maxActive ${maxActive})`),
        );
      }, borrowTimeoutMs);
      waiting.push(grant);
    });
  };

  const acquire = async (
    key: string,
    cmd: string,
    args: readonly string[],
  ): Promise<{ w: Worker; reused: boolean }> => {
    const list = idle.get(key);
    while (list !== undefined && list.length > 0) {
      const w = list.pop()!;
      if (list.length === 0) idle.delete(key);
      if (!dead(w)) return { w, reused: true };
      logger.warn({ worker_pid: w.client.process.pid }, "idle worker died; discarding it");
      counts.discards++;
      end(w);
    }
    const spawned = spawnWorker(key, cmd, args);
    spawning.add(spawned);
    try {
      return { w: await spawned, reused: false };
    } finally {
      spawning.delete(spawned);
    }
  };

  const giveBack = (w: Worker, abandoned: boolean): void => {
    borrowed.delete(w);
    leave();
    const pid = w.client.process.pid;
    let reason: string | null = null;
    if (closed) reason = "pool closed";
    else if (dead(w)) reason = "worker died";
    else if (abandoned) reason = "call or stream left open";
    else if (maxIdle === 0) reason = "maxIdle is 0";
    if (reason !== null) {
      counts.discards++;
      logger.info({ worker_pid: pid, reason }, "discarded worker");
      end(w);
      return;
    }
    if (idleCount() >= maxIdle) {
      const oldest = takeOldest();
      if (oldest !== null) {
        counts.evictionsMax++;
        logger.info({ worker_pid: oldest.client.process.pid }, "evicted idle worker (maxIdle)");
        end(oldest);
      }
    }
    w.returnedAt = performance.now();
    const list = idle.get(w.key);
    if (list === undefined) idle.set(w.key, [w]);
    else list.push(w);
    counts.returns++;
  };

  const borrow = async (cmd: string, args: readonly string[] = []): Promise<PooledWorker> => {
    if (closed) throw frameworkError("transport_error", "the worker pool is closed");
    await takeSlot();
    if (closed) {
      leave();
      throw frameworkError("transport_error", "the worker pool is closed");
    }
    counts.borrows++;
    const key = JSON.stringify([cmd, ...args]);
    let got: { w: Worker; reused: boolean };
    try {
      got = await acquire(key, cmd, args);
    } catch (err) {
      leave();
      throw err;
    }
    const { w, reused } = got;
    if (reused) counts.reuses++;
    borrowed.add(w);
    if (closed) {
      giveBack(w, true);
      throw frameworkError("transport_error", "the worker pool is closed");
    }
    let segment: OwnedSegment | null = null;
    if (w.takesShm && opts.shmSize !== undefined) {
      try {
        segment = await createSegment(opts.shmSize);
      } catch (err) {
        giveBack(w, false);
        throw err;
      }
      w.client.useSharedMemory(segment);
    }
    const channel = new BorrowChannel(w.client);
    let released: Promise<void> | null = null;
    return {
      pid: w.client.process.pid ?? -1,
      reused,
      channel,
      shm: segment,
      proxy: <P extends ProtocolDecl>(protocol: P) => proxy(channel, protocol),
      release() {
        released ??= (async () => {
          channel.revoke();
          try {
            if (segment !== null) {
              w.client.useSharedMemory(null);
              try {
                segment.close();
              } finally {
                segment.unlink();
              }
            }
          } finally {
            giveBack(w, channel.abandoned);
          }
        })();
        return released;
      },
    };
  };

  return {
    borrow,
    async withWorker(protocol, cmd, args, fn) {
      const worker = await borrow(cmd, args);
      try {
        return await fn(worker.proxy(protocol), worker);
      } finally {
        await worker.release();
      }
    },
    get metrics(): PoolMetrics {
      return Object.freeze({ ...counts, idle: idleCount(), active });
    },
    async close() {
      if (!closed) {
        closed = true;
        clearInterval(reaper);
        if (borrowed.size > 0) logger.warn({ active: borrowed.size }, "worker pool closing with workers borrowed");
        for (const list of idle.values()) {
          for (const w of list) {
            counts.discards++;
            end(w);
          }
        }
        idle.clear();
        for (const w of borrowed) end(w);
        for (const grant of waiting.splice(0)) grant();
      }
      await Promise.allSettled([...spawning]);
      while (ending.size > 0) await Promise.all([...ending]);
      if (stderrFd !== null) {
        closeSync(stderrFd);
        stderrFd = null;
      }
    },
  };
}
