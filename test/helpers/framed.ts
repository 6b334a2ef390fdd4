/** Byte streams of known batches, and a check that a framer hands them back whole (the byte-source tests). */
import assert from "node:assert/strict";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import type { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";

const Row = { i: t.int64(), s: t.utf8() };

/** One IPC stream per entry of `sizes`, back to back: a batch of n rows where row k is (k, "vk"). */
export function framedStreams(sizes: readonly number[]): Uint8Array {
  const batch = (n: number) =>
    batchFromColumns(Row, {
      i: Array.from({ length: n }, (_, k) => BigInt(k)),
      s: Array.from({ length: n }, (_, k) => `v${k}`),
    });
  return concatBytes(sizes.flatMap((n) => encodeStream(schemaOf(Row), [batch(n)])));
}

/**
 * Reads the streams of `framedStreams(sizes)` from `framer`, checks every batch's last row and the
 * end of the bytes, and returns the non-empty message bodies in order.
 */
export async function expectFramedStreams(framer: MessageFramer, sizes: readonly number[]): Promise<Uint8Array[]> {
  const bodies: Uint8Array[] = [];
  for (const n of sizes) {
    const decoder = new IpcStreamDecoder();
    for (;;) {
      const f = await framer.next();
      if (f === "end") assert.fail("the stream ended early");
      if (f === "eos") break;
      if (f.body.byteLength > 0) bodies.push(f.body);
      const r = decoder.accept(f);
      if (r !== null && "numRows" in r) {
        assert.equal(r.numRows, n);
        assert.equal(r.getChildAt(0)?.get(n - 1), BigInt(n - 1));
        assert.equal(r.getChildAt(1)?.get(n - 1), `v${n - 1}`);
      }
    }
  }
  assert.equal(await framer.next(), "end");
  return bodies;
}
