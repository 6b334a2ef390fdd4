/**
 * CPU time per call, client and server apart (not part of `npm run bench`): the bench server in a
 * child (`bench/servers.ts quiver`), this process as the client, N sequential calls per transport.
 * CPU time moves far less than wall time when other work shares the machine, so two builds
 * compare by it even on a busy machine (run them alternately, a few rounds, and compare medians).
 * Linux only (the child's CPU time is read from /proc). `pipe` spawns a stdio worker (bench/worker.ts)
 * of its own and reads that worker's CPU time.
 *
 *   npx tsc -p tsconfig.bench.json    (what `npm run bench` runs first: builds .bench/)
 *   node .bench/bench/cpu-per-call.js tcp,unix,http,ws,pipe [N=40000] [noop|three|exchange|pipelined|producer|prefetch]
 *
 * `noop` and `three` are unary calls; the others count stream turns of 1-row batches: an exchange
 * turn by turn, an exchange with 8 inputs sent ahead, a producer, a producer with 8 ticks ahead
 * (`ROWS=10000` for batches of that many rows; `BORROW=1` reads a producer's batches borrowed, and
 * has an exchange borrowed at both ends).
 *
 * `PROF=DIR` also writes the server's CPU profile under DIR/server (add `--cpu-prof` to node for
 * the client's). `SERVER_NODE_ARGS="--max-semi-space-size=2 ..."` passes node flags to the server;
 * `WARM=N` sets the warm-up turns (default 20 000: with fewer, a 10k-row run measures a server
 * whose collector has not settled, several times the steady cost).
 *
 * `CONC=K` (network transports) makes the calls (or turns) K at a time, each loop on its own
 * connection as `npm run bench` does at c=16: the N calls (and the warm-up) are split over K loops.
 * `raw-ws` (as a transport) is the bench's raw lane: 100-byte ping-pongs with the `ws` echo of
 * `bench/servers.ts raw`, the floor `ws` itself sets (the workload is ignored).
 */
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { proxy } from "../src/client/typed.js";
import { connectSubprocess } from "../src/transports/stdio/client.js";
import { type NetTransport, quiverChannel, spawnServer } from "./net.js";
import { benchScript } from "./paths.js";
import { Bench, benchBatch } from "./service.js";

/** A process's user and system CPU time so far, apart, in microseconds. */
function cpuSplit(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { user: (Number(fields[11]) * 1e6) / 100, system: (Number(fields[12]) * 1e6) / 100 };
}

/** Producers read with `borrowBatches` (`BORROW=1`); exchanges then echo through `echoBorrowed` (`borrowInput`). */
const BORROW = process.env.BORROW === "1";

/** Rows per stream batch. */
const ROWS = Number(process.env.ROWS ?? "1");

/** Unary calls in flight, one connection each (`CONC=K`). */
const CONC = Number(process.env.CONC ?? "1");

/** `run(k)` makes k calls (or k stream turns) of the workload `what`. */
async function workload(
  bench: ReturnType<typeof proxy<typeof Bench>>,
  what: string,
): Promise<{ run: (k: number) => Promise<void>; close: () => Promise<void> }> {
  const none = async () => {};
  const batch = benchBatch(ROWS);
  const inRuns = (each: () => Promise<void>) => async (k: number) => {
    for (let i = 0; i < k; i += 1000) await each();
  };
  switch (what) {
    case "noop":
    case "three": {
      const call = what === "noop" ? () => bench.noop() : () => bench.three({ i: 7n, f: 0.5, s: "row-7" });
      return {
        run: async (k) => {
          for (let i = 0; i < k; i++) await call();
        },
        close: none,
      };
    }
    case "exchange":
    case "pipelined": {
      // Borrowed (`BORROW=1`): both ends read into reused buffers, as the bench's borrowed exchange.
      const session = await (BORROW ? bench.echoBorrowed({}, { borrowBatches: true }) : bench.echo({}));
      const inputs = Array.from({ length: 1000 }, () => batch);
      const run =
        what === "exchange"
          ? async (k: number) => {
              for (let i = 0; i < k; i++) await session.exchangeBatch(batch);
            }
          : inRuns(async () => {
              for await (const _ of session.pipelineBatches(inputs, { window: 8 })) {
                // batches only counted by the server's CPU
              }
            });
      return { run, close: () => session.close() };
    }
    case "producer":
    case "prefetch": {
      const opts = { ...(what === "prefetch" ? { prefetch: 8 } : {}), ...(BORROW ? { borrowBatches: true } : {}) };
      return {
        run: inRuns(async () => {
          const stream = await bench.rows({ batches: 1000n, rows: BigInt(ROWS) }, opts);
          for await (const _ of stream.batches()) {
            // drained
          }
        }),
        close: none,
      };
    }
    default:
      throw new Error(`unknown workload ${what}`);
  }
}

const transports = (process.argv[2] ?? "tcp,http,ws").split(",") as (NetTransport | "pipe" | "raw-ws")[];
const n = Number(process.argv[3] ?? "40000");
const what = process.argv[4] ?? "noop";
const prof = process.env.PROF;
const serverArgs = (process.env.SERVER_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
const child = await spawnServer("quiver", 600, [
  ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}/server`] : []),
  ...serverArgs,
]);
const warm = Number(process.env.WARM ?? "20000");
const serverPid = Number(readFileSync(`/proc/self/task/${process.pid}/children`, "utf8").trim().split(" ")[0]);
const workerArgs = [...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}/worker`] : []), ...serverArgs];

/** One loop of calls per connection, the server's pid, and how to close it all. */
interface Lanes {
  readonly loops: readonly ((k: number) => Promise<void>)[];
  readonly pid: number;
  close(): Promise<void>;
}

/** `raw-ws`: 100-byte ping-pongs with the `ws` echo of `bench/servers.ts raw`, the floor `ws` sets. */
async function rawWsLanes(): Promise<Lanes> {
  const raw = await spawnServer("raw", 600, serverArgs);
  const sockets = await Promise.all(
    Array.from(
      { length: CONC },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(raw.ready.ws!, { perMessageDeflate: false });
          ws.binaryType = "nodebuffer";
          ws.once("open", () => resolve(ws));
          ws.once("error", reject);
        }),
    ),
  );
  const ping = Buffer.alloc(100, 7);
  const loops = sockets.map((ws) => {
    let wake: (() => void) | null = null;
    ws.on("message", () => wake?.());
    return async (k: number) => {
      for (let i = 0; i < k; i++) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          ws.send(ping, { binary: true });
        });
      }
    };
  });
  return {
    loops,
    pid: raw.pid,
    async close() {
      for (const ws of sockets) ws.terminate();
      await raw.stop();
    },
  };
}

async function quiverLanes(transport: NetTransport | "pipe"): Promise<Lanes> {
  // `pipe`: a stdio worker of our own (bench/worker.ts), the server whose CPU time is read.
  const worker =
    transport === "pipe"
      ? await connectSubprocess(process.execPath, [...workerArgs, ...benchScript("worker")], { spawnTimeoutMs: 30_000 })
      : null;
  const channels =
    worker !== null
      ? [worker]
      : await Promise.all(Array.from({ length: CONC }, () => quiverChannel(transport as NetTransport, child.ready)));
  const loads = await Promise.all(channels.map((channel) => workload(proxy(channel, Bench), what)));
  return {
    loops: loads.map((l) => l.run),
    pid: worker?.process.pid ?? serverPid,
    async close() {
      for (const l of loads) await l.close();
      for (const channel of channels) await channel.close();
    },
  };
}

for (const transport of transports) {
  const { loops, pid, close } = transport === "raw-ws" ? await rawWsLanes() : await quiverLanes(transport);
  /** k calls split over the loops, all at once. */
  const run = async (k: number) => {
    await Promise.all(loops.map((loop) => loop(Math.ceil(k / loops.length))));
  };
  await run(warm); // warm up both sides
  const server0 = cpuSplit(pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  await run(n);
  const wall = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const server1 = cpuSplit(pid);
  const server = server1.user + server1.system - server0.user - server0.system;
  const calls = Math.ceil(n / loops.length) * loops.length;
  const per = (us: number) => (us / calls).toFixed(2);
  process.stdout.write(
    `${transport} ${what}${loops.length > 1 ? ` c=${loops.length}` : ""}: client ${per(client.user + client.system)} us (sys ${per(client.system)}), ` +
      `server ${per(server)} us (sys ${per(server1.system - server0.system)}), wall ${((wall * 1000) / calls).toFixed(1)} us\n`,
  );
  await close();
}
await child.stop();
process.exit(0);
