/**
 * Profiling harness (not part of `npm run bench`): client and server in one process over the
 * in-memory pipe, so `node --cpu-prof` sees both sides of every call.
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts unary|three|producer1|producer1m|exchange1 [SECONDS]
 */
import { RpcClient } from "../src/client/client.js";
import { proxy } from "../src/client/typed.js";
import { memoryPipe } from "../src/transports/memory/index.js";
import { Bench, benchBatch, benchServer } from "./service.js";

const what = process.argv[2] ?? "unary";
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
