/**
 * CPU time per call, client and server apart (not part of `npm run bench`): the bench server in a
 * child (`bench/servers.ts quiver`), this process as the client, N sequential calls per transport.
 * CPU time moves far less than wall time when other work shares the machine, so two builds
 * compare by it even on a busy machine (run them alternately, a few rounds, and compare medians).
 * Linux only (the child's CPU time is read from /proc).
 *
 *   npx tsc -p tsconfig.bench.json    (what `npm run bench` runs first: builds .bench/)
 *   node .bench/bench/cpu-per-call.js tcp,unix,http,ws [N=40000] [noop|three]
 *
 * `PROF=DIR` also writes the server's CPU profile under DIR/server (add `--cpu-prof` to node for
 * the client's).
 */
import { readFileSync } from "node:fs";
import { proxy } from "../src/client/typed.js";
import { type NetTransport, quiverChannel, spawnServer } from "./net.js";
import { Bench } from "./service.js";

/** A process's user + system CPU time so far, in microseconds. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

const transports = (process.argv[2] ?? "tcp,http,ws").split(",") as NetTransport[];
const n = Number(process.argv[3] ?? "40000");
const what = process.argv[4] ?? "noop";
const prof = process.env.PROF;
const child = await spawnServer("quiver", 600, prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}/server`] : []);
const pid = Number(readFileSync(`/proc/self/task/${process.pid}/children`, "utf8").trim().split(" ")[0]);
for (const transport of transports) {
  const channel = await quiverChannel(transport, child.ready);
  const bench = proxy(channel, Bench);
  const call = what === "noop" ? () => bench.noop() : () => bench.three({ i: 7n, f: 0.5, s: "row-7" });
  for (let i = 0; i < 20_000; i++) await call(); // warm up both sides
  const server0 = cpuMicros(pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await call();
  const wall = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const server = cpuMicros(pid) - server0;
  process.stdout.write(
    `${transport} ${what}: client ${((client.user + client.system) / n).toFixed(2)} us, server ${(server / n).toFixed(2)} us, wall ${((wall * 1000) / n).toFixed(1)} us\n`,
  );
  await channel.close();
}
await child.stop();
process.exit(0);
