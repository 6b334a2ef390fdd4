/**
 * Float arithmetic with the NaN bits the reference's own arithmetic produces (pyarrow compute and
 * CPython on x86-64, SSE2): when an operand is NaN, the result is the first NaN operand, quieted
 * (sign and payload kept); an invalid operation on numbers (∞ − ∞, 0 × ∞) gives the "default NaN",
 * `fff8000000000000` — negative. JS leaves both to the engine, which may swap a commutative
 * operation's operands (V8 did: `v * factor` came back with the factor's NaN), so the operands'
 * roles are decided here and the bits are written explicitly.
 *
 * Checked against the reference: test/fixtures/nan-arithmetic.json (scripts/make-nan-fixtures.py).
 */

const scratch = new DataView(new ArrayBuffer(8));

/** A double's bits. */
export function bitsOf(x: number): bigint {
  scratch.setFloat64(0, x, true);
  return scratch.getBigUint64(0, true);
}

/** The double with these bits (a NaN keeps its sign and payload: V8 does not canonicalise them). */
export function fromBits(bits: bigint): number {
  scratch.setBigUint64(0, bits, true);
  return scratch.getFloat64(0, true);
}

const QUIET = 0x0008000000000000n;
/** x86's "real indefinite": what an invalid operation without a NaN operand returns. */
export const DEFAULT_NAN_BITS = 0xfff8000000000000n;

/** The bits of a NaN result of `a ∘ b` under x86's rules: the first NaN operand, else the default NaN. */
export function nanResultBits(a: number, b: number): bigint {
  if (Number.isNaN(a)) return bitsOf(a) | QUIET;
  if (Number.isNaN(b)) return bitsOf(b) | QUIET;
  return DEFAULT_NAN_BITS;
}

function nanRule(a: number, b: number, result: number): bigint | null {
  return Number.isNaN(result) ? nanResultBits(a, b) : null;
}

/** `a * b` as the reference computes it (`pc.multiply(array, scalar)`, Python `a * b`). */
export function multiply(a: number, b: number): number {
  const result = a * b;
  const nan = nanRule(a, b, result);
  return nan === null ? result : fromBits(nan);
}

/**
 * `a + b` as the reference computes it (Python `a + b` / `a += b` in a worker past its first call:
 * CPython's specialised float addition keeps the first NaN; its generic one, run the first time a
 * line executes, keeps the second). `pc.sum` orders its operands per site (see arrowSumFloat64).
 */
export function add(a: number, b: number): number {
  const result = a + b;
  const nan = nanRule(a, b, result);
  return nan === null ? result : fromBits(nan);
}
