/**
 * Network figures: quiver over TCP, Unix socket, HTTP and WebSocket against raw Node bytes over
 * the same transport, each server in a child process (bench/servers.ts) so client and server
 * each have a core, as in the raw baselines.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { WebSocket } from "ws";
import { RpcClient } from "../src/client/client.js";
import type { ClientTransport } from "../src/client/transport.js";
import { proxy } from "../src/client/typed.js";
import { connectHttp } from "../src/transports/http/client.js";
import { connectTcp, connectUnix, socketTransport } from "../src/transports/socket/client.js";
import { connectWebSocket } from "../src/transports/ws/client.js";
import { Bench } from "./service.js";

const SERVERS = new URL("./servers.ts", import.meta.url).pathname;

// ---------------------------------------------------------------------------------------------
// Child servers

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
  /** Closes the child (stdin EOF) and resolves to its peak RSS in bytes (null if it did not say). */
  stop(): Promise<number | null>;
}

/** Spawns `bench/servers.ts KIND`; it exits by itself after `timeoutSeconds` whatever happens. */
export async function spawnServer(kind: string, timeoutSeconds: number): Promise<ChildServer> {
  const child: ChildProcessByStdio<Writable, Readable, null> = spawn(
    process.execPath,
    ["--import", "tsx", SERVERS, kind, String(timeoutSeconds)],
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
 * awaits its call before starting the next. Returns calls/s and per-call latency percentiles.
 */
export async function timed(
  op: () => Promise<unknown>,
  seconds: number,
  concurrency = 1,
  warmupSeconds = 0.3,
): Promise<Rate> {
  const warmEnd = performance.now() + warmupSeconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmEnd) await op();
    }),
  );
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await op();
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

/** `node:http` tiny POSTs (100-byte body and answer) with a keep-alive agent, `concurrency` in flight. */
export async function rawHttpPosts(url: string, seconds: number, concurrency: number): Promise<Rate> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(url);
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        {
          agent,
          host: u.hostname,
          port: u.port,
          path: "/",
          method: "POST",
          headers: { "Content-Type": "application/octet-stream", "Content-Length": PING.length },
        },
        (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve());
        },
      );
      req.on("error", reject);
      req.end(PING);
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

/** Raw `ws` 100-byte message ping-pong with the child's echo. */
export async function rawWsPingPong(url: string, seconds: number): Promise<Rate> {
  const ws = await openWs(url);
  let wake: (() => void) | null = null;
  ws.on("message", () => {
    const w = wake;
    wake = null;
    w?.();
  });
  const r = await timed(
    () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        ws.send(PING, { binary: true });
      }),
    seconds,
  );
  ws.terminate();
  return r;
}

/** Raw download bandwidth from the child's TCP byte source; bytes/s. */
export async function rawTcpDownload(where: TcpAddress, totalBytes: number, repeats = 3): Promise<number> {
  const socket = await connected(where);
  const download = async (bytes: number): Promise<number> => {
    const ask = Buffer.alloc(8);
    ask.writeBigUInt64LE(BigInt(bytes));
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (d: Buffer) => {
        got += d.length;
        if (got < bytes) return;
        socket.off("data", onData);
        resolve();
      };
      socket.on("data", onData);
      socket.write(ask);
    });
    return bytes / ((performance.now() - t0) / 1000);
  };
  await download(WARMUP_BYTES); // as the producer figure, which warms up with one batch first
  let rate = 0;
  for (let k = 0; k < repeats; k++) rate = Math.max(rate, await download(totalBytes));
  socket.destroy();
  return rate;
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
  await download(WARMUP_BYTES);
  let rate = 0;
  for (let k = 0; k < repeats; k++) rate = Math.max(rate, await download(totalBytes));
  ws.terminate();
  return rate;
}

// ---------------------------------------------------------------------------------------------
// quiver

/** Sequential (or `concurrency` in flight) no-op calls through the typed proxy. */
export async function quiverUnary(
  transport: "tcp" | "unix" | "http" | "ws",
  ready: Ready,
  seconds: number,
  concurrency = 1,
): Promise<Rate> {
  let channel: RpcClient | ReturnType<typeof connectHttp>;
  if (transport === "tcp") channel = await connectTcp(ready.tcp!.host, ready.tcp!.port);
  else if (transport === "unix") channel = await connectUnix(ready.unix!.path);
  else if (transport === "http") channel = connectHttp(ready.http!);
  else channel = new RpcClient(await connectWebSocket(ready.ws!, { implementation: "ws" }));
  const bench = proxy(channel, Bench);
  try {
    return await timed(() => bench.noop(), seconds, concurrency);
  } finally {
    await channel.close();
  }
}

/** Counts the bytes a client transport receives. */
function counting(t: ClientTransport, counter: { bytes: number }): ClientTransport {
  const input: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const it = t.input[Symbol.asyncIterator]();
      return {
        async next() {
          const r = await it.next();
          if (r.done !== true) counter.bytes += r.value.byteLength;
          return r;
        },
        async return(value?: unknown) {
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
      };
    },
  };
  return { name: t.name ?? "counted", input, write: (c) => t.write(c), close: () => t.close() };
}

export interface Throughput {
  readonly bytesPerSec: number;
  readonly rowsPerSec: number;
}

/**
 * Producer of `batches` batches of `rows` rows, read batch by batch (no per-row decoding); the
 * best of `repeats` streams (the raw baselines are the best of as many downloads).
 */
export async function quiverProducer(
  transport: "tcp" | "ws",
  ready: Ready,
  batches: number,
  rows: number,
  repeats = 3,
): Promise<Throughput> {
  const counter = { bytes: 0 };
  let inner: ClientTransport;
  if (transport === "tcp") inner = socketTransport(await connected(ready.tcp!), "tcp");
  else inner = await connectWebSocket(ready.ws!, { implementation: "ws" });
  const client = new RpcClient(counting(inner, counter));
  const bench = proxy(client, Bench);
  const run = async (n: number) => {
    const stream = await bench.rows({ batches: BigInt(n), rows: BigInt(rows) });
    let got = 0;
    for await (const b of stream.batches()) got += b.numRows;
    return got;
  };
  try {
    await run(1); // warm up: the server builds its batch once
    let best: Throughput = { bytesPerSec: 0, rowsPerSec: 0 };
    for (let k = 0; k < repeats; k++) {
      counter.bytes = 0;
      const t0 = performance.now();
      const got = await run(batches);
      const secs = (performance.now() - t0) / 1000;
      if (counter.bytes / secs > best.bytesPerSec) best = { bytesPerSec: counter.bytes / secs, rowsPerSec: got / secs };
    }
    return best;
  } finally {
    await client.close();
  }
}
