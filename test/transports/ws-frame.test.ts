/**
 * The WebSocket frames the transports write themselves for small writes (src/transports/ws/frame.ts)
 * are byte for byte the frames `ws.send` writes: unmasked from the server, masked with the frame's
 * own key from a client, for payloads around each length form's boundary.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { binaryFrame, MAX_FAST_FRAME_PAYLOAD } from "../../src/transports/ws/frame.js";
import { totalBytes } from "../../src/wire/ipc.js";

type FrameOptions = {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
  maskBuffer?: Buffer;
  generateMask?: (mask: Buffer) => void;
};
const { Sender } = createRequire(import.meta.url)("ws") as {
  Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] };
};

/** `n` bytes of a pattern, cut into pieces of a few sizes (as an encoded IPC stream is). */
function pieces(n: number): Uint8Array[] {
  const all = new Uint8Array(n);
  for (let k = 0; k < n; k++) all[k] = (k * 7 + 3) % 256;
  const out: Uint8Array[] = [];
  const sizes = [8, 1, 56, 3, 200];
  for (let at = 0, i = 0; at < n; i++) {
    const k = Math.min(sizes[i % sizes.length]!, n - at);
    out.push(i % 2 === 0 ? all.subarray(at, at + k) : Buffer.from(all.subarray(at, at + k)));
    at += k;
  }
  return out;
}

/** What `ws.send(joined, { binary: true })` writes, masked with `key` when given. */
function wsFrame(chunks: readonly Uint8Array[], key: Uint8Array | null): Buffer {
  const joined = Buffer.concat(chunks);
  const options: FrameOptions = { fin: true, opcode: 2, mask: key !== null, readOnly: true, rsv1: false };
  if (key !== null) {
    options.maskBuffer = Buffer.alloc(4);
    options.generateMask = (mask) => mask.set(key);
  }
  return Buffer.concat(Sender.frame(joined, options));
}

const SIZES = [1, 2, 3, 4, 5, 124, 125, 126, 127, 300, 1021, 16 * 1024, MAX_FAST_FRAME_PAYLOAD];

test("a server's frame is the one ws.send writes", () => {
  for (const n of SIZES) {
    const chunks = pieces(n);
    const frame = binaryFrame(chunks, totalBytes(chunks), false, Buffer.allocUnsafe);
    assert.deepEqual(Buffer.from(frame), wsFrame(chunks, null), `${n} bytes`);
  }
});

test("a client's frame is the one ws.send writes with the same masking key", () => {
  const keys = new Set<string>();
  for (const n of SIZES) {
    const chunks = pieces(n);
    const frame = binaryFrame(chunks, totalBytes(chunks), true, Buffer.allocUnsafe);
    const keyAt = n > 125 ? 4 : 2;
    const key = frame.slice(keyAt, keyAt + 4);
    keys.add(Buffer.from(key).toString("hex"));
    assert.deepEqual(Buffer.from(frame), wsFrame(chunks, key), `${n} bytes`);
  }
  assert.ok(keys.size > 1, "each frame draws a fresh key");
});
