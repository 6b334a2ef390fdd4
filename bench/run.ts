/**
 * `npm run bench`: throughput and latency figures, each next to a baseline or peer measured in the
 * same run (absolute times drift 1.5-2x between runs on shared machines; ratios do not).
 *
 *   node --import tsx bench/run.ts [--full] [--json FILE] [--only hook,http-features,workers,usage,unary,streams,shm,external,peers]
 *
 * Figures, per transport (stdio pipe, Unix socket, TCP, HTTP, WebSocket; shared memory when
 * bench/shm.ts exists). Every server but the in-process one runs in a child, bounded by
 * CHILD_TIMEOUT_MS, so client and server each have a core as in the raw baselines:
 * - unary calls/s and p50/p99 latency for a no-op call and a 3-field call (int64, float64, utf8
 *   in, the string back), against raw 100-byte ping-pong over the same transport (node:net echo,
 *   ws echo, the echo child on stdio) and `node:http` tiny POSTs with a keep-alive agent; HTTP and
 *   WebSocket at 1 and 16 calls in flight (16 WebSocket connections, one HTTP client's pool);
 * - producer and exchange throughput (rows/s, GB/s) with batches of 1, 10 k and 1 M rows of the
 *   same three columns, against raw one-way bandwidth over the same transport, and the server's
 *   peak RSS against the raw byte source's;
 * - the cost of the per-call hook (access log and OTel spans) in process;
 * - subprocess workers (bench/workers.ts): a call on a pooled worker against a worker spawned per
 *   call, CPU-bound calls on N pooled pipe workers and on an N-process HTTP cluster against 1;
 * - a 1 GB producer result over HTTP, inline and externalized (to the fake storage protocol, served
 *   by a Node child holding objects in memory): throughput, and the server's and client's peak RSS
 *   (each in a process of its own), externalized against inline;
 * - the Python reference (vgi-rpc 0.52.2, its server and client) and the npm peer
 *   (`@query-farm/vgi-rpc` 0.25.4, its server and client) on the same calls over a pipe and
 *   HTTP, printed as quiver / peer (bench/peers/).
 *
 * Every run writes bench/results/report.md (a markdown table, Node version, CPU, date) and
 * bench/results/chart.svg (every ratio on a log axis), a partial one (`--only`) report-partial.md
 * and chart-partial.svg (git-ignored, so the committed full report stays); `--json FILE` also writes the figures as
 * `[{figure, transport, value, unit, limit, ratio}]`.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { batchFromColumns, schemaOf } from "../src/protocol/batch.js";
import { t } from "../src/protocol/types.js";
import { createAccessLog } from "../src/server/access-log.js";
import type { CallInterceptor } from "../src/server/interceptors.js";
import { memoryPipe } from "../src/transports/memory/index.js";
import { connectSubprocess, outputPair } from "../src/transports/stdio/client.js";
import { MessageFramer } from "../src/wire/framer.js";
import { concatBytes, decodeMessage, decodeStreamBytes, encodeStream, IpcStreamEncoder } from "../src/wire/ipc.js";
import { checkRecordBatch } from "../src/wire/layout.js";
import { LeanMessage } from "../src/wire/lean.js";
import { verifyMessageHeader } from "../src/wire/verify.js";
import { messageSpans } from "../test/helpers/ipc-bytes.js";
import { requestBytes } from "../test/helpers/raw-peer.js";
import { httpFeatureFigures } from "./http-features.js";
import {
  BENCH_PREFETCH,
  bestDownload,
  type Channel,
  childOutput,
  countingReader,
  type NetTransport,
  peakRss,
  quiverChannel,
  quiverUnary,
  RAW_SPAN,
  type Rate,
  type Ready,
  rawHttpDownload,
  rawHttpPosts,
  rawSocketDownload,
  rawSocketPingPong,
  rawWsDownload,
  rawWsPingPong,
  STREAM_SIZES,
  type StreamRates,
  spawnServer,
  streamsInChild,
  timed,
  type UnaryRates,
} from "./net.js";
import { BENCH_DIR, benchScript, ROOT_DIR } from "./paths.js";
import { npmPeerFigures } from "./peers/npm.js";
import { type Figure, writeChart } from "./report.js";
import { benchBatch, benchServer, Row } from "./service.js";
import { runShmBench } from "./shm.js";
import { usageFigures } from "./usage.js";
import { workerFigures } from "./workers.js";

const { values: args } = parseArgs({
  options: { full: { type: "boolean" }, json: { type: "string" }, only: { type: "string" } },
});
/** `--only hook,http-features,workers,usage,unary,streams,shm,external,peers`: run only these sections (peers reuse nothing when alone). */
const ONLY = args.only === undefined ? null : new Set(args.only.split(","));
const runs = (section: string) => ONLY === null || ONLY.has(section);
/** The report's file: a partial run (`--only`) does not replace the committed full one. */
const REPORT = ONLY === null ? "report.md" : "report-partial.md";
const FULL = args.full ?? false;
/** Every child process is killed after this long, whatever happens (the run stays bounded). */
const CHILD_TIMEOUT_MS = (FULL ? 600 : 240) * 1000;
/** Seconds per unary figure, and per stream figure (each batch size, producer and exchange). */
const SECS = FULL ? 5 : 1.2;
const STREAM_SECS = FULL ? 2 : 0.5;
const SIZES = STREAM_SIZES;
/** Bytes per timed raw download (best of three after a warm-up). */
const RAW_BYTES = FULL ? 1 << 30 : 256 << 20;

const figures: Figure[] = [];
function report(f: Figure): void {
  figures.push(f);
  process.stdout.write(
    `${f.figure.padEnd(52)} ${f.transport.padEnd(7)} ${f.value.toFixed(f.value < 10 ? 3 : 0).padStart(12)} ${f.unit.padEnd(8)} ratio ${f.ratio.toFixed(3)} vs ${f.limit}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// In process: the cost of the per-call hook

const NOOP = concatBytes(requestBytes("noop", {}, {}, {}, "bench.Bench.v1", null));
const THREE = concatBytes(requestBytes("three", Row, { i: [7n], f: [0.5], s: ["row-7"] }, {}, "bench.Bench.v1", null));

/** A server interceptor that only passes the call on: what the interceptor mechanism itself costs. */
const PASS_THROUGH: CallInterceptor = (next) => (call) => next(call);

/**
 * Sequential calls (no-op, or `request`) over an in-process pipe, with the access log on
 * (`observed`) and `interceptors`; returns calls/s.
 */
async function inProcessUnary(
  observed: boolean,
  seconds: number,
  request = NOOP,
  interceptors: readonly CallInterceptor[] = [],
): Promise<number> {
  const observers: Array<() => Promise<void>> = [];
  let onCallEnd: ((r: import("../src/server/records.js").CallRecord) => void) | undefined;
  if (observed) {
    const log = createAccessLog({ path: join(tmpdir(), `quiver-bench-${process.pid}.jsonl`) });
    onCallEnd = log.observer;
    observers.push(() => log.close());
  }
  const server = benchServer(onCallEnd ? { onCallEnd, interceptors } : { interceptors });
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  const end = performance.now() + seconds * 1000;
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 200; k++) {
      await pipe.client.write([request]);
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

/**
 * Seconds per 3-field call spent verifying its headers and checking its batches' layout the
 * uncached way: the request's schema and batch verified as a header seen for the first time (the
 * lean reader and the schema cache normally spare both), and both batches checked against their
 * schema, as every call does. An upper bound on what verification adds to a small call.
 */
function verificationSecondsPerCall(): number {
  const answer = concatBytes(
    encodeStream(schemaOf({ result: t.utf8() }), [batchFromColumns({ result: t.utf8() }, { result: ["row-7"] })]),
  );
  const work: Array<() => void> = [];
  for (const bytes of [THREE, answer]) {
    const { schema } = decodeStreamBytes(bytes)!;
    for (const span of messageSpans(bytes)) {
      const flatbuffer = bytes.subarray(span.start, span.start + span.metadataLength);
      work.push(() => void verifyMessageHeader(flatbuffer));
      const message = decodeMessage(flatbuffer);
      const bodyAt = span.start + span.metadataLength;
      const body = bytes.slice(bodyAt, bodyAt + span.bodyLength);
      if (message instanceof LeanMessage) work.push(() => checkRecordBatch(schema, message, body));
    }
  }
  const rounds = 50_000;
  for (let i = 0; i < 5000; i++) for (const w of work) w();
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) for (const w of work) w();
  return (performance.now() - t0) / 1000 / rounds;
}

// ---------------------------------------------------------------------------------------------
// The stdio pipe

function nodeChild(script: string) {
  const child = spawn(process.execPath, ["-e", script], {
    stdio: ["pipe", "pipe", "inherit"],
    timeout: CHILD_TIMEOUT_MS,
  });
  child.stdin.on("error", () => {});
  return child;
}

/** Raw 100-byte ping-pong with an echo child over Node-spawned stdio. */
async function rawPipePingPong(seconds: number): Promise<Rate> {
  const child = nodeChild("process.stdin.on('data', (d) => process.stdout.write(d))");
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

/**
 * Raw download bandwidth from a child writing to its stdout (as a worker answers), read as the
 * raw socket downloads are (`countingReader`, `span` the size of the writes and of the reader's
 * region) through the socket pair quiver's subprocess client gives its worker; bytes/s, and the
 * child's peak RSS.
 */
async function rawPipeDownload(totalBytes: number, span = RAW_SPAN): Promise<{ rate: number; rss: number | null }> {
  let child: ReturnType<typeof spawn> | null = null;
  const reader = countingReader((request) => child!.stdin!.write(request), span);
  const pair = await outputPair(reader.onread);
  if (pair === null) throw new Error("could not make a Unix socket pair for the raw pipe download");
  child = spawn(
    process.execPath,
    [
      "-e",
      `const c=Buffer.alloc(${span},1);let a=Buffer.alloc(0);process.stdin.on('data',(d)=>{a=Buffer.concat([a,d]);while(a.length>=16){let n=Number(a.readBigUInt64LE(0));a=a.subarray(16);const pump=()=>{while(n>0){const k=Math.min(n,c.length);n-=k;if(!process.stdout.write(k===c.length?c:c.subarray(0,k))){process.stdout.once('drain',pump);return}}};pump()}})`,
    ],
    { stdio: ["pipe", pair.theirs, "inherit"], timeout: CHILD_TIMEOUT_MS },
  );
  pair.theirs.destroy();
  child.stdin!.on("error", () => {});
  try {
    const rate = await bestDownload(reader.download, totalBytes);
    return { rate, rss: peakRss(child.pid) };
  } finally {
    child.kill();
    pair.ours.destroy();
  }
}

/** A quiver client on a fresh stdio worker. */
async function pipeChannel(): Promise<Channel & { readonly pid: number | undefined }> {
  const client = await connectSubprocess(process.execPath, benchScript("worker"), {
    spawnTimeoutMs: 30_000,
  });
  const timer = setTimeout(() => client.process.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  client.process.once("exit", () => clearTimeout(timer));
  return Object.assign(client, { pid: client.process.pid });
}

// ---------------------------------------------------------------------------------------------
// Reporting helpers

/** Latency figures of a unary run, next to the same percentiles of its baseline (lower is better). */
function reportLatency(figure: string, transport: string, r: Rate, base: Rate, limit: string): void {
  for (const q of ["p50", "p99"] as const) {
    report({
      figure: `${figure} ${q}`,
      transport,
      value: r[q],
      unit: "us",
      limit: `${limit} ${q}`,
      ratio: r[q] / base[q],
    });
  }
}

/** Both unary calls of one transport against one raw baseline. */
function reportUnary(transport: string, q: UnaryRates, base: Rate, limit: string, suffix = ""): void {
  for (const [call, r] of [
    ["no-op", q.noop],
    ["3-field", q.three],
  ] as const) {
    const figure = `unary ${call} calls/s${suffix}`;
    report({ figure, transport, value: r.rate, unit: "calls/s", limit, ratio: r.rate / base.rate });
    reportLatency(`unary ${call} latency${suffix}`, transport, r, base, limit);
  }
}

/** Encoded bytes of one bench batch of `n` rows (IPC record-batch message, no schema). */
const batchBytes = new Map<number, number>();
function bytesPerBatch(n: number): number {
  let b = batchBytes.get(n);
  if (b === undefined) {
    const batch = benchBatch(n);
    const enc = new IpcStreamEncoder(batch.schema);
    enc.begin();
    b = concatBytes(enc.batch(batch)).byteLength;
    batchBytes.set(n, b);
  }
  return b;
}

const sizeName = (n: number) =>
  n === 1 ? "1-row" : n === 10_000 ? "10k-row" : n === 1_000_000 ? "1M-row" : `${n}-row`;

/** The stream figures' keys (`StreamRates`, without the batch size), in report order. */
const STREAM_KINDS = [
  "producer",
  "producer borrowed",
  "producer prefetch",
  "producer prefetch borrowed",
  "exchange",
  "exchange borrowed",
  "exchange pipelined",
  "exchange pipelined borrowed",
] as const;

/** A stream figure's name: `producer 10k-row batches (borrowed, 8 ticks ahead)`. */
function streamName(kind: string, n: number): string {
  const words = kind.split(" ");
  const notes = [
    ...(words.includes("borrowed") ? ["borrowed"] : []),
    ...(words.includes("prefetch") ? [`${BENCH_PREFETCH} ticks ahead`] : []),
    ...(words.includes("pipelined") ? [`${BENCH_PREFETCH} inputs ahead`] : []),
  ];
  return `${words[0]} ${sizeName(n)} batches${notes.length > 0 ? ` (${notes.join(", ")})` : ""}`;
}

/** rows/s and GB/s of every stream figure of one transport against its raw one-way bandwidth. */
function reportStreams(transport: string, rates: StreamRates, rawBw: number, limit: string): void {
  for (const kind of STREAM_KINDS) {
    for (const n of SIZES) {
      const rows = rates.get(`${kind} ${n}`);
      if (rows === undefined) continue;
      const bytes = (rows / n) * bytesPerBatch(n);
      const what = streamName(kind, n);
      report({ figure: `${what}, GB/s`, transport, value: bytes / 1e9, unit: "GB/s", limit, ratio: bytes / rawBw });
      report({ figure: `${what}, rows/s`, transport, value: rows, unit: "rows/s", limit, ratio: bytes / rawBw });
    }
  }
}

/** The largest stream batch's IPC size: the span of the raw downloads `reportRegion` compares with. */
const regionBytes = () => bytesPerBatch(Math.max(...SIZES));

/**
 * The largest batches against the raw download of regions their size (`regionBytes`) at both ends: a
 * batch that large is written from and read into memory beyond the CPU caches, which the 1 MiB
 * raw download (both ends cache-resident) never pays. Also reports that raw download itself
 * against the 1 MiB one, so the cost of the memory traffic shows.
 */
function reportRegion(transport: string, rates: StreamRates, regionBw: number, rawBw: number, name: string): void {
  const region = regionBytes();
  const mib = Math.round(region / 2 ** 20);
  const limit = `raw ${name} bandwidth, ${mib} MiB regions at both ends`;
  report({
    figure: `raw download, ${mib} MiB regions at both ends, GB/s`,
    transport,
    value: regionBw / 1e9,
    unit: "GB/s",
    limit: name === "pipe" ? "raw pipe bandwidth" : `raw ${name} download bandwidth`,
    ratio: regionBw / rawBw,
  });
  const n = Math.max(...SIZES);
  for (const kind of STREAM_KINDS) {
    const rows = rates.get(`${kind} ${n}`);
    if (rows === undefined) continue;
    const bytes = (rows / n) * region;
    report({
      figure: `${streamName(kind, n)}, GB/s, vs same-size raw`,
      transport,
      value: bytes / 1e9,
      unit: "GB/s",
      limit,
      ratio: bytes / regionBw,
    });
  }
}

function reportRss(transport: string, rss: number | null, rawRss: number | null): void {
  if (rss === null || rawRss === null) return;
  report({
    figure: "stream server peak RSS",
    transport,
    value: rss / 2 ** 20,
    unit: "MiB",
    limit: "raw byte-source server peak RSS",
    ratio: rss / rawRss,
  });
}

/** A peer's own figures, each as quiver / peer on the same call and transport. */
function reportPeer(
  peer: string,
  transport: string,
  unary: { noop: { rate: number }; three: { rate: number } },
  streams: ReadonlyMap<string, number>,
  ours: { unary: UnaryRates; streams: StreamRates },
): void {
  for (const [call, theirs, mine] of [
    ["no-op", unary.noop, ours.unary.noop],
    ["3-field", unary.three, ours.unary.three],
  ] as const) {
    report({
      figure: `unary ${call} calls/s`,
      transport,
      value: mine.rate,
      unit: "calls/s",
      limit: `${peer} (${theirs.rate.toFixed(0)} calls/s)`,
      ratio: mine.rate / theirs.rate,
    });
  }
  for (const [key, theirs] of streams) {
    const [kind, n] = key.split(" ") as [string, string];
    // The peers' clients are lockstep and own every batch; quiver's streams are also compared
    // with ticks or inputs in flight (`prefetch`, `pipeline`), and with those and borrowed batches,
    // against the same peer figure.
    const ahead = kind === "producer" ? "producer prefetch" : kind === "exchange" ? "exchange pipelined" : null;
    for (const ourKind of ahead === null ? [kind] : [kind, ahead, `${ahead} borrowed`]) {
      const mine = ours.streams.get(`${ourKind} ${n}`);
      if (mine === undefined) continue;
      report({
        figure: `${streamName(ourKind, Number(n))}, rows/s`,
        transport,
        value: mine,
        unit: "rows/s",
        limit: `${peer} (${theirs.toPrecision(3)} rows/s${ourKind === kind ? "" : ", lockstep"})`,
        ratio: mine / theirs,
      });
    }
  }
}

/** Runs `fn` with a child server, stopping the child whatever happens; returns the result and its peak RSS. */
async function withServer<T>(
  kind: string,
  fn: (ready: Ready) => Promise<T>,
  extra: readonly string[] = [],
): Promise<{ result: T; rss: number | null }> {
  const child = await spawnServer(kind, CHILD_TIMEOUT_MS / 1000, [], extra);
  let result: T;
  try {
    result = await fn(child.ready);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { result, rss: await child.stop() };
}

// ---------------------------------------------------------------------------------------------
// External storage

/** The external figures' producer result: about 1 GB of IPC bytes, in batches of a million rows. */
const EXTERNAL_BYTES = 1e9;
const EXTERNAL_ROWS = 1_000_000;

interface ExternalRun {
  readonly seconds: number;
  readonly rows: number;
  /** Batches that came through storage. */
  readonly pointers: number;
  /** The client's peak RSS, bytes. */
  readonly rss: number;
}

/** One 1 GB stream read by a fresh client process (bench/external-client.ts). */
async function externalClient(url: string, batches: number): Promise<ExternalRun> {
  const out = await childOutput(
    process.execPath,
    [...benchScript("external-client"), url, String(batches), String(EXTERNAL_ROWS)],
    CHILD_TIMEOUT_MS,
    "the external-storage client",
  );
  return JSON.parse(out.trim().split("\n").pop() ?? "") as ExternalRun;
}

/** Rounds of the external figures (inline, then externalized, each round); the best rate counts. */
const EXTERNAL_ROUNDS = FULL ? 5 : 3;

/** Peak RSS figures of the external section: the largest any round saw. */
const maxRss = (values: readonly (number | null)[]) =>
  values.some((v) => v === null) ? null : Math.max(...(values as number[]));

/** The 1 GB stream inline: a fresh quiver HTTP server and client. */
async function externalInline(batches: number) {
  const { result, rss } = await withServer("quiver-http", (ready) => externalClient(ready.http!, batches));
  return { run: result, serverRss: rss };
}

/** The 1 GB stream externalized: a fresh fake storage, quiver HTTP server and client. */
async function externalStored(batches: number) {
  const storage = await spawnServer("storage", CHILD_TIMEOUT_MS / 1000);
  try {
    const { result, rss } = await withServer("quiver-http-external", (ready) => externalClient(ready.http!, batches), [
      storage.ready.http!,
    ]);
    return { run: result, serverRss: rss, storageRss: await storage.stop() };
  } catch (err) {
    await storage.stop();
    throw err;
  }
}

/**
 * A 1 GB producer result over HTTP, inline, then externalized batch by batch (1 MiB threshold,
 * uncompressed) into the fake storage protocol: the server uploads each batch and answers with its
 * pointer, the client's resolver fetches it. Each side, and the storage, is a process of its own,
 * fresh every round; inline and externalized alternate, so both see the machine's load alike.
 */
async function externalFigures(): Promise<void> {
  const perBatch = bytesPerBatch(EXTERNAL_ROWS);
  const batches = Math.ceil(EXTERNAL_BYTES / perBatch);
  const bytes = batches * perBatch;
  const label = `producer ${(bytes / 1e9).toFixed(2)} GB result (${batches} x ${sizeName(EXTERNAL_ROWS)} batches)`;
  const raw = await withServer("raw-source", (ready) => rawHttpDownload(ready.http!, RAW_BYTES));
  const inline: Awaited<ReturnType<typeof externalInline>>[] = [];
  const stored: Awaited<ReturnType<typeof externalStored>>[] = [];
  for (let round = 0; round < EXTERNAL_ROUNDS; round++) {
    inline.push(await externalInline(batches));
    stored.push(await externalStored(batches));
  }
  const expected = batches * EXTERNAL_ROWS;
  for (const [what, runs, pointers] of [
    ["inline", inline, 0],
    ["externalized", stored, batches],
  ] as const) {
    for (const { run } of runs) {
      if (run.rows !== expected || run.pointers !== pointers) {
        throw new Error(
          `external bench, ${what}: ${run.rows} rows, ${run.pointers} through storage (want ${expected}, ${pointers})`,
        );
      }
    }
  }
  const best = (runs: readonly { run: ExternalRun }[]) => Math.max(...runs.map((r) => bytes / r.run.seconds));
  const inlineRate = best(inline);
  const storedRate = best(stored);
  report({
    figure: `${label}, inline, GB/s`,
    transport: "http",
    value: inlineRate / 1e9,
    unit: "GB/s",
    limit: "raw node:http GET bandwidth",
    ratio: inlineRate / raw.result,
  });
  report({
    figure: `${label}, externalized, GB/s`,
    transport: "http",
    value: storedRate / 1e9,
    unit: "GB/s",
    limit: "same result inline",
    ratio: storedRate / inlineRate,
  });
  const rss = (figure: string, value: number | null, limit: string, of: number | null) => {
    if (value === null || of === null) return;
    report({ figure, transport: "http", value: value / 2 ** 20, unit: "MiB", limit, ratio: value / of });
  };
  const inlineServer = maxRss(inline.map((r) => r.serverRss));
  const inlineClient = maxRss(inline.map((r) => r.run.rss));
  rss(`${label}, inline, server peak RSS`, inlineServer, "result size", bytes);
  rss(`${label}, inline, client peak RSS`, inlineClient, "result size", bytes);
  rss(`${label}, externalized, server peak RSS`, maxRss(stored.map((r) => r.serverRss)), "inline server", inlineServer);
  rss(`${label}, externalized, client peak RSS`, maxRss(stored.map((r) => r.run.rss)), "inline client", inlineClient);
  rss(`${label}, externalized, fake storage peak RSS`, maxRss(stored.map((r) => r.storageRss)), "result size", bytes);
}

// ---------------------------------------------------------------------------------------------
// Peers

const PYTHON = join(ROOT_DIR, ".venv-conformance/bin/python");
const PY_BENCH = join(BENCH_DIR, "peers/reference.py");

interface PythonFigures {
  readonly noop: Rate;
  readonly three: Rate;
  readonly streams: Map<string, number>;
}

/** Runs the reference's client (and server) from bench/peers/reference.py; null if not installed. */
async function pythonFigures(args: readonly string[]): Promise<PythonFigures> {
  const out = await childOutput(
    PYTHON,
    [PY_BENCH, "client", ...args],
    CHILD_TIMEOUT_MS,
    "Python reference bench client",
  );
  const parsed = JSON.parse(out) as Record<string, Rate | number>;
  const streams = new Map<string, number>();
  for (const [k, v] of Object.entries(parsed)) if (typeof v === "number") streams.set(k, v);
  return { noop: parsed.noop as Rate, three: parsed.three as Rate, streams };
}

/** The reference's HTTP server (waitress) in a child; resolves to its URL and a stopper. */
async function pythonHttpServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(PYTHON, ["-W", "ignore", PY_BENCH, "serve-http"], {
    stdio: ["ignore", "pipe", "inherit"],
    timeout: CHILD_TIMEOUT_MS,
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let out = "";
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
      const m = /PORT:(\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error("Python reference HTTP server exited before PORT")));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

type Ours = Partial<Record<"pipe" | "http", { unary: UnaryRates; streams: StreamRates }>>;

/**
 * quiver's figures for the peer comparisons, measured here when their sections did not run (the
 * streams by a fresh client process, as in the streams section).
 */
async function oursFor(where: "pipe" | "http", ours: Ours): Promise<{ unary: UnaryRates; streams: StreamRates }> {
  const have = ours[where];
  if (have && have.streams.size > 0) return have;
  const unaryVia = async (open: () => Promise<Channel>) => {
    if (have?.unary) return have.unary;
    const channel = await open();
    try {
      return await quiverUnary(async () => channel, SECS, 1, false, true);
    } finally {
      await channel.close();
    }
  };
  if (where === "pipe") {
    const unary = await unaryVia(pipeChannel);
    return { unary, streams: (await streamsInChild("pipe", {}, STREAM_SECS, CHILD_TIMEOUT_MS)).rates };
  }
  const measured = await withServer("quiver-http", async (ready) => ({
    unary: await unaryVia(() => quiverChannel("http", ready)),
    streams: (await streamsInChild("http", ready, STREAM_SECS, CHILD_TIMEOUT_MS)).rates,
  }));
  return measured.result;
}

async function peerFigures(ours: Ours): Promise<void> {
  const mine = { pipe: await oursFor("pipe", ours), http: await oursFor("http", ours) };
  if (existsSync(PYTHON)) {
    const peer = "Python vgi-rpc 0.52.2";
    try {
      const py = await pythonFigures(["pipe", String(SECS), SIZES.join(",")]);
      reportPeer(peer, "pipe", py, py.streams, mine.pipe);
      const server = await pythonHttpServer();
      try {
        const pyHttp = await pythonFigures(["http", server.url, String(SECS), SIZES.join(",")]);
        reportPeer(peer, "http", pyHttp, pyHttp.streams, mine.http);
      } finally {
        await server.stop();
      }
    } catch (err) {
      process.stdout.write(`Python reference: failed (${(err as Error).message}), its figures are missing\n`);
    }
  } else {
    process.stdout.write(`Python reference: ${PYTHON} not found (npm test creates it), skipped\n`);
  }
  const npmPeer = "npm @query-farm/vgi-rpc 0.25.4";
  for (const where of ["pipe", "http"] as const) {
    try {
      const f = await npmPeerFigures(where, SECS, SIZES, CHILD_TIMEOUT_MS);
      reportPeer(npmPeer, where, f, f.streams, mine[where]);
    } catch (err) {
      process.stdout.write(`npm peer over ${where}: failed (${(err as Error).message}), its figures are missing\n`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Shared memory: a 64 MiB batch handed to a child through the segment vs the pipe (bench/shm.ts)

async function shmFigures(): Promise<void> {
  const got = await runShmBench({ iterations: FULL ? 20 : 5, childTimeoutMs: CHILD_TIMEOUT_MS });
  for (const f of got) report(f);
}

// ---------------------------------------------------------------------------------------------
// The report

/** A markdown table with padded columns (as Biome formats it, so the report passes `biome check`). */
function markdownTable(head: readonly string[], right: readonly boolean[], rows: readonly string[][]): string[] {
  const widths = head.map((h, c) => Math.max(3, h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((v, c) => (right[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(" | ")} |`;
  const rule = `| ${widths.map((w, c) => (right[c] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(head), rule, ...rows.map(line)];
}

const RESULTS = join(BENCH_DIR, "results");

interface Header {
  readonly node: string;
  readonly cpu: string;
  readonly date: string;
  readonly mode: string;
}

function writeReport(header: Header, seconds: number): void {
  const fmt = (v: number) =>
    Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3)) : "n/a";
  const lines = [
    "# quiver bench",
    "",
    `- Node: ${header.node}`,
    `- CPU: ${header.cpu}`,
    `- Date: ${header.date}`,
    `- Mode: ${header.mode} (${seconds.toFixed(0)} s)`,
    "",
    "`ratio` is value / limit, both measured in this run. For rates and bandwidths higher is better;",
    "for latencies (`us`) and RSS lower is better, so there a ratio above 1 is the overhead over the baseline.",
    "Rows whose limit names a peer are quiver / peer on the same call and transport (each side its own",
    "server and client); the peer's own figure is in the limit column. GB/s counts the IPC bytes of the",
    "record-batch messages; exchange moves them both ways but counts one way. Chart: [chart.svg](chart.svg).",
    "",
    ...markdownTable(
      ["figure", "transport", "value", "unit", "limit", "ratio"],
      [false, false, true, false, false, true],
      figures.map((f) => [f.figure, f.transport, fmt(f.value), f.unit, f.limit, f.ratio.toFixed(3)]),
    ),
    "",
  ];
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, REPORT), lines.join("\n"));
  writeFileSync(
    join(RESULTS, ONLY === null ? "chart.svg" : "chart-partial.svg"),
    writeChart(figures, `quiver bench — ${header.node}, ${header.cpu}, ${header.date}`),
  );
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  const header: Header = {
    node: process.version,
    cpu: `${cpus()[0]?.model ?? "unknown"} x${cpus().length}`,
    date: new Date().toISOString(),
    mode: FULL ? "full" : "quick",
  };
  process.stdout.write(`quiver bench — node ${header.node}, ${header.cpu}, ${header.date}\n\n`);

  // In process: what the access log and spans cost per call.
  if (runs("hook")) {
    const plain = await inProcessUnary(false, SECS);
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
    const observed = await inProcessUnary(true, SECS);
    trace.disable();
    report({
      figure: "unary no-op calls/s, access log + spans on",
      transport: "memory",
      value: observed,
      unit: "calls/s",
      limit: "same call, no observers",
      ratio: observed / plain,
    });
    // The interceptor chain: none (the path above), and one that only calls next.
    const intercepted = await inProcessUnary(false, SECS, NOOP, [PASS_THROUGH]);
    report({
      figure: "unary no-op calls/s, one pass-through interceptor",
      transport: "memory",
      value: intercepted,
      unit: "calls/s",
      limit: "same call, no interceptor",
      ratio: intercepted / plain,
    });
    // What verifying headers and checking batches would cost a small call if nothing were cached.
    const three = await inProcessUnary(false, SECS, THREE);
    const verified = 1 / (1 / three + verificationSecondsPerCall());
    report({
      figure: "unary 3-field calls/s, headers verified uncached",
      transport: "memory",
      value: verified,
      unit: "calls/s",
      limit: "same call as measured",
      ratio: verified / three,
    });
  }

  // In process: what HTTP's optional features cost a small call (CORS, sticky sessions, a retried turn).
  if (runs("http-features")) {
    for (const f of await httpFeatureFigures(SECS)) report(f);
  }

  // Subprocess workers at scale: a pooled worker vs one spawned per call; N pipe workers and N HTTP processes vs 1.
  if (runs("workers")) {
    for (const f of await workerFigures(SECS)) report(f);
  }
  // Over a pipe: what metrics and a quota check (memory and Redis stores) cost a small call.
  if (runs("usage")) {
    for (const f of await usageFigures(FULL)) report(f);
  }

  // quiver's own figures over a pipe and HTTP, for the peer comparisons (measured when skipped).
  const ours: Partial<Record<"pipe" | "http", { unary: UnaryRates; streams: StreamRates }>> = {};

  // Unary calls: the raw echoes first, then quiver over each transport.
  if (runs("unary")) {
    const rawPipe = await rawPipePingPong(SECS);
    const pipe = await pipeChannel();
    let pipeUnary: UnaryRates;
    try {
      pipeUnary = await quiverUnary(async () => pipe, SECS);
    } finally {
      await pipe.close();
    }
    reportUnary("pipe", pipeUnary, rawPipe, "raw 100 B ping-pong");
    ours.pipe = { unary: pipeUnary, streams: new Map() };

    const raw = await withServer("raw", async (ready) => ({
      tcp: await rawSocketPingPong(ready.tcp!, SECS),
      unix: await rawSocketPingPong(ready.unix!, SECS),
      http1: await rawHttpPosts(ready.http!, SECS, 1),
      http16: await rawHttpPosts(ready.http!, SECS, 16),
      ws1: await rawWsPingPong(ready.ws!, SECS),
      ws16: await rawWsPingPong(ready.ws!, SECS, 16),
    }));
    const q = await withServer("quiver", async (ready) => {
      const open = (t: NetTransport) => () => quiverChannel(t, ready);
      return {
        tcp: await quiverUnary(open("tcp"), SECS),
        unix: await quiverUnary(open("unix"), SECS),
        http1: await quiverUnary(open("http"), SECS, 1, true),
        http16: await quiverUnary(open("http"), SECS, 16, true),
        ws1: await quiverUnary(open("ws"), SECS),
        ws16: await quiverUnary(open("ws"), SECS, 16),
        // The server behind the baseline's own client (node:http, pre-encoded requests).
        http16Server: {
          noop: await rawHttpPosts(ready.http!, SECS, 16, { path: "/bench.Bench.v1/noop", body: NOOP }),
          three: await rawHttpPosts(ready.http!, SECS, 16, { path: "/bench.Bench.v1/three", body: THREE }),
        },
      };
    });
    const r = raw.result;
    reportUnary("tcp", q.result.tcp, r.tcp, "raw 100 B ping-pong");
    reportUnary("unix", q.result.unix, r.unix, "raw 100 B ping-pong");
    reportUnary("http", q.result.http1, r.http1, "node:http tiny POST c=1", ", c=1");
    reportUnary("http", q.result.http16, r.http16, "node:http tiny POST c=16", ", c=16");
    reportUnary("http", q.result.http16Server, r.http16, "node:http tiny POST c=16", ", c=16, node:http client");
    reportUnary("ws", q.result.ws1, r.ws1, "raw ws 100 B ping-pong", ", c=1");
    reportUnary("ws", q.result.ws16, r.ws16, "raw ws 100 B ping-pong c=16", ", c=16");
    ours.http = { unary: q.result.http1, streams: new Map() };
  }

  // Streams, transport by transport: the raw one-way bandwidth, then quiver's producer and exchange
  // on a fresh server (so each peak RSS is that transport's), read by a fresh client process (so
  // each starts from an empty heap, as the raw reader does), then the raw bandwidth once more: the
  // limit is the better of the two, measured around the figures it bounds.
  if (runs("streams")) {
    const regionSpan = regionBytes();
    const pipeRawBefore = await rawPipeDownload(RAW_BYTES);
    const pipeRegionBefore = await rawPipeDownload(RAW_BYTES, regionSpan);
    const pipe = await streamsInChild("pipe", {}, STREAM_SECS, CHILD_TIMEOUT_MS);
    const pipeRawAfter = await rawPipeDownload(RAW_BYTES);
    const pipeRegionAfter = await rawPipeDownload(RAW_BYTES, regionSpan);
    const pipeRaw = Math.max(pipeRawBefore.rate, pipeRawAfter.rate);
    reportStreams("pipe", pipe.rates, pipeRaw, "raw pipe bandwidth");
    reportRegion("pipe", pipe.rates, Math.max(pipeRegionBefore.rate, pipeRegionAfter.rate), pipeRaw, "pipe");
    reportRss("pipe", pipe.rss, pipeRawBefore.rss);
    if (ours.pipe) ours.pipe = { ...ours.pipe, streams: pipe.rates };

    for (const t of ["unix", "tcp", "http", "ws"] as const) {
      const rawDownload = (ready: Ready) =>
        t === "http"
          ? rawHttpDownload(ready.http!, RAW_BYTES)
          : t === "ws"
            ? rawWsDownload(ready.ws!, RAW_BYTES)
            : rawSocketDownload(t === "tcp" ? ready.tcp! : ready.unix!, RAW_BYTES);
      // TCP and Unix sockets also measure the raw download of batch-sized regions (see
      // `reportRegion`), from a server of its own so that the RSS baseline stays the 1 MiB one's.
      const regionDownload = async () =>
        t === "tcp" || t === "unix"
          ? (
              await withServer("raw-source", (ready) =>
                rawSocketDownload(t === "tcp" ? ready.tcp! : ready.unix!, RAW_BYTES, regionSpan),
              )
            ).result
          : null;
      const before = await withServer("raw-source", rawDownload);
      const regionBefore = await regionDownload();
      const s = await withServer(`quiver-${t}`, (ready) => streamsInChild(t, ready, STREAM_SECS, CHILD_TIMEOUT_MS));
      const after = await withServer("raw-source", rawDownload);
      const regionAfter = await regionDownload();
      if (t === "http" && ours.http) ours.http = { ...ours.http, streams: s.result.rates };
      const limit =
        t === "ws"
          ? "raw ws download bandwidth (1 MiB messages)"
          : t === "http"
            ? "raw node:http GET bandwidth"
            : `raw ${t} download bandwidth`;
      const raw = Math.max(before.result, after.result);
      reportStreams(t, s.result.rates, raw, limit);
      if (regionBefore !== null && regionAfter !== null) {
        reportRegion(t, s.result.rates, Math.max(regionBefore, regionAfter), raw, t);
      }
      reportRss(t, s.rss, before.rss);
    }
  }

  if (runs("shm")) await shmFigures();

  // A 1 GB producer result over HTTP, inline against externalized.
  if (runs("external")) await externalFigures();

  // Peers on the same calls: the Python reference, then the npm peer, over a pipe and HTTP.
  if (runs("peers")) await peerFigures(ours);

  const seconds = (performance.now() - started) / 1000;
  writeReport(header, seconds);
  if (args.json) {
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify(figures, null, 2)}\n`);
  }
  process.stdout.write(`\n${figures.length} figures in ${seconds.toFixed(0)} s; report: ${join(RESULTS, REPORT)}\n`);
}

await main();
