/**
 * Structure-aware mutations of valid vgi-rpc byte streams (requests and stream turns): bit flips
 * anywhere or inside a flatbuffer, truncations at and within message boundaries, count inflation
 * of flatbuffer vector and string lengths, oversized declared lengths (message prefix, bodyLength,
 * buffer regions, field nodes, row counts), splices of two streams, random bytes, message
 * duplication and reordering. Every mutator is a pure function of its random generator and input.
 *
 * The two known reproductions of issue #21 are exact generators here (`hugeMetadataCount`,
 * `prefixSplice`), run as fixed regression cases by the harness.
 */
import { allPoints, boundaries, type FbPoint, type IpcMessage, messagesOf, pointsOf, splitIpc } from "./ipc-walk.js";
import type { Rng } from "./rng.js";

/** A mutated byte string and what was done to it. */
export interface Mutation {
  readonly bytes: Uint8Array;
  /** The mutator's name (for statistics). */
  readonly mutator: string;
  /** Exactly what changed, e.g. `set u32 @192 (Message.custom_metadata) 4 -> 2147483647`. */
  readonly desc: string;
}

/** A named valid byte string to mutate. */
export interface ByteSeed {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export type ByteMutator = (rng: Rng, input: Uint8Array, others: readonly ByteSeed[]) => Mutation | null;

// ---------------------------------------------------------------------------------------------
// Helpers

function copy(bytes: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Writes `value` (an integer, or a bigint for full int64 range) little-endian at `at`, `width` bytes. */
export function writeInt(bytes: Uint8Array, at: number, width: 1 | 2 | 4 | 8, value: number | bigint): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (at < 0 || at + width > bytes.byteLength) return;
  if (width === 1) dv.setUint8(at, Number(BigInt.asUintN(8, BigInt(value))));
  else if (width === 2) dv.setUint16(at, Number(BigInt.asUintN(16, BigInt(value))), true);
  else if (width === 4) dv.setUint32(at, Number(BigInt.asUintN(32, BigInt(value))), true);
  else dv.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
}

function show(v: number | bigint): string {
  return typeof v === "bigint" ? `${v}n` : String(v);
}

/** Values a 32-bit count or length is inflated to. */
export function inflatedCounts(current: number): number[] {
  return [
    0x7fffffff,
    0xffffffff,
    0x80000000,
    0x10000000,
    0x00ffffff,
    0x10000,
    current + 1,
    current + 16,
    current * 4 + 7,
    0,
  ];
}

/** Values a 64-bit length, offset or count is set to. */
export function oversizedInt64(current: number): (number | bigint)[] {
  return [
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 32 + 8,
    2 ** 40,
    2 ** 53 - 1,
    (1n << 63n) - 1n,
    -1n,
    -8n,
    current + 8,
    current * 2 + 1,
    current + 2 ** 20,
  ];
}

/** Values the message length prefix is set to. */
function oversizedPrefix(metaLength: number): number[] {
  return [
    0x7fffffff,
    0x7ffffff8,
    16 * 1024 * 1024,
    16 * 1024 * 1024 + 8,
    metaLength + 8,
    Math.max(1, metaLength - 8),
    1,
    0xfffffffe,
    0x80000000,
  ];
}

function flipBits(rng: Rng, bytes: Uint8Array, from: number, to: number, k: number): string[] {
  const done: string[] = [];
  for (let i = 0; i < k && to > from; i++) {
    const at = rng.range(from, to - 1);
    const bit = rng.int(8);
    bytes[at] = bytes[at]! ^ (1 << bit);
    done.push(`${at}.${bit}`);
  }
  return done;
}

function pickMessage(rng: Rng, input: Uint8Array): IpcMessage | null {
  const ms = messagesOf(splitIpc(input)).filter((m) => m.metaStart + m.metaLength <= input.byteLength);
  return ms.length === 0 ? null : rng.pick(ms);
}

function pointDesc(p: FbPoint, to: number | bigint): string {
  return `set ${p.kind} @${p.at} (${p.label}) ${p.value} -> ${show(to)}`;
}

// ---------------------------------------------------------------------------------------------
// Mutators

/** 1 to 8 bit flips anywhere. */
export const bitflipAny: ByteMutator = (rng, input) => {
  if (input.byteLength === 0) return null;
  const out = copy(input);
  const k = rng.range(1, 8);
  const flips = flipBits(rng, out, 0, out.byteLength, k);
  return { bytes: out, mutator: "bitflip", desc: `flip bits ${flips.join(",")} (byte.bit)` };
};

/** 1 to 8 bit flips inside one message's flatbuffer. */
export const bitflipFlatbuffer: ByteMutator = (rng, input) => {
  const m = pickMessage(rng, input);
  if (m === null) return null;
  const out = copy(input);
  const k = rng.range(1, 8);
  const flips = flipBits(rng, out, m.metaStart, m.metaStart + m.metaLength, k);
  return {
    bytes: out,
    mutator: "bitflip-flatbuffer",
    desc: `flip bits ${flips.join(",")} in flatbuffer @${m.metaStart}`,
  };
};

/** Cut at a message boundary, or just inside one (prefix, flatbuffer, body). */
export const truncateBoundary: ByteMutator = (rng, input) => {
  const parts = splitIpc(input);
  const cuts = boundaries(parts).filter((b) => b > 0 && b < input.byteLength);
  for (const m of messagesOf(parts)) cuts.push(m.start + 4, m.metaStart, m.bodyStart);
  const valid = cuts.filter((c) => c > 0 && c < input.byteLength);
  if (valid.length === 0) return null;
  const at = rng.pick(valid);
  return { bytes: input.slice(0, at), mutator: "truncate-boundary", desc: `truncate to ${at} of ${input.byteLength}` };
};

/** Cut anywhere inside a message. */
export const truncateWithin: ByteMutator = (rng, input) => {
  if (input.byteLength < 2) return null;
  const m = pickMessage(rng, input);
  const at =
    m === null ? rng.range(1, input.byteLength - 1) : rng.range(m.start + 1, Math.min(m.end, input.byteLength) - 1);
  if (at <= 0 || at >= input.byteLength) return null;
  return { bytes: input.slice(0, at), mutator: "truncate-within", desc: `truncate to ${at} of ${input.byteLength}` };
};

/** A flatbuffer vector or string length set to a huge (or off-by-one) count. */
export const countInflate: ByteMutator = (rng, input) => {
  const points = allPoints(input).filter((p) => p.kind === "vector-length" || p.kind === "string-length");
  if (points.length === 0) return null;
  const p = rng.pick(points);
  const to = rng.pick(inflatedCounts(p.value));
  const out = copy(input);
  writeInt(out, p.at, 4, to);
  return { bytes: out, mutator: "count-inflate", desc: pointDesc(p, to) };
};

/** Any flatbuffer offset, vtable offset or union tag set to a wild value. */
export const offsetCorrupt: ByteMutator = (rng, input) => {
  const points = allPoints(input).filter(
    (p) => p.kind === "uoffset" || p.kind === "soffset" || p.kind === "union-type",
  );
  if (points.length === 0) return null;
  const p = rng.pick(points);
  const to =
    p.kind === "union-type"
      ? rng.pick([0, 2, 4, 5, 13, 14, 17, 22, 23, 26, 27, 200, 255])
      : rng.pick([0, 1, 4, -4, p.value + 4, p.value - 4, 0x7fffffff, -0x80000000, 0xfffffff0, p.value * 2]);
  const out = copy(input);
  writeInt(out, p.at, p.width, to);
  return { bytes: out, mutator: "offset-corrupt", desc: pointDesc(p, to) };
};

/** A 4-aligned word inside a flatbuffer set to a huge value (no walk needed). */
export const alignedWord: ByteMutator = (rng, input) => {
  const m = pickMessage(rng, input);
  if (m === null || m.metaLength < 4) return null;
  const at = m.metaStart + 4 * rng.int(Math.floor(m.metaLength / 4));
  const to = rng.pick([0x7fffffff, 0xffffffff, 0x80000000, 0x01000000, 0xfffffffc]);
  const out = copy(input);
  const before = new DataView(out.buffer, out.byteOffset).getUint32(at, true);
  writeInt(out, at, 4, to);
  return { bytes: out, mutator: "aligned-word", desc: `set u32 @${at} ${before} -> ${to}` };
};

/** A declared length far beyond the bytes: message prefix, bodyLength, buffers, field nodes, rows. */
export const oversizedLength: ByteMutator = (rng, input) => {
  const m = pickMessage(rng, input);
  if (m === null) return null;
  const out = copy(input);
  const int64s = pointsOf(input, m).filter(
    (p) =>
      p.kind === "int64" ||
      p.kind === "int32" ||
      (p.kind === "vector-length" && /nodes|buffers|variadic/.test(p.label)),
  );
  if (int64s.length === 0 || rng.chance(0.25)) {
    const to = rng.pick(oversizedPrefix(m.metaLength));
    writeInt(out, m.lengthAt, 4, to);
    return {
      bytes: out,
      mutator: "oversized-length",
      desc: `set message length @${m.lengthAt} ${m.metaLength} -> ${to}`,
    };
  }
  const p = rng.pick(int64s);
  if (p.width === 8) {
    const to = rng.pick(oversizedInt64(p.value));
    writeInt(out, p.at, 8, to);
    return { bytes: out, mutator: "oversized-length", desc: pointDesc(p, to) };
  }
  const to = rng.pick(inflatedCounts(p.value));
  writeInt(out, p.at, p.width, to);
  return { bytes: out, mutator: "oversized-length", desc: pointDesc(p, to) };
};

/** A prefix of this stream (or another seed) followed by a whole seed. */
export const splice: ByteMutator = (rng, input, others) => {
  if (input.byteLength < 2) return null;
  const parts = splitIpc(input);
  const inside = messagesOf(parts).flatMap((m) => [m.metaStart + rng.int(Math.max(1, m.metaLength)), m.start + 4]);
  const cuts = [...boundaries(parts), ...inside].filter((c) => c > 0 && c < input.byteLength);
  const at = cuts.length > 0 && rng.chance(0.7) ? rng.pick(cuts) : rng.range(1, input.byteLength - 1);
  const tail = others.length > 0 && rng.chance(0.5) ? rng.pick(others) : { name: "itself", bytes: input };
  return {
    bytes: concat([input.subarray(0, at), tail.bytes]),
    mutator: "splice",
    desc: `first ${at} bytes, then the whole of ${tail.name} (${tail.bytes.byteLength} bytes)`,
  };
};

/** Random bytes: alone, after a valid prefix, or in place of a message's flatbuffer. */
export const randomBytes: ByteMutator = (rng, input) => {
  const n = rng.pick([1, 4, 7, 8, 16, 64, 200, 1024, 4096]);
  const junk = rng.bytes(n);
  const mode = rng.int(3);
  if (mode === 0) return { bytes: junk, mutator: "random-bytes", desc: `${n} random bytes` };
  if (mode === 1) {
    const cuts = boundaries(splitIpc(input)).filter((c) => c <= input.byteLength);
    const at = cuts.length > 0 ? rng.pick(cuts) : 0;
    return {
      bytes: concat([input.subarray(0, at), junk]),
      mutator: "random-bytes",
      desc: `first ${at} bytes, then ${n} random bytes`,
    };
  }
  const m = pickMessage(rng, input);
  if (m === null) return null;
  const out = copy(input);
  const from = m.metaStart + rng.int(Math.max(1, m.metaLength));
  const len = Math.min(n, m.metaStart + m.metaLength - from);
  out.set(junk.subarray(0, len), from);
  return { bytes: out, mutator: "random-bytes", desc: `${len} random bytes over @${from}` };
};

/** Messages duplicated, dropped or swapped (a second schema, a batch before its schema, no EOS). */
export const messageShuffle: ByteMutator = (rng, input) => {
  const parts = splitIpc(input).filter((p) => p.end <= input.byteLength);
  if (parts.length < 2) return null;
  const pieces = parts.map((p) => input.subarray(p.start, p.end));
  const i = rng.int(pieces.length);
  const op = rng.int(3);
  let desc: string;
  if (op === 0) {
    pieces.splice(i, 0, pieces[i]!);
    desc = `duplicate part ${i}`;
  } else if (op === 1) {
    pieces.splice(i, 1);
    desc = `drop part ${i}`;
  } else {
    const j = (i + 1) % pieces.length;
    [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
    desc = `swap parts ${i} and ${j}`;
  }
  const tail = input.subarray(parts[parts.length - 1]!.end);
  return { bytes: concat([...pieces, tail]), mutator: "message-shuffle", desc: `${desc} of ${parts.length}` };
};

/** A run of bytes inside a flatbuffer or body set to 0x00, 0xff or 0x7f. */
export const byteRun: ByteMutator = (rng, input) => {
  const m = pickMessage(rng, input);
  if (m === null) return null;
  const inBody = m.bodyLength > 0 && rng.chance(0.3);
  const lo = inBody ? m.bodyStart : m.metaStart;
  const hi = Math.min(input.byteLength, inBody ? m.end : m.metaStart + m.metaLength);
  if (hi <= lo) return null;
  const from = rng.range(lo, hi - 1);
  const len = Math.min(rng.range(1, 16), hi - from);
  const fill = rng.pick([0x00, 0xff, 0x7f]);
  const out = copy(input);
  out.fill(fill, from, from + len);
  return { bytes: out, mutator: "byte-run", desc: `bytes @${from}..${from + len} set to 0x${fill.toString(16)}` };
};

/** The single mutators and their weights. */
export const MUTATORS: readonly (readonly [ByteMutator, number])[] = [
  [bitflipAny, 3],
  [bitflipFlatbuffer, 3],
  [truncateBoundary, 1.5],
  [truncateWithin, 1.5],
  [countInflate, 3],
  [offsetCorrupt, 1.5],
  [alignedWord, 1],
  [oversizedLength, 3],
  [splice, 2],
  [randomBytes, 1],
  [messageShuffle, 1],
  [byteRun, 1],
];

/** One weighted mutation of `input`, or two or three stacked (one case in ten). */
export function mutate(rng: Rng, input: Uint8Array, others: readonly ByteSeed[]): Mutation {
  const rounds = rng.chance(0.1) ? rng.range(2, 3) : 1;
  let bytes = input;
  const names: string[] = [];
  const descs: string[] = [];
  for (let r = 0; r < rounds; r++) {
    let m: Mutation | null = null;
    for (let attempt = 0; attempt < 8 && m === null; attempt++) m = rng.weighted(MUTATORS)(rng, bytes, others);
    if (m === null)
      m = bitflipAny(rng, bytes, others) ?? { bytes: rng.bytes(8), mutator: "random-bytes", desc: "8 random bytes" };
    bytes = m.bytes;
    names.push(m.mutator);
    descs.push(m.desc);
  }
  return {
    bytes,
    mutator: rounds === 1 ? names[0]! : `stack(${names.join("+")})`,
    desc: descs.join("; then "),
  };
}

// ---------------------------------------------------------------------------------------------
// The known reproductions (issue #21), exactly

/**
 * Reproduction (a): `request` with its record batch's custom-metadata vector length set to
 * 2^31-1 (four bytes changed). Throws when the request has no record batch with metadata.
 */
export function hugeMetadataCount(request: Uint8Array): Mutation {
  const batch = messagesOf(splitIpc(request)).find((m) => m.headerType === 3);
  const p =
    batch === undefined
      ? undefined
      : pointsOf(request, batch).find((q) => q.kind === "vector-length" && q.label === "Message.custom_metadata");
  if (p === undefined) throw new Error("the request has no record batch with custom metadata");
  const out = copy(request);
  writeInt(out, p.at, 4, 0x7fffffff);
  return { bytes: out, mutator: "regression-a", desc: pointDesc(p, 0x7fffffff) };
}

/** Reproduction (b): the first `n` bytes of `request` (default 111), then the whole request. */
export function prefixSplice(request: Uint8Array, n = 111): Mutation {
  return {
    bytes: concat([request.subarray(0, n), request]),
    mutator: "regression-b",
    desc: `first ${n} bytes, then the whole request (${request.byteLength} bytes)`,
  };
}
