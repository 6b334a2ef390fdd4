import assert from "node:assert/strict";
import { test } from "node:test";
import { smallArray, smallBytes } from "../../src/wire/slab.js";

test("small arrays are zeroed, 8-byte aligned views that never overlap, even across slabs", () => {
  const seen: Uint8Array[] = [];
  for (let i = 0; i < 2000; i++) {
    const n = (i * 37) % 300;
    const a = i % 3 === 0 ? smallBytes(n) : i % 3 === 1 ? smallArray(Float64Array, n) : smallArray(Int32Array, n);
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    assert.equal(a.length, n);
    assert.equal(a.byteOffset % 8, 0);
    assert.ok(
      bytes.every((b) => b === 0),
      `array ${i} starts zeroed`,
    );
    bytes.fill(0xff); // a later view sharing these bytes would not start zeroed
    seen.push(bytes);
  }
  // Every view still holds only its own fill (none was handed out twice).
  assert.ok(seen.every((b) => b.every((x) => x === 0xff)));
});

test("large and empty arrays get buffers of their own", () => {
  const big = smallArray(BigInt64Array, 1024);
  assert.equal(big.byteOffset, 0);
  assert.equal(big.buffer.byteLength, 8192);
  assert.equal(smallBytes(0).byteLength, 0);
});
