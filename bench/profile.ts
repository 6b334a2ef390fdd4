/**
 * Profiling harness (not part of `npm run bench`): client and server in one process over the
 * in-memory pipe, so `node --cpu-prof` sees both sides of every call.
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts unary|three|producer1|producer1m|exchange1 [SECONDS]
 */
import { RpcClient } from "../src/client/client.js";
import { proxy } from "../src/client/typed.js";
import { memoryPipe } from "../src/transports/memory/index.js";
import { benchScript } from "./paths.js";
import { Bench, benchBatch, benchServer } from "./service.js";

const what = process.argv[2] ?? "unary";
/**
 * `tcp-producer1m`/`pipe-producer1m`: the server in a child (bench/servers.ts, bench/worker.ts), so
 * the profile is the client's alone. `BORROW=1` reads with `borrowBatches`.
 */
if (what === "tcp-producer1m" || what === "pipe-producer1m") {
  const { quiverChannel, spawnServer } = await import("./net.js");
  const { connectSubprocess } = await import("../src/transports/stdio/client.js");
  const child = what.startsWith("tcp")
    ? await spawnServer("quiver-tcp", 120, process.env.PROFILE_SERVER ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : [])
    : null;
  const channel = child
    ? await quiverChannel("tcp", child.ready)
    : await connectSubprocess(process.execPath, benchScript("worker"));
  const b = proxy(channel, Bench);
  const stop = performance.now() + Number(process.argv[3] ?? "3") * 1000;
  let rows = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() < stop) {
    const s = await b.rows({ batches: 5n, rows: 1_000_000n }, process.env.BORROW ? { borrowBatches: true } : {});
    for await (const x of s.batches()) rows += x.numRows;
  }
  const cpu = process.cpuUsage(c0);
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${what}: ${(rows / secs).toFixed(0)} rows/s wall, client CPU ${(((cpu.user + cpu.system) / 1e6 / secs) * 100).toFixed(0)}%, ${((cpu.user + cpu.system) / 1000 / (rows / 1e6)).toFixed(2)} ms CPU per 1M-row batch\n`,
  );
  await channel.close();
  await child?.stop();
  process.exit(0);
}
const seconds = Number(process.argv[3] ?? "3");
const server = benchServer({});
const pipe = memoryPipe();
const served = server.serveConnection(pipe.server);
const client = new RpcClient(pipe.client);
const bench = proxy(client, Bench);
const end = performance.now() + seconds * 1000;
let n = 0;
const t0 = performance.now();
const c0 = process.cpuUsage();
if (what === "unary" || what === "three") {
  while (performance.now() < end) {
    for (let k = 0; k < 100; k++) {
      if (what === "unary") await bench.noop();
      else await bench.three({ i: 7n, f: 0.5, s: "row-7" });
      n++;
    }
  }
} else if (what.startsWith("producer")) {
  const rows = what === "producer1m" ? 1_000_000 : 1;
  while (performance.now() < end) {
    const s = await bench.rows({ batches: rows === 1 ? 1000n : 5n, rows: BigInt(rows) });
    for await (const b of s.batches()) n += b.numRows;
  }
} else {
  const batch = benchBatch(what === "exchange1m" ? 1_000_000 : 1);
  const s = await bench.echo({});
  while (performance.now() < end) n += (await s.exchangeBatch(batch)).numRows;
  await s.close();
}
const cpu = process.cpuUsage(c0);
process.stdout.write(
  `${what}: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} /s wall, ${((cpu.user + cpu.system) / n).toFixed(2)} us CPU each\n`,
);
await client.close();
await served;
