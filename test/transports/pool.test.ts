/**
 * The worker pool with real subprocess workers: reuse, spawning beside a busy worker, max-idle
 * and idle-timeout eviction, a worker that crashes in a call or dies idle, a stream left open,
 * a shared-memory segment per borrow, stderr to the logger or a file, `maxActive`, and closing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { RpcError } from "../../src/errors.js";
import { createWorkerPool, type WorkerPool, type WorkerPoolOptions } from "../../src/transports/pool/index.js";
import { PoolProbe } from "../fixtures/pool-protocol.js";
import { alive, until } from "../helpers/processes.js";

const WORKER = fileURLToPath(new URL("../fixtures/pool-worker.ts", import.meta.url));
const CMD = process.execPath;
const ARGS = ["--import", "tsx", WORKER];
const T = { timeout: 30_000 };

const pools: WorkerPool[] = [];
function pool(opts: WorkerPoolOptions = {}): WorkerPool {
  const p = createWorkerPool({ stderr: "ignore", exitTimeoutMs: 2_000, ...opts });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

test("a returned worker serves the next borrow of the same command, and a busy one is not shared", T, async () => {
  const p = pool();
  const first = await p.borrow(CMD, ARGS);
  assert.equal(first.reused, false);
  const pid = Number(await first.proxy(PoolProbe).pid());
  assert.equal(pid, first.pid);
  // Borrowed meanwhile: a second worker.
  const second = await p.borrow(CMD, ARGS);
  assert.notEqual(second.pid, pid);
  await first.release();
  await second.release();
  assert.deepEqual(
    { ...p.metrics },
    {
      borrows: 2,
      spawns: 2,
      reuses: 0,
      returns: 2,
      discards: 0,
      evictionsIdle: 0,
      evictionsMax: 0,
      idle: 2,
      active: 0,
    },
  );
  // The most recently returned worker is reused first.
  const again = await p.withWorker(PoolProbe, CMD, ARGS, async (probe, w) => {
    assert.equal(w.reused, true);
    assert.equal(p.metrics.active, 1);
    return Number(await probe.pid());
  });
  assert.equal(again, second.pid);
  assert.equal(p.metrics.reuses, 1);
  assert.equal(p.metrics.spawns, 2);
  // A proxy kept past its borrow refuses calls instead of reaching the next borrower.
  await assert.rejects(
    first.proxy(PoolProbe).pid(),
    (e: unknown) => e instanceof RpcError && e.kind === "transport_error",
  );
});

test(
  "returning a worker beyond maxIdle ends the oldest idle one; an idle worker is ended after idleTimeoutMs",
  T,
  async () => {
    const p = pool({ maxIdle: 1, idleTimeoutMs: 1_000, reapIntervalMs: 50 });
    const a = await p.borrow(CMD, ARGS);
    const b = await p.borrow(CMD, ARGS);
    await a.release();
    await b.release();
    assert.equal(p.metrics.evictionsMax, 1);
    assert.equal(p.metrics.idle, 1);
    const returned = performance.now();
    await until("the evicted worker to exit", () => !alive(a.pid));
    await until("the idle worker to be evicted", () => p.metrics.evictionsIdle === 1);
    assert.ok(performance.now() - returned >= 1_000);
    assert.equal(p.metrics.idle, 0);
    await until("the idle worker to exit", () => !alive(b.pid));
  },
);

test("a worker that dies in a call is discarded, and so is one that died while idle", T, async () => {
  const p = pool();
  const w = await p.borrow(CMD, ARGS);
  await assert.rejects(
    w.proxy(PoolProbe).crash(),
    (e: unknown) => e instanceof RpcError && e.kind === "transport_error",
  );
  await w.release();
  assert.equal(p.metrics.discards, 1);
  assert.equal(p.metrics.idle, 0);

  const v = await p.borrow(CMD, ARGS);
  assert.equal(v.reused, false);
  await v.release();
  process.kill(v.pid, "SIGKILL");
  await until("the idle worker to die", () => !alive(v.pid));
  const u = await p.borrow(CMD, ARGS);
  assert.notEqual(u.pid, v.pid);
  assert.equal(u.reused, false);
  assert.equal(Number(await u.proxy(PoolProbe).pid()), u.pid);
  await u.release();
  const m = p.metrics;
  assert.equal(m.discards, 2);
  assert.equal(m.spawns, 3);
  assert.equal(m.reuses, 0);
});

test("a worker returned with a stream left open, or a call unanswered, is ended instead of reused", T, async () => {
  const p = pool();
  const w = await p.borrow(CMD, ARGS);
  const stream = await w.proxy(PoolProbe).count({ n: 100n });
  const it = stream[Symbol.asyncIterator]();
  assert.deepEqual((await it.next()).value, { i: 0n });
  await w.release();
  assert.equal(p.metrics.discards, 1);
  assert.equal(p.metrics.idle, 0);
  await until("the abandoned worker to exit", () => !alive(w.pid));

  // A stream read to its end leaves the worker reusable.
  const v = await p.borrow(CMD, ARGS);
  const seen: bigint[] = [];
  for await (const row of await v.proxy(PoolProbe).count({ n: 3n })) seen.push(row.i);
  assert.deepEqual(seen, [0n, 1n, 2n]);
  // A call still waiting for its answer when the worker is returned.
  await v.release();
  assert.equal(p.metrics.idle, 1);
  const u = await p.borrow(CMD, ARGS);
  assert.equal(u.pid, v.pid);
  const pending = u.proxy(PoolProbe).sleep({ ms: 5_000n });
  await u.release();
  await assert.rejects(pending);
  assert.equal(p.metrics.discards, 2);
  assert.equal(p.metrics.idle, 0);
});

test("each borrow gets its own shared-memory segment, unlinked when the worker is returned", T, async (t) => {
  const p = pool({ shmSize: 4 * 1024 * 1024 });
  const w = await p.borrow(CMD, ARGS);
  if (w.shm === null) {
    await w.release();
    t.skip("shared memory is not available here");
    return;
  }
  const first = w.shm as unknown as { name: string; path?: string };
  const big = new Uint8Array(1024 * 1024).fill(7);
  assert.equal(await w.proxy(PoolProbe).size({ data: big }), BigInt(big.byteLength));
  await w.release();
  if (first.path !== undefined) assert.equal(existsSync(first.path), false);

  const v = await p.borrow(CMD, ARGS);
  assert.equal(v.pid, w.pid);
  const second = v.shm as unknown as { name: string };
  assert.notEqual(second.name, first.name);
  assert.equal(await v.proxy(PoolProbe).size({ data: big }), BigInt(big.byteLength));
  await v.release();
});

test("worker stderr goes to the pool's logger, one record per line, or to a file", T, async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const p = pool({ stderr: "log", logger: pino({ level: "info" }, sink) });
  const pid = await p.withWorker(PoolProbe, CMD, ARGS, async (probe, w) => {
    await probe.say({ line: "hello from the worker" });
    return w.pid;
  });
  await until("the stderr line", () => lines.some((l) => l.msg === "hello from the worker"));
  const rec = lines.find((l) => l.msg === "hello from the worker")!;
  assert.equal(rec.worker_pid, pid);
  assert.equal(rec.level, 30);
  assert.ok(lines.some((l) => l.msg === "spawned worker" && l.worker_pid === pid));

  const dir = mkdtempSync(join(tmpdir(), "quiver-pool-"));
  try {
    const file = join(dir, "workers.log");
    const q = pool({ stderr: { file } });
    await q.withWorker(PoolProbe, CMD, ARGS, (probe) => probe.say({ line: "into the file" }));
    await q.close();
    assert.match(readFileSync(file, "utf8"), /into the file\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("maxActive makes a borrow wait for a return, and gives up after borrowTimeoutMs", T, async () => {
  const p = pool({ maxActive: 1, borrowTimeoutMs: 300 });
  const w = await p.borrow(CMD, ARGS);
  await assert.rejects(p.borrow(CMD, ARGS), (e: unknown) => e instanceof RpcError && /no worker free/.test(e.message));
  const waiting = p.borrow(CMD, ARGS);
  setTimeout(() => void w.release(), 50);
  const v = await waiting;
  assert.equal(v.pid, w.pid);
  assert.equal(p.metrics.active, 1);
  await v.release();
  assert.equal(p.metrics.active, 0);
});

test("closing the pool ends idle and borrowed workers and refuses later borrows", T, async () => {
  const p = pool();
  const idle = await p.borrow(CMD, ARGS);
  const busy = await p.borrow(CMD, ARGS);
  await idle.release();
  await p.close();
  assert.equal(alive(idle.pid), false);
  assert.equal(alive(busy.pid), false);
  await assert.rejects(busy.proxy(PoolProbe).pid());
  await busy.release();
  await assert.rejects(p.borrow(CMD, ARGS), (e: unknown) => e instanceof RpcError && e.kind === "transport_error");
  assert.equal(p.metrics.idle, 0);
  assert.equal(p.metrics.active, 0);
});

test("closing the pool while a worker is being spawned ends that worker and fails its borrow", T, async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const p = pool({ logger: pino({ level: "info" }, sink) });
  const late = p.borrow(CMD, ARGS);
  late.catch(() => {});
  // Past the slot check, into the spawn.
  await new Promise((r) => setImmediate(r));
  await p.close();
  await assert.rejects(late, (e: unknown) => e instanceof RpcError && e.kind === "transport_error");
  const spawned = lines
    .map((l) => JSON.parse(l) as { msg: string; worker_pid?: number })
    .find((l) => l.msg === "spawned worker");
  assert.ok(spawned?.worker_pid !== undefined);
  assert.equal(alive(spawned.worker_pid), false, "close() waited for the late worker to end");
  assert.equal(p.metrics.active, 0);
  assert.equal(p.metrics.discards, 1);
});
