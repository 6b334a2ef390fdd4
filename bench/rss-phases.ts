/**
 * Where a stream server's peak RSS comes from (not part of `npm run bench`): the stream figures'
 * phases one at a time, against a fresh bench server, with the server's peak RSS (Linux `VmHWM`)
 * reset before each phase (`/proc/PID/clear_refs`) and read after it, so each line is the peak
 * that phase reached from where the last one left the server.
 *
 *   npx tsc -p tsconfig.bench.json
 *   node .bench/bench/rss-phases.js pipe|unix|tcp|http|ws [ROWS=1000000] [SECONDS=1]
 *
 * Over HTTP nothing is sent ahead (its stream turns chain on tokens), as in the stream figures.
 *
 * `SERVER_NODE_ARGS="--import ./probe.mjs"` passes node flags to the server, e.g. a module logging
 * `process.memoryUsage()` or GC entries (`perf_hooks`) to stderr, which is this process's; not
 * `--trace-gc`, which writes to stdout (the pipe's byte stream, the other servers' READY line).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { proxy } from "../src/client/typed.js";
import { connectSubprocess } from "../src/transports/stdio/client.js";
import { BENCH_PREFETCH, type NetTransport, peakRss, quiverChannel, spawnServer } from "./net.js";
import { benchScript } from "./paths.js";
import { Bench, benchBatch } from "./service.js";

const transport = process.argv[2] ?? "pipe";
const rows = Number(process.argv[3] ?? "1000000");
const seconds = Number(process.argv[4] ?? "1");
const nodeArgs = (process.env.SERVER_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");

/** Current resident set size of `pid`, bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Sets `pid`'s peak RSS back to its current RSS (Linux: `5` into clear_refs). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

const MiB = 2 ** 20;

let pid: number;
let channel: Parameters<typeof proxy>[0] & { close(): Promise<void> };
let stop = async () => {};
if (transport === "pipe") {
  const client = await connectSubprocess(process.execPath, [...nodeArgs, ...benchScript("worker")], {
    spawnTimeoutMs: 30_000,
  });
  pid = client.process.pid!;
  channel = client;
} else {
  const child = await spawnServer(`quiver-${transport}`, 600, nodeArgs);
  pid = child.pid;
  channel = await quiverChannel(transport as NetTransport, child.ready);
  stop = async () => {
    await child.stop();
  };
}

const bench = proxy(channel, Bench);
const batch = benchBatch(rows);

/** Runs `fn` repeatedly for `seconds`; returns how many times. */
async function repeat(fn: () => Promise<void>, once: boolean): Promise<number> {
  if (once) {
    await fn();
    return 1;
  }
  const until = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < until) {
    await fn();
    n++;
  }
  return n;
}

const phases: Array<[string, () => Promise<void>]> = [];
for (const borrow of [false, true]) {
  const tag = borrow ? " borrowed" : "";
  const opts = borrow ? { borrowBatches: true } : {};
  for (const ahead of transport === "http" ? [1] : [1, BENCH_PREFETCH]) {
    phases.push([
      `producer${ahead > 1 ? ` prefetch ${ahead}` : ""}${tag}`,
      async () => {
        const s = await bench.rows(
          { batches: 8n, rows: BigInt(rows) },
          ahead > 1 ? { ...opts, prefetch: ahead } : opts,
        );
        for await (const _ of s.batches());
      },
    ]);
  }
  // One session for both exchange phases, as the stream figures use (`quiverStreams`).
  let session: Awaited<ReturnType<typeof bench.echo>> | null = null;
  phases.push([
    `exchange${tag}`,
    async () => {
      session ??= await (borrow ? bench.echoBorrowed : bench.echo)({}, opts);
      await session.exchangeBatch(batch);
    },
  ]);
  if (transport !== "http")
    phases.push([
      `exchange pipelined ${BENCH_PREFETCH}${tag}`,
      async () => {
        for await (const _ of session!.pipelineBatches(
          Array.from({ length: 16 }, () => batch),
          { window: BENCH_PREFETCH },
        ));
      },
    ]);
  phases.push([
    `(exchange${tag} closed)`,
    async () => {
      await session?.close();
      session = null;
    },
  ]);
}

await bench.noop();
process.stdout.write(`${transport} server, ${rows}-row batches, idle RSS ${(rss(pid) / MiB).toFixed(0)} MiB\n`);
let overall = 0;
for (const [name, fn] of phases) {
  const before = rss(pid);
  resetPeak(pid);
  const n = await repeat(fn, name.startsWith("("));
  const peak = peakRss(pid) ?? 0;
  overall = Math.max(overall, peak);
  process.stdout.write(
    `${name.padEnd(36)} x${String(n).padStart(3)}  RSS before ${(before / MiB).toFixed(0).padStart(4)} MiB, peak ${(peak / MiB).toFixed(0).padStart(4)} MiB, after ${(rss(pid) / MiB).toFixed(0).padStart(4)} MiB\n`,
  );
}
process.stdout.write(`largest phase peak ${(overall / MiB).toFixed(0)} MiB\n`);
await channel.close();
await stop();
