/**
 * The server under test: the built conformance worker (dist/bin/quiver-conformance.js) in a
 * child process with a bounded old-space heap (so a memory blow-up ends as a crash, not as the
 * machine swapping) and the inspector listening on a loopback port: a stuck worker is paused
 * through it (the inspector interrupts a spinning loop, which a signal handler in JavaScript
 * never gets to run) to read its JavaScript stack. Resource figures come from /proc.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

/** The built worker. */
export const WORKER_JS = new URL("../../dist/bin/quiver-conformance.js", import.meta.url).pathname;

export type WorkerMode = "stdio" | "shm" | "unix" | "tcp" | "http" | "ws";

export interface WorkerOptions {
  readonly mode: WorkerMode;
  /** `--max-old-space-size` in MiB. */
  readonly heapMb: number;
  /** 64 hex characters for `--token-key` (HTTP). */
  readonly tokenKeyHex?: string;
  /** Longest wait for the worker to announce its address. */
  readonly startTimeoutMs?: number;
  /** The hard limit on the worker's life (it is killed then, whatever it is doing). */
  readonly lifetimeMs?: number;
}

/** How a worker ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Bytes of stderr kept (the tail). */
const STDERR_TAIL = 16 * 1024;

/** True when the worker file exists (run `npm run build` first). */
export function workerBuilt(): boolean {
  return existsSync(WORKER_JS);
}

export class Worker {
  /** unix: socket path; tcp: host:port; http: base URL; ws: ws:// URL; stdio: "". */
  address = "";
  private stderrTail = "";
  exit: ExitInfo | null = null;
  readonly exited: Promise<ExitInfo>;
  /** Highest VmHWM (KiB) seen. */
  peakKb = 0;
  /** The inspector's WebSocket URL, once the worker printed it. */
  private inspectorUrl: string | null = null;
  private readonly lifetime: NodeJS.Timeout;

  private constructor(
    readonly child: ChildProcessWithoutNullStreams,
    lifetimeMs: number,
    private readonly ownDir: string | null,
  ) {
    child.stderr.on("data", (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString("utf8")).slice(-STDERR_TAIL);
      this.inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(this.stderrTail)?.[1] ?? null;
    });
    // A worker that dies while we write to it: the error is the case's outcome, not ours.
    child.stdin.on("error", () => {});
    child.stdout.on("error", () => {});
    this.lifetime = setTimeout(() => child.kill("SIGKILL"), lifetimeMs);
    this.lifetime.unref();
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        clearTimeout(this.lifetime);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** Spawns a worker and, for listening modes, waits for its address. */
  static async start(opts: WorkerOptions): Promise<Worker> {
    const ownDir = mkdtempSync(join(tmpdir(), "quiver-fuzz-"));
    const args = [`--max-old-space-size=${opts.heapMb}`, "--inspect=127.0.0.1:0", WORKER_JS];
    let prefix: string | null = null;
    if (opts.mode === "unix") {
      args.push("--unix", join(ownDir, "w.sock"));
      prefix = "UNIX:";
    } else if (opts.mode === "tcp") {
      args.push("--tcp", "127.0.0.1:0");
      prefix = "TCP:";
    } else if (opts.mode === "http") {
      // Sticky sessions on, so session tokens and `DELETE /__session__` meet the parser.
      args.push("--http", "--sticky");
      if (opts.tokenKeyHex !== undefined) args.push("--token-key", opts.tokenKeyHex);
      prefix = "PORT:";
    } else if (opts.mode === "ws") {
      args.push("--ws");
      prefix = "WS:";
    } else if (opts.mode === "stdio") {
      args.push("--no-shm");
    }
    const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] });
    const w = new Worker(child, opts.lifetimeMs ?? 30 * 60 * 1000, ownDir);
    if (prefix === null) return w;
    const announced = prefix;
    const address = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`worker (${opts.mode}) did not announce ${announced} within the start timeout`));
      }, opts.startTimeoutMs ?? 20_000);
      const onData = (d: Buffer) => {
        out += d.toString("utf8");
        const line = out.split("\n").find((l) => l.startsWith(announced) && out.includes("\n"));
        if (line !== undefined) {
          clearTimeout(timer);
          child.stdout.off("data", onData);
          resolve(line.slice(announced.length).trim());
        }
      };
      child.stdout.on("data", onData);
      void w.exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`worker (${opts.mode}) exited (${e.code ?? e.signal}) before announcing: ${w.stderr}`));
      });
    });
    // Keep reading stdout so the worker never blocks on it.
    child.stdout.resume();
    w.address = opts.mode === "http" ? `http://127.0.0.1:${address}` : address;
    return w;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  get stderr(): string {
    return this.stderrTail;
  }

  private status(): string | null {
    try {
      return readFileSync(`/proc/${this.pid}/status`, "utf8");
    } catch {
      return null;
    }
  }

  /** Current resident set (KiB), or null once gone. Updates the peak. */
  rssKb(): number | null {
    const s = this.status();
    if (s === null) return null;
    const rss = Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? Number.NaN);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? Number.NaN);
    if (Number.isFinite(hwm) && hwm > this.peakKb) this.peakKb = hwm;
    return Number.isFinite(rss) ? rss : null;
  }

  /** CPU time used so far, in clock ticks (utime + stime), or null once gone. */
  cpuTicks(): number | null {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return null;
    }
  }

  /**
   * Pauses the worker through its inspector and returns the top of its JavaScript stack (null
   * when the inspector does not answer within `timeoutMs`). Works on a worker spinning in
   * JavaScript; the worker is resumed afterwards.
   */
  async jsStack(timeoutMs = 3000): Promise<string[] | null> {
    const url = this.inspectorUrl;
    if (!this.alive || url === null) return null;
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      let done = false;
      const finish = (v: string[] | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          ws.send(JSON.stringify({ id: 3, method: "Debugger.resume" }));
        } catch {
          // Not connected.
        }
        setTimeout(() => ws.terminate(), 50);
        resolve(v);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      ws.on("error", () => finish(null));
      ws.on("open", () => {
        ws.send(JSON.stringify({ id: 1, method: "Debugger.enable" }));
        ws.send(JSON.stringify({ id: 2, method: "Debugger.pause" }));
      });
      const scripts = new Map<string, string>();
      ws.on("message", (data: Buffer) => {
        let msg: { method?: string; params?: { callFrames?: InspectorFrame[]; scriptId?: string; url?: string } };
        try {
          msg = JSON.parse(data.toString("utf8")) as typeof msg;
        } catch {
          return;
        }
        if (msg.method === "Debugger.scriptParsed" && msg.params?.scriptId !== undefined) {
          scripts.set(msg.params.scriptId, msg.params.url ?? "");
        }
        if (msg.method !== "Debugger.paused") return;
        const frames = (msg.params?.callFrames ?? []).slice(0, 40).map((f) => {
          const url = f.url || scripts.get(f.location.scriptId) || "";
          const file = url.replace(/^file:\/\//, "").replace(/^.*\/(dist|node_modules)\//, "$1/");
          return `${f.functionName || "(anonymous)"} (${file}:${f.location.lineNumber + 1})`;
        });
        finish(["(paused)", ...frames]);
      });
    });
  }

  /** Closes stdin (stdio workers see EOF). */
  endInput(): void {
    try {
      this.child.stdin.end();
    } catch {
      // Already closed.
    }
  }

  /** Kills the worker (SIGKILL) and waits for it; removes its scratch directory. */
  async kill(): Promise<ExitInfo> {
    this.rssKb();
    if (this.alive) this.child.kill("SIGKILL");
    const e = await this.exited;
    this.cleanup();
    return e;
  }

  /** Removes the scratch directory (the Unix socket) once the worker is gone. */
  cleanup(): void {
    if (this.ownDir !== null && !this.alive) rmSync(this.ownDir, { recursive: true, force: true });
  }
}

interface InspectorFrame {
  readonly functionName: string;
  readonly url: string;
  readonly location: { readonly scriptId: string; readonly lineNumber: number };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A short, stable description of how a worker died. */
export function crashSignature(exit: ExitInfo, stderr: string): string {
  if (/heap out of memory|Reached heap limit|allocation failed/i.test(stderr)) return "out of memory (V8 heap limit)";
  if (/RangeError: Array buffer allocation failed|Cannot create a Buffer larger/i.test(stderr)) {
    return "buffer allocation failed";
  }
  const firstError = /\n?([A-Za-z]*Error[^\n]*)/.exec(stderr)?.[1];
  if (exit.signal !== null) return `killed by ${exit.signal}${firstError ? `: ${firstError.slice(0, 200)}` : ""}`;
  return `exit ${exit.code}${firstError ? `: ${firstError.slice(0, 200)}` : ""}`;
}

/** The frames of the last error stack printed on stderr (an uncaught error), as the inspector's frames read. */
export function stderrStack(stderr: string): string[] | null {
  const lines = stderr.split("\n");
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^\s+at /.test(lines[i]!) && (i === 0 || !/^\s+at /.test(lines[i - 1]!))) {
      start = i;
      break;
    }
  }
  if (start < 0) return null;
  const frames: string[] = [];
  for (let i = start; i < lines.length && /^\s+at /.test(lines[i]!); i++) {
    const m = /^\s+at (?:async )?(?:(\S+) \()?(?:file:\/\/)?(.*?):(\d+):\d+\)?$/.exec(lines[i]!);
    if (m === null) continue;
    const file = m[2]!.replace(/^.*\/(dist|node_modules)\//, "$1/");
    // `Class.method` as the inspector names it: `method`.
    const fn = m[1]?.split(".").pop() ?? "(anonymous)";
    frames.push(`${fn} (${file}:${m[3]})`);
  }
  return [`(stderr) ${lines[start - 1]?.trim() ?? ""}`, ...frames];
}
