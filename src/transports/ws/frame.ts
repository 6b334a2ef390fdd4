/**
 * Small writes as whole WebSocket frames, for the transports running on the `ws` package (server,
 * and the client under Node). No `node:` imports.
 *
 * `ws.send` takes one buffer: a write's pieces were first joined into one message, `ws` then writes
 * the frame as [header, payload] (a vectored write, corked) or, on a client, copies the payload
 * once more to mask it, and each send builds its options and (on the server) an acknowledgement.
 * For the small writes of unary calls that is much of the transport's CPU per call. A write that
 * fits one message (at most `maxSendBytes` and `MAX_FAST_FRAME_PAYLOAD`) is instead framed here: the
 * pieces are copied once, behind
 * the header, into one buffer that is written to the socket `ws` writes to. The bytes are exactly
 * the frame `ws.send(joined, { binary: true })` writes (FIN, opcode 2, the shortest length form;
 * a client's masked with a fresh random key), one WebSocket message per write as before.
 *
 * Writing to `ws`'s socket directly is safe while the connection is open and permessage-deflate
 * is off (quiver never negotiates it): `ws` then writes each frame synchronously, in call order,
 * so frames from here and from `ws` (pings, pongs, the close frame) never interleave.
 */

/** Largest payload framed here: a 2-byte extended length (larger writes go through `ws.send`). */
export const MAX_FAST_FRAME_PAYLOAD = 0xffff;

/** Bytes of random masking keys drawn at once. */
const MASK_POOL_BYTES = 8192;
let maskPool: Uint8Array | null = null;
let maskAt = MASK_POOL_BYTES;

/** Four fresh random bytes (the masking key of one client frame) at `maskPool[returned]`. */
function nextMaskKey(): number {
  if (maskAt === MASK_POOL_BYTES) {
    maskPool ??= new Uint8Array(MASK_POOL_BYTES);
    globalThis.crypto.getRandomValues(maskPool);
    maskAt = 0;
  }
  const at = maskAt;
  maskAt += 4;
  return at;
}

/**
 * One binary frame carrying `chunks` (`total` bytes, at most `MAX_FAST_FRAME_PAYLOAD`) in a buffer
 * from `allocate` (which may return uninitialised memory: every byte is written); masked when
 * `mask` (a client's frames must be).
 */
export function binaryFrame(
  chunks: readonly Uint8Array[],
  total: number,
  mask: boolean,
  allocate: (n: number) => Uint8Array,
): Uint8Array {
  const lengthBytes = total > 125 ? 2 : 0;
  const headerBytes = 2 + lengthBytes + (mask ? 4 : 0);
  const frame = allocate(headerBytes + total);
  frame[0] = 0x82; // FIN, binary
  frame[1] = (lengthBytes === 0 ? total : 126) | (mask ? 0x80 : 0);
  if (lengthBytes !== 0) {
    frame[2] = total >>> 8;
    frame[3] = total & 0xff;
  }
  let at = headerBytes;
  for (const c of chunks) {
    frame.set(c, at);
    at += c.byteLength;
  }
  if (mask) maskPayload(frame, headerBytes);
  return frame;
}

/** Writes a fresh masking key into the 4 bytes before `start` and masks the payload from there on. */
function maskPayload(frame: Uint8Array, start: number): void {
  const key = nextMaskKey();
  const pool = maskPool!;
  const k0 = pool[key]!;
  const k1 = pool[key + 1]!;
  const k2 = pool[key + 2]!;
  const k3 = pool[key + 3]!;
  frame[start - 4] = k0;
  frame[start - 3] = k1;
  frame[start - 2] = k2;
  frame[start - 1] = k3;
  // Payload byte i is XORed with key byte i % 4.
  const end = frame.byteLength;
  let p = start;
  for (; p + 4 <= end; p += 4) {
    frame[p] = frame[p]! ^ k0;
    frame[p + 1] = frame[p + 1]! ^ k1;
    frame[p + 2] = frame[p + 2]! ^ k2;
    frame[p + 3] = frame[p + 3]! ^ k3;
  }
  if (p < end) frame[p] = frame[p]! ^ k0;
  if (p + 1 < end) frame[p + 1] = frame[p + 1]! ^ k1;
  if (p + 2 < end) frame[p + 2] = frame[p + 2]! ^ k2;
}
