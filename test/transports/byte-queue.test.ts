/**
 * The inbound byte queue (WebSocket messages, HTTP response chunks) as a framer source: bodies filled in place from arriving chunks,
 * the high-water mark, and ends inside a body.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RpcError } from "../../src/errors.js";
import { ByteQueue } from "../../src/transports/byte-queue.js";
import type { DirectByteSource } from "../../src/wire/framer.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { expectFramedStreams, framedStreams } from "../helpers/framed.js";

/** `n` bytes whose value at stream position k is k mod 251. */
function pattern(n: number, from = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = (from + k) % 251;
  return out;
}

function queue(highWaterMark = 1 << 30, allocate?: (n: number) => Uint8Array) {
  const calls = { pause: 0, resume: 0 };
  const q = new ByteQueue(
    highWaterMark,
    () => calls.pause++,
    () => calls.resume++,
    allocate,
  );
  return { q, calls, source: q[Symbol.asyncIterator]() as DirectByteSource };
}

const tick = () => new Promise((r) => setImmediate(r));

test("ByteQueue readInto takes queued bytes, then fills in place as messages arrive, and leaves the rest for next()", async () => {
  const { q, source } = queue();
  const bytes = pattern(10_000);
  q.push(bytes.subarray(0, 1000));
  const target = new Uint8Array(6000);
  const pending = source.readInto(target);
  let settled = false;
  void pending.then(() => {
    settled = true;
  });
  q.push(bytes.subarray(1000, 4000));
  await tick();
  assert.equal(settled, false, "resolved before the target was full");
  q.push(bytes.subarray(4000, 8000));
  assert.equal(await pending, 6000);
  assert.deepEqual(target, bytes.subarray(0, 6000));
  const next = await source.next();
  assert.equal(next.done, false);
  assert.deepEqual(next.value, bytes.subarray(6000, 8000));
  assert.equal(q.pending, 0);
});

test("ByteQueue: bytes copied into a pending target do not count against the high-water mark", async () => {
  const { q, calls, source } = queue(1000);
  const target = new Uint8Array(50_000);
  const pending = source.readInto(target);
  for (let at = 0; at < 50_000; at += 5000) q.push(pattern(5000, at));
  assert.equal(await pending, 50_000);
  assert.deepEqual(target, pattern(50_000));
  assert.equal(calls.pause, 0);
  // Queued bytes do: reading pauses past the mark and resumes once the reader has taken them.
  q.push(pattern(1500));
  assert.equal(calls.pause, 1);
  assert.equal(await source.readInto(new Uint8Array(1500)), 1500);
  assert.equal(calls.resume, 1);
});

test("ByteQueue: a clean end inside readInto resolves to the bytes it had; an error end rejects with that error", async () => {
  const clean = queue();
  const short = clean.source.readInto(new Uint8Array(100));
  clean.q.push(pattern(40));
  clean.q.end(null);
  assert.equal(await short, 40);
  assert.equal((await clean.source.next()).done, true);

  const failed = queue();
  const pending = failed.source.readInto(new Uint8Array(100));
  const err = new RpcError("WebSocket closed with 1006 (connection dropped)", { code: "UNAVAILABLE" });
  failed.q.end(err);
  await assert.rejects(pending, (e) => e === err);
  await assert.rejects(failed.source.next(), (e) => e === err);
});

test("ByteQueue under a framer: batches split into 1 MiB messages decode whole, large bodies in buffers from allocate", async () => {
  const allocated: Uint8Array[] = [];
  const { q, source } = queue(4 << 20, (n) => {
    const b = new Uint8Array(n);
    allocated.push(b);
    return b;
  });
  const sizes = [1, 300_000, 3, 120_000];
  const bytes = framedStreams(sizes);
  // Messages as a peer sends them (at most 1 MiB), pushed while the framer reads.
  const feeding = (async () => {
    for (let at = 0; at < bytes.byteLength; at += 1 << 20) {
      q.push(bytes.subarray(at, at + (1 << 20)));
      await tick();
    }
    q.end(null);
  })();
  const bodies = await expectFramedStreams(new MessageFramer(source), sizes);
  await feeding;
  // The two large bodies (several MiB each) were read into allocated buffers, the small ones were not.
  assert.equal(allocated.length, 2);
  for (const a of allocated) assert.ok(bodies.some((b) => b.buffer === a.buffer));
});
