/**
 * The launcher against real workers and the reference's own launcher: the hash is the
 * reference's byte for byte, the lock serialises against Python's `filelock`, concurrent first
 * callers from both launchers spawn exactly one worker, `vgi-rpc launch` starts quiver's worker
 * and the reference's client calls it, quiver's launcher starts the reference's worker, idle
 * workers exit after their timeout, and `--status`/`--gc` read the same state directory.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { acquireFileLock } from "../../src/transports/launch/flock.js";
import {
  connectLaunched,
  gcStateDir,
  launcherHash,
  launcherStatus,
  launchWorker,
} from "../../src/transports/launch/index.js";
import { connectUnix } from "../../src/transports/socket/client.js";
import { python } from "../client/helpers.js";
import { alive, until } from "../helpers/processes.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const QUIVER_WORKER = [process.execPath, "--import", "tsx", join(ROOT, "src/bin/quiver-conformance.ts")];
const QUIVER_CLI = [process.execPath, "--import", "tsx", join(ROOT, "src/bin/quiver.ts")];
const REFERENCE_WORKER = join(ROOT, "test/fixtures/launched_reference_worker.py");
const T = { timeout: 60_000 };

const dirs: string[] = [];
const pidFiles: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "quiver-launch-"));
  dirs.push(d);
  return d;
}
/** `argv` wrapped so that each start appends the worker's pid (kept by `exec`) to a file. */
function counted(argv: readonly string[], dir: string): { argv: string[]; pids: () => number[] } {
  const file = join(dir, "starts");
  pidFiles.push(file);
  return {
    argv: ["sh", "-c", `echo $$ >> '${file}'; exec "$@"`, "sh", ...argv],
    pids: () => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map(Number) : []),
  };
}
after(() => {
  for (const f of pidFiles) {
    if (!existsSync(f)) continue;
    for (const pid of readFileSync(f, "utf8").trim().split("\n").filter(Boolean).map(Number)) {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(argv: readonly string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const vgiRpc = () => join(dirname(python()), "vgi-rpc");

test("the worker hash is the reference's compute_hash, byte for byte", T, async () => {
  const argv = ["python", "-m", "wörker", 'a"b\\c\n\u007f😀'];
  const env = { VGI_RPC_B: "1", VGI_RPC_A: "x\ty", OTHER: "z" };
  const script = `import json,sys\nfrom vgi_rpc.launcher import compute_hash\nprint(compute_hash(json.loads(sys.argv[1])))`;
  const r = await new Promise<string>((resolve, reject) => {
    execFile(
      python(),
      ["-c", script, JSON.stringify(argv)],
      { cwd: tmpdir(), env: { ...env, PATH: process.env.PATH ?? "" }, timeout: 20_000, encoding: "utf8" },
      (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
    );
  });
  assert.equal(launcherHash(argv, tmpdir(), env), r);
});

test("quiver's lock and the reference's filelock exclude each other", T, async () => {
  const dir = tempDir();
  const lockPath = join(dir, "x.lock");
  const holder = spawn(
    python(),
    [
      "-c",
      "import sys,time\nfrom filelock import FileLock\nl=FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(1.5); l.release()",
      lockPath,
    ],
    { stdio: ["ignore", "pipe", "inherit"], timeout: 20_000 },
  );
  await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
  assert.equal(await acquireFileLock(lockPath, 0), null);
  assert.equal(await acquireFileLock(lockPath, 200), null);
  const started = performance.now();
  const lock = await acquireFileLock(lockPath, 10_000);
  assert.ok(lock !== null);
  assert.ok(performance.now() - started > 500, "had to wait for the Python holder");
  // Held by us now: Python cannot take it.
  const py = await run([
    python(),
    "-c",
    "import sys\nfrom filelock import FileLock, Timeout\ntry:\n  FileLock(sys.argv[1], timeout=0.2).acquire(); print('got')\nexcept Timeout: print('busy')",
    lockPath,
  ]);
  assert.equal(py.stdout.trim(), "busy");
  lock.release();
});

test(
  "concurrent first callers through both launchers spawn exactly one quiver worker, which the reference's client calls",
  T,
  async () => {
    const state = tempDir();
    const worker = counted(QUIVER_WORKER, state);
    const opts = ["--state-dir", state, "--idle-timeout", "30"];
    const results = await Promise.all([
      run([...QUIVER_CLI, "launch", ...opts, "--", ...worker.argv]),
      run([...QUIVER_CLI, "launch", ...opts, "--", ...worker.argv]),
      run([...QUIVER_CLI, "launch", ...opts, "--", ...worker.argv]),
      run([vgiRpc(), "launch", ...opts, "--", ...worker.argv]),
    ]);
    const hash = launcherHash(worker.argv);
    const expected = `UNIX:${join(state, `${hash}.sock`)}`;
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${expected}\n`);
    }
    assert.equal(worker.pids().length, 1, "exactly one worker spawned");
    const path = expected.slice("UNIX:".length);

    // The reference's client calls quiver's launched worker.
    const called = await run([vgiRpc(), "--unix", path, "call", "echo_string", "value=hi"]);
    assert.equal(called.code, 0, called.stderr);
    assert.match(called.stdout, /"hi"/);

    // --status from both launchers sees it alive; a later launch reuses it.
    const status = await run([...QUIVER_CLI, "launch", "--status", "--state-dir", state]);
    assert.match(status.stdout, new RegExp(`^${hash}  alive  started `));
    const refStatus = await run([vgiRpc(), "launch", "--status", "--state-dir", state]);
    assert.match(refStatus.stdout, new RegExp(`^${hash}  alive`));
    assert.equal(await launchWorker({ argv: worker.argv, stateDir: state }), path);
    assert.equal(worker.pids().length, 1);
    process.kill(worker.pids()[0]!, "SIGTERM");
  },
);

test("a launched quiver worker exits after its idle timeout, and --gc then removes its files", T, async () => {
  const state = tempDir();
  const worker = counted(QUIVER_WORKER, state);
  const client = await connectLaunched({ argv: worker.argv, stateDir: state, idleTimeoutSeconds: 1 });
  const [pid] = worker.pids();
  assert.equal(await proxy(client, ConformanceService).echo_string({ value: "warm" }), "warm");
  // Connected: it stays past its idle timeout.
  await new Promise((r) => setTimeout(r, 1_500));
  assert.ok(alive(pid!));
  await client.close();
  const closed = performance.now();
  await until("the idle worker to exit", () => !alive(pid!));
  assert.ok(performance.now() - closed >= 900, "not before its idle timeout");
  const hash = launcherHash(worker.argv);
  assert.equal(existsSync(join(state, `${hash}.sock`)), false);
  const [row] = await launcherStatus(state);
  assert.equal(row?.alive, false);
  assert.deepEqual(row?.cmd, worker.argv);
  const gc = await run([...QUIVER_CLI, "launch", "--gc", "--state-dir", state]);
  assert.equal(gc.stdout, `cleaned 1: ${hash}\n`);
  assert.equal(existsSync(join(state, `${hash}.meta`)), false);
  assert.deepEqual(await gcStateDir(state), { cleaned: [], skippedInUse: [] });
});

test("quiver's launcher starts the reference's worker and quiver's client calls it", T, async () => {
  const state = tempDir();
  const worker = counted([python(), REFERENCE_WORKER], state);
  const client = await connectLaunched({ argv: worker.argv, stateDir: state, idleTimeoutSeconds: 1 });
  try {
    assert.equal(await proxy(client, ConformanceService).echo_string({ value: "from quiver" }), "from quiver");
  } finally {
    await client.close();
  }
  // Found again, not spawned again, while it lives.
  const path = await launchWorker({ argv: worker.argv, stateDir: state, idleTimeoutSeconds: 1 });
  const again = await connectUnix(path);
  assert.equal(await proxy(again, ConformanceService).echo_string({ value: "again" }), "again");
  await again.close();
  assert.equal(worker.pids().length, 1);
  await until("the reference worker to exit after its idle timeout", () => !alive(worker.pids()[0]!));
});

test("quiver launch refuses a missing worker command and reports a worker that never gets ready", T, async () => {
  const state = tempDir();
  const none = await run([...QUIVER_CLI, "launch", "--state-dir", state]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /missing worker command/);
  const log = join(state, "worker.log");
  const bad = await run([
    ...QUIVER_CLI,
    "launch",
    "--state-dir",
    state,
    "--worker-stderr",
    log,
    "--",
    "sh",
    "-c",
    "echo noise; echo complaint >&2; exit 3",
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /worker exited before readiness \(rc=3\)/);
  assert.equal(readFileSync(log, "utf8"), "complaint\n");
});

test(
  "the launcher skips noise before the UNIX line, however long, and refuses a worker bound elsewhere",
  T,
  async () => {
    const state = tempDir();
    // $1 $2 are the appended --unix PATH.
    const noisy = ["sh", "-c", 'head -c 300000 /dev/zero | tr "\\0" U; echo; echo "UNIX:$2"; sleep 2', "sh"];
    const path = await launchWorker({ argv: noisy, stateDir: state, startupTimeoutMs: 10_000 });
    assert.equal(path, join(state, `${launcherHash(noisy)}.sock`));
    const elsewhere = ["sh", "-c", 'echo "UNIX:/elsewhere.sock"; sleep 2', "sh"];
    await assert.rejects(launchWorker({ argv: elsewhere, stateDir: state }), /worker bound to an unexpected path/);
  },
);

test("--socket serves on the path given, locked beside it, and not listed by --status", T, async () => {
  const state = tempDir();
  const worker = counted(QUIVER_WORKER, state);
  const path = join(state, "explicit.sock");
  const r = await run([...QUIVER_CLI, "launch", "--state-dir", state, "--socket", path, "--", ...worker.argv]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `UNIX:${path}\n`);
  assert.ok(existsSync(`${path}.lock`));
  const client = await connectUnix(path);
  assert.equal(await proxy(client, ConformanceService).echo_string({ value: "here" }), "here");
  await client.close();
  assert.deepEqual(await launcherStatus(state), []);
  process.kill(worker.pids()[0]!, "SIGTERM");
});
