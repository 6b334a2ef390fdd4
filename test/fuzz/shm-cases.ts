/**
 * Shared-memory cases: a pipe worker given requests that advertise a segment the harness made,
 * with batches in the segment behind pointer batches. Mutated: the pipe bytes (as any session),
 * the pointer keys (offsets and lengths outside the segment, garbage numbers), the advertised
 * segment (missing, path-like names, wrong sizes), the segment's allocator header (magic,
 * version, sizes, counts, table entries) and the IPC bytes inside a region; or the segment file
 * is truncated before the call.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HEADER_SIZE, SHM_DIR, ShmSegment } from "../../src/transports/shm/segment.js";
import type { FuzzCase, ShmInput } from "./cases.js";
import { caseRng, splitWrites } from "./cases.js";
import {
  alignedWord,
  type ByteMutator,
  bitflipAny,
  bitflipFlatbuffer,
  byteRun,
  countInflate,
  mutate,
  offsetCorrupt,
  oversizedLength,
  writeInt,
} from "./mutators.js";
import type { Rng } from "./rng.js";
import { buildShmSeed, SHM_SEED_KINDS, type ShmSeedHooks } from "./seeds.js";

/** Total size of the segments the cases make (header included). */
export const SHM_CASE_SEGMENT_SIZE = 1024 * 1024;

/** A segment name of fixed length for case `index` of this process. */
export function shmCaseName(index: number): string {
  const pid = String(process.pid % 10_000_000).padStart(7, "0");
  const n = String(index < 0 ? 1_000_000 + index : index).padStart(7, "0");
  return `qfz${pid}x${n}`;
}

const OFFSET_VALUES = (size: number, offset: number, length: number): string[] => [
  String(size),
  String(size + 8),
  String(2 ** 53),
  "-1",
  "abc",
  "0",
  "24",
  String(HEADER_SIZE - 8),
  String(offset + 1),
  String(offset + length),
  "1e3",
  "",
  " 123",
  "99999999999999999999",
];

const LENGTH_VALUES = (size: number, length: number): string[] => [
  String(size),
  String(length + 1),
  String(length * 2),
  "0",
  "-1",
  String(2 ** 53),
  "99999999999999999999",
  "x",
  String(size * 4),
];

function pointerEdit(rng: Rng, size: number): { describe(): string; edit: (md: Map<string, string>) => void } {
  const which = rng.pick(["offset", "length", "both", "drop-length"] as const);
  let desc = "";
  const edit = (md: Map<string, string>) => {
    const offset = Number(md.get("vgi_rpc.shm_offset") ?? HEADER_SIZE);
    const length = Number(md.get("vgi_rpc.shm_length") ?? 0);
    if (which === "drop-length") {
      md.delete("vgi_rpc.shm_length");
      desc = "shm_length dropped";
      return;
    }
    if (which === "offset" || which === "both") {
      const v = rng.pick(OFFSET_VALUES(size, offset, length));
      md.set("vgi_rpc.shm_offset", v);
      desc += `shm_offset ${offset} -> '${v}' `;
    }
    if (which === "length" || which === "both") {
      const v = rng.pick(LENGTH_VALUES(size, length));
      md.set("vgi_rpc.shm_length", v);
      desc += `shm_length ${length} -> '${v}'`;
    }
  };
  return { describe: () => desc.trim(), edit };
}

function segmentEdit(rng: Rng, name: string, size: number): { desc: string; edit: (md: Map<string, string>) => void } {
  const n = rng.pick([
    name,
    name,
    "quiver_fuzz_no_such_segment",
    `../${name}`,
    `${name}/x`,
    "a".repeat(250),
    "",
    ".",
    "..",
    `/${name}`,
    "proc/self/mem",
  ]);
  const s = rng.pick([
    String(size),
    "0",
    "1",
    String(size * 2),
    String(size - 1),
    "99999999999999999999",
    "-5",
    "65536",
    String(size + 4096),
    "0x100000",
  ]);
  return {
    desc: `segment advertised as '${n.length > 40 ? `${n.slice(0, 20)}...(${n.length})` : n}' size '${s}'`,
    edit: (md) => {
      md.set("vgi_rpc.shm_segment_name", n);
      md.set("vgi_rpc.shm_segment_size", s);
    },
  };
}

/** Allocation table entries of a segment image. */
function allocations(image: Uint8Array): { offset: number; length: number }[] {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const n = Math.min(dv.getUint32(16, true), 64);
  const out: { offset: number; length: number }[] = [];
  for (let i = 0; i < n; i++) {
    const at = 24 + i * 16;
    out.push({ offset: dv.getUint32(at, true), length: dv.getUint32(at + 8, true) });
  }
  return out;
}

function headerEdit(rng: Rng, image: Uint8Array, size: number): string {
  const n = new DataView(image.buffer, image.byteOffset).getUint32(16, true);
  const what = rng.int(6);
  if (what === 0) {
    image.set([0x58, 0x58, 0x58, 0x58], 0);
    return "header magic set to XXXX";
  }
  if (what === 1) {
    const v = rng.pick([0, 2, 0xffffffff]);
    writeInt(image, 4, 4, v);
    return `header version set to ${v}`;
  }
  if (what === 2) {
    const v = rng.pick([0, size, 2 ** 40, 2 ** 53 - 1]);
    writeInt(image, 8, 8, v);
    return `header data_size set to ${v}`;
  }
  if (what === 3) {
    const v = rng.pick([n + 1, 4094, 4095, 0xffffffff, 0]);
    writeInt(image, 16, 4, v);
    return `header num_allocs ${n} -> ${v}`;
  }
  const i = rng.int(Math.max(1, n));
  const at = 24 + i * 16 + (what === 4 ? 0 : 8);
  const v = rng.pick([0, 8, size, size - 8, 2 ** 32, 2 ** 52, HEADER_SIZE - 16]);
  writeInt(image, at, 8, v);
  return `allocation ${i} ${what === 4 ? "offset" : "length"} set to ${v}`;
}

const SAME_LENGTH: readonly ByteMutator[] = [
  bitflipAny,
  bitflipFlatbuffer,
  countInflate,
  offsetCorrupt,
  alignedWord,
  oversizedLength,
  byteRun,
];

function regionEdit(rng: Rng, image: Uint8Array): string | null {
  const allocs = allocations(image).filter((a) => a.offset + a.length <= image.byteLength && a.length > 0);
  if (allocs.length === 0) return null;
  const a = rng.pick(allocs);
  const region = image.subarray(a.offset, a.offset + a.length);
  for (let attempt = 0; attempt < 6; attempt++) {
    const m = rng.pick(SAME_LENGTH)(rng, region, []);
    if (m === null) continue;
    region.set(m.bytes.subarray(0, region.byteLength));
    return `region @${a.offset} (${a.length} bytes): ${m.mutator}: ${m.desc}`;
  }
  return null;
}

/** Case `index` of the shared-memory transport. */
export function shmCase(runSeed: number, index: number): FuzzCase {
  const rng = caseRng(runSeed, "shm", index);
  const kind = rng.pick(SHM_SEED_KINDS);
  const name = shmCaseName(index);
  const size = SHM_CASE_SEGMENT_SIZE;
  const cls = rng.weighted([
    ["pipe", 3],
    ["pointer", kind === "advertise" ? 0 : 2],
    ["segment", 1.5],
    ["header", 1.5],
    ["region", kind === "advertise" ? 0 : 2],
    ["truncate", 0.5],
  ] as const);
  const hooks: { -readonly [K in keyof ShmSeedHooks]: ShmSeedHooks[K] } = {};
  let desc = "";
  let pointer: ReturnType<typeof pointerEdit> | null = null;
  if (cls === "pointer") {
    const p = pointerEdit(rng, size);
    pointer = p;
    if (kind === "exchange-pointers") {
      const which = rng.int(2);
      hooks.input = (i, md) => {
        if (i === which) p.edit(md);
      };
    } else {
      hooks.request = p.edit;
    }
  } else if (cls === "segment") {
    const s = segmentEdit(rng, name, size);
    hooks.request = s.edit;
    desc = s.desc;
  }
  const segment = ShmSegment.create(size, { name, backing: "file" });
  let bytes: Uint8Array;
  let image: Uint8Array;
  try {
    bytes = buildShmSeed(kind, segment, hooks);
    image = new Uint8Array(readFileSync(join(SHM_DIR, name)));
  } finally {
    segment.close();
    segment.unlink();
  }
  if (pointer !== null) desc = `pointer batch: ${pointer.describe()}`;
  let truncateTo: number | undefined;
  let mutator = `shm-${cls}`;
  if (cls === "header") desc = headerEdit(rng, image, size);
  else if (cls === "region") desc = regionEdit(rng, image) ?? "no region to edit";
  else if (cls === "truncate") {
    truncateTo = rng.pick([0, 64, HEADER_SIZE, HEADER_SIZE + 100, size - 4096]);
    desc = `segment file truncated to ${truncateTo} bytes`;
  } else if (cls === "pipe") {
    const m = mutate(rng, bytes, []);
    bytes = m.bytes;
    mutator = m.mutator;
    desc = m.desc;
  }
  const input: ShmInput = {
    kind: "shm",
    writes: splitWrites(rng, bytes),
    segment: { name, size, image, ...(truncateTo === undefined ? {} : { truncateTo }) },
  };
  return { transport: "shm", index, runSeed, seedName: `shm.${kind}`, mutator, desc, input };
}

/** The two known reproductions on the shared-memory pipe (an untouched segment beside them). */
export function shmRegressions(cases: readonly FuzzCase[]): FuzzCase[] {
  return cases.map((c) => {
    const name = shmCaseName(c.index);
    const segment = ShmSegment.create(SHM_CASE_SEGMENT_SIZE, { name, backing: "file" });
    let image: Uint8Array;
    try {
      image = new Uint8Array(readFileSync(join(SHM_DIR, name)));
    } finally {
      segment.close();
      segment.unlink();
    }
    const writes = c.input.kind === "session" ? c.input.writes : [];
    return {
      ...c,
      transport: "shm",
      input: { kind: "shm", writes, segment: { name, size: SHM_CASE_SEGMENT_SIZE, image } },
    };
  });
}
