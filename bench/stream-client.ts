/**
 * The client half of one transport's stream figures, in a process of its own (run by bench/run.ts,
 * one per transport): a fresh heap for every transport, as each raw download's reader has, so no
 * figure pays for the garbage or the heap the figures before it left in the bench's process (the
 * collector's full passes, which 30 MB answer batches trigger every ~64 MB, scale with that heap).
 *
 *   node bench/stream-client.js pipe|unix|tcp|http|ws READY_JSON SECONDS
 *
 * `pipe` spawns its own stdio worker (READY_JSON is ignored); the others connect to the servers in
 * READY_JSON (bench/servers.ts). Prints one JSON line: `{"rates": [[key, rows/s], ...], "rss": N}`,
 * `rss` being the pipe worker's peak RSS (null for the others: their server's is measured by run.ts).
 */
import { connectSubprocess } from "../src/transports/stdio/client.js";
import { type NetTransport, peakRss, quiverChannel, quiverStreams, type Ready, STREAM_SIZES } from "./net.js";
import { benchScript } from "./paths.js";

const [transport, readyJson, seconds] = process.argv.slice(2);
if (transport === undefined || readyJson === undefined || seconds === undefined) {
  process.stderr.write("usage: stream-client pipe|unix|tcp|http|ws READY_JSON SECONDS\n");
  process.exit(2);
}

/**
 * Every stream path is run briefly first, its figures thrown away: client and server are fresh
 * processes, and V8 takes a second or more to optimise a whole transport's code (a cold HTTP
 * 1-row producer measured at half its warm rate). The peers' stream figures follow their unary
 * ones in a process that has run them already, and CPython has nothing to warm up.
 */
const WARM_UP_SIZES = [1, 10_000];
const WARM_UP_SECONDS = 0.1;

let rss: number | null = null;
let rates: Map<string, number>;
if (transport === "pipe") {
  const client = await connectSubprocess(process.execPath, benchScript("worker"), { spawnTimeoutMs: 30_000 });
  try {
    await quiverStreams(client, WARM_UP_SIZES, WARM_UP_SECONDS);
    rates = await quiverStreams(client, STREAM_SIZES, Number(seconds));
    rss = peakRss(client.process.pid);
  } finally {
    await client.close();
  }
} else {
  const channel = await quiverChannel(transport as NetTransport, JSON.parse(readyJson) as Ready);
  try {
    // HTTP chains each stream turn on the previous one's token: nothing in flight to measure.
    const ahead = transport !== "http";
    await quiverStreams(channel, WARM_UP_SIZES, WARM_UP_SECONDS, ahead);
    rates = await quiverStreams(channel, STREAM_SIZES, Number(seconds), ahead);
  } finally {
    await channel.close();
  }
}
process.stdout.write(`${JSON.stringify({ rates: [...rates], rss })}\n`);
