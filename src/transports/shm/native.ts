/**
 * Loads the optional shared-memory addon (native/shm, built at install time by
 * scripts/build-native.mjs). Loaded lazily and once; when it is missing the reason is kept so the
 * segment can say why it fell back to file I/O.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** What the addon's `map` returns: the mapping as an external ArrayBuffer and the open fd. */
export interface NativeMapping {
  /** Unmapped by its own finalizer once unreachable; never explicitly. */
  readonly buffer: ArrayBuffer;
  /** The caller owns (and closes) this descriptor; it is used to re-check the file's length. */
  readonly fd: number;
  /** Bytes mapped: the file's length at open. */
  readonly size: number;
}

/** The addon's surface (see native/shm/shm.c). */
export interface NativeShm {
  /** Opens (or, with `create`, creates with O_EXCL, mode 0600, and ftruncates to `size`) and maps `path`. */
  map(path: string, size: number, create: boolean): NativeMapping;
  /** unlink(2). */
  unlink(path: string): void;
}

/** The large-buffer pool's surface (see native/shm/pool.c). */
export interface NativePool {
  /** An ArrayBuffer of exactly `size` bytes, contents undefined, its pages kept for reuse once collected. */
  alloc(size: number): ArrayBuffer;
  /** The most idle bytes kept; a freed mapping beyond it is unmapped. */
  configure(limitBytes: number): void;
  /** Unmaps every idle mapping; returns the bytes released. */
  trim(): number;
  stats(): { idleBytes: number; idleMappings: number; limit: number; hits: number; misses: number };
}

/** An error thrown by the addon: the errno number and the failing system call. */
export interface NativeError extends Error {
  readonly errno: number;
  readonly syscall: string;
}

/** The addon's output, relative to this module (src/transports/shm or dist/transports/shm). */
const ADDON_URL = new URL("../../../native/shm/build/Release/quiver_shm.node", import.meta.url);
const STATUS_URL = new URL("../../../native/shm/build-status.json", import.meta.url);

/** The environment variable that forces the file-I/O backing (`QUIVER_SHM_BACKING=file`). */
export const BACKING_ENV = "QUIVER_SHM_BACKING";

/** Raises a socket's SO_SNDBUF to at least `bytes`; returns the kernel's value (see native/shm/shm.c). */
export type SendBufferSetter = (fd: number, bytes: number) => number;

type Addon = NativeShm & { readonly pool?: NativePool; readonly sendBuffer?: SendBufferSetter };

let loaded: { addon: Addon } | { reason: string } | undefined;

function isNativeShm(value: unknown): value is Addon {
  const v = value as Partial<Record<keyof NativeShm, unknown>> | null;
  return typeof v === "object" && v !== null && typeof v.map === "function" && typeof v.unlink === "function";
}

/** Why the addon is absent, in the build script's words when it left any. */
function missingReason(): string {
  const path = fileURLToPath(ADDON_URL);
  try {
    const status = JSON.parse(readFileSync(STATUS_URL, "utf8")) as { built?: unknown; reason?: unknown };
    if (status.built === false && typeof status.reason === "string") {
      return `native addon not built at install: ${status.reason}`;
    }
  } catch {
    // No status file: the install script never ran (e.g. --ignore-scripts).
  }
  return `native addon not built (${path} missing; run \`node scripts/build-native.mjs\`)`;
}

/** The addon for shared memory, or why it cannot be used. Honours `QUIVER_SHM_BACKING=file`. */
export function loadNative(): { addon: NativeShm } | { reason: string } {
  if (process.env[BACKING_ENV] === "file") return { reason: `file backing forced by ${BACKING_ENV}=file` };
  return loadAddon();
}

/** The large-buffer pool of the same addon, or why it cannot be used (the shm backing switch does not apply). */
export function loadPool(): { pool: NativePool } | { reason: string } {
  const r = loadAddon();
  if ("reason" in r) return r;
  return r.addon.pool === undefined ? { reason: "native addon has no pool (rebuild it)" } : { pool: r.addon.pool };
}

/** The addon's `sendBuffer`, or null without the addon (or with one built before it had it). */
export function loadSendBuffer(): SendBufferSetter | null {
  const r = loadAddon();
  return "addon" in r && typeof r.addon.sendBuffer === "function" ? r.addon.sendBuffer : null;
}

function loadAddon(): { addon: Addon } | { reason: string } {
  if (loaded !== undefined) return loaded;
  if (process.platform === "win32") {
    loaded = { reason: "the addon is POSIX-only" };
  } else if (!existsSync(ADDON_URL)) {
    loaded = { reason: missingReason() };
  } else {
    try {
      const addon: unknown = createRequire(import.meta.url)(fileURLToPath(ADDON_URL));
      loaded = isNativeShm(addon) ? { addon } : { reason: "native addon loaded but has no map/unlink" };
    } catch (err) {
      loaded = { reason: `native addon failed to load: ${(err as Error).message}` };
    }
  }
  return loaded;
}

/** True for errors thrown by the addon (they carry a numeric errno and the syscall). */
export function isNativeError(err: unknown): err is NativeError {
  return (
    err instanceof Error &&
    typeof (err as Partial<NativeError>).errno === "number" &&
    typeof (err as Partial<NativeError>).syscall === "string"
  );
}
