/** Batches, byte patterns and a byte counter shared by the shared-memory tests. */
import { Transform } from "node:stream";
import { Field, Float64, makeData, RecordBatch, Schema, Struct } from "apache-arrow";

/** A one-column (`value: float64`) batch of `n` rows holding `i * scale + 0.5`. */
export function floats(n: number, scale = 1): RecordBatch {
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = i * scale + 0.5;
  const field = new Field("value", new Float64(), true);
  const child = makeData({ type: new Float64(), length: n, nullCount: 0, data: values });
  return new RecordBatch(
    new Schema([field]),
    makeData({ type: new Struct([field]), length: n, nullCount: 0, children: [child] }),
  );
}

/** `n` pseudo-random bytes from a linear congruential generator seeded with `seed`. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x & 0xff;
    if (i + 1 < n) out[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = x >>> 24;
  }
  return out;
}

/** A pass-through that counts the bytes crossing it (what a pipe carried). */
export function counter(): { stream: Transform; bytes: () => number } {
  let n = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.byteLength;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => n };
}
