/**
 * The launcher (the reference's `launcher.py`, `vgi-rpc launch`): one warm Unix-socket worker per
 * command, found by a hash of the command, its working directory and the `VGI_RPC_*` environment;
 * concurrent first callers serialise on a flock of `<hash>.lock` so exactly one worker is
 * spawned; each worker exits by itself after its idle timeout. The state directory layout, the
 * hash, the lock and the worker contract are the reference's, so either launcher starts either
 * language's workers and each finds the other's.
 *
 * The worker contract: accept `--unix PATH --idle-timeout SEC`, print exactly `UNIX:<path>` on
 * stdout once listening (lines before it are skipped) and nothing after it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import type { Socket } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { RpcClient } from "../../client/client.js";
import { frameworkError, RpcError } from "../../errors.js";
import { connectUnix, type SocketClientOptions } from "../socket/client.js";
import { acquireFileLock } from "./flock.js";

/** Hex characters of the hash that name a worker (64 bits, as the reference). */
const HASH_LEN = 16;
/** Stale entries the opportunistic GC after a launch considers at most (the reference's bound). */
const GC_LIMIT = 16;
/** The liveness probe's connect timeout, in ms. */
const PROBE_TIMEOUT_MS = 2_000;
/** Longest stdout line of a starting worker the launcher keeps; longer ones are noise, dropped. */
const MAX_LINE_CHARS = 64 * 1024;
/** Pauses before re-probing a refused socket, in ms (a full accept queue may look refused). */
const PROBE_REFUSED_BACKOFF_MS = [50, 100, 200] as const;

export interface LaunchOptions {
  /** The worker command and its arguments; `--unix PATH --idle-timeout SEC` are appended. Required, non-empty. */
  readonly argv: readonly string[];
  /** Serve on this socket path instead of `<stateDir>/<hash>.sock` (its lock is `PATH.lock`; no `.meta`, not listed by status or GC). Default: none. */
  readonly socketPath?: string;
  /** Seconds the worker stays up with no connection, passed as `--idle-timeout`. Default: 300. */
  readonly idleTimeoutSeconds?: number;
  /** How long to wait for the per-hash lock, in ms. Default: 30 000. */
  readonly lockTimeoutMs?: number;
  /** How long the worker may take to print `UNIX:<path>`, in ms. Default: 60 000. */
  readonly startupTimeoutMs?: number;
  /** Append the worker's stderr to this file. Default: discarded. */
  readonly workerStderr?: string;
  /** The state directory. Default: `defaultStateDir()`. */
  readonly stateDir?: string;
  /** The working directory the hash is taken in and the worker runs in. Default: this process's. */
  readonly cwd?: string;
  /** The environment the hash reads `VGI_RPC_*` from and the worker gets. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** The flock(1) executable taking the lock. Default: `flock` on PATH. */
  readonly flockCommand?: string;
}

/** One worker the state directory knows of (`status`). */
export interface LauncherStatusRow {
  readonly hash: string;
  /** The command from `<hash>.meta`, or empty when unreadable. */
  readonly cmd: readonly string[];
  readonly cwd: string;
  readonly socket: string;
  /** Seconds since the epoch when it was launched, or null when unknown. */
  readonly startedAt: number | null;
  /** Whether something listens on its socket now. */
  readonly alive: boolean;
}

/** What a GC pass looks at. */
export interface LauncherGcOptions {
  /** Consider at most this many entries. Default: all. */
  readonly limit?: number;
  /** Leave this hash alone (a launcher's own entry). Default: none. */
  readonly excludeHash?: string;
  /** The flock(1) executable. Default: `flock` on PATH. */
  readonly flockCommand?: string;
}

/** What a GC pass did. */
export interface LauncherGcResult {
  /** Hashes whose dead worker's lock, socket and meta files were removed. */
  readonly cleaned: readonly string[];
  /** Hashes whose lock is held (a launch in progress), left alone. */
  readonly skippedInUse: readonly string[];
}

/**
 * The per-user state directory: `$XDG_RUNTIME_DIR/vgi-rpc` when set, else `<tmpdir>/vgi-rpc-<euid>`
 * (the reference's choice), created 0700; refused when another user owns it.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  const uid = process.geteuid?.() ?? 0;
  const dir = xdg ? join(xdg, "vgi-rpc") : join(tmpdir(), `vgi-rpc-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dir, 0o700);
  } catch {
    // As the reference: tightening is best effort; ownership is what is checked.
  }
  if (process.geteuid !== undefined && statSync(dir).uid !== process.geteuid()) {
    throw frameworkError("transport_error", `state directory ${dir} is not owned by the current user`);
  }
  return dir;
}

/** JSON as Python's `json.dumps(..., sort_keys=True, separators=(",", ":"))` writes it (ASCII only). */
function pythonJson(value: unknown): string {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    return `{${keys.map((k) => `${pythonJson(k)}:${pythonJson(obj[k])}`).join(",")}}`;
  }
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(",")}]`;
  // ensure_ascii: everything outside printable ASCII as \uXXXX (UTF-16 units, lower-case hex).
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The worker's identity: 16 hex characters of SHA-256 over the canonical JSON of its argv, the
 * working directory and the `VGI_RPC_*` environment, byte for byte the reference's `compute_hash`.
 */
export function launcherHash(
  argv: readonly string[],
  cwd: string = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): string {
  const vgi: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith("VGI_RPC_") && v !== undefined) vgi[k] = v;
  const payload = pythonJson({ cmd: [...argv], cwd, env: vgi });
  return createHash("sha256").update(payload, "utf8").digest("hex").slice(0, HASH_LEN);
}

/** Whether something listens on the Unix socket `path` (a full accept queue counts as alive). */
export async function probeSocket(path: string): Promise<boolean> {
  for (let attempt = 0; attempt <= PROBE_REFUSED_BACKOFF_MS.length; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, PROBE_REFUSED_BACKOFF_MS[attempt - 1]));
    const outcome = await new Promise<"alive" | "refused" | "dead">((done) => {
      const s: Socket = connect({ path });
      const timer = setTimeout(() => {
        s.destroy();
        done("dead");
      }, PROBE_TIMEOUT_MS);
      s.once("connect", () => {
        clearTimeout(timer);
        s.destroy();
        done("alive");
      });
      s.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        s.destroy();
        done(err.code === "EAGAIN" ? "alive" : err.code === "ECONNREFUSED" ? "refused" : "dead");
      });
    });
    if (outcome !== "refused") return outcome === "alive";
  }
  return false;
}

/** Refuses to touch a path that exists and is not a socket (it may be user data or a symlink). */
function requireSocketOrAbsent(path: string): boolean {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return false;
  }
  if (!isSocket) throw frameworkError("transport_error", `refusing to replace pre-existing non-socket path: ${path}`);
  return true;
}

/** Spawns the worker and waits for its `UNIX:<path>` line. */
async function spawnWorker(opts: LaunchOptions, sockPath: string): Promise<ChildProcess> {
  const [cmd, ...args] = opts.argv;
  const idle = opts.idleTimeoutSeconds ?? 300;
  const startupMs = opts.startupTimeoutMs ?? 60_000;
  const stderrFd = opts.workerStderr === undefined ? null : openSync(opts.workerStderr, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd!, [...args, "--unix", sockPath, "--idle-timeout", String(idle)], {
      stdio: ["ignore", "pipe", stderrFd ?? "ignore"],
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
    });
  } finally {
    if (stderrFd !== null) closeSync(stderrFd);
  }
  const expected = `UNIX:${sockPath}`;
  const stdout = child.stdout!;
  try {
    await new Promise<void>((ready, fail) => {
      let pending = "";
      let done = false;
      const finish = (err: Error | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        stdout.removeListener("data", onData);
        if (err === null) ready();
        else fail(err);
      };
      const timer = setTimeout(
        () => finish(frameworkError("transport_error", `worker did not print UNIX:<path> within ${startupMs} ms`)),
        startupMs,
      );
      /** True while the rest of an over-long line is being dropped. */
      let skipping = false;
      const onData = (chunk: string) => {
        pending += chunk;
        for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
          const line = pending.slice(0, nl).replace(/\r$/, "");
          pending = pending.slice(nl + 1);
          const tail = skipping;
          skipping = false;
          // Lines before the readiness line are a worker's import-time noise: skipped.
          if (tail || !line.startsWith("UNIX:")) continue;
          finish(
            line === expected
              ? null
              : frameworkError(
                  "transport_error",
                  `worker bound to an unexpected path: '${line}' (expected '${expected}')`,
                ),
          );
          return;
        }
        // A line without end is noise too: dropped as it comes, so it cannot grow without bound.
        if (pending.length > MAX_LINE_CHARS) {
          pending = "";
          skipping = true;
        }
      };
      stdout.setEncoding("utf8");
      stdout.on("data", onData);
      child.once("error", (err) =>
        finish(frameworkError("transport_error", `cannot start worker '${cmd}': ${err.message}`, { cause: err })),
      );
      child.once("exit", (code, signal) =>
        finish(frameworkError("transport_error", `worker exited before readiness (rc=${code ?? signal})`)),
      );
    });
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    throw err;
  }
  // Whatever a worker breaking the contract prints later is read and dropped, so it never blocks
  // on a full pipe; neither the pipe nor the child keeps this process alive.
  stdout.on("data", () => {});
  (stdout as unknown as Socket).unref?.();
  child.unref();
  return child;
}

/** The `(lock, socket, meta)` paths of a hash in `stateDir`. */
function entryPaths(stateDir: string, hash: string) {
  return {
    lock: join(stateDir, `${hash}.lock`),
    sock: join(stateDir, `${hash}.sock`),
    meta: join(stateDir, `${hash}.meta`),
  };
}

/**
 * Makes sure a worker for `opts.argv` is listening and returns its socket path: the running one
 * when its socket answers, else one spawned under the per-hash lock. Fails with
 * `transport_error` when the lock is not had in time or the worker does not come up.
 */
export async function launchWorker(opts: LaunchOptions): Promise<string> {
  if (opts.argv.length === 0) throw new RangeError("argv must name the worker command");
  const stateDir = opts.stateDir ?? defaultStateDir(opts.env);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const cwd = opts.cwd ?? process.cwd();
  let lockPath: string;
  let sockPath: string;
  let metaPath: string | null;
  let hash: string | null;
  if (opts.socketPath !== undefined) {
    sockPath = resolve(opts.socketPath);
    lockPath = `${sockPath}.lock`;
    metaPath = null;
    hash = null;
  } else {
    hash = launcherHash(opts.argv, cwd, opts.env ?? process.env);
    const paths = entryPaths(stateDir, hash);
    lockPath = paths.lock;
    sockPath = paths.sock;
    metaPath = paths.meta;
  }
  const lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
  const lock = await acquireFileLock(lockPath, lockTimeoutMs, opts.flockCommand);
  if (lock === null)
    throw frameworkError("transport_error", `failed to acquire ${lockPath} within ${lockTimeoutMs} ms`);
  try {
    const present = requireSocketOrAbsent(sockPath);
    if (present && (await probeSocket(sockPath))) return sockPath;
    if (present) unlinkSync(sockPath);
    if (metaPath !== null) {
      const meta = {
        cmd: [...opts.argv],
        cwd,
        socket: sockPath,
        started_at: Date.now() / 1000,
        launcher_pid: process.pid,
      };
      try {
        writeFileSync(metaPath, JSON.stringify(meta, null, 2));
      } catch {
        // Best effort, as the reference: the meta file only feeds status and GC.
      }
    }
    await spawnWorker(opts, sockPath);
    return sockPath;
  } finally {
    lock.release();
    if (hash !== null) {
      const flock = opts.flockCommand === undefined ? {} : { flockCommand: opts.flockCommand };
      await gcStateDir(stateDir, { limit: GC_LIMIT, excludeHash: hash, ...flock }).catch(() => {});
    }
  }
}

/**
 * Removes the lock, socket and meta files of every worker in `stateDir` that is gone (its socket
 * does not answer); entries whose lock is held are skipped.
 */
export async function gcStateDir(stateDir: string, opts: LauncherGcOptions = {}): Promise<LauncherGcResult> {
  const cleaned: string[] = [];
  const skippedInUse: string[] = [];
  const metas = readdirSync(stateDir)
    .filter((f) => f.endsWith(".meta"))
    .sort();
  let seen = 0;
  for (const file of metas) {
    if (opts.limit !== undefined && seen >= opts.limit) break;
    seen++;
    const hash = file.slice(0, -".meta".length);
    if (hash === opts.excludeHash) continue;
    const paths = entryPaths(stateDir, hash);
    const lock = await acquireFileLock(paths.lock, 0, opts.flockCommand);
    if (lock === null) {
      skippedInUse.push(hash);
      continue;
    }
    try {
      if (await probeSocket(paths.sock)) continue;
      for (const p of [paths.sock, paths.meta, paths.lock]) {
        try {
          unlinkSync(p);
        } catch {
          // Already gone.
        }
      }
      cleaned.push(hash);
    } finally {
      lock.release();
    }
  }
  return { cleaned, skippedInUse };
}

/** One row per worker `stateDir` has a `.meta` file for, with a liveness probe; takes no lock. */
export async function launcherStatus(stateDir: string): Promise<LauncherStatusRow[]> {
  const rows: LauncherStatusRow[] = [];
  for (const file of readdirSync(stateDir)
    .filter((f) => f.endsWith(".meta"))
    .sort()) {
    const hash = file.slice(0, -".meta".length);
    const { sock, meta } = entryPaths(stateDir, hash);
    let parsed: Record<string, unknown> = {};
    try {
      const value: unknown = JSON.parse(readFileSync(meta, "utf8"));
      if (value !== null && typeof value === "object") parsed = value as Record<string, unknown>;
    } catch {
      // A corrupt meta file still lists the entry, with what cannot be read left empty.
    }
    rows.push({
      hash,
      cmd: Array.isArray(parsed.cmd) ? parsed.cmd.map(String) : [],
      cwd: typeof parsed.cwd === "string" ? parsed.cwd : "",
      socket: sock,
      startedAt: typeof parsed.started_at === "number" ? parsed.started_at : null,
      alive: await probeSocket(sock),
    });
  }
  return rows;
}

/**
 * Errno codes that mean the socket has no live worker behind it any more (a connect timeout is not
 * among them: the worker may only be busy).
 */
const STALE = new Set(["ECONNREFUSED", "ECONNRESET", "ENOENT"]);

/**
 * Launches (or finds) the worker and connects to it. A worker can exit (its idle timeout) between
 * the launch's probe and the connect: a connect failing because nothing listens any more
 * relaunches once and connects again (the reference's `resolve_and_connect`). Only the connect
 * is retried, never a call.
 */
export async function connectLaunched(opts: LaunchOptions, clientOpts: SocketClientOptions = {}): Promise<RpcClient> {
  for (let attempt = 0; ; attempt++) {
    const path = await launchWorker(opts);
    try {
      return await connectUnix(path, clientOpts);
    } catch (err) {
      const code = err instanceof RpcError ? (err.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
      if (code === undefined || !STALE.has(code) || attempt > 0) throw err;
    }
  }
}
