/**
 * `npm run bench`: throughput and latency figures, each next to a baseline measured in the same
 * run (absolute times drift 1.5-2x between runs on shared machines; ratios do not).
 *
 *   node --import tsx bench/run.ts [--full] [--json FILE]
 *
 * Figures so far:
 * - unary no-op calls/s in process, with the per-call hook feeding an access log and OTel spans,
 *   as a ratio to the same server with no observers (the cost of accounting and tracing);
 * - unary no-op calls/s to the stdio worker, against raw 100-byte ping-pong on the same kind of
 *   pipe (a Node-spawned child's stdio);
 * - producer throughput (rows/s, GB/s) for 1 M-row batches (int64, float64, utf8) over stdio,
 *   against raw bytes pushed through the same pipe.
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
import { benchServer } from "./service.js";

const { values: args } = parseArgs({ options: { full: { type: "boolean" }, json: { type: "string" } } });
const FULL = args.full ?? false;

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
  return spawn(process.execPath, ["--import", "tsx", file, ...extra], { stdio: ["pipe", "pipe", "inherit"] });
}

/** Raw 100-byte ping-pong with an echo child over Node-spawned stdio; round trips/s. */
async function rawPingPong(seconds: number): Promise<number> {
  const child = spawn(process.execPath, ["-e", "process.stdin.on('data', (d) => process.stdout.write(d))"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const msg = Buffer.alloc(100, 7);
  const it = child.stdout[Symbol.asyncIterator]();
  const end = performance.now() + seconds * 1000;
  let trips = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    child.stdin.write(msg);
    let got = 0;
    while (got < 100) got += ((await it.next()).value as Buffer).length;
    trips++;
  }
  const rate = trips / ((performance.now() - t0) / 1000);
  child.kill();
  return rate;
}

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

/** Sequential no-op calls to a stdio worker; calls/s. */
async function stdioUnary(seconds: number): Promise<number> {
  const child = spawnWorker(WORKER);
  const framer = new MessageFramer(child.stdout[Symbol.asyncIterator]());
  const call = async () => {
    child.stdin.write(NOOP);
    for (;;) if ((await framer.next()) === "eos") break;
  };
  for (let k = 0; k < 200; k++) await call(); // warm up
  const end = performance.now() + seconds * 1000;
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    await call();
    calls++;
  }
  const rate = calls / ((performance.now() - t0) / 1000);
  child.kill();
  return rate;
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
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
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

async function main(): Promise<void> {
  const secs = FULL ? 5 : 1.5;
  process.stdout.write(
    `quiver bench — node ${process.version}, ${cpus()[0]?.model ?? "cpu"} x${cpus().length}, ${new Date().toISOString()}\n\n`,
  );

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

  const raw = await rawPingPong(secs);
  const unaryRate = await stdioUnary(secs);
  report({
    figure: "unary no-op calls/s",
    transport: "pipe",
    value: unaryRate,
    unit: "calls/s",
    limit: "raw 100 B ping-pong",
    ratio: unaryRate / raw,
  });

  const rows = FULL ? 1_000_000 : 1_000_000;
  const batches = FULL ? 20 : 5;
  const prod = await stdioProducer(batches, rows);
  const rawBw = await rawPipeBandwidth(FULL ? 2 << 30 : 512 << 20);
  report({
    figure: "producer 1M-row batches, GB/s",
    transport: "pipe",
    value: prod.bytesPerSec / 1e9,
    unit: "GB/s",
    limit: "raw pipe bandwidth",
    ratio: prod.bytesPerSec / rawBw,
  });
  report({
    figure: "producer 1M-row batches, rows/s",
    transport: "pipe",
    value: prod.rowsPerSec,
    unit: "rows/s",
    limit: "raw pipe bandwidth",
    ratio: prod.bytesPerSec / rawBw,
  });

  if (args.json) {
    mkdirSync(join(args.json, ".."), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify(figures, null, 1)}\n`);
  }
}

await main();
