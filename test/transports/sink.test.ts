/**
 * The stdio/socket sink: an encoded batch's pieces leave in one vectored write, medium and large
 * buffers as the views they are (not copied), small ones joined, and the bytes arrive in order.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { writableSink } from "../../src/transports/node/sink.js";
import { concatBytes } from "../../src/wire/ipc.js";

/** A writable that records each write call and the chunks it carried. */
function recorder() {
  const calls: Uint8Array[][] = [];
  const stream = new Writable({
    write(chunk: Uint8Array, _enc, cb) {
      calls.push([chunk]);
      cb();
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => c.chunk as Uint8Array));
      cb();
    },
  });
  return { stream, calls };
}

test("the sink writes a batch's pieces in one vectored write, passing buffers of 4 KiB and more through uncopied", async () => {
  const { stream, calls } = recorder();
  const sink = writableSink(stream);
  const small = (n: number, v: number) => new Uint8Array(n).fill(v);
  const offsets = small(40_000, 7); // a 10k-row batch's string offsets
  const values = small(200_000, 8);
  const chunks = [small(8, 1), small(300, 2), offsets, small(4, 3), values, small(6, 4)];
  await sink.write(chunks);
  await sink.flush();
  assert.equal(calls.length, 1, "one write call for the whole batch");
  const written = calls[0]!;
  assert.equal(written.length, 5);
  assert.equal(written[1]!.buffer, offsets.buffer, "a 40 KB buffer is not copied");
  assert.equal(written[3]!.buffer, values.buffer);
  assert.deepEqual(concatBytes(written), concatBytes(chunks));

  // One piece is written plainly, and the stream is not left corked.
  await sink.write([small(10, 5)]);
  await sink.flush();
  assert.equal(stream.writableCorked, 0);
  assert.equal(calls.at(-1)!.length, 1);
  assert.deepEqual([...calls.at(-1)![0]!], [...small(10, 5)]);
});
