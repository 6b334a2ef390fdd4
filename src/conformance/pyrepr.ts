/**
 * Python formatting the conformance service reproduces byte for byte: the reference builds its
 * strings with f-strings, so a float prints as `repr(float)` ("2.0", "1e+16"), a string inside an
 * error message as `repr(str)` ("'OK'"), and messages are trimmed with `str.rstrip()`.
 */

export { pyFloatRepr, pyStrRepr } from "../protocol/python-text.js";

import { pyStrRepr } from "../protocol/python-text.js";

/** Python's `repr(list[str])`: `['a', 'b']`. */
export function pyStrListRepr(items: readonly string[]): string {
  return `[${items.map(pyStrRepr).join(", ")}]`;
}

/** Whitespace as Python's `str.rstrip()` sees it (`str.isspace()`). */
const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Python's `str.rstrip()` with no argument. */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(0, end);
}

/** Python's `a % b` for integers: the result takes the sign of the divisor. */
export function pyMod(a: bigint, b: bigint): bigint {
  const r = a % b;
  return r !== 0n && r < 0n !== b < 0n ? r + b : r;
}

/** Orders strings by code point, as Python's `sorted()` does (JS sorts by UTF-16 unit). */
export { compareCodePoints } from "../server/protocol-hash.js";
