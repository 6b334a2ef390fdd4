/**
 * An in-process stand-in for a shared-memory segment: the reference's first-fit allocation over
 * one buffer, shared by name within this process. It lets the integration layer (pointer batches,
 * attach, ownership) be tested over an in-memory pipe without mapping anything.
 */
import type { AttachedSegment, SharedMemoryAccess } from "../../src/transports/shm/server.js";

const HEADER = 64 * 1024;
const registry = new Map<string, FakeSegment>();

export class FakeSegment implements AttachedSegment {
  readonly buf: Uint8Array;
  /** Live allocations, sorted by offset. */
  readonly allocs: { offset: number; length: number }[];
  allocations = 0;
  frees = 0;

  private constructor(
    readonly name: string,
    readonly size: number,
    shared?: FakeSegment,
  ) {
    this.buf = shared?.buf ?? new Uint8Array(size);
    this.allocs = shared?.allocs ?? [];
  }

  static create(name: string, size: number): FakeSegment {
    const s = new FakeSegment(name, size);
    registry.set(name, s);
    return s;
  }

  static attach(name: string, size: number): FakeSegment {
    const s = registry.get(name);
    if (s === undefined) throw new Error(`no segment '${name}'`);
    if (s.size !== size) throw new Error(`size mismatch for '${name}'`);
    return new FakeSegment(name, size, s);
  }

  allocate(length: number): number | null {
    let prev = HEADER;
    for (let i = 0; i < this.allocs.length; i++) {
      const a = this.allocs[i]!;
      if (a.offset - prev >= length) {
        this.allocs.splice(i, 0, { offset: prev, length });
        this.allocations++;
        return prev;
      }
      prev = a.offset + a.length;
    }
    if (this.size - prev < length) return null;
    this.allocs.push({ offset: prev, length });
    this.allocations++;
    return prev;
  }

  write(offset: number, chunks: readonly Uint8Array[]): void {
    let at = offset;
    for (const c of chunks) {
      this.buf.set(c, at);
      at += c.byteLength;
    }
  }

  read(offset: number, length: number): Uint8Array {
    if (offset < HEADER || offset + length > this.size) throw new Error(`out of bounds: ${offset}+${length}`);
    return this.buf.subarray(offset, offset + length);
  }

  free(offset: number): void {
    const i = this.allocs.findIndex((a) => a.offset === offset);
    if (i < 0) throw new Error(`no allocation at offset ${offset}`);
    this.allocs.splice(i, 1);
    this.frees++;
  }

  close(): void {}

  unlink(): void {
    registry.delete(this.name);
  }
}

/** A worker-side side channel over the fake registry; `attached` lists what it attached. */
export function fakeAccess(): SharedMemoryAccess & { readonly attached: FakeSegment[] } {
  const attached: FakeSegment[] = [];
  return {
    available: true,
    attached,
    attach: async (name, size) => {
      const s = FakeSegment.attach(name, size);
      attached.push(s);
      return s;
    },
  };
}
