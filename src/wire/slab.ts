/**
 * Small typed arrays carved out of shared ArrayBuffers.
 *
 * V8 keeps a typed array of 64 bytes or fewer inside the JS heap, with no ArrayBuffer behind it.
 * The first `.buffer` read of such an array allocates a backing store outside the heap and moves
 * the bytes there (about 250 ns, plus its share of the collector's ArrayBuffer sweeping). The
 * encoder reads `.buffer` of every column it writes, so the one-row columns of a unary call each
 * paid that. Views of a shared slab have their buffer already. A slab is only ever bumped, never
 * reused, so every view starts zeroed like a fresh typed array; a slab is freed once no view of it
 * is left (the same trade as Node's Buffer pool: a long-lived small array keeps its slab alive).
 */

/** Bytes per slab. */
const SLAB_BYTES = 16 * 1024;
/** Larger arrays get their own ArrayBuffer (off the heap already, so `.buffer` is free). */
const MAX_SMALL_BYTES = 2048;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

interface TypedArrayCtor<T> {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** A zeroed `Ctor` of `length` elements, 8-byte aligned, whose `.buffer` costs nothing to read. */
export function smallArray<T>(Ctor: TypedArrayCtor<T>, length: number): T {
  const bytes = length * Ctor.BYTES_PER_ELEMENT;
  if (bytes === 0 || bytes > MAX_SMALL_BYTES) return new Ctor(length);
  const taken = (bytes + 7) & ~7;
  if (used + taken > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const out = new Ctor(slab, used, length);
  used += taken;
  return out;
}

/** `smallArray(Uint8Array, n)`. */
export function smallBytes(n: number): Uint8Array {
  return smallArray(Uint8Array, n);
}
