/** Large zstd responses are compressed on a worker thread: the event loop keeps turning meanwhile. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import { decompress } from "fzstd";
import { encodeBody } from "../../src/codec/compression.js";

it("a 4 MiB body is zstd-compressed off the event loop into one frame that decodes to the same bytes", async () => {
  // Half random, half repeated: incompressible enough to take a while, compressible enough to check.
  const body = new Uint8Array(4 * 1024 * 1024);
  body.set(randomBytes(body.byteLength / 2));
  await encodeBody("zstd", new Uint8Array(16)); // the in-place compressor loaded: no wait left there
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const out = await encodeBody("zstd", body);
  ticking = false;
  assert.ok(out !== null);
  assert.ok(out.byteLength < body.byteLength * 0.6);
  assert.deepEqual(decompress(out), body);
  // Compressed on the event loop, the call would have returned before any of these turns ran.
  assert.ok(turns > 0, "the event loop did not turn while the body was compressed");
});

it("small bodies are compressed in place and decode the same", async () => {
  const body = new TextEncoder().encode("x".repeat(1000));
  const out = await encodeBody("zstd", body);
  assert.ok(out !== null);
  assert.deepEqual(decompress(out), body);
});
