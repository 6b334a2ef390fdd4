/**
 * Shared set-up for the client suites: the reference Python worker (from `VGI_PYTHON`, set by
 * scripts/test.mjs, else the pinned venv; a missing one fails the suite), socket workers with a
 * ready line, and our own server over an in-memory pipe.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type ClientOptions, RpcClient } from "../../src/client/client.js";
import { RpcError } from "../../src/errors.js";
import type { RpcServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The reference's Python interpreter; throws (failing the test) when it is missing. */
export function python(): string {
  const p = process.env.VGI_PYTHON ?? join(ROOT, ".venv-conformance/bin/python");
  assert.ok(existsSync(p), `reference Python not found at ${p}: run \`npm test\` once to create .venv-conformance`);
  return p;
}

/** `vgi-rpc-conformance` (the reference conformance worker) as argv, next to the interpreter. */
export function referenceWorker(...args: string[]): [string, string[]] {
  const py = python();
  const script = join(dirname(py), "vgi-rpc-conformance");
  if (existsSync(script)) return [script, args];
  return [py, ["-c", "from vgi_rpc.conformance._cli import main; main()", ...args]];
}

/** The reference's native-client conformance worker (`vgi_rpc.conformance.client_worker`) as argv. */
export function clientWorker(...args: string[]): [string, string[]] {
  return [python(), ["-m", "vgi_rpc.conformance.client_worker", ...args]];
}

/** A temp socket path. */
export function socketPath(name: string): string {
  return join(mkdtempSync(join(tmpdir(), "quiver-client-")), name);
}

export interface SocketWorker {
  readonly child: ChildProcess;
  /** What the worker printed: `UNIX:<path>` or `TCP:<host>:<port>`. */
  readonly ready: string;
  stop(): Promise<void>;
}

/** Spawns a socket worker and waits (bounded) for its ready line. */
export async function spawnSocketWorker(
  cmd: string,
  args: readonly string[],
  timeoutMs = 15_000,
): Promise<SocketWorker> {
  const child = spawn(cmd, [...args], { stdio: ["ignore", "pipe", "inherit"] });
  const kill = setTimeout(() => child.kill("SIGKILL"), 60_000);
  kill.unref();
  const ready = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`worker did not print its address within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString("utf8");
      const m = /^(UNIX:.*|TCP:.*)$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!.trim());
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before printing its address`));
    });
  });
  return {
    child,
    ready,
    async stop() {
      clearTimeout(kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Our client on our own server over an in-memory pipe. */
export function memoryClient(
  server: RpcServer,
  opts: ClientOptions = {},
): { client: RpcClient; served: Promise<void> } {
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server).finally(() => pipe.server.close());
  const client = new RpcClient(
    { name: "memory", input: pipe.client.input, write: pipe.client.write, close: () => pipe.client.close() },
    opts,
  );
  return { client, served };
}

/** Awaits `p`, which must reject with an `RpcError`; returns it. */
export async function rejection(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the call to fail");
}

/** A bounded wait. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Our conformance worker (`src/bin/quiver-conformance.ts` under tsx) as argv. */
export function ourWorker(...args: string[]): [string, string[]] {
  return [process.execPath, ["--import", "tsx", join(ROOT, "src/bin/quiver-conformance.ts"), ...args]];
}
