/**
 * `npm run bench`: throughput and latency figures, each next to a baseline measured in the same
 * run (absolute times drift 1.5-2x between runs on shared machines; ratios do not).
 *
 *   node --import tsx bench/run.ts [--full] [--json FILE]
 *
 * Figures (each server but the in-process one runs in a child, bounded by CHILD_TIMEOUT_MS):
 * - unary no-op calls/s in process, with the per-call hook feeding an access log and OTel spans,
 *   as a ratio to the same server with no observers (the cost of accounting and tracing);
 * - unary no-op calls/s and p50/p99 latency over the stdio pipe, TCP, a Unix socket and
 *   WebSocket, each against raw 100-byte ping-pong over the same transport (node:net echo, ws
 *   echo), and over HTTP at 1 and 16 calls in flight against `node:http` tiny POSTs with a
 *   keep-alive agent at the same concurrency (bench/net.ts, bench/servers.ts);
 * - producer throughput (rows/s, GB/s) for 1 M-row batches (int64, float64, utf8) over stdio, TCP
 *   and WebSocket, against raw bytes through the same transport, with the server child's peak
 *   RSS against the raw byte source's.
 *
 * Every run writes bench/results/report.md (a markdown table, Node version, CPU, date);
 * `--json FILE` also writes the figures as `{figure, transport, value, unit, limit, ratio}`.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { EMPTY_SCHEMA, emptyBatch } from "../src/protocol/batch.js";
import { t } from "../src/protocol/types.js";
import { createAccessLog } from "../src/server/access-log.js";
import { memoryPipe } from "../src/transports/memory/index.js";
import { MessageFramer } from "../src/wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../src/wire/ipc.js";
import { requestBytes } from "../test/helpers/raw-peer.js";
import {
  quiverProducer,
  quiverUnary,
  type Rate,
  type Ready,
  rawHttpPosts,
  rawSocketPingPong,
  rawTcpDownload,
  rawWsDownload,
  rawWsPingPong,
  spawnServer,
  type Throughput,
  timed,
} from "./net.js";
import { benchServer } from "./service.js";

const { values: args } = parseArgs({ options: { full: { type: "boolean" }, json: { type: "string" } } });
const FULL = args.full ?? false;
/** Every child process is killed after this long, whatever happens (the run stays bounded). */
const CHILD_TIMEOUT_MS = (FULL ? 600 : 240) * 1000;

interface Figure {
  readonly figure: string;
  readonly transport: string;
  readonly value: number;
  readonly unit: string;
  readonly limit: string;
  readonly ratio: number;
}
const figures: Figure[] = [];
function report(f: Figure): void {
  figures.push(f);
  process.stdout.write(
    `${f.figure.padEnd(44)} ${f.transport.padEnd(7)} ${f.value.toFixed(f.value < 10 ? 3 : 0).padStart(12)} ${f.unit.padEnd(8)} ratio ${f.ratio.toFixed(2)} vs ${f.limit}\n`,
  );
}

const NOOP = concatBytes(requestBytes("noop", {}, {}, {}, "bench.Bench.v1", null));

/** Sequential no-op calls over an in-process pipe; returns calls/s. */
async function inProcessUnary(observed: boolean, seconds: number): Promise<number> {
  const observers: Array<() => Promise<void>> = [];
  let onCallEnd: ((r: import("../src/server/dispatch.js").CallRecord) => void) | undefined;
  if (observed) {
    const log = createAccessLog({ path: join(tmpdir(), `quiver-bench-${process.pid}.jsonl`) });
    onCallEnd = log.observer;
    observers.push(() => log.close());
  }
  const server = benchServer(onCallEnd ? { onCallEnd } : {});
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  const end = performance.now() + seconds * 1000;
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 200; k++) {
      await pipe.client.write([NOOP]);
      for (;;) if ((await framer.next()) === "eos") break;
      calls++;
    }
  }
  const rate = calls / ((performance.now() - t0) / 1000);
  pipe.client.close();
  await served;
  for (const o of observers) await o();
  return rate;
}

function spawnWorker(file: string, extra: string[] = []) {
  return spawn(process.execPath, ["--import", "tsx", file, ...extra], {
    stdio: ["pipe", "pipe", "inherit"],
    timeout: CHILD_TIMEOUT_MS,
  });
}

/** Raw 100-byte ping-pong with an echo child over Node-spawned stdio. */
async function rawPingPong(seconds: number): Promise<Rate> {
  const child = spawn(process.execPath, ["-e", "process.stdin.on('data', (d) => process.stdout.write(d))"], {
    stdio: ["pipe", "pipe", "inherit"],
    timeout: CHILD_TIMEOUT_MS,
  });
  const msg = Buffer.alloc(100, 7);
  const it = child.stdout[Symbol.asyncIterator]();
  const r = await timed(async () => {
    child.stdin.write(msg);
    let got = 0;
    while (got < 100) got += ((await it.next()).value as Buffer).length;
  }, seconds);
  child.kill();
  return r;
}

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

/** Sequential no-op calls to a stdio worker. */
async function stdioUnary(seconds: number): Promise<Rate> {
  const child = spawnWorker(WORKER);
  const framer = new MessageFramer(child.stdout[Symbol.asyncIterator]());
  const r = await timed(async () => {
    child.stdin.write(NOOP);
    for (;;) if ((await framer.next()) === "eos") break;
  }, seconds);
  child.kill();
  return r;
}

/** Producer of `batches` batches of `rows` rows over a stdio worker; returns bytes/s and rows/s. */
async function stdioProducer(batches: number, rows: number): Promise<{ bytesPerSec: number; rowsPerSec: number }> {
  const child = spawnWorker(WORKER);
  const framer = new MessageFramer(child.stdout[Symbol.asyncIterator]());
  const run = async (n: number) => {
    child.stdin.write(
      concatBytes(
        requestBytes(
          "rows",
          { batches: t.int64(), rows: t.int64() },
          { batches: [BigInt(n)], rows: [BigInt(rows)] },
          {},
          "bench.Bench.v1",
          null,
        ),
      ),
    );
    const tick = emptyBatch(EMPTY_SCHEMA);
    child.stdin.write(
      concatBytes(
        encodeStream(
          EMPTY_SCHEMA,
          Array.from({ length: n + 1 }, () => tick),
        ),
      ),
    );
    const decoder = new IpcStreamDecoder();
    let bytes = 0;
    let got = 0;
    for (;;) {
      const f = await framer.next();
      if (f === "eos" || f === "end") break;
      bytes += f.wireBytes;
      const b = decoder.accept(f);
      if (b !== null && "numRows" in b) got += b.numRows;
    }
    return { bytes, got };
  };
  await run(1); // warm up: builds the batch once
  const t0 = performance.now();
  const { bytes, got } = await run(batches);
  const secs = (performance.now() - t0) / 1000;
  child.kill();
  return { bytesPerSec: bytes / secs, rowsPerSec: got / secs };
}

/** Raw bytes through Node-spawned stdio into a draining child; bytes/s. */
async function rawPipeBandwidth(totalBytes: number): Promise<number> {
  const child = spawn(
    process.execPath,
    ["-e", `let n=0;process.stdin.on('data',(d)=>{n+=d.length;if(n>=${totalBytes})process.stdout.write('x')})`],
    { stdio: ["pipe", "pipe", "inherit"], timeout: CHILD_TIMEOUT_MS },
  );
  const chunk = Buffer.alloc(1 << 20, 1);
  const t0 = performance.now();
  for (let sent = 0; sent < totalBytes; sent += chunk.length) {
    if (!child.stdin.write(chunk)) await new Promise((r) => child.stdin.once("drain", r));
  }
  await new Promise((r) => child.stdout.once("data", r));
  const secs = (performance.now() - t0) / 1000;
  child.kill();
  return totalBytes / secs;
}

/** Latency figures of a unary run, next to the same percentiles of its baseline (lower is better). */
function reportLatency(figure: string, transport: string, r: Rate, base: Rate, limit: string): void {
  report({
    figure: `${figure} p50`,
    transport,
    value: r.p50,
    unit: "us",
    limit: `${limit} p50`,
    ratio: r.p50 / base.p50,
  });
  report({
    figure: `${figure} p99`,
    transport,
    value: r.p99,
    unit: "us",
    limit: `${limit} p99`,
    ratio: r.p99 / base.p99,
  });
}

function reportUnary(figure: string, transport: string, r: Rate, base: Rate, limit: string): void {
  report({ figure, transport, value: r.rate, unit: "calls/s", limit, ratio: r.rate / base.rate });
  reportLatency(figure.replace(/ calls\/s.*$/, ""), transport, r, base, limit);
}

function reportProducer(transport: string, prod: Throughput, rawBw: number, limit: string): void {
  report({
    figure: "producer 1M-row batches, GB/s",
    transport,
    value: prod.bytesPerSec / 1e9,
    unit: "GB/s",
    limit,
    ratio: prod.bytesPerSec / rawBw,
  });
  report({
    figure: "producer 1M-row batches, rows/s",
    transport,
    value: prod.rowsPerSec,
    unit: "rows/s",
    limit,
    ratio: prod.bytesPerSec / rawBw,
  });
}

function reportRss(transport: string, rss: number | null, rawRss: number | null): void {
  if (rss === null || rawRss === null) return;
  report({
    figure: "producer server peak RSS",
    transport,
    value: rss / 2 ** 20,
    unit: "MiB",
    limit: "raw byte-source server peak RSS",
    ratio: rss / rawRss,
  });
}

/** Runs `fn` with a child server, stopping the child whatever happens; returns the result and its peak RSS. */
async function withServer<T>(
  kind: string,
  fn: (ready: Ready) => Promise<T>,
): Promise<{ result: T; rss: number | null }> {
  const child = await spawnServer(kind, CHILD_TIMEOUT_MS / 1000);
  let result: T;
  try {
    result = await fn(child.ready);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { result, rss: await child.stop() };
}

/** A markdown table with padded columns (as Biome formats it, so the report passes `biome check`). */
function markdownTable(head: readonly string[], right: readonly boolean[], rows: readonly string[][]): string[] {
  const widths = head.map((h, c) => Math.max(3, h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((v, c) => (right[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(" | ")} |`;
  const rule = `| ${widths.map((w, c) => (right[c] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(head), rule, ...rows.map(line)];
}

const RESULTS = new URL("./results/", import.meta.url).pathname;

function writeReport(header: { node: string; cpu: string; date: string; mode: string }): void {
  const fmt = (v: number) =>
    Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3)) : "n/a";
  const lines = [
    "# quiver bench",
    "",
    `- Node: ${header.node}`,
    `- CPU: ${header.cpu}`,
    `- Date: ${header.date}`,
    `- Mode: ${header.mode}`,
    "",
    "`ratio` is value / limit, both measured in this run. For rates and bandwidths higher is better;",
    "for latencies (`us`) and RSS lower is better, so there a ratio above 1 is the overhead over the baseline.",
    "",
    ...markdownTable(
      ["figure", "transport", "value", "unit", "limit", "ratio"],
      [false, false, true, false, false, true],
      figures.map((f) => [f.figure, f.transport, fmt(f.value), f.unit, f.limit, f.ratio.toFixed(2)]),
    ),
    "",
  ];
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, "report.md"), lines.join("\n"));
}

async function main(): Promise<void> {
  const started = performance.now();
  const secs = FULL ? 5 : 1.5;
  const header = {
    node: process.version,
    cpu: `${cpus()[0]?.model ?? "unknown"} x${cpus().length}`,
    date: new Date().toISOString(),
    mode: FULL ? "full" : "quick",
  };
  process.stdout.write(`quiver bench — node ${header.node}, ${header.cpu}, ${header.date}\n\n`);

  const plain = await inProcessUnary(false, secs);
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  const observed = await inProcessUnary(true, secs);
  trace.disable();
  report({
    figure: "unary no-op calls/s, access log + spans on",
    transport: "memory",
    value: observed,
    unit: "calls/s",
    limit: "same call, no observers",
    ratio: observed / plain,
  });

  // Unary no-op: stdio pipe, then the network transports against the raw echo child.
  const rawPipe = await rawPingPong(secs);
  const pipeUnary = await stdioUnary(secs);
  reportUnary("unary no-op calls/s", "pipe", pipeUnary, rawPipe, "raw 100 B ping-pong");

  const raw = await withServer("raw", async (ready) => ({
    tcp: await rawSocketPingPong(ready.tcp!, secs),
    unix: await rawSocketPingPong(ready.unix!, secs),
    http1: await rawHttpPosts(ready.http!, secs, 1),
    http16: await rawHttpPosts(ready.http!, secs, 16),
    ws: await rawWsPingPong(ready.ws!, secs),
  }));
  const q = await withServer("quiver", async (ready) => ({
    tcp: await quiverUnary("tcp", ready, secs),
    unix: await quiverUnary("unix", ready, secs),
    http1: await quiverUnary("http", ready, secs, 1),
    http16: await quiverUnary("http", ready, secs, 16),
    ws: await quiverUnary("ws", ready, secs),
  }));
  reportUnary("unary no-op calls/s", "tcp", q.result.tcp, raw.result.tcp, "raw 100 B ping-pong");
  reportUnary("unary no-op calls/s", "unix", q.result.unix, raw.result.unix, "raw 100 B ping-pong");
  reportUnary("unary no-op calls/s, c=1", "http", q.result.http1, raw.result.http1, "node:http tiny POST c=1");
  reportUnary("unary no-op calls/s, c=16", "http", q.result.http16, raw.result.http16, "node:http tiny POST c=16");
  reportUnary("unary no-op calls/s", "ws", q.result.ws, raw.result.ws, "raw ws 100 B ping-pong");

  // Producer: 1 M-row batches (int64, float64, utf8), against raw bytes over the same transport.
  const rows = 1_000_000;
  const batches = FULL ? 20 : 5;
  const rawBytes = FULL ? 2 << 30 : 512 << 20;
  const prod = await stdioProducer(batches, rows);
  const rawBw = await rawPipeBandwidth(rawBytes);
  reportProducer("pipe", prod, rawBw, "raw pipe bandwidth");

  const rawTcp = await withServer("raw-tcp-source", (ready) => rawTcpDownload(ready.tcp!, rawBytes));
  const qTcp = await withServer("quiver-tcp", (ready) => quiverProducer("tcp", ready, batches, rows));
  reportProducer("tcp", qTcp.result, rawTcp.result, "raw TCP download bandwidth");
  reportRss("tcp", qTcp.rss, rawTcp.rss);

  const rawWs = await withServer("raw-ws-source", (ready) => rawWsDownload(ready.ws!, rawBytes));
  const qWs = await withServer("quiver-ws", (ready) => quiverProducer("ws", ready, batches, rows));
  reportProducer("ws", qWs.result, rawWs.result, "raw ws download bandwidth (1 MiB messages)");
  reportRss("ws", qWs.rss, rawWs.rss);

  writeReport(header);
  if (args.json) {
    mkdirSync(join(args.json, ".."), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify(figures, null, 2)}\n`);
  }
  process.stdout.write(
    `\n${figures.length} figures in ${((performance.now() - started) / 1000).toFixed(0)} s; report: ${join(RESULTS, "report.md")}\n`,
  );
}

await main();
