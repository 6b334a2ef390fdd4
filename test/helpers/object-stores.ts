/**
 * Real object-store servers for the storage backend tests, started on loopback by the tests and
 * stopped after: moto's S3-compatible server (`moto[server]`, in the pinned Python environment
 * that `npm test` creates) and the GCS emulator fake-gcs-server (built into .tools/bin by
 * `scripts/tools.mjs`, which `npm test` runs). Each is health-checked before use. A missing one
 * fails the test with how to install it: these tests never skip.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const STARTUP_MS = 60_000;

/** A running store: its base URL; `stop` ends the process (and waits for it). */
export interface LocalStore {
  readonly endpoint: string;
  stop(): Promise<void>;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
}

/** Polls `url` until it answers `ok` (or the process exits, or the startup time runs out). */
async function healthy(child: ChildProcess, url: string, what: string, output: () => string): Promise<void> {
  const until = Date.now() + STARTUP_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${what} was not healthy at ${url} within ${STARTUP_MS} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Spawns `cmd`, collecting its output (for failure messages), killed after `lifetimeMs` at the latest. */
function start(cmd: string, args: readonly string[], lifetimeMs: number) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const collect = (b: Buffer) => {
    output = (output + b.toString("utf8")).slice(-8_000);
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const timer = setTimeout(() => child.kill("SIGKILL"), lifetimeMs);
  timer.unref();
  child.once("exit", () => clearTimeout(timer));
  return { child, output: () => output };
}

/**
 * moto's S3 server on a free loopback port (`moto_server -p 0` prints the port it took). Fails
 * with install instructions when the pinned Python environment lacks it.
 */
export async function startMoto(lifetimeMs = 10 * 60_000): Promise<LocalStore> {
  const bin = join(root, ".venv-conformance", "bin", "moto_server");
  if (!existsSync(bin)) {
    throw new Error(
      `moto_server is not installed (${bin}).\n` +
        "Fix: `node scripts/python-env.mjs` (or `npm test`) creates .venv-conformance with moto[server], pinned in scripts/python-env.mjs.",
    );
  }
  const { child, output } = start(bin, ["-H", "127.0.0.1", "-p", "0"], lifetimeMs);
  const until = Date.now() + STARTUP_MS;
  let port: string | undefined;
  while (port === undefined) {
    port = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(output())?.[1];
    if (port !== undefined) break;
    if (child.exitCode !== null || Date.now() > until) {
      await stopper(child)();
      throw new Error(`moto_server did not say which port it took:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    // GET / is S3's ListBuckets.
    await healthy(child, `${endpoint}/`, "moto_server", output);
  } catch (err) {
    await stopper(child)();
    throw err;
  }
  return { endpoint, stop: stopper(child) };
}

/** A port free at the moment of asking (fake-gcs-server and redis-server cannot report one they chose). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * fake-gcs-server (in memory, plain HTTP) on a free loopback port: `$QUIVER_FAKE_GCS_SERVER`, or
 * the one `node scripts/tools.mjs` builds into .tools/bin. Fails with how to build it when absent.
 */
export async function startFakeGcs(lifetimeMs = 10 * 60_000): Promise<LocalStore> {
  const bin = process.env.QUIVER_FAKE_GCS_SERVER ?? join(root, ".tools", "bin", "fake-gcs-server");
  if (!existsSync(bin)) {
    throw new Error(
      `fake-gcs-server is not installed (${bin}).\n` +
        "Fix: `node scripts/tools.mjs` (or `npm test`) builds it with `go install github.com/fsouza/fake-gcs-server@v1.56.1` " +
        "into .tools/bin (it needs Go: https://go.dev/dl/); or point QUIVER_FAKE_GCS_SERVER at a binary.",
    );
  }
  // The port is chosen before the server binds it: another process may take it in between, so a
  // server that exits at once is tried again on another port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const args = ["-backend", "memory", "-scheme", "http", "-host", "127.0.0.1", "-port", String(port)];
    args.push("-public-host", `127.0.0.1:${port}`, "-external-url", endpoint, "-log-level", "warn");
    const { child, output } = start(bin, args, lifetimeMs);
    try {
      await healthy(child, `${endpoint}/storage/v1/b`, "fake-gcs-server", output);
      return { endpoint, stop: stopper(child) };
    } catch (err) {
      await stopper(child)();
      if (attempt >= 3) throw err;
    }
  }
}

/** An HTTP endpoint that accepts connections and never answers: an object store that stopped answering. */
export async function silentEndpoint(): Promise<{ readonly url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
