/**
 * What usage accounting costs a small call at the pipe unary rate (`npm run bench -- --only
 * usage`): no-op calls over a stdio pipe to a worker with the metrics interceptor on (an SDK meter
 * provider aggregating), or a calls-per-second quota checked on every call in the memory store or
 * in a Redis on loopback (a redis-server started here), against the same worker with none of it.
 *
 * Measured in CPU time per call (the worker's threads', read from /proc in nanoseconds, plus this
 * client's), not wall time, with two kinds of noise cancelled. The load of a machine shared with
 * other work drifts within seconds: the modes take turns in short chunks of calls, so every mode
 * sees the same drift. And one process's JIT differs from another's by several percent: each
 * round starts a fresh worker per mode. A figure's value is the rate that CPU time allows (1 /
 * (client + server) per call, median over rounds); its ratio is the median of the rounds' ratios
 * to the plain worker's CPU in the same round. The interceptor
 * mechanism alone (one interceptor that only calls next) is reported too: the part of every
 * figure that is the framework's, not usage accounting's. Redis's own CPU is not counted (a
 * separate process); its round trip shows in wall time only. Linux only (/proc).
 */
import { readdirSync, readFileSync } from "node:fs";
import { type ProtocolClient, proxy } from "../src/client/typed.js";
import { connectSubprocess, type SubprocessClient } from "../src/transports/stdio/client.js";
import { startRedis } from "../test/helpers/redis-server.js";
import { benchScript } from "./paths.js";
import type { Figure } from "./report.js";
import { Bench } from "./service.js";

/** The CPU time of every thread of a live process so far, in nanoseconds (`/proc/PID/task/TID/schedstat`). */
function cpuNanos(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns;
}

/** A usage worker in one mode, and its typed client. */
interface Worker {
  readonly client: SubprocessClient;
  readonly bench: ProtocolClient<typeof Bench>;
}

async function startWorker(mode: readonly string[]): Promise<Worker> {
  const client = await connectSubprocess(process.execPath, [...benchScript("usage-worker"), ...mode], {
    spawnTimeoutMs: 30_000,
  });
  const bench = proxy(client, Bench);
  for (let i = 0; i < 5_000; i++) await bench.noop({}); // warm up both sides
  return { client, bench };
}

/** Client + worker CPU microseconds per no-op call over `calls` calls. */
async function cpuPerCall(w: Worker, calls: number): Promise<number> {
  const pid = w.client.process.pid!;
  const server0 = cpuNanos(pid);
  const client0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) await w.bench.noop({});
  const own = process.cpuUsage(client0);
  return (own.user + own.system + (cpuNanos(pid) - server0) / 1000) / calls;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Client + worker CPU microseconds per call of each mode's fresh worker, its chunks interleaved with the others'. */
async function round(modes: Readonly<Record<string, readonly string[]>>, chunks: number): Promise<Map<string, number>> {
  const workers = new Map<string, Worker>();
  try {
    for (const [name, mode] of Object.entries(modes)) workers.set(name, await startWorker(mode));
    const total = new Map<string, number>([...workers.keys()].map((name) => [name, 0]));
    for (let c = 0; c < chunks; c++) {
      for (const [name, w] of workers) total.set(name, total.get(name)! + (await cpuPerCall(w, CHUNK)));
    }
    return new Map([...total].map(([name, us]) => [name, us / chunks]));
  } finally {
    for (const w of workers.values()) await w.client.close();
  }
}

/** Calls per chunk: about 0.1 s, short against the machine's load drift. */
const CHUNK = 4_000;

/** The section's figures; `full` runs more rounds. */
export async function usageFigures(full: boolean): Promise<Figure[]> {
  const rounds = full ? 15 : 7;
  // The full run's rounds take minutes: longer than the test helper's default lifetime.
  const redis = await startRedis({ lifetimeMs: 3_600_000 });
  try {
    const modes: Record<string, readonly string[]> = {
      plain: ["plain"],
      pass: ["pass"],
      metrics: ["metrics"],
      producer: ["metrics-producer"],
      memory: ["quota-memory"],
      redis: ["quota-redis", redis.url],
    };
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(modes).map((name) => [name, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, us] of await round(modes, 4)) cpu[name]!.push(us);
    }
    if (process.env.QUIVER_BENCH_DEBUG) console.error(cpu);
    const plain = cpu.plain!;
    const figure = (name: string, what: string, limit = "same call, no usage accounting"): Figure => ({
      figure: `unary no-op calls/s by CPU time, ${what}`,
      transport: "pipe",
      value: 1e6 / median(cpu[name]!),
      unit: "calls/s",
      limit,
      ratio: median(cpu[name]!.map((us, r) => plain[r]! / us)),
    });
    return [
      figure("pass", "one pass-through interceptor", "same call, no interceptor"),
      figure("metrics", "metrics on (SDK aggregating)"),
      figure("producer", "metrics on (durations kept by a DurationProducer)"),
      figure("memory", "quota checked (memory store)"),
      figure("redis", "quota checked (Redis on loopback)"),
    ];
  } finally {
    await redis.stop();
  }
}
