/**
 * What usage accounting costs a small call at the pipe unary rate (`npm run bench -- --only
 * usage`): no-op calls over a stdio pipe to a worker with the metrics interceptor on (an SDK meter
 * provider aggregating), or a calls-per-second quota checked on every call in the memory store or
 * in a Redis on loopback (a redis-server started here), against the same worker with none of it.
 *
 * Measured in CPU time per call (the worker's, read from /proc, plus this client's), not wall
 * time: on a machine shared with other work, wall-clock rates of the same build move by half
 * between runs, CPU time by a few percent (see cpu-per-call.ts). A figure's value is the rate that
 * CPU time allows (1 / (client + server) per call); its ratio compares that with the plain
 * worker's, so the ratio is the cost per call. Modes run in alternation, the median of the rounds
 * kept. The interceptor mechanism alone (one interceptor that only calls next) is reported too:
 * the part of every figure that is the framework's, not usage accounting's. Redis's own CPU is not
 * counted (a separate process); its round trip shows in wall time only. Linux only (/proc).
 */
import { readFileSync } from "node:fs";
import { proxy } from "../src/client/typed.js";
import { connectSubprocess } from "../src/transports/stdio/client.js";
import { startRedis } from "../test/helpers/redis-server.js";
import { benchScript } from "./paths.js";
import type { Figure } from "./report.js";
import { Bench } from "./service.js";

/** A process's user + system CPU time so far, in microseconds. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** Client + worker CPU microseconds per no-op call against a fresh usage worker in `mode`. */
async function cpuPerCall(mode: readonly string[], calls: number): Promise<number> {
  const client = await connectSubprocess(process.execPath, [...benchScript("usage-worker"), ...mode], {
    spawnTimeoutMs: 30_000,
  });
  const timer = setTimeout(() => client.process.kill("SIGKILL"), 300_000);
  try {
    const pid = client.process.pid!;
    const bench = proxy(client, Bench);
    for (let i = 0; i < 5_000; i++) await bench.noop({}); // warm up both sides
    const server0 = cpuMicros(pid);
    const client0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) await bench.noop({});
    const own = process.cpuUsage(client0);
    return (own.user + own.system + cpuMicros(pid) - server0) / calls;
  } finally {
    clearTimeout(timer);
    await client.close();
  }
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The section's figures; `full` runs more calls and rounds. */
export async function usageFigures(full: boolean): Promise<Figure[]> {
  const calls = full ? 60_000 : 25_000;
  const rounds = full ? 5 : 3;
  const redis = await startRedis();
  try {
    const modes: Record<string, readonly string[]> = {
      plain: ["plain"],
      pass: ["pass"],
      metrics: ["metrics"],
      memory: ["quota-memory"],
      redis: ["quota-redis", redis.url],
    };
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(modes).map((name) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, mode] of Object.entries(modes)) cpu[name]!.push(await cpuPerCall(mode, calls));
    }
    const us = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, median(v)]));
    if (process.env.QUIVER_BENCH_DEBUG) console.error(cpu);
    const plain = us.plain!;
    const figure = (name: string, what: string, limit = "same call, no usage accounting"): Figure => ({
      figure: `unary no-op calls/s by CPU time, ${what}`,
      transport: "pipe",
      value: 1e6 / us[name]!,
      unit: "calls/s",
      limit,
      ratio: plain / us[name]!,
    });
    return [
      figure("pass", "one pass-through interceptor", "same call, no interceptor"),
      figure("metrics", "metrics on (SDK aggregating)"),
      figure("memory", "quota checked (memory store)"),
      figure("redis", "quota checked (Redis on loopback)"),
    ];
  } finally {
    await redis.stop();
  }
}
