/**
 * The protocol hash: a fingerprint of a protocol's wire surface, identical in every port.
 *
 * A port of the reference's `vgi_rpc/rpc/_protocol_hash.py`:
 *
 *     sha256("vgi_rpc.protocol_hash.v1|" + canonical_json(description)).hexdigest()
 *
 * where the description is the protocol's wire name and, for each method sorted by name, its
 * name, method type, `has_return`, `has_header` and its params / result / header schemas as
 * ordered field-token lists (see {@link schemaTokens}). Whether a stream is an exchange is
 * deliberately not part of it, nor are versions, docs or defaults.
 */
import { createHash } from "node:crypto";
import type { Schema } from "apache-arrow";
import { compareCodePoints } from "../protocol/python-text.js";
import { type FieldToken, schemaTokens } from "../protocol/type-tokens.js";

export { compareCodePoints };

/** Domain separator; moves only when the hash definition moves. */
export const HASH_DOMAIN = "vgi_rpc.protocol_hash.v1|";

/** What the hash needs to know about one method. */
export interface MethodShape {
  readonly name: string;
  readonly methodType: "unary" | "stream";
  readonly hasReturn: boolean;
  readonly paramsSchema: Schema;
  /** Null when `!hasReturn` (ignored then, as the reference ignores it). */
  readonly resultSchema: Schema | null;
  readonly headerSchema: Schema | null;
}

/** One method in the preimage. `result` / `header` are absent (not empty) when there is none. */
export interface MethodEntry {
  readonly name: string;
  readonly type: "unary" | "stream";
  readonly has_return: boolean;
  readonly has_header: boolean;
  readonly params: readonly FieldToken[];
  readonly result?: readonly FieldToken[];
  readonly header?: readonly FieldToken[];
}

/** The preimage structure for one protocol, ready for {@link canonicalJson}. */
export interface ProtocolDescription {
  readonly protocol: string;
  readonly methods: readonly MethodEntry[];
}

function hex4(code: number): string {
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * Quotes a string exactly as Python's `json.dumps(..., ensure_ascii=False)` does: `"` and `\`
 * escaped, `\b \f \n \r \t` as two-character escapes, other C0 controls as lowercase `\u00xx`,
 * everything else (including U+007F and non-ASCII) verbatim. A lone surrogate is rejected: the
 * reference would fail to UTF-8 encode it.
 */
function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c < 0x20) {
      switch (c) {
        case 0x08:
          out += "\\b";
          break;
        case 0x09:
          out += "\\t";
          break;
        case 0x0a:
          out += "\\n";
          break;
        case 0x0c:
          out += "\\f";
          break;
        case 0x0d:
          out += "\\r";
          break;
        default:
          out += hex4(c);
      }
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw new TypeError(`Lone surrogate in ${JSON.stringify(s)}.`);
      out += s.slice(i, i + 2);
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new TypeError(`Lone surrogate in ${JSON.stringify(s)}.`);
    } else out += s[i];
  }
  return `${out}"`;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function encode(value: unknown): string {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return quote(value);
  if (typeof value === "number" || typeof value === "bigint") {
    throw new TypeError(
      `The protocol-hash preimage carries no numbers, but found ${String(value)}. ` +
        "Fold it into a type token (e.g. 'decimal128(38,9)') instead.",
    );
  }
  if (Array.isArray(value)) return `[${value.map(encode).join(",")}]`;
  if (typeof value === "object" && isPlainObject(value)) {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((k) => `${quote(k)}:${encode(value[k])}`).join(",")}}`;
  }
  throw new TypeError(`Unsupported value in the protocol-hash preimage: ${String(value)}`);
}

/**
 * RFC 8785 canonical JSON for the subset the preimage uses — objects, arrays, strings, booleans
 * and null — byte-identical (once UTF-8 encoded) to the reference's `canonical_json`: keys
 * sorted, no insignificant whitespace, non-ASCII verbatim.
 *
 * @throws TypeError on a number, bigint, `undefined`, a non-plain object or a lone surrogate.
 */
export function canonicalJson(value: unknown): string {
  return encode(value);
}

function methodEntry(m: MethodShape): MethodEntry {
  const entry: {
    -readonly [K in keyof MethodEntry]: MethodEntry[K];
  } = {
    name: m.name,
    type: m.methodType,
    has_return: m.hasReturn,
    has_header: m.headerSchema !== null,
    params: schemaTokens(m.paramsSchema),
  };
  // Absent and empty differ: a method returning nothing is not one returning an empty struct.
  if (m.hasReturn) {
    if (m.resultSchema === null) throw new TypeError(`Method ${m.name} has a return value but no result schema.`);
    entry.result = schemaTokens(m.resultSchema);
  }
  if (m.headerSchema !== null) entry.header = schemaTokens(m.headerSchema);
  return entry;
}

/** The hash preimage for one protocol: methods sorted by name, schema fields in order. */
export function protocolDescription(protocolName: string, methods: readonly MethodShape[]): ProtocolDescription {
  const sorted = [...methods].sort((a, b) => compareCodePoints(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev !== undefined && cur !== undefined && prev.name === cur.name) {
      throw new TypeError(`Protocol ${protocolName} declares method ${cur.name} twice.`);
    }
  }
  return { protocol: protocolName, methods: sorted.map(methodEntry) };
}

/** Lowercase 64-character hex SHA-256 of the domain tag plus the canonical description. */
export function computeProtocolHash(protocolName: string, methods: readonly MethodShape[]): string {
  const preimage = canonicalJson(protocolDescription(protocolName, methods));
  return createHash("sha256")
    .update(HASH_DOMAIN + preimage, "utf8")
    .digest("hex");
}
