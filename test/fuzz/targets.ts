/**
 * Runs one case against the worker on one transport and judges it.
 *
 * Listening transports (Unix, TCP, WebSocket, HTTP): the case goes out on a fresh connection and
 * the answer is read until the server closes, goes quiet (`idleMs`) or the case's `deadlineMs`
 * passes. A connection still open then is probed: a valid call on another connection must be
 * answered within `probeMs`. If it is, the case connection is only waiting for bytes it was
 * promised (legitimate for a truncated message); we close our side and the server must close its
 * own within `closeMs` (else the case is `lingering`). If it is not, the server is stuck: a hang
 * (or a crash, if it dies meanwhile); its JavaScript stack is taken and it is restarted. After
 * every case a valid call on a fresh connection must be answered correctly (recovery).
 *
 * Pipe transports (stdio, shared memory): one worker process per connection, so one per case
 * (the next is spawned while a case runs). After the answer goes quiet the worker's stdin is
 * closed; it must exit cleanly within `deadlineMs`, else it is stuck (a hang: nothing it could be
 * waiting for is left). Recovery is a valid call on a fresh worker, checked after every failure
 * and every `recoveryEvery` cases.
 */

import { truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import WebSocket from "ws";
import { SHM_DIR } from "../../src/transports/shm/segment.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { IpcStreamDecoder } from "../../src/wire/ipc.js";
import { classifyBatch, readLogRecord } from "../../src/wire/messages.js";
import type { FuzzCase, HttpInput, ShmInput, TransportName } from "./cases.js";
import { concat } from "./mutators.js";
import { crashSignature, sleep, stderrStack, Worker, type WorkerMode } from "./worker.js";

export interface RunOptions {
  /** Quiet time after which an open connection is judged (ms). */
  readonly idleMs: number;
  /** Longest a case runs before the server is judged (ms). */
  readonly deadlineMs: number;
  /** Bound on a valid probe or recovery call (ms). */
  readonly probeMs: number;
  /** After our side closes, the server must close within this (ms). */
  readonly closeMs: number;
  /** Worker heap (`--max-old-space-size`, MiB). */
  readonly heapMb: number;
  /** While a stuck worker's memory is climbing, how long to wait for it to die (ms). */
  readonly oomWaitMs: number;
  /** Pipe transports: a fresh worker's valid call is checked every this many cases. */
  readonly recoveryEvery: number;
  /** 64 hex characters, the HTTP worker's token key. */
  readonly tokenKeyHex: string;
}

export const DEFAULT_RUN_OPTIONS: RunOptions = {
  idleMs: 150,
  deadlineMs: 3000,
  probeMs: 2000,
  closeMs: 2000,
  heapMb: 512,
  oomWaitMs: 8000,
  recoveryEvery: 50,
  tokenKeyHex: "5a".repeat(32),
};

export type Outcome = "answered" | "error" | "closed" | "waiting" | "hang" | "crash";

export interface CaseResult {
  readonly outcome: Outcome;
  /** HTTP status, when one came. */
  readonly status?: number;
  /** The server closed the connection. */
  readonly serverClosed: boolean;
  /** After we closed our side, the server kept the connection open past `closeMs`. */
  readonly lingering: boolean;
  /** A pipe worker exited cleanly, but only after `deadlineMs` (a loaded machine, or slow work). */
  readonly slow?: boolean;
  /** The server's answer is not a readable sequence of IPC streams (why). */
  readonly malformed?: string;
  readonly recovery: "ok" | "failed" | "not-run";
  /** The answer's first error, the crash signature or what the stuck worker was doing. */
  readonly detail: string;
  /** The worker's JavaScript stack (hangs and fatal errors). */
  readonly stack?: readonly string[];
  readonly ms: number;
}

export interface Target {
  readonly name: TransportName;
  start(): Promise<void>;
  run(c: FuzzCase): Promise<CaseResult>;
  stop(): Promise<void>;
  /** Highest VmHWM of any worker of this target (KiB). */
  readonly peakKb: number;
  /** Workers started after the first (crashes, hangs, and one per case on pipes). */
  readonly restarts: number;
}

// ---------------------------------------------------------------------------------------------
// Reading answers

/** What the server wrote back on a session transport. */
export interface Answers {
  /** Complete IPC streams read. */
  readonly streams: number;
  readonly dataBatches: number;
  /** Messages of EXCEPTION batches. */
  readonly errors: string[];
  /** `result` of the first data batch, as text. */
  readonly firstValue: string | null;
  /** Bytes after the last complete stream (or why they did not parse). */
  readonly trailing: string;
}

/** Parses back-to-back IPC streams from `bytes`. */
export async function readAnswers(bytes: Uint8Array): Promise<Answers> {
  async function* once(): AsyncGenerator<Uint8Array> {
    if (bytes.byteLength > 0) yield bytes;
  }
  const framer = new MessageFramer(once());
  let streams = 0;
  let dataBatches = 0;
  const errors: string[] = [];
  let firstValue: string | null = null;
  let trailing = "";
  let decoder = new IpcStreamDecoder();
  try {
    for (;;) {
      const f = await framer.next();
      if (f === "end") break;
      if (f === "eos") {
        streams++;
        decoder = new IpcStreamDecoder();
        continue;
      }
      const out = decoder.accept(f);
      if (out === null || !("numRows" in out)) continue;
      const cls = classifyBatch(out);
      if (cls === "error") errors.push(readLogRecord(out.metadata).message);
      else if (cls === "data") {
        dataBatches++;
        if (firstValue === null && out.numRows > 0 && out.numCols > 0) firstValue = String(out.getChildAt(0)?.get(0));
      }
    }
  } catch (err) {
    trailing = (err as Error).message;
  }
  return { streams, dataBatches, errors, firstValue, trailing };
}

function judge(a: Answers, closed: boolean): { outcome: Outcome; detail: string; malformed?: string } {
  // Bytes that stop mid-message may just be cut short; anything else unreadable is the server's fault.
  const malformed = a.trailing !== "" && !/ended inside/.test(a.trailing) ? { malformed: a.trailing } : {};
  if (a.errors.length > 0) return { outcome: "error", detail: a.errors[0]!.slice(0, 300), ...malformed };
  if (a.streams > 0 || a.dataBatches > 0)
    return { outcome: "answered", detail: `${a.streams} stream(s)`, ...malformed };
  return { outcome: closed ? "closed" : "waiting", detail: a.trailing, ...malformed };
}

// ---------------------------------------------------------------------------------------------
// Connections

/** A byte connection to a listening worker (socket or WebSocket). */
interface Conn {
  write(b: Uint8Array): void;
  /** Closes our side (FIN, or a WebSocket close). */
  end(): void;
  destroy(): void;
  readonly chunks: Uint8Array[];
  /** When bytes last moved (either way). */
  last: number;
  closed: boolean;
  readonly whenClosed: Promise<void>;
}

function socketConn(sock: Socket): Conn {
  let resolveClosed: () => void = () => {};
  const conn: Conn = {
    write: (b) => {
      conn.last = Date.now();
      sock.write(b);
    },
    end: () => sock.end(),
    destroy: () => sock.destroy(),
    chunks: [],
    last: Date.now(),
    closed: false,
    whenClosed: new Promise<void>((r) => {
      resolveClosed = r;
    }),
  };
  sock.on("data", (d: Buffer) => {
    conn.chunks.push(new Uint8Array(d));
    conn.last = Date.now();
  });
  sock.on("error", () => {});
  // The server's FIN (`end`) counts as its close: it will send nothing more.
  const done = () => {
    conn.closed = true;
    resolveClosed();
  };
  sock.on("end", done);
  sock.on("close", done);
  return conn;
}

function connectSocket(address: string, mode: "unix" | "tcp", timeoutMs: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock =
      mode === "unix"
        ? netConnect({ path: address, allowHalfOpen: true })
        : netConnect({
            host: address.slice(0, address.lastIndexOf(":")),
            port: Number(address.slice(address.lastIndexOf(":") + 1)),
            allowHalfOpen: true,
          });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("connect timed out"));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      resolve(socketConn(sock));
    });
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function connectWs(url: string, timeoutMs: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    let resolveClosed: () => void = () => {};
    const conn: Conn = {
      write: (b) => {
        conn.last = Date.now();
        ws.send(b, { binary: true });
      },
      end: () => ws.close(1000),
      destroy: () => ws.terminate(),
      chunks: [],
      last: Date.now(),
      closed: false,
      whenClosed: new Promise<void>((r) => {
        resolveClosed = r;
      }),
    };
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("WebSocket connect timed out"));
    }, timeoutMs);
    ws.on("message", (d: Buffer | ArrayBuffer | Buffer[]) => {
      const parts = Array.isArray(d) ? d : [d];
      for (const p of parts) conn.chunks.push(p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p));
      conn.last = Date.now();
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on("close", () => {
      conn.closed = true;
      resolveClosed();
    });
    ws.on("open", () => {
      clearTimeout(timer);
      resolve(conn);
    });
  });
}

/** Waits until the connection closes, is quiet for `idleMs`, or `deadlineMs` passes. */
async function settle(conn: { last: number; closed: boolean }, idleMs: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!conn.closed && Date.now() < until && Date.now() - conn.last < idleMs) await sleep(10);
}

async function writePieces(write: (b: Uint8Array) => void, pieces: readonly Uint8Array[]): Promise<void> {
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    if (pieces[i]!.byteLength > 0) write(pieces[i]!);
  }
}

// ---------------------------------------------------------------------------------------------
// A stuck worker

/** Judges a worker that did not answer: a crash if it died (or dies of memory), else a hang. */
async function stuck(
  worker: Worker,
  opts: RunOptions,
  what: string,
  /** A stack taken earlier, used when the worker dies before another can be taken. */
  early: string[] | null = null,
): Promise<{ outcome: Outcome; detail: string; stack?: string[] }> {
  if (!worker.alive) {
    const e = await worker.exited;
    const stack = stderrStack(worker.stderr) ?? early;
    return {
      outcome: "crash",
      detail: `${crashSignature(e, worker.stderr)} (after ${what})`,
      ...(stack ? { stack } : {}),
    };
  }
  const rss0 = worker.rssKb() ?? 0;
  const cpu0 = worker.cpuTicks() ?? 0;
  await sleep(400);
  const cpu1 = worker.cpuTicks() ?? cpu0;
  const rss1 = worker.rssKb() ?? rss0;
  const cpuPct = Math.round(((cpu1 - cpu0) / 40) * 100);
  // Climbing, or already near the heap limit (where the collector thrashes and RSS stays flat).
  const climbing = rss1 - rss0 > 20 * 1024 || rss1 > opts.heapMb * 1024 * 0.85;
  // The stack first: a worker climbing towards its heap limit is about to die and take it along.
  const stack = (await worker.jsStack()) ?? early ?? undefined;
  if (climbing) {
    const until = Date.now() + opts.oomWaitMs;
    while (worker.alive && Date.now() < until) await sleep(100);
  }
  if (!worker.alive) {
    const e = await worker.exited;
    return {
      outcome: "crash",
      detail: `${crashSignature(e, worker.stderr)} (after ${what}${climbing ? `; RSS ${Math.round(rss0 / 1024)} -> ${Math.round(rss1 / 1024)} MiB` : ""})`,
      ...(stack ? { stack } : {}),
    };
  }
  const rss2 = worker.rssKb() ?? rss1;
  const kind =
    cpuPct >= 30
      ? climbing
        ? "busy, memory climbing"
        : "spinning"
      : climbing
        ? "memory climbing"
        : "mostly waiting (a loaded machine?)";
  return {
    outcome: "hang",
    detail: `${what}; worker ${kind} (CPU ${cpuPct}%, RSS ${Math.round(rss0 / 1024)} -> ${Math.round(rss2 / 1024)} MiB)`,
    ...(stack ? { stack } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Listening transports

type Connector = (worker: Worker, timeoutMs: number) => Promise<Conn>;

abstract class ListeningTarget implements Target {
  protected worker: Worker | null = null;
  restarts = 0;
  private peak = 0;

  constructor(
    readonly name: TransportName,
    protected readonly mode: WorkerMode,
    protected readonly opts: RunOptions,
  ) {}

  get peakKb(): number {
    return Math.max(this.peak, this.worker?.peakKb ?? 0);
  }

  async start(): Promise<void> {
    this.worker = await Worker.start({
      mode: this.mode,
      heapMb: this.opts.heapMb,
      ...(this.mode === "http" ? { tokenKeyHex: this.opts.tokenKeyHex } : {}),
    });
  }

  protected async restart(): Promise<void> {
    if (this.worker !== null) {
      await this.worker.kill();
      this.peak = Math.max(this.peak, this.worker.peakKb);
    }
    this.restarts++;
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.worker !== null) {
      await this.worker.kill();
      this.peak = Math.max(this.peak, this.worker.peakKb);
      this.worker = null;
    }
  }

  protected live(): Worker {
    if (this.worker === null) throw new Error(`${this.name} target not started`);
    return this.worker;
  }

  /** A valid call on a fresh connection: null when answered correctly, else what went wrong. */
  abstract validCall(): Promise<string | null>;

  /** Sends the case; returns what was seen before the server was judged. */
  protected abstract exchange(c: FuzzCase): Promise<{
    /** Still open: the server must be probed. */
    open: boolean;
    /** Closes our side and reports whether the server closed within `closeMs`. */
    finish(): Promise<boolean>;
    judge(): Promise<{ outcome: Outcome; detail: string; status?: number; serverClosed: boolean; malformed?: string }>;
  }>;

  async run(c: FuzzCase): Promise<CaseResult> {
    const t0 = Date.now();
    if (this.worker === null || !this.worker.alive) await this.restart();
    const worker = this.live();
    const ex = await this.exchange(c);
    const done = (r: Omit<CaseResult, "ms">): CaseResult => ({ ...r, ms: Date.now() - t0 });
    if (ex.open || !worker.alive) {
      // A stack taken beside the probe: a worker that dies of memory meanwhile takes its own along.
      const [probe, early] = worker.alive
        ? await Promise.all([this.validCall(), worker.jsStack()])
        : (["worker died", null] as const);
      if (probe !== null) {
        const s = await stuck(worker, this.opts, `a concurrent valid call failed (${probe})`, early);
        await ex.finish().catch(() => false);
        await this.restart();
        return done({ ...s, serverClosed: false, lingering: false, recovery: "not-run" });
      }
    }
    const closedInTime = await ex.finish();
    const lingering = ex.open && !closedInTime;
    const j = await ex.judge();
    const recovery = await this.validCall();
    if (recovery !== null) {
      const s = await stuck(worker, this.opts, `the follow-up valid call failed (${recovery})`);
      await this.restart();
      return done({ ...j, ...s, lingering, recovery: "failed" });
    }
    worker.rssKb();
    return done({ ...j, lingering, recovery: "ok" });
  }
}

class SessionSocketTarget extends ListeningTarget {
  constructor(
    name: TransportName,
    mode: WorkerMode,
    opts: RunOptions,
    private readonly connector: Connector,
    /** A valid `echo_string` request and the value it echoes. */
    private readonly valid: { readonly bytes: Uint8Array; readonly value: string },
  ) {
    super(name, mode, opts);
  }

  async validCall(): Promise<string | null> {
    const until = Date.now() + this.opts.probeMs;
    let conn: Conn;
    try {
      conn = await this.connector(this.live(), this.opts.probeMs);
    } catch (err) {
      return `connect: ${(err as Error).message}`;
    }
    try {
      conn.write(this.valid.bytes);
      while (Date.now() < until) {
        const a = await readAnswers(concat(conn.chunks));
        if (a.streams >= 1) {
          if (a.errors.length > 0) return `answered with an error: ${a.errors[0]}`;
          return a.firstValue === this.valid.value ? null : `wrong answer ${JSON.stringify(a.firstValue)}`;
        }
        if (conn.closed) return "connection closed without an answer";
        await sleep(5);
      }
      return `no answer within ${this.opts.probeMs} ms`;
    } finally {
      conn.destroy();
    }
  }

  protected async exchange(c: FuzzCase) {
    if (c.input.kind !== "session") throw new Error(`${this.name} runs session cases`);
    let conn: Conn;
    try {
      conn = await this.connector(this.live(), this.opts.probeMs);
    } catch (err) {
      const detail = `connect failed: ${(err as Error).message}`;
      return {
        open: true,
        finish: async () => true,
        judge: async () => ({ outcome: "closed" as Outcome, detail, serverClosed: true }),
      };
    }
    await writePieces((b) => conn.write(b), c.input.writes);
    await settle(conn, this.opts.idleMs, this.opts.deadlineMs);
    const open = !conn.closed;
    return {
      open,
      finish: async () => {
        if (conn.closed) {
          conn.destroy(); // ours too: a half-open socket would stay open on both sides
          return true;
        }
        conn.end();
        const closed = await Promise.race([
          conn.whenClosed.then(() => true),
          sleep(this.opts.closeMs).then(() => false),
        ]);
        conn.destroy();
        return closed;
      },
      judge: async () => ({ ...judge(await readAnswers(concat(conn.chunks)), !open), serverClosed: !open }),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface HttpReply {
  readonly status: number;
  readonly headers: IncomingMessage["headers"];
  readonly body: Uint8Array;
}

/** Sends one request on a fresh connection; resolves with the reply, "reset", or "timeout". */
function sendHttp(
  base: string,
  input: HttpInput,
  timeoutMs: number,
): { reply: Promise<HttpReply | "reset" | "timeout">; abort(): void } {
  const url = new URL(base);
  let abort = () => {};
  const reply = new Promise<HttpReply | "reset" | "timeout">((resolve) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of input.headers) headers[k] = v;
    headers["content-length"] = String(input.body.byteLength);
    let settled = false;
    const finish = (v: HttpReply | "reset" | "timeout") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({
        host: url.hostname,
        port: Number(url.port),
        method: input.method,
        path: input.path,
        headers,
        agent: false,
      });
    } catch {
      finish("reset");
      return;
    }
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    abort = () => {
      req.destroy();
      finish("reset");
    };
    let responded = false;
    // A server that answers early (431, 413) and closes makes our write fail: the answer may still
    // arrive, so the error waits a moment for it.
    req.on("error", () => {
      if (!responded) setTimeout(() => finish("reset"), 100);
    });
    req.on("response", (res) => {
      responded = true;
      const chunks: Uint8Array[] = [];
      let total = 0;
      res.on("data", (d: Buffer) => {
        total += d.byteLength;
        if (total <= 64 * 1024 * 1024) chunks.push(new Uint8Array(d));
      });
      res.on("end", () => finish({ status: res.statusCode ?? 0, headers: res.headers, body: concat(chunks) }));
      res.on("error", () => finish("reset"));
    });
    if (input.sendBytes === undefined) req.end(input.body);
    else req.write(input.body.subarray(0, input.sendBytes));
  });
  return { reply, abort: () => abort() };
}

class HttpTarget extends ListeningTarget {
  constructor(
    opts: RunOptions,
    private readonly valid: { readonly input: HttpInput; readonly value: string },
  ) {
    super("http", "http", opts);
  }

  get baseUrl(): string {
    return this.live().address;
  }

  async validCall(): Promise<string | null> {
    const r = await sendHttp(this.live().address, this.valid.input, this.opts.probeMs).reply;
    if (r === "reset") return "connection reset without an answer";
    if (r === "timeout") return `no answer within ${this.opts.probeMs} ms`;
    if (r.status !== 200) return `status ${r.status}`;
    const a = await readAnswers(r.body);
    if (a.errors.length > 0) return `answered with an error: ${a.errors[0]}`;
    return a.firstValue === this.valid.value ? null : `wrong answer ${JSON.stringify(a.firstValue)}`;
  }

  protected async exchange(c: FuzzCase) {
    if (c.input.kind !== "http") throw new Error("http runs http cases");
    const sent = sendHttp(this.live().address, c.input, this.opts.deadlineMs);
    const r = await sent.reply;
    const open = r === "timeout";
    return {
      open,
      finish: async () => {
        sent.abort();
        return true;
      },
      judge: async () => {
        if (r === "reset")
          return { outcome: "closed" as Outcome, detail: "connection closed without a response", serverClosed: true };
        if (r === "timeout")
          return {
            outcome: "waiting" as Outcome,
            detail: "no response (the server waits for the body)",
            serverClosed: false,
          };
        const text = Buffer.from(r.body.subarray(0, 400)).toString("utf8");
        const ct = String(r.headers["content-type"] ?? "");
        let detail = `${r.status}`;
        let errored = r.status >= 400 || r.headers["x-vgi-rpc-error"] === "true";
        if (ct.includes("arrow")) {
          const a = await readAnswers(r.body);
          if (a.errors.length > 0) {
            errored = true;
            detail = `${r.status} ${a.errors[0]!.slice(0, 300)}`;
          }
        } else if (r.status >= 400) {
          detail = `${r.status} ${text.replace(/\s+/g, " ").slice(0, 300)}`;
        }
        return { outcome: (errored ? "error" : "answered") as Outcome, detail, status: r.status, serverClosed: false };
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Pipe transports

class PipeTarget implements Target {
  restarts = 0;
  private peak = 0;
  private next: Promise<Worker> | null = null;
  private cases = 0;

  constructor(
    readonly name: TransportName,
    private readonly mode: "stdio" | "shm",
    private readonly opts: RunOptions,
    private readonly valid: { readonly bytes: Uint8Array; readonly value: string },
  ) {}

  get peakKb(): number {
    return this.peak;
  }

  private spawn(): Promise<Worker> {
    const p = Worker.start({ mode: this.mode, heapMb: this.opts.heapMb, lifetimeMs: 120_000 });
    p.catch(() => {});
    return p;
  }

  async start(): Promise<void> {
    this.next = this.spawn();
    await this.next;
  }

  async stop(): Promise<void> {
    const w = await this.next?.catch(() => null);
    this.next = null;
    if (w) {
      await w.kill();
      this.peak = Math.max(this.peak, w.peakKb);
    }
  }

  private async take(): Promise<Worker> {
    const w = await (this.next ?? this.spawn());
    this.next = this.spawn();
    this.restarts++;
    return w;
  }

  /** A valid call on a fresh worker: null when answered correctly. */
  async validCall(): Promise<string | null> {
    const w = await this.take();
    try {
      const out: Uint8Array[] = [];
      w.child.stdout.on("data", (d: Buffer) => out.push(new Uint8Array(d)));
      w.child.stdin.write(this.valid.bytes);
      const until = Date.now() + this.opts.probeMs + 2000;
      while (Date.now() < until) {
        const a = await readAnswers(concat(out));
        if (a.streams >= 1) {
          if (a.errors.length > 0) return `answered with an error: ${a.errors[0]}`;
          return a.firstValue === this.valid.value ? null : `wrong answer ${JSON.stringify(a.firstValue)}`;
        }
        if (!w.alive) return "worker exited without an answer";
        await sleep(5);
      }
      return "no answer";
    } finally {
      await w.kill();
      this.peak = Math.max(this.peak, w.peakKb);
    }
  }

  private placeSegment(input: ShmInput): string {
    const path = join(SHM_DIR, input.segment.name);
    writeFileSync(path, input.segment.image, { mode: 0o600 });
    if (input.segment.truncateTo !== undefined) truncateSync(path, input.segment.truncateTo);
    return path;
  }

  async run(c: FuzzCase): Promise<CaseResult> {
    const t0 = Date.now();
    const input = c.input;
    if (input.kind === "http") throw new Error(`${this.name} runs pipe cases`);
    const segmentPath = input.kind === "shm" ? this.placeSegment(input) : null;
    const w = await this.take();
    this.cases++;
    try {
      const out: Uint8Array[] = [];
      const conn = { last: Date.now(), closed: false };
      w.child.stdout.on("data", (d: Buffer) => {
        out.push(new Uint8Array(d));
        conn.last = Date.now();
      });
      w.child.stdout.on("end", () => {
        conn.closed = true;
      });
      void w.exited.then(() => {
        conn.closed = true;
      });
      await writePieces((b) => {
        conn.last = Date.now();
        w.child.stdin.write(b);
      }, input.writes);
      await settle(conn, this.opts.idleMs, this.opts.deadlineMs);
      w.rssKb();
      const serverClosed = conn.closed;
      w.endInput();
      // Wait for it to exit. No inspector here (pausing a process on its way out can crash it):
      // only a worker whose memory is climbing well past a healthy one's has its stack taken, as
      // it may die of that before it can be judged.
      let early: string[] | null = null;
      let sampled = false;
      const until = Date.now() + this.opts.deadlineMs;
      while (w.alive && Date.now() < until) {
        await Promise.race([w.exited, sleep(100)]);
        if (!sampled && w.alive && (w.rssKb() ?? 0) > this.opts.heapMb * 1024 * 0.5) {
          sampled = true;
          early = await w.jsStack();
        }
      }
      const exited = !w.alive;
      let result: Omit<CaseResult, "recovery" | "ms">;
      const stuckResult = exited
        ? null
        : await stuck(w, this.opts, "the worker did not exit after its input ended", early);
      if (stuckResult !== null && !(stuckResult.outcome === "crash" && w.exit?.code === 0 && w.exit.signal === null)) {
        result = { ...stuckResult, serverClosed, lingering: false };
      } else {
        // Exited (a clean exit after the deadline is slow, not stuck: noted, judged as any other).
        const e = await w.exited;
        if (e.signal !== null || e.code !== 0) {
          // An uncaught error prints its own stack; a stack taken while it was exiting is noise.
          const stack = stderrStack(w.stderr) ?? early;
          result = {
            outcome: "crash",
            detail: crashSignature(e, w.stderr),
            ...(stack ? { stack } : {}),
            serverClosed,
            lingering: false,
          };
        } else {
          result = {
            ...judge(await readAnswers(concat(out)), serverClosed),
            serverClosed,
            lingering: false,
            ...(stuckResult === null ? {} : { slow: true }),
          };
        }
      }
      const failed = result.outcome === "hang" || result.outcome === "crash";
      let recovery: CaseResult["recovery"] = "not-run";
      if (failed || (this.cases - 1) % this.opts.recoveryEvery === 0)
        recovery = (await this.validCall()) === null ? "ok" : "failed";
      return { ...result, recovery, ms: Date.now() - t0 };
    } finally {
      await w.kill();
      this.peak = Math.max(this.peak, w.peakKb);
      if (segmentPath !== null) {
        try {
          unlinkSync(segmentPath);
        } catch {
          // Already gone (or the case's name was never created).
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

export interface ValidCalls {
  /** A valid `echo_string` request on a session transport and the value echoed. */
  readonly session: { readonly bytes: Uint8Array; readonly value: string };
  /** The same over HTTP. */
  readonly http: { readonly input: HttpInput; readonly value: string };
}

/** The target for `name`. */
export function makeTarget(name: TransportName, opts: RunOptions, valid: ValidCalls): Target {
  switch (name) {
    case "stdio":
      return new PipeTarget("stdio", "stdio", opts, valid.session);
    case "shm":
      return new PipeTarget("shm", "shm", opts, valid.session);
    case "unix":
      return new SessionSocketTarget(
        "unix",
        "unix",
        opts,
        (w, t) => connectSocket(w.address, "unix", t),
        valid.session,
      );
    case "tcp":
      return new SessionSocketTarget("tcp", "tcp", opts, (w, t) => connectSocket(w.address, "tcp", t), valid.session);
    case "ws":
      return new SessionSocketTarget("ws", "ws", opts, (w, t) => connectWs(w.address, t), valid.session);
    case "http":
      return new HttpTarget(opts, valid.http);
  }
}

/** The HTTP target's base URL (for capturing HTTP seeds from the live worker). */
export function httpBaseUrl(t: Target): string {
  if (!(t instanceof HttpTarget)) throw new Error("not the HTTP target");
  return t.baseUrl;
}
