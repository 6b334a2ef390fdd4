/**
 * A vgi-rpc shared-memory segment: a file in /dev/shm (what POSIX `shm_open` names map to on
 * Linux) holding a 64 KiB allocator header followed by the data region. The layout is the
 * reference's, byte for byte, so a Python (or C++, Go, ...) peer can attach to a segment we
 * created and the other way round:
 *
 * ```
 * offset  size   field (little-endian)
 * 0       4      magic "VGIS"
 * 4       4      version u32 = 1
 * 8       8      data_size u64 = segment size - HEADER_SIZE
 * 16      4      num_allocs u32
 * 20      4      padding
 * 24      n*16   allocations (offset u64, length u64), sorted by offset, at most MAX_ALLOCS
 * ```
 *
 * Offsets are absolute (from the segment's first byte); the data region starts at HEADER_SIZE.
 * Allocation is first fit over the gaps between recorded allocations, with no alignment beyond
 * what callers ask for. The allocator keeps no state of its own: every operation re-reads the
 * table, because the peer allocates and frees in the same header (the lockstep protocol means only
 * one side touches it at a time, so there is no lock). Every table read is validated, so a corrupt
 * or hostile header yields a typed `ShmError`, never a read outside the mapping.
 *
 * Two backings implement the same API: `mmap` (the native addon; reads are zero-copy views) and
 * `file` (positional `fs.readSync`/`fs.writeSync` on the same file; reads are copies). The second
 * exists so the transport still works, slower, where the addon did not build.
 */

import { constants as bufferConstants } from "node:buffer";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { BACKING_ENV, loadNative, type NativeShm } from "./native.js";

/** Bytes reserved for the allocator header at the start of every segment. */
export const HEADER_SIZE = 65536;
/** The header's first four bytes. */
export const MAGIC = "VGIS";
/** The header layout version this code reads and writes. */
export const VERSION = 1;
/** Fixed header fields before the allocation table (`<4sIQII`). */
export const FIXED_HEADER_SIZE = 24;
/** One allocation table entry (`<QQ`). */
export const ALLOC_ENTRY_SIZE = 16;
/** Allocations the header can hold at once: floor((65536 - 24) / 16) = 4094. */
export const MAX_ALLOCS = Math.floor((HEADER_SIZE - FIXED_HEADER_SIZE) / ALLOC_ENTRY_SIZE);
/**
 * Largest segment, in bytes: what one ArrayBuffer can span on this Node (4 GiB on Node 20).
 * Both backings keep to it so a segment works the same whichever is in use.
 */
export const MAX_SEGMENT_SIZE: number = bufferConstants.MAX_LENGTH;
/** Where POSIX shared-memory names live as files on Linux. */
export const SHM_DIR = "/dev/shm";
/** Longest segment name, in bytes (NAME_MAX). */
export const MAX_NAME_BYTES = 255;
/**
 * Page granularity some kernels round a segment's size up to (16 KiB on Apple Silicon); `attach`
 * accepts a file this much larger than the advertised size, as the reference does.
 */
const SIZE_ROUNDING = 16384;

const MAGIC_U32 = 0x53494756; // "VGIS" read as a little-endian u32
const TWO_32 = 2 ** 32;

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/** How a segment operation failed. */
export type ShmErrorKind =
  /** The header does not start with "VGIS": not a segment, or not initialised. */
  | "bad_magic"
  /** A header layout version other than 1. */
  | "bad_version"
  /** `data_size`, the advertised size and the file's length disagree (including a truncated file). */
  | "bad_size"
  /** An offset, length or table entry reaches outside the segment or its allocation. */
  | "out_of_bounds"
  /** No allocation at (or around) the given offset. */
  | "unknown_allocation"
  /** The allocation table is unsorted, overlapping or has an empty entry. */
  | "overlapping_allocation"
  /** The segment was closed. */
  | "not_attached"
  /** The operating system refused (open, map, read, write, unlink); `code` has the errno name. */
  | "io";

/** A typed failure of a segment operation. */
export class ShmError extends Error {
  override readonly name = "ShmError";
  /** Errno name (`ENOENT`, `EEXIST`, ...) for `io` errors. */
  readonly code: string | undefined;

  constructor(
    readonly kind: ShmErrorKind,
    message: string,
    opts: { cause?: unknown; code?: string } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = opts.code;
  }
}

/** The errno name of an fs or addon error (`ENOENT`, ...), or undefined. */
function errnoName(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (typeof e?.code === "string" && e.code.startsWith("E")) return e.code;
  if (typeof e?.errno === "number") {
    const n = Math.abs(e.errno);
    for (const [name, value] of Object.entries(osConstants.errno)) if (value === n) return name;
  }
  return undefined;
}

/** The one mapping from operating-system errors to `ShmError`. */
function ioError(what: string, err: unknown): ShmError {
  const code = errnoName(err);
  return new ShmError("io", `${what}: ${(err as Error).message ?? String(err)}`, {
    cause: err,
    ...(code === undefined ? {} : { code }),
  });
}

/** One recorded allocation. */
export interface ShmAllocation {
  /** Absolute offset from the segment's start (>= HEADER_SIZE). */
  readonly offset: number;
  readonly length: number;
}

/** Which backing a segment would use here, and why. */
export interface ShmSupport {
  /** True where POSIX shared memory exists as files (Linux's /dev/shm). */
  readonly available: boolean;
  /** `mmap` with the native addon; `file` (positional file I/O) without it. */
  readonly backing: "mmap" | "file";
  /** Why shm is unavailable, or why the backing is `file`. */
  readonly reason?: string;
}

/** Options for `ShmSegment.create`. */
export interface ShmCreateOptions {
  /** Segment name (a leading `/` is accepted and dropped). Default: `quiver_<pid>_<8 hex digits>`. */
  readonly name?: string;
  /** Force a backing. Default: `mmap` when the addon loads (and `QUIVER_SHM_BACKING` is not `file`), else `file`. */
  readonly backing?: "mmap" | "file";
  /** Directory holding segment files. Default: `/dev/shm` (the only place other-language peers look). */
  readonly dir?: string;
}

/** Options for `ShmSegment.attach`. */
export interface ShmAttachOptions {
  /** Force a backing. Default: as for `create`. */
  readonly backing?: "mmap" | "file";
  /** Directory holding segment files. Default: `/dev/shm`. */
  readonly dir?: string;
}

/** Which backing to use when the caller does not say, and why it is `file` when it is. */
function defaultBacking(): { backing: "mmap"; addon: NativeShm } | { backing: "file"; reason: string } {
  const native = loadNative();
  return "addon" in native ? { backing: "mmap", addon: native.addon } : { backing: "file", reason: native.reason };
}

/** Whether shared-memory segments work here, and with which backing. */
export function shmSupport(): ShmSupport {
  const chosen = defaultBacking();
  const reason = chosen.backing === "file" ? chosen.reason : undefined;
  if (process.platform === "win32" || !existsSync(SHM_DIR)) {
    return {
      available: false,
      backing: chosen.backing,
      reason: `no ${SHM_DIR} on this platform (${process.platform})`,
    };
  }
  return reason === undefined ? { available: true, backing: "mmap" } : { available: true, backing: "file", reason };
}

/** The name as reported (no leading slash) after checking it names a single file. */
function normalizeName(name: string): string {
  const bare = name.replace(/^\/+/, "");
  if (
    bare.length === 0 ||
    bare === "." ||
    bare === ".." ||
    /[/\0]/.test(bare) ||
    Buffer.byteLength(bare) > MAX_NAME_BYTES
  ) {
    throw new ShmError("io", `invalid shared-memory segment name ${JSON.stringify(name)}`, { code: "EINVAL" });
  }
  return bare;
}

function checkSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size <= HEADER_SIZE || size > MAX_SEGMENT_SIZE) {
    throw new ShmError(
      "bad_size",
      `${what} ${size} is not an integer in (${HEADER_SIZE}, ${MAX_SEGMENT_SIZE}] (HEADER_SIZE is ${HEADER_SIZE})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Backings

/** Byte access to the segment file. */
interface Backing {
  readonly kind: "mmap" | "file";
  readonly fd: number;
  /** Bytes at [pos, pos + length): a view of the mapping (mmap) or a fresh copy (file). */
  read(pos: number, length: number): Uint8Array;
  /** Copies `bytes` to `pos`. */
  write(pos: number, bytes: Uint8Array): void;
  /** Drops this side's reference (the mapping lives while any view of it does) and closes the fd. */
  close(): void;
}

class MmapBacking implements Backing {
  readonly kind = "mmap";
  private bytes: Uint8Array;

  constructor(
    buffer: ArrayBuffer,
    readonly fd: number,
  ) {
    this.bytes = new Uint8Array(buffer);
  }

  read(pos: number, length: number): Uint8Array {
    return this.bytes.subarray(pos, pos + length);
  }

  write(pos: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, pos);
  }

  close(): void {
    this.bytes = new Uint8Array(0);
    closeSync(this.fd);
  }
}

class FileBacking implements Backing {
  readonly kind = "file";

  constructor(readonly fd: number) {}

  read(pos: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let at = 0;
    while (at < length) {
      const n = readSync(this.fd, out, at, length - at, pos + at);
      if (n === 0) throw new ShmError("bad_size", `segment file ends at ${pos + at}, before ${pos + length}`);
      at += n;
    }
    return out;
  }

  write(pos: number, bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.byteLength) at += writeSync(this.fd, bytes, at, bytes.byteLength - at, pos + at);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Opens (or creates) the file at `path` with the chosen backing; returns it with the file's length. */
function openBacking(
  path: string,
  size: number,
  create: boolean,
  backing: "mmap" | "file" | undefined,
): { backing: Backing; fileSize: number; reason?: string } {
  let reason: string | undefined;
  let addon: NativeShm | undefined;
  if (backing === "file") {
    reason = "file backing requested by the caller";
  } else {
    const chosen = defaultBacking();
    if (chosen.backing === "mmap") addon = chosen.addon;
    else if (backing === "mmap") throw new ShmError("io", `mmap backing requested but unavailable: ${chosen.reason}`);
    else reason = chosen.reason;
  }
  const what = `${create ? "create" : "attach"} ${path}`;
  if (addon !== undefined) {
    try {
      const m = addon.map(path, size, create);
      return { backing: new MmapBacking(m.buffer, m.fd), fileSize: m.size };
    } catch (err) {
      // Mapping an empty file is mmap's EINVAL: for us it is a truncated segment.
      const e = err as { syscall?: unknown; errno?: unknown };
      if (!create && e.syscall === "mmap" && e.errno === osConstants.errno.EINVAL) {
        throw new ShmError("bad_size", `${what}: segment file is empty`, { cause: err });
      }
      throw ioError(what, err);
    }
  }
  let fd: number;
  try {
    fd = create
      ? openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600)
      : openSync(path, fsConstants.O_RDWR);
  } catch (err) {
    throw ioError(what, err);
  }
  try {
    if (create) ftruncateSync(fd, size);
    const fileSize = fstatSync(fd).size;
    return { backing: new FileBacking(fd), fileSize, ...(reason === undefined ? {} : { reason }) };
  } catch (err) {
    closeSync(fd);
    if (create) unlinkSync(path);
    throw ioError(what, err);
  }
}

// ---------------------------------------------------------------------------------------------
// The segment

/**
 * One shared-memory segment and its allocator. Created by one peer (`create`), attached by the
 * other (`attach`, given the name and size the creator advertises). Not safe for concurrent use
 * by both peers at once: the vgi-rpc lockstep protocol guarantees turns.
 */
export class ShmSegment {
  /** The segment's name as the wire carries it (no leading slash). */
  readonly name: string;
  /** Total bytes, header included. */
  readonly size: number;
  /** `mmap` (zero-copy reads through the addon) or `file` (positional I/O, copying reads). */
  readonly backing: "mmap" | "file";
  /** Why the backing is `file`, when it is. */
  readonly backingReason?: string;
  /** The segment file's path (`/dev/shm/<name>` by default). */
  readonly path: string;
  private io: Backing | null;

  private constructor(name: string, path: string, size: number, io: Backing, reason: string | undefined) {
    this.name = name;
    this.path = path;
    this.size = size;
    this.io = io;
    this.backing = io.kind;
    if (reason !== undefined) this.backingReason = reason;
  }

  /**
   * Creates a segment of `size` bytes in total (HEADER_SIZE of header, the rest data), mode 0600,
   * failing with `io`/`EEXIST` if the name is taken, and writes an empty allocator header.
   */
  static create(size: number, opts: ShmCreateOptions = {}): ShmSegment {
    checkSize(size, "segment size");
    const dir = opts.dir ?? SHM_DIR;
    // A generated name is retried on the (unlikely) collision; a given one is not.
    for (let attempt = 0; ; attempt++) {
      const name = normalizeName(opts.name ?? `quiver_${process.pid}_${randomBytes(4).toString("hex")}`);
      const path = join(dir, name);
      let opened: ReturnType<typeof openBacking>;
      try {
        opened = openBacking(path, size, true, opts.backing);
      } catch (err) {
        if (opts.name === undefined && err instanceof ShmError && err.code === "EEXIST" && attempt < 8) continue;
        throw err;
      }
      const segment = new ShmSegment(name, path, opened.fileSize, opened.backing, opened.reason);
      try {
        segment.initialize();
      } catch (err) {
        segment.close();
        segment.unlink();
        throw err;
      }
      return segment;
    }
  }

  /**
   * Attaches to an existing segment `name` advertised as `size` bytes. Validates the file's
   * length, magic, version, `data_size` and the allocation table; any mismatch is a `ShmError`
   * and leaves nothing open.
   */
  static attach(name: string, size: number, opts: ShmAttachOptions = {}): ShmSegment {
    checkSize(size, "advertised segment size");
    const bare = normalizeName(name);
    const path = join(opts.dir ?? SHM_DIR, bare);
    const opened = openBacking(path, size, false, opts.backing);
    const segment = new ShmSegment(bare, path, opened.fileSize, opened.backing, opened.reason);
    try {
      const actual = opened.fileSize;
      if (actual < size) {
        throw new ShmError("bad_size", `segment ${bare} is ${actual} bytes, shorter than the advertised ${size}`);
      }
      if (actual > Math.ceil(size / SIZE_ROUNDING) * SIZE_ROUNDING || actual > MAX_SEGMENT_SIZE) {
        throw new ShmError("bad_size", `segment ${bare} is ${actual} bytes, larger than the advertised ${size}`);
      }
      segment.table();
    } catch (err) {
      segment.close();
      throw err;
    }
    return segment;
  }

  private get live(): Backing {
    if (this.io === null) throw new ShmError("not_attached", `segment ${this.name} is closed`);
    return this.io;
  }

  private initialize(): void {
    const io = this.live;
    const header = new Uint8Array(FIXED_HEADER_SIZE);
    const view = new DataView(header.buffer);
    view.setUint32(0, MAGIC_U32, true);
    view.setUint32(4, VERSION, true);
    const dataSize = this.size - HEADER_SIZE;
    view.setUint32(8, dataSize % TWO_32, true);
    view.setUint32(12, Math.floor(dataSize / TWO_32), true);
    io.write(0, header);
  }

  /** Fails with `bad_size` when the file has shrunk below the size mapped (touching it would SIGBUS). */
  private checkFile(): void {
    const io = this.live;
    let length: number;
    try {
      length = fstatSync(io.fd).size;
    } catch (err) {
      throw ioError(`fstat ${this.path}`, err);
    }
    if (length < this.size) {
      throw new ShmError("bad_size", `segment ${this.name} was truncated to ${length} bytes (mapped ${this.size})`);
    }
  }

  /** Reads and validates the whole header; returns the allocation table. */
  private table(): ShmAllocation[] {
    this.checkFile();
    const io = this.live;
    const fixed = io.read(0, FIXED_HEADER_SIZE);
    const head = new DataView(fixed.buffer, fixed.byteOffset, FIXED_HEADER_SIZE);
    if (head.getUint32(0, true) !== MAGIC_U32) {
      const got = Buffer.from(fixed.subarray(0, 4)).toString("latin1");
      throw new ShmError("bad_magic", `segment ${this.name}: bad magic ${JSON.stringify(got)} (want "${MAGIC}")`);
    }
    const version = head.getUint32(4, true);
    if (version !== VERSION) {
      throw new ShmError("bad_version", `segment ${this.name}: header version ${version}, this code reads ${VERSION}`);
    }
    const dataSize = head.getUint32(12, true) * TWO_32 + head.getUint32(8, true);
    if (dataSize !== this.size - HEADER_SIZE) {
      throw new ShmError(
        "bad_size",
        `segment ${this.name}: header data_size ${dataSize} but the segment has ${this.size - HEADER_SIZE} data bytes`,
      );
    }
    const count = head.getUint32(16, true);
    if (count > MAX_ALLOCS) {
      throw new ShmError("out_of_bounds", `segment ${this.name}: ${count} allocations, the header holds ${MAX_ALLOCS}`);
    }
    const raw = io.read(FIXED_HEADER_SIZE, count * ALLOC_ENTRY_SIZE);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: ShmAllocation[] = new Array(count);
    let end = HEADER_SIZE;
    for (let i = 0; i < count; i++) {
      const at = i * ALLOC_ENTRY_SIZE;
      const offHi = view.getUint32(at + 4, true);
      const lenHi = view.getUint32(at + 12, true);
      const offset = offHi * TWO_32 + view.getUint32(at, true);
      const length = lenHi * TWO_32 + view.getUint32(at + 8, true);
      if (offHi >= 2 ** 21 || lenHi >= 2 ** 21 || offset < HEADER_SIZE || offset + length > this.size) {
        throw new ShmError(
          "out_of_bounds",
          `segment ${this.name}: allocation ${i} (offset ${offset}, length ${length}) lies outside the data region [${HEADER_SIZE}, ${this.size})`,
        );
      }
      if (length === 0 || offset < end) {
        throw new ShmError(
          "overlapping_allocation",
          `segment ${this.name}: allocation ${i} (offset ${offset}, length ${length}) ${length === 0 ? "is empty" : `starts before the previous one ends (${end})`}`,
        );
      }
      out[i] = { offset, length };
      end = offset + length;
    }
    return out;
  }

  private store(table: readonly ShmAllocation[]): void {
    const io = this.live;
    const raw = new Uint8Array(table.length * ALLOC_ENTRY_SIZE);
    const view = new DataView(raw.buffer);
    table.forEach((a, i) => {
      const at = i * ALLOC_ENTRY_SIZE;
      view.setUint32(at, a.offset % TWO_32, true);
      view.setUint32(at + 4, Math.floor(a.offset / TWO_32), true);
      view.setUint32(at + 8, a.length % TWO_32, true);
      view.setUint32(at + 12, Math.floor(a.length / TWO_32), true);
    });
    io.write(16, u32le(table.length));
    io.write(FIXED_HEADER_SIZE, raw);
  }

  /** The allocation table as it is now (validated), sorted by offset. */
  allocations(): ShmAllocation[] {
    return this.table();
  }

  /**
   * Reserves `length` bytes in the first gap that fits and returns the absolute offset, or `null`
   * when no gap is large enough or the table already holds MAX_ALLOCS entries. `length` must be a
   * positive safe integer (RangeError otherwise).
   */
  allocate(length: number): number | null {
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new RangeError(`allocation length must be a positive integer, got ${length}`);
    }
    const table = this.table();
    if (table.length >= MAX_ALLOCS) return null;
    let prevEnd = HEADER_SIZE;
    let index = table.length;
    for (let i = 0; i < table.length; i++) {
      if (table[i]!.offset - prevEnd >= length) {
        index = i;
        break;
      }
      prevEnd = table[i]!.offset + table[i]!.length;
    }
    if (index === table.length && this.size - prevEnd < length) return null;
    table.splice(index, 0, { offset: prevEnd, length });
    this.store(table);
    return prevEnd;
  }

  /** The allocation holding [offset, offset + length), after the segment bounds check. */
  private owning(offset: number, length: number, op: string): ShmAllocation {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 0) {
      throw new ShmError("out_of_bounds", `${op}: offset ${offset} / length ${length} are not non-negative integers`);
    }
    if (offset < HEADER_SIZE || offset + length > this.size) {
      throw new ShmError(
        "out_of_bounds",
        `${op}: [${offset}, ${offset + length}) lies outside the data region [${HEADER_SIZE}, ${this.size}) of ${this.name}`,
      );
    }
    const table = this.table();
    // Sorted and non-overlapping (validated), so the candidate is the last one starting at or before offset.
    let lo = 0;
    let hi = table.length - 1;
    let found: ShmAllocation | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const a = table[mid]!;
      if (a.offset <= offset) {
        found = a;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found === undefined || offset >= found.offset + found.length) {
      throw new ShmError("unknown_allocation", `${op}: no allocation at offset ${offset} in ${this.name}`);
    }
    if (offset + length > found.offset + found.length) {
      throw new ShmError(
        "out_of_bounds",
        `${op}: [${offset}, ${offset + length}) runs past the allocation [${found.offset}, ${found.offset + found.length})`,
      );
    }
    return found;
  }

  /** Copies `chunks`, back to back, into an allocation starting at `offset`. */
  write(offset: number, chunks: readonly Uint8Array[]): void {
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    this.owning(offset, total, "write");
    const io = this.live;
    let at = offset;
    for (const c of chunks) {
      io.write(at, c);
      at += c.byteLength;
    }
  }

  /**
   * `length` bytes at `offset`, which must lie inside one allocation. With the `mmap` backing this
   * is a view of the shared pages: valid after `close()`, but its contents change when the region
   * is freed and reused, so decode (or copy) before freeing. Every call checks the file's length
   * first, but a view kept afterwards faults (SIGBUS) if the peer then truncates the file.
   */
  read(offset: number, length: number): Uint8Array {
    this.owning(offset, length, "read");
    return this.live.read(offset, length);
  }

  /** Releases the allocation starting exactly at `offset` (`unknown_allocation` if there is none). */
  free(offset: number): void {
    const table = this.table();
    const i = table.findIndex((a) => a.offset === offset);
    if (i < 0)
      throw new ShmError("unknown_allocation", `free: no allocation starts at offset ${offset} in ${this.name}`);
    table.splice(i, 1);
    this.store(table);
  }

  /** Forgets every allocation (num_allocs = 0), as between calls. */
  reset(): void {
    this.checkFile();
    this.live.write(16, u32le(0));
  }

  /** Closes this side's handle. Views from `read` stay valid; the mapping goes when they do. Idempotent. */
  close(): void {
    const io = this.io;
    this.io = null;
    io?.close();
  }

  /** Removes the segment's name (the creator's job); mappings stay valid until closed. */
  unlink(): void {
    try {
      const native = this.backing === "mmap" ? loadNative() : undefined;
      if (native !== undefined && "addon" in native) native.addon.unlink(this.path);
      else unlinkSync(this.path);
    } catch (err) {
      throw ioError(`unlink ${this.path}`, err);
    }
  }
}

/** The environment variable that forces the file-I/O backing, re-exported for documentation. */
export { BACKING_ENV };
