/**
 * Network figures: quiver over TCP, Unix socket, HTTP and WebSocket against raw Node bytes over
 * the same transport, each server in a child process (bench/servers.ts) so client and server
 * each have a core, as in the raw baselines.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { connect, type OnReadOpts, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { WebSocket } from "ws";
import { RpcClient } from "../src/client/client.js";
import type { CallChannel } from "../src/client/transport.js";
import { proxy } from "../src/client/typed.js";
import { connectHttp } from "../src/transports/http/client.js";
import { connectTcp, connectUnix } from "../src/transports/socket/client.js";
import { connectWebSocket } from "../src/transports/ws/client.js";
import { benchScript } from "./paths.js";
import { Bench, benchBatch } from "./service.js";

// ---------------------------------------------------------------------------------------------
// Child servers

/** Peak resident set size of a live child (Linux `VmHWM`), in bytes; null elsewhere. */
export function peakRss(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export type TcpAddress = { readonly host: string; readonly port: number };
export type UnixAddress = { readonly path: string };
export interface Ready {
  readonly tcp?: TcpAddress;
  readonly unix?: UnixAddress;
  readonly http?: string;
  readonly ws?: string;
}

export interface ChildServer {
  readonly ready: Ready;
  /** The child's process id (its /proc entry). */
  readonly pid: number;
  /** Closes the child (stdin EOF) and resolves to its peak RSS in bytes (null if it did not say). */
  stop(): Promise<number | null>;
}

/**
 * Spawns `bench/servers.ts KIND` (with `nodeArgs` for node, e.g. `--cpu-prof`, and `extra` after
 * its own arguments); it exits by itself after `timeoutSeconds` whatever happens.
 */
export async function spawnServer(
  kind: string,
  timeoutSeconds: number,
  nodeArgs: readonly string[] = [],
  extra: readonly string[] = [],
): Promise<ChildServer> {
  const child: ChildProcessByStdio<Writable, Readable, null> = spawn(
    process.execPath,
    [...nodeArgs, ...benchScript("servers"), kind, String(timeoutSeconds), ...extra],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  child.stdin.on("error", () => {});
  let out = "";
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
    let nl = out.indexOf("\n");
    while (nl >= 0) {
      lines.push(out.slice(0, nl));
      out = out.slice(nl + 1);
      nl = out.indexOf("\n");
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  /** The first stdout line starting with `prefix` (without it), or null on exit or after `ms`. */
  const line = async (prefix: string, ms: number): Promise<string | null> => {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const expiry = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, ms);
    });
    try {
      for (;;) {
        const found = lines.find((l) => l.startsWith(prefix));
        if (found !== undefined) return found.slice(prefix.length);
        if (child.exitCode !== null || child.signalCode !== null || timedOut) return null;
        await Promise.race([new Promise<void>((r) => waiters.push(r)), exited, expiry]);
      }
    } finally {
      clearTimeout(timer);
    }
  };
  const readyLine = await line("READY ", 30_000);
  if (readyLine === null) {
    child.kill("SIGKILL");
    throw new Error(`bench server '${kind}' did not start`);
  }
  return {
    ready: JSON.parse(readyLine) as Ready,
    pid: child.pid!,
    async stop() {
      child.stdin.end();
      const rss = await line("RSS ", 10_000);
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
      return rss === null ? null : Number(rss);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Timing

export interface Rate {
  /** Completed operations per second over the timed window. */
  readonly rate: number;
  /** Latency percentiles of one operation, in microseconds. */
  readonly p50: number;
  readonly p99: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * Runs `op` in `concurrency` sequential loops for `seconds` after a short warm-up; each loop
 * awaits its call before starting the next (`op` gets its loop's index, 0-based). Returns calls/s
 * and per-call latency percentiles.
 */
export async function timed(
  op: (loop: number) => Promise<unknown>,
  seconds: number,
  concurrency = 1,
  warmupSeconds = 0.3,
): Promise<Rate> {
  const warmEnd = performance.now() + warmupSeconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      while (performance.now() < warmEnd) await op(loop);
    }),
  );
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      while (performance.now() < end) {
        const s = performance.now();
        await op(loop);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(lat).sort();
  return { rate: lat.length / secs, p50: percentile(sorted, 0.5) * 1000, p99: percentile(sorted, 0.99) * 1000 };
}

// ---------------------------------------------------------------------------------------------
// Raw baselines

const PING = Buffer.alloc(100, 7);
/** Bytes downloaded before a timed raw download (the producer figures warm up with one batch). */
const WARMUP_BYTES = 64 << 20;

/** A 100-byte ping-pong client over a connected socket: resolves when 100 bytes came back. */
function socketPinger(socket: Socket): () => Promise<void> {
  let got = 0;
  let wake: (() => void) | null = null;
  socket.on("data", (d: Buffer) => {
    got += d.length;
    if (got >= 100 && wake !== null) {
      got -= 100;
      const w = wake;
      wake = null;
      w();
    }
  });
  return () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      socket.write(PING);
    });
}

function connected(where: TcpAddress | UnixAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(where);
    s.setNoDelay(true);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Raw 100-byte ping-pong with the child's `node:net` echo. */
export async function rawSocketPingPong(where: TcpAddress | UnixAddress, seconds: number): Promise<Rate> {
  const socket = await connected(where);
  const r = await timed(socketPinger(socket), seconds);
  socket.destroy();
  return r;
}

/**
 * `node:http` POSTs with a keep-alive agent, `concurrency` in flight: by default tiny ones (100-byte
 * body and answer, to the raw server), or `body` to `path` as an Arrow stream (a pre-encoded quiver
 * request, so the figure is the server's cost behind the same client as the baseline's).
 */
export async function rawHttpPosts(
  url: string,
  seconds: number,
  concurrency: number,
  request: { readonly path: string; readonly body: Uint8Array } = { path: "/", body: PING },
): Promise<Rate> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(url);
  const contentType = request.body === PING ? "application/octet-stream" : "application/vnd.apache.arrow.stream";
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        {
          agent,
          host: u.hostname,
          port: u.port,
          path: request.path,
          method: "POST",
          headers: { "Content-Type": contentType, "Content-Length": request.body.byteLength },
        },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} from ${request.path}`));
          res.on("data", () => {});
          res.on("end", () => resolve());
        },
      );
      req.on("error", reject);
      req.end(request.body);
    });
  const r = await timed(post, seconds, concurrency);
  agent.destroy();
  return r;
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Raw `ws` 100-byte message ping-pong with the child's echo, one connection per loop in flight. */
export async function rawWsPingPong(url: string, seconds: number, concurrency = 1): Promise<Rate> {
  const sockets = await Promise.all(Array.from({ length: concurrency }, () => openWs(url)));
  const pingers = sockets.map((ws) => {
    let wake: (() => void) | null = null;
    ws.on("message", () => {
      const w = wake;
      wake = null;
      w?.();
    });
    return () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        ws.send(PING, { binary: true });
      });
  });
  const r = await timed((loop) => pingers[loop]!(), seconds, concurrency);
  for (const ws of sockets) ws.terminate();
  return r;
}

/** Best of `repeats` timed downloads of `totalBytes` after a warm-up one; bytes/s. */
export async function bestDownload(
  download: (bytes: number) => Promise<number>,
  totalBytes: number,
  repeats = 3,
): Promise<number> {
  await download(WARMUP_BYTES); // as the stream figures, which warm up first
  let rate = 0;
  for (let k = 0; k < repeats; k++) rate = Math.max(rate, await download(totalBytes));
  return rate;
}

/** The span of the raw downloads' writes and reads unless a figure asks for another. */
export const RAW_SPAN = 1 << 20;

/**
 * The reading half of a raw download: `onread` (for the socket's options) counts bytes read into
 * one reused region of `span` bytes (one kernel copy, no allocation: the most a Node reader gets
 * out of a socket), and `download(bytes)` asks the byte source for them through `ask` (two
 * little-endian u64: the count and `span`, the size of the source's writes) and resolves to
 * bytes/s once all have arrived. With the default 1 MiB both ends stay in the CPU caches; with the
 * size of a large batch, both ends move it through memory, as a batch that large must be.
 */
export function countingReader(
  ask: (request: Buffer) => void,
  span = RAW_SPAN,
): {
  readonly onread: OnReadOpts;
  download(bytes: number): Promise<number>;
} {
  let want = 0;
  let got = 0;
  let done: (() => void) | null = null;
  // Written once so its pages are in memory, as a pooled body's are.
  const into = Buffer.alloc(span, 0);
  let at = 0;
  return {
    onread: {
      buffer: () => {
        if (span - at < 64 * 1024) at = 0;
        return into.subarray(at);
      },
      callback: (n: number) => {
        at += n;
        got += n;
        if (got >= want && done !== null) {
          const d = done;
          done = null;
          d();
        }
        return true;
      },
    },
    async download(bytes) {
      const request = Buffer.alloc(16);
      request.writeBigUInt64LE(BigInt(bytes), 0);
      request.writeBigUInt64LE(BigInt(span), 8);
      want = bytes;
      got = 0;
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        done = resolve;
        ask(request);
      });
      return bytes / ((performance.now() - t0) / 1000);
    },
  };
}

/**
 * Raw download bandwidth from the child's TCP or Unix-socket byte source (see `countingReader`,
 * `span` the size of the writes and of the reader's region); bytes/s.
 */
export async function rawSocketDownload(
  where: TcpAddress | UnixAddress,
  totalBytes: number,
  span = RAW_SPAN,
  repeats = 3,
): Promise<number> {
  let socket: Socket | null = null;
  const reader = countingReader((request) => socket!.write(request), span);
  socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ ...where, onread: reader.onread });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
  try {
    return await bestDownload(reader.download, totalBytes, repeats);
  } finally {
    socket.destroy();
  }
}

/** Raw download bandwidth from the child's `ws` byte source (1 MiB messages); bytes/s. */
export async function rawWsDownload(url: string, totalBytes: number, repeats = 3): Promise<number> {
  const ws = await openWs(url);
  const download = async (bytes: number): Promise<number> => {
    const ask = Buffer.alloc(8);
    ask.writeBigUInt64LE(BigInt(bytes));
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onMessage = (d: Buffer) => {
        got += d.length;
        if (got < bytes) return;
        ws.off("message", onMessage);
        resolve();
      };
      ws.on("message", onMessage);
      ws.send(ask, { binary: true });
    });
    return bytes / ((performance.now() - t0) / 1000);
  };
  try {
    return await bestDownload(download, totalBytes, repeats);
  } finally {
    ws.terminate();
  }
}

/** Raw `node:http` download bandwidth: GET bodies of the asked size (1 MiB writes); bytes/s. */
export async function rawHttpDownload(url: string, totalBytes: number, repeats = 3): Promise<number> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const u = new URL(url);
  const download = (bytes: number) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const req = httpRequest({ agent, host: u.hostname, port: u.port, path: `/bytes/${bytes}` }, (res) => {
        let got = 0;
        res.on("data", (d: Buffer) => {
          got += d.length;
        });
        res.on("end", () => {
          if (got !== bytes) reject(new Error(`raw HTTP download got ${got} of ${bytes} bytes`));
          else resolve(bytes / ((performance.now() - t0) / 1000));
        });
      });
      req.on("error", reject);
      req.end();
    });
  try {
    return await bestDownload(download, totalBytes, repeats);
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// quiver

export type NetTransport = "tcp" | "unix" | "http" | "ws";

/** A client: calls, and a close that ends its connection. */
export type Channel = CallChannel & { close(): Promise<void> };

/** A quiver client of the child server over `transport`. */
export async function quiverChannel(transport: NetTransport, ready: Ready): Promise<Channel> {
  if (transport === "tcp") return connectTcp(ready.tcp!.host, ready.tcp!.port);
  if (transport === "unix") return connectUnix(ready.unix!.path);
  if (transport === "http") return connectHttp(ready.http!);
  return new RpcClient(await connectWebSocket(ready.ws!, { implementation: "ws" }));
}

export interface UnaryRates {
  readonly noop: Rate;
  readonly three: Rate;
}

/** How long `quiverUnary` runs both calls before timing either. */
const UNARY_WARM_UP_MS = 1000;

/**
 * Sequential no-op and 3-field calls through the typed proxy, `concurrency` in flight: over HTTP
 * on one client (its agent pools connections), elsewhere one connection per call in flight (a
 * session connection runs one call at a time). `keepOpen` leaves the channels open.
 */
export async function quiverUnary(
  open: () => Promise<Channel>,
  seconds: number,
  concurrency = 1,
  shared = false,
  keepOpen = false,
): Promise<UnaryRates> {
  const channels: Channel[] = [];
  for (let k = 0; k < (shared ? 1 : concurrency); k++) channels.push(await open());
  const proxies = channels.map((c) => proxy(c, Bench));
  const at = (loop: number) => proxies[shared ? 0 : loop]!;
  const three = (loop: number) => at(loop).three({ i: 7n, f: 0.5, s: "row-7" });
  try {
    // Both calls run before either is timed: a server fresh to this transport takes a second or
    // more to optimise its code (HTTP's no-op at c=1, timed first after only `timed`'s own
    // warm-up, measured slower than the 3-field call timed after it).
    const warmEnd = performance.now() + UNARY_WARM_UP_MS;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, loop) => {
        while (performance.now() < warmEnd) {
          await at(loop).noop();
          await three(loop);
        }
      }),
    );
    const noop = await timed((loop) => at(loop).noop(), seconds, concurrency);
    const threeRate = await timed(three, seconds, concurrency);
    return { noop, three: threeRate };
  } finally {
    if (!keepOpen) for (const c of channels) await c.close();
  }
}

/**
 * Rows per second of each stream figure, keyed `producer N`, `exchange N`, and for batches of
 * `BORROW_MIN_ROWS` and more also `producer borrowed N`/`exchange borrowed N` (N rows a batch);
 * producers with `BENCH_PREFETCH` ticks in flight add `producer prefetch N` (and
 * `producer prefetch borrowed N`), exchanges with as many inputs sent ahead `exchange pipelined N`
 * (and `exchange pipelined borrowed N`).
 */
export type StreamRates = Map<string, number>;

/** Rows per batch of the stream figures. */
export const STREAM_SIZES = [1, 10_000, 1_000_000] as const;

/** Stream figures this large are also measured with borrowed answer batches (`borrowBatches`). */
export const BORROW_MIN_ROWS = 10_000;
/** Timed windows per stream figure; the best counts, as for the raw downloads. */
const STREAM_WINDOWS = 3;

/** Best of `STREAM_WINDOWS` timed windows of `window()`, a rate. */
async function bestWindow(window: () => Promise<number>): Promise<number> {
  let rate = 0;
  for (let w = 0; w < STREAM_WINDOWS; w++) rate = Math.max(rate, await window());
  return rate;
}

/**
 * Rows/s of a producer after a one-batch warm-up: `drain(k)` runs a stream of k batches and
 * returns its rows, k doubling until one stream takes 50 ms; best of `STREAM_WINDOWS` windows of
 * `seconds`. Used for quiver and the npm peer alike.
 */
export async function producerRate(drain: (batches: number) => Promise<number>, seconds: number): Promise<number> {
  await drain(1);
  let k = 1;
  return bestWindow(async () => {
    let got = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      const s0 = performance.now();
      got += await drain(k);
      if (performance.now() - s0 < 50) k *= 2;
    }
    return got / ((performance.now() - t0) / 1000);
  });
}

/** Rows/s of an exchange after one warm-up turn: `turn()` echoes a batch and returns its rows; best of windows. */
export async function exchangeRate(turn: () => Promise<number>, seconds: number): Promise<number> {
  await turn();
  return bestWindow(async () => {
    let echoed = 0;
    const e0 = performance.now();
    while (performance.now() - e0 < seconds * 1000) echoed += await turn();
    return echoed / ((performance.now() - e0) / 1000);
  });
}

/** Ticks (`prefetch`) or exchange inputs (`pipeline` window) the "ahead" figures keep in flight. */
export const BENCH_PREFETCH = 8;

/**
 * Producer and exchange throughput at each batch size, reading batch by batch (no per-row
 * decoding), best of `STREAM_WINDOWS` windows of `seconds` after a warm-up, as the raw downloads
 * are measured. Producer: streams growing in length until one takes 50 ms, lockstep and, when
 * `prefetch` (a channel that honours it: not HTTP), with `BENCH_PREFETCH` ticks in flight;
 * exchange: one stream echoing the same prebuilt batch, turn by turn and, when `prefetch`, with
 * `BENCH_PREFETCH` inputs sent ahead.
 */
export async function quiverStreams(
  channel: CallChannel,
  sizes: readonly number[],
  seconds: number,
  prefetch = true,
): Promise<StreamRates> {
  const bench = proxy(channel, Bench);
  const out: StreamRates = new Map();
  for (const n of sizes) {
    for (const borrow of n >= BORROW_MIN_ROWS ? [false, true] : [false]) {
      const tag = borrow ? " borrowed" : "";
      for (const ahead of prefetch ? [1, BENCH_PREFETCH] : [1]) {
        const opts = { ...(borrow ? { borrowBatches: true } : {}), ...(ahead > 1 ? { prefetch: ahead } : {}) };
        const drain = async (batches: number) => {
          const stream = await bench.rows({ batches: BigInt(batches), rows: BigInt(n) }, opts);
          let got = 0;
          for await (const b of stream.batches()) got += b.numRows;
          return got;
        };
        out.set(`producer${ahead > 1 ? " prefetch" : ""}${tag} ${n}`, await producerRate(drain, seconds));
      }

      const batch = benchBatch(n);
      // Borrowed: both ends read large batches into reused buffers (the server's echo handler
      // declares `borrowInput`).
      const session = await (borrow ? bench.echoBorrowed : bench.echo)({}, borrow ? { borrowBatches: true } : {});
      out.set(
        `exchange${tag} ${n}`,
        await exchangeRate(async () => (await session.exchangeBatch(batch)).numRows, seconds),
      );
      if (prefetch) {
        // The same echo with `BENCH_PREFETCH` inputs sent ahead (`pipelineBatches`), in runs of
        // growing length, as the producer's streams.
        const pipelined = async (batches: number) => {
          let got = 0;
          const inputs = Array.from({ length: batches }, () => batch);
          for await (const b of session.pipelineBatches(inputs, { window: BENCH_PREFETCH })) got += b.numRows;
          return got;
        };
        out.set(`exchange pipelined${tag} ${n}`, await producerRate(pipelined, seconds));
      }
      await session.close();
    }
  }
  return out;
}

/** Runs `command` (stderr shown, killed after `timeoutMs`) and resolves to its stdout; rejects unless it exits 0. */
export async function childOutput(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  what: string,
): Promise<string> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"], timeout: timeoutMs });
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`${what} exited with ${code}`);
  return out;
}

/**
 * `quiverStreams` over `transport` at `STREAM_SIZES`, run by a fresh client process
 * (bench/stream-client.ts) so that every transport's figures start from an empty heap; for the pipe
 * that process also spawns the worker, whose peak RSS comes back as `rss`. Killed after `timeoutMs`.
 */
export async function streamsInChild(
  transport: "pipe" | NetTransport,
  ready: Ready,
  seconds: number,
  timeoutMs: number,
): Promise<{ rates: StreamRates; rss: number | null }> {
  const out = await childOutput(
    process.execPath,
    [...benchScript("stream-client"), transport, JSON.stringify(ready), String(seconds)],
    timeoutMs,
    `the ${transport} stream client`,
  );
  const parsed = JSON.parse(out.trim().split("\n").pop() ?? "") as { rates: [string, number][]; rss: number | null };
  return { rates: new Map(parsed.rates), rss: parsed.rss };
}
