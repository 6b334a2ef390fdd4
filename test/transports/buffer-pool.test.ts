/**
 * The large-body buffer pool (src/transports/node/buffer-pool.ts over native/shm/pool.c): pooled
 * memory is reused only once unreachable, kept within its limit, trimmed on demand and when idle,
 * and large bodies read from a socket land in it with their bytes intact.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { bodyBuffer, bufferPoolStats, POOLED_MIN_BYTES } from "../../src/transports/node/buffer-pool.js";
import { shmSupport } from "../../src/transports/shm/index.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
const CHILD_TIMEOUT_MS = 60_000;
const withAddon = process.platform === "linux" && shmSupport().backing === "mmap";

/** Runs `body` (an async module body) in a child with --expose-gc; returns what it printed as JSON. */
function inChild(body: string, env: Record<string, string> = {}): unknown {
  const script = `
    import * as pool from ${JSON.stringify(join(root, "src/transports/node/buffer-pool.ts"))};
    const settle = async () => { for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); } };
    const MiB = 1024 * 1024;
    ${body}
  `;
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
    encoding: "utf8",
    timeout: CHILD_TIMEOUT_MS,
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `child failed (signal ${r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test("small bodies are plain buffers; large ones are aligned, exact-length and writable", () => {
  const small = bodyBuffer(1000);
  assert.equal(small.byteLength, 1000);
  const large = bodyBuffer(POOLED_MIN_BYTES + 13);
  assert.equal(large.byteLength, POOLED_MIN_BYTES + 13);
  assert.equal(large.byteOffset, 0);
  large.fill(0xab);
  assert.equal(large[large.byteLength - 1], 0xab);
  const stats = bufferPoolStats();
  assert.equal(stats.active, withAddon, `pool active=${stats.active}: ${stats.reason}`);
});

test("a pooled body's pages are reused only after it is unreachable, and never while it is held", {
  skip: withAddon ? false : "needs Linux and the native addon",
}, () => {
  const out = inChild(`
    const held = pool.bodyBuffer(4 * MiB).fill(0x11);
    let dropped = pool.bodyBuffer(4 * MiB).fill(0x22);
    const before = pool.bufferPoolStats();
    await settle();
    const whileHeld = pool.bufferPoolStats();
    dropped = null;
    await settle();
    const afterDrop = pool.bufferPoolStats();
    const next = pool.bodyBuffer(4 * MiB - 100).fill(0x33);
    const reused = pool.bufferPoolStats();
    process.stdout.write(JSON.stringify({
      before: [before.hits, before.misses],
      idleWhileHeld: whileHeld.idleBytes,
      idleAfterDrop: afterDrop.idleBytes > 0,
      reused: [reused.hits, reused.misses, reused.idleBytes],
      heldIntact: held.every((b) => b === 0x11),
      nextLength: next.byteLength,
    }));
  `);
  assert.deepEqual(out, {
    before: [0, 2],
    idleWhileHeld: 0,
    idleAfterDrop: true,
    reused: [1, 2, 0],
    heldIntact: true,
    nextLength: 4 * 1024 * 1024 - 100,
  });
});

test("idle memory stays within maxIdleBytes, trims on demand and after idleTrimMs; 0 turns the pool off", {
  skip: withAddon ? false : "needs Linux and the native addon",
}, () => {
  const out = inChild(`
    pool.configureBufferPool({ maxIdleBytes: 5 * MiB, idleTrimMs: 100 });
    let bodies = [1, 2, 3, 4].map(() => pool.bodyBuffer(2 * MiB));
    bodies = null;
    await settle();
    const capped = pool.bufferPoolStats().idleBytes;
    const trimmed = pool.trimBufferPool();
    const afterTrim = pool.bufferPoolStats().idleBytes;
    let again = pool.bodyBuffer(2 * MiB);
    again = null;
    await settle();
    const refilled = pool.bufferPoolStats().idleBytes;
    await new Promise((r) => setTimeout(r, 400));
    const afterIdle = pool.bufferPoolStats().idleBytes;
    pool.configureBufferPool({ maxIdleBytes: 0 });
    const off = pool.bufferPoolStats();
    process.stdout.write(JSON.stringify({ capped, trimmed, afterTrim, refilled, afterIdle, off: [off.active, off.reason] }));
  `);
  const MiB = 1024 * 1024;
  assert.deepEqual(out, {
    capped: 4 * MiB,
    trimmed: 4 * MiB,
    afterTrim: 0,
    refilled: 2 * MiB,
    afterIdle: 0,
    off: [false, "disabled (maxIdleBytes is 0)"],
  });
});

test("QUIVER_BUFFER_POOL_BYTES sets the limit; a malformed value is a RangeError naming it", () => {
  const ok = inChild(`process.stdout.write(JSON.stringify(pool.bufferPoolStats().maxIdleBytes));`, {
    QUIVER_BUFFER_POOL_BYTES: String(3 * 1024 * 1024),
  });
  assert.equal(ok, 3 * 1024 * 1024);
  const bad = inChild(
    `try { pool.bodyBuffer(2 * MiB); process.stdout.write("null"); } catch (e) { process.stdout.write(JSON.stringify([e.name, e.message])); }`,
    { QUIVER_BUFFER_POOL_BYTES: "lots" },
  );
  assert.deepEqual(bad, [
    "RangeError",
    'QUIVER_BUFFER_POOL_BYTES must be a non-negative integer number of bytes, got "lots"',
  ]);
});

test("large batches read from a socket land in pooled bodies, bytes intact, earlier batches untouched", {
  skip: withAddon ? false : "needs Linux and the native addon",
}, () => {
  const out = inChild(`
    const { connect, createServer } = await import("node:net");
    const { once } = await import("node:events");
    const { socketSource } = await import(${JSON.stringify(join(root, "src/transports/node/socket-source.ts"))});
    const { MessageFramer } = await import(${JSON.stringify(join(root, "src/wire/framer.ts"))});
    const { encodeStream, IpcStreamDecoder } = await import(${JSON.stringify(join(root, "src/wire/ipc.ts"))});
    const { batchFromColumns, schemaOf } = await import(${JSON.stringify(join(root, "src/protocol/batch.ts"))});
    const { t } = await import(${JSON.stringify(join(root, "src/protocol/types.ts"))});
    const fields = { v: t.float64() };
    const schema = schemaOf(fields);
    const N = 400_000; // 3.2 MB bodies
    const batch = (k) => batchFromColumns(fields, { v: Array.from({ length: N }, (_, i) => i * k) });
    const bytes = encodeStream(schema, [batch(1), batch(2), batch(3)]);
    const server = createServer((s) => { for (const b of bytes) s.write(b); s.end(); }).listen(0, "127.0.0.1");
    await once(server, "listening");
    const source = socketSource();
    const socket = connect({ port: server.address().port, host: "127.0.0.1", onread: source.onread });
    source.attach(socket);
    const decoder = new IpcStreamDecoder();
    const framer = new MessageFramer(source);
    const got = [];
    for (;;) {
      const f = await framer.next();
      if (f === "eos" || f === "end") break;
      const b = decoder.accept(f);
      if (b !== null && "numRows" in b) { got.push(b); await settle(); }
    }
    const sums = got.map((b) => { let s = 0; const v = b.getChild("v"); for (let i = 0; i < N; i++) s += v.get(i); return s; });
    const stats = pool.bufferPoolStats();
    socket.destroy(); server.close();
    process.stdout.write(JSON.stringify({ sums, pooled: stats.hits + stats.misses }));
  `);
  const base = (400_000 * (400_000 - 1)) / 2;
  assert.deepEqual(out, { sums: [base, 2 * base, 3 * base], pooled: 3 });
});
