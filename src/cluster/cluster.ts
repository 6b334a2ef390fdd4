/**
 * One HTTP or WebSocket service on every core: `node:cluster` forks worker processes that each
 * listen on the same address (the primary holds the socket and hands connections out in turn),
 * all with one state-token key, so a stream begun on one process continues on any other.
 */
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";

/** The environment variables the primary passes its workers. */
const KEY_ENV = "QUIVER_CLUSTER_TOKEN_KEY";
const INDEX_ENV = "QUIVER_CLUSTER_INDEX";
/** The message the primary sends a worker to close its listener and exit. */
const CLOSE_MESSAGE = "quiver-cluster:close";

export interface ClusterOptions {
  /** Worker processes. Default: `os.availableParallelism()`. */
  readonly workers?: number;
  /**
   * The 32-byte state-token key every worker serves with (give it to `listenHttp`'s `tokenKey`).
   * Default: 32 random bytes drawn by the primary, so streams survive a worker's restart but not
   * the primary's; give a fixed key to let them outlive it (and to share it with other machines).
   */
  readonly tokenKey?: Uint8Array;
  /** Fork a replacement for a worker that exits while the cluster runs. Default: true. */
  readonly restart?: boolean;
  /** How long workers have to finish their calls when the cluster closes, in ms. Default: 10 000. */
  readonly graceMs?: number;
  /** How long every worker may take to start listening, in ms. Default: 30 000. */
  readonly startTimeoutMs?: number;
}

/** What a worker's `serve` gets. */
export interface ClusterWorkerContext {
  /** The key to seal state tokens with: the same in every worker. */
  readonly tokenKey: Uint8Array;
  /** This worker's index, 0 to `workers - 1` (a replacement keeps its predecessor's). */
  readonly index: number;
}

/** What a worker's `serve` returns: its listener (`listenHttp`'s, `listenWebSocket`'s). */
export interface ClusterListener {
  close(opts?: { readonly graceMs?: number }): Promise<void>;
}

/** `serveCluster` in the primary: the workers are listening. */
export interface ClusterPrimary {
  readonly role: "primary";
  /** The port the workers share (the one they asked for, or the one port 0 drew for all). */
  readonly port: number;
  /** The workers' process ids now. */
  readonly pids: readonly number[];
  /** Asks every worker to close its listener (calls get `graceMs`), waits for them to exit, kills stragglers. */
  close(): Promise<void>;
}

/** `serveCluster` in a worker: `serve` is listening. */
export interface ClusterWorker {
  readonly role: "worker";
  readonly index: number;
}

/**
 * Serves on several processes. Call it at the top of the script: in the primary it forks
 * `workers` copies of the same script and resolves, once each listens, to a `ClusterPrimary`;
 * in each worker it runs `serve` (which listens, e.g. `listenHttp(server, { port, tokenKey })`)
 * and resolves to a `ClusterWorker`. A worker closes its listener and exits when the primary closes.
 */
export async function serveCluster(
  serve: (ctx: ClusterWorkerContext) => Promise<ClusterListener>,
  opts: ClusterOptions = {},
): Promise<ClusterPrimary | ClusterWorker> {
  const graceMs = opts.graceMs ?? 10_000;
  if (cluster.isWorker) {
    const hex = process.env[KEY_ENV] ?? "";
    const index = Number(process.env[INDEX_ENV] ?? "0");
    const listener = await serve({ tokenKey: Buffer.from(hex, "hex"), index });
    process.on("message", (msg: unknown) => {
      if (msg !== CLOSE_MESSAGE) return;
      void listener.close({ graceMs }).finally(() => process.exit(0));
    });
    return { role: "worker", index };
  }
  const count = opts.workers ?? availableParallelism();
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`workers must be a positive integer, got ${count}`);
  const key = opts.tokenKey ?? randomBytes(32);
  if (key.byteLength !== 32) throw new RangeError(`tokenKey must be 32 bytes, got ${key.byteLength}`);
  const hex = Buffer.from(key).toString("hex");
  const restart = opts.restart ?? true;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const workers = new Map<number, Worker>();
  let closing = false;
  let port = -1;

  const fork = (index: number): Worker => {
    const w = cluster.fork({ [KEY_ENV]: hex, [INDEX_ENV]: String(index) });
    workers.set(index, w);
    w.once("exit", () => {
      if (workers.get(index) === w) workers.delete(index);
      if (!closing && restart) fork(index);
    });
    return w;
  };

  await new Promise<void>((resolve, reject) => {
    let listening = 0;
    const timer = setTimeout(() => {
      cluster.off("listening", onListening);
      reject(new Error(`cluster workers did not all listen within ${startTimeoutMs} ms (${listening} of ${count})`));
    }, startTimeoutMs);
    const onListening = (_w: Worker, address: { port: number }) => {
      port = address.port;
      if (++listening < count) return;
      clearTimeout(timer);
      cluster.off("listening", onListening);
      resolve();
    };
    cluster.on("listening", onListening);
    for (let i = 0; i < count; i++) fork(i);
  }).catch(async (err: unknown) => {
    closing = true;
    for (const w of workers.values()) w.process.kill("SIGKILL");
    throw err;
  });

  let closed: Promise<void> | null = null;
  return {
    role: "primary",
    port,
    get pids() {
      return [...workers.values()].map((w) => w.process.pid ?? -1);
    },
    close() {
      closed ??= (async () => {
        closing = true;
        await Promise.all(
          [...workers.values()].map(
            (w) =>
              new Promise<void>((resolve) => {
                if (w.isDead()) return resolve();
                const kill = setTimeout(() => w.process.kill("SIGKILL"), graceMs + 5_000);
                w.once("exit", () => {
                  clearTimeout(kill);
                  resolve();
                });
                try {
                  w.send(CLOSE_MESSAGE);
                } catch {
                  // Its channel is already gone: the worker is exiting anyway.
                  w.process.kill("SIGTERM");
                }
              }),
          ),
        );
      })();
      return closed;
    },
  };
}
