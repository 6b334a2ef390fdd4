/**
 * Subprocess workers at scale (`npm run bench -- --only workers`): a call on a pooled worker
 * against spawning a worker per call; CPU-bound calls on a pool of N pipe workers against one; and
 * an HTTP service on a cluster of N processes against one. N is the machine's core count (capped at
 * 4); every figure is measured in this run, so ratios hold on a shared machine, absolute rates not.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { proxy } from "../src/client/typed.js";
import { connectHttp } from "../src/transports/http/index.js";
import { createWorkerPool } from "../src/transports/pool/index.js";
import { connectSubprocess } from "../src/transports/stdio/index.js";
import { timed } from "./net.js";
import { benchScript } from "./paths.js";
import type { Figure } from "./report.js";
import { Workers } from "./workers-service.js";

/** Milliseconds of CPU each `spin` call burns. */
const SPIN_MS = 4n;
/** Calls in flight against the cluster. */
const CLUSTER_IN_FLIGHT = 8;
const WORKER_ARGS = [...benchScript("workers-service"), "--pipe"];

/** No-op calls/s, each on a worker spawned for it and closed after. */
async function spawnPerCall(seconds: number): Promise<number> {
  const rate = await timed(
    async () => {
      const client = await connectSubprocess(process.execPath, WORKER_ARGS, { stderr: "inherit" });
      try {
        await proxy(client, Workers).noop({});
      } finally {
        await client.close();
      }
    },
    seconds,
    1,
    0,
  );
  return rate.rate;
}

/** No-op calls/s, each borrowing a pooled worker, calling it and returning it. */
async function pooledCall(seconds: number): Promise<number> {
  const pool = createWorkerPool({ maxIdle: 1 });
  try {
    return (await timed(() => pool.withWorker(Workers, process.execPath, WORKER_ARGS, (w) => w.noop({})), seconds))
      .rate;
  } finally {
    await pool.close();
  }
}

/** `spin` calls/s from `n` callers on a pool of at most `workers` pipe workers. */
async function pooledSpin(seconds: number, workers: number, callers: number): Promise<number> {
  const pool = createWorkerPool({ maxIdle: workers, maxActive: workers });
  try {
    // Spawn every worker before timing.
    const warm = await Promise.all(Array.from({ length: workers }, () => pool.borrow(process.execPath, WORKER_ARGS)));
    await Promise.all(warm.map((w) => w.release()));
    const spin = () => pool.withWorker(Workers, process.execPath, WORKER_ARGS, (w) => w.spin({ ms: SPIN_MS }));
    return (await timed(spin, seconds, callers)).rate;
  } finally {
    await pool.close();
  }
}

/** Starts the cluster script with `workers` processes; resolves to its port and the child. */
async function startCluster(workers: number): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [...benchScript("workers-service"), "--cluster", String(workers)], {
    stdio: ["pipe", "pipe", "inherit"],
    timeout: 300_000,
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /PORT:(\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`bench cluster exited (${code}) before listening`)));
  });
  return { port, child };
}

/** `spin` calls/s over HTTP, `CLUSTER_IN_FLIGHT` in flight, against a cluster of `workers` processes. */
async function clusterSpin(seconds: number, workers: number): Promise<number> {
  const { port, child } = await startCluster(workers);
  const client = connectHttp(`http://127.0.0.1:${port}`);
  try {
    const api = proxy(client, Workers);
    return (await timed(() => api.spin({ ms: SPIN_MS }), seconds, CLUSTER_IN_FLIGHT)).rate;
  } finally {
    await client.close();
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin!.end();
    await exited;
  }
}

/** The section's figures. */
export async function workerFigures(seconds: number): Promise<Figure[]> {
  const n = Math.min(4, Math.max(2, availableParallelism()));
  const cores = availableParallelism();
  const spawned = await spawnPerCall(seconds * 2);
  const pooled = await pooledCall(seconds);
  const one = await pooledSpin(seconds, 1, n);
  const many = await pooledSpin(seconds, n, n);
  const single = await clusterSpin(seconds, 1);
  const clustered = await clusterSpin(seconds, n);
  if (process.env.QUIVER_BENCH_DEBUG) console.error({ cores, spawned, pooled, one, many, single, clustered });
  return [
    {
      figure: "no-op call on a pooled worker (borrow, call, return), calls/s",
      transport: "pipe",
      value: pooled,
      unit: "calls/s",
      limit: "a worker spawned and closed per call",
      ratio: pooled / spawned,
    },
    {
      figure: `${SPIN_MS} ms CPU-bound calls/s, ${n} callers on a pool of ${n} workers (${cores} cores)`,
      transport: "pipe",
      value: many,
      unit: "calls/s",
      limit: `same callers on a pool of 1 worker`,
      ratio: many / one,
    },
    {
      figure: `${SPIN_MS} ms CPU-bound calls/s, ${CLUSTER_IN_FLIGHT} in flight, cluster of ${n} processes (${cores} cores)`,
      transport: "http",
      value: clustered,
      unit: "calls/s",
      limit: "same calls, 1 process",
      ratio: clustered / single,
    },
  ];
}
