/**
 * Python's text formats the reference's messages and metadata are made of — `repr(float)`,
 * `repr(str)` and `json.dumps` — reproduced byte for byte.
 *
 * JSON text as the reference's Python writes it (`json.dumps`), byte for byte, for the metadata
 * values the two sides must agree on: `vgi_rpc.error_details` (compact, UTF-8 kept, no NaN) and
 * `vgi_rpc.log_extra` (`json.dumps` defaults: `", "` and `": "`, non-ASCII escaped).
 *
 * Numbers are where JSON.stringify and Python part ways. Python writes an `int` as its exact
 * digits at any magnitude and a `float` as `repr(float)`; the reference's `RetryInfo.to_json()`
 * sends a whole-number delay as an `int` (`int(1e21)` → `1000000000000000000000`). JS has one
 * number type, so here a whole number is written as the exact integer it holds (`2 ** 70` →
 * `1180591620717411303424`, where JSON.stringify writes `1.1805916207174113e+21`), a `bigint`
 * as its digits, and any other finite number as `repr(float)` (`1e-05`, `1.5e-07`). Non-finite
 * numbers are `NaN` / `Infinity` / `-Infinity` as Python writes them, or refused.
 */

/** Python's `repr(float)`: shortest round-tripping digits, scientific outside 1e-4 ≤ |x| < 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Number.POSITIVE_INFINITY) return "inf";
  if (x === Number.NEGATIVE_INFINITY) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // toExponential() without an argument yields the shortest round-tripping digits.
  const [mantissa = "", exponentText = "0"] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText); // |x| = d.ddd × 10^exponent
  if (exponent < -4 || exponent >= 16) {
    const m = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
    const e = String(Math.abs(exponent)).padStart(2, "0");
    return `${sign}${m}e${exponent < 0 ? "-" : "+"}${e}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  if (digits.length <= exponent + 1) return `${sign}${digits}${"0".repeat(exponent + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
}

/** Characters `str.isprintable()` rejects: categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs but space. */
const NON_PRINTABLE = /[\p{C}\p{Z}]/u;

function escapeCodePoint(cp: number): string {
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, "0")}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, "0")}`;
  return `\\U${cp.toString(16).padStart(8, "0")}`;
}

/** Python's `repr(str)`: single quotes unless the text holds `'` and no `"`, with Python's escapes. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) out += escapeCodePoint(cp);
    else out += ch;
  }
  return out + quote;
}

/** A number as a JSON number the way the reference would have written it (see the module note). */
export function pyJsonNumber(x: number | bigint): string {
  if (typeof x === "bigint") return x.toString();
  if (Number.isInteger(x)) return BigInt(x).toString();
  return pyFloatRepr(x);
}

/**
 * Orders strings by Unicode code point, which is how Python sorts `str` (and therefore how the
 * reference orders both JSON object keys and method names). JavaScript's default sort compares
 * UTF-16 code units, which differs for astral characters versus U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done === true) return cb.done === true ? 0 : -1;
    if (cb.done === true) return 1;
    const pa = ca.value.codePointAt(0) ?? 0;
    const pb = cb.value.codePointAt(0) ?? 0;
    if (pa !== pb) return pa - pb;
  }
}

/** How to write: `json.dumps` keyword arguments. */
export interface PyJsonOptions {
  /** `separators=(",", ":")` when true; Python's default `(", ", ": ")` otherwise. */
  readonly compact: boolean;
  /** `ensure_ascii`: non-ASCII as `\uXXXX` escapes (Python's default) or as is. */
  readonly ensureAscii: boolean;
  /** `allow_nan`: write NaN and infinities as `NaN` / `Infinity` (default) or throw. */
  readonly allowNan: boolean;
  /** `sort_keys`: object keys in code-point order, at every depth. Default: false (insertion order). */
  readonly sortKeys?: boolean;
}

/** `json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`. */
export const COMPACT_STRICT: PyJsonOptions = { compact: true, ensureAscii: false, allowNan: false };
/** `json.dumps(obj)` with Python's defaults. */
export const PYTHON_DEFAULT: PyJsonOptions = { compact: false, ensureAscii: true, allowNan: true };

const hex4 = (code: number) => `\\u${code.toString(16).padStart(4, "0")}`;

/** Python's `json` string escaping (`py_encode_basestring` / `_ascii`). */
function pyJsonString(s: string, ensureAscii: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20) out += hex4(c);
    // UTF-16 code units are exactly the surrogate pairs Python writes for astral characters.
    else if (ensureAscii && c > 0x7e) out += hex4(c);
    else out += ch;
  }
  return `${out}"`;
}

/** Thrown for a value Python's `json.dumps` would refuse with these options. */
export class PyJsonError extends TypeError {
  override readonly name = "PyJsonError";
}

/**
 * `json.dumps(value, …)` for JSON-like JS values: objects (own enumerable keys, `toJSON` honoured,
 * `undefined` members skipped as JSON.stringify skips them), arrays, strings, booleans, null,
 * numbers and bigints (see {@link pyJsonNumber}).
 *
 * @throws PyJsonError for a non-finite number when `allowNan` is false, a function or symbol,
 *   or a cycle.
 */
export function pyJsonDumps(value: unknown, options: PyJsonOptions): string {
  const itemSep = options.compact ? "," : ", ";
  const keySep = options.compact ? ":" : ": ";
  const seen = new Set<object>();
  const write = (v: unknown): string | undefined => {
    if (v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function") {
      v = (v as { toJSON: () => unknown }).toJSON();
    }
    switch (typeof v) {
      case "undefined":
        return undefined;
      case "string":
        return pyJsonString(v, options.ensureAscii);
      case "boolean":
        return v ? "true" : "false";
      case "bigint":
        return pyJsonNumber(v);
      case "number":
        if (Number.isFinite(v)) return pyJsonNumber(v);
        if (!options.allowNan) throw new PyJsonError(`Out of range float values are not JSON compliant: ${v}`);
        return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
      case "object": {
        if (v === null) return "null";
        if (seen.has(v)) throw new PyJsonError("Circular reference detected");
        seen.add(v);
        let text: string;
        if (Array.isArray(v)) {
          text = `[${v.map((item) => write(item) ?? "null").join(itemSep)}]`;
        } else {
          const parts: string[] = [];
          const entries = Object.entries(v);
          if (options.sortKeys === true) entries.sort(([a], [b]) => compareCodePoints(a, b));
          for (const [k, item] of entries) {
            const written = write(item);
            if (written !== undefined) parts.push(`${pyJsonString(k, options.ensureAscii)}${keySep}${written}`);
          }
          text = `{${parts.join(itemSep)}}`;
        }
        seen.delete(v);
        return text;
      }
      default:
        throw new PyJsonError(`Object of type ${typeof v} is not JSON serializable`);
    }
  };
  const text = write(value);
  if (text === undefined) throw new PyJsonError("undefined is not JSON serializable");
  return text;
}
