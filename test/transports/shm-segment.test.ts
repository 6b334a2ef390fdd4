import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readSync, statSync, truncateSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { Dictionary, Field, Int32, List, RecordBatch, Schema, Utf8, vectorFromArray } from "apache-arrow";
import {
  decodeFromShm,
  encodeForShm,
  HEADER_SIZE,
  MAX_ALLOCS,
  readBatchFromShm,
  resolveShmMinBatchBytes,
  SHM_DIR,
  ShmError,
  type ShmErrorKind,
  ShmSegment,
  shmCanCarry,
  shmSupport,
  writeBatchToShm,
} from "../../src/transports/shm/index.js";
import type { SegmentModule } from "../../src/transports/shm/negotiate.js";
import { PYTHON } from "../helpers/reference.js";

const SIZE = 4 * 1024 * 1024;
const support = shmSupport();
const created: ShmSegment[] = [];

after(() => {
  for (const s of created) {
    s.close();
    try {
      s.unlink();
    } catch {
      // already unlinked by the test
    }
  }
});

function isShm(kind: ShmErrorKind): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ShmError, `expected ShmError(${kind}), got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    return true;
  };
}

/** Overwrites bytes of a segment file directly, as a corrupt or hostile peer would. */
function poke(path: string, pos: number, bytes: Uint8Array): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, bytes, 0, bytes.byteLength, pos);
  } finally {
    closeSync(fd);
  }
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

/** Allocation table entries as raw bytes (offset u64, length u64 each). */
function entries(list: readonly (readonly [number, number])[]): Uint8Array {
  const b = new Uint8Array(list.length * 16);
  const v = new DataView(b.buffer);
  list.forEach(([o, l], i) => {
    v.setBigUint64(i * 16, BigInt(o), true);
    v.setBigUint64(i * 16 + 8, BigInt(l), true);
  });
  return b;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 256;
  return b;
}

/** A batch `{i: int64, s: utf8}` with `rows` rows (the Python peer's PLAIN schema). */
function plainBatch(rows: number): RecordBatch {
  const i = vectorFromArray(BigInt64Array.from({ length: rows }, (_, k) => BigInt(k)));
  const s = vectorFromArray(
    Array.from({ length: rows }, (_, k) => `row ${k}`),
    new Utf8(),
  );
  return new RecordBatch({ i: i.data[0]!, s: s.data[0]! });
}

/** A batch `{d: dictionary<int32, utf8>}` cycling red, green, blue (the Python peer's DICT schema). */
function dictBatch(rows: number): RecordBatch {
  const colors = ["red", "green", "blue"];
  const d = vectorFromArray(
    Array.from({ length: rows }, (_, k) => colors[k % 3]!),
    new Dictionary(new Utf8(), new Int32()),
  );
  return new RecordBatch({ d: d.data[0]! });
}

const backings = ["mmap", "file"] as const;

for (const backing of backings) {
  const skip = !support.available
    ? `no shared memory here: ${support.reason}`
    : backing === "mmap" && support.backing !== "mmap"
      ? `native addon unavailable: ${support.reason} (shm-native.test.ts fails for this)`
      : false;

  const make = (size = SIZE): ShmSegment => {
    const s = ShmSegment.create(size, { backing });
    created.push(s);
    return s;
  };
  const attach = (s: ShmSegment, size = s.size): ShmSegment => {
    const a = ShmSegment.attach(s.name, size, { backing });
    created.push(a);
    return a;
  };

  describe(`shm segment (${backing} backing)`, { skip }, () => {
    test("create writes the reference header: VGIS, version 1, data_size, no allocations, mode 0600", () => {
      const s = make();
      assert.equal(s.backing, backing);
      assert.match(s.name, /^quiver_\d+_[0-9a-f]{8}$/);
      assert.equal(s.path, `${SHM_DIR}/${s.name}`);
      const st = statSync(s.path);
      assert.equal(st.size, SIZE);
      assert.equal(st.mode & 0o777, 0o600);
      const a = attach(s);
      assert.deepEqual(a.allocations(), []);
      const fd = openSync(s.path, "r");
      const b = Buffer.alloc(24);
      try {
        assert.equal(readSync(fd, b, 0, 24, 0), 24);
      } finally {
        closeSync(fd);
      }
      assert.equal(b.subarray(0, 4).toString("latin1"), "VGIS");
      assert.equal(b.readUInt32LE(4), 1);
      assert.equal(Number(b.readBigUInt64LE(8)), SIZE - HEADER_SIZE);
      assert.equal(b.readUInt32LE(16), 0);
      assert.equal(b.readUInt32LE(20), 0);
    });

    test("allocation is first fit from HEADER_SIZE with absolute offsets, reusing freed gaps", () => {
      const s = make();
      assert.equal(s.allocate(100), HEADER_SIZE);
      assert.equal(s.allocate(200), HEADER_SIZE + 100);
      assert.equal(s.allocate(300), HEADER_SIZE + 300);
      s.free(HEADER_SIZE + 100);
      // 150 fits the freed 200-byte gap; 60 then fits what is left of it; 100 does not.
      assert.equal(s.allocate(150), HEADER_SIZE + 100);
      assert.equal(s.allocate(60), HEADER_SIZE + 600);
      assert.equal(s.allocate(50), HEADER_SIZE + 250);
      assert.deepEqual(
        attach(s).allocations(),
        [
          [HEADER_SIZE, 100],
          [HEADER_SIZE + 100, 150],
          [HEADER_SIZE + 250, 50],
          [HEADER_SIZE + 300, 300],
          [HEADER_SIZE + 600, 60],
        ].map(([offset, length]) => ({ offset, length })),
      );
      // Freeing neighbours coalesces implicitly: the whole data region is one gap again.
      for (const a of s.allocations()) s.free(a.offset);
      assert.equal(s.allocate(SIZE - HEADER_SIZE), HEADER_SIZE);
    });

    test("allocate answers null when no gap fits and when the table is full", () => {
      const s = make();
      assert.equal(s.allocate(SIZE - HEADER_SIZE + 1), null);
      assert.equal(s.allocate(SIZE - HEADER_SIZE), HEADER_SIZE);
      assert.equal(s.allocate(1), null);
      s.reset();
      assert.deepEqual(s.allocations(), []);
      // MAX_ALLOCS - 1 one-byte allocations written straight into the header, then one more fits.
      const list = Array.from({ length: MAX_ALLOCS - 1 }, (_, i) => [HEADER_SIZE + i, 1] as const);
      poke(s.path, 24, entries(list));
      poke(s.path, 16, u32(list.length));
      assert.equal(s.allocate(1), HEADER_SIZE + MAX_ALLOCS - 1);
      assert.equal(s.allocations().length, MAX_ALLOCS);
      assert.equal(s.allocate(1), null);
      assert.throws(() => s.allocate(0), RangeError);
      assert.throws(() => s.allocate(1.5), RangeError);
    });

    test("write and read round-trip through a second attachment; reads are bounded by the allocation", () => {
      const s = make();
      const off = s.allocate(1000)!;
      s.write(off, [pattern(600, 1), pattern(400, 2)]);
      const a = attach(s);
      const got = a.read(off, 1000);
      assert.deepEqual(got.subarray(0, 600), pattern(600, 1));
      assert.deepEqual(got.subarray(600), pattern(400, 2));
      assert.deepEqual(a.read(off + 10, 20), pattern(600, 1).subarray(10, 30));
      if (backing === "mmap") {
        // Zero-copy: the view sees the peer's later writes.
        s.write(off, [new Uint8Array([0xaa])]);
        assert.equal(got[0], 0xaa);
      }
    });

    test("a read or write past the segment end or below the data region is out_of_bounds", () => {
      const s = make();
      s.allocate(100);
      assert.throws(() => s.read(SIZE - 10, 11), isShm("out_of_bounds"));
      assert.throws(() => s.read(SIZE, 1), isShm("out_of_bounds"));
      assert.throws(() => s.read(2 ** 52, 1), isShm("out_of_bounds"));
      assert.throws(() => s.read(0, 24), isShm("out_of_bounds"));
      assert.throws(() => s.read(HEADER_SIZE - 1, 2), isShm("out_of_bounds"));
      assert.throws(() => s.read(HEADER_SIZE, -1), isShm("out_of_bounds"));
      assert.throws(() => s.read(Number.NaN, 1), isShm("out_of_bounds"));
      assert.throws(() => s.write(SIZE - 1, [new Uint8Array(2)]), isShm("out_of_bounds"));
    });

    test("a read past its allocation's end is out_of_bounds; outside any allocation, unknown_allocation", () => {
      const s = make();
      const a = s.allocate(100)!;
      s.allocate(100);
      s.free(a);
      assert.throws(() => s.read(a, 10), isShm("unknown_allocation"));
      assert.throws(() => s.write(a, [new Uint8Array(1)]), isShm("unknown_allocation"));
      assert.throws(() => s.read(HEADER_SIZE + 100, 101), isShm("out_of_bounds"));
      assert.throws(() => s.write(HEADER_SIZE + 150, [new Uint8Array(51)]), isShm("out_of_bounds"));
      assert.throws(() => s.read(HEADER_SIZE + 200, 1), isShm("unknown_allocation"));
    });

    test("free of an offset that starts no allocation is unknown_allocation and changes nothing", () => {
      const s = make();
      const a = s.allocate(100)!;
      assert.throws(() => s.free(a + 1), isShm("unknown_allocation"));
      assert.throws(() => s.free(HEADER_SIZE + 5000), isShm("unknown_allocation"));
      assert.deepEqual(s.allocations(), [{ offset: a, length: 100 }]);
      s.free(a);
      assert.throws(() => s.free(a), isShm("unknown_allocation"));
    });

    test("an overlapping, unsorted or empty allocation table is overlapping_allocation on attach and use", () => {
      for (const list of [
        [
          [HEADER_SIZE, 100],
          [HEADER_SIZE + 50, 100],
        ],
        [
          [HEADER_SIZE + 200, 10],
          [HEADER_SIZE, 10],
        ],
        [[HEADER_SIZE, 0]],
      ] as const) {
        const s = make();
        const live = attach(s);
        poke(s.path, 24, entries(list));
        poke(s.path, 16, u32(list.length));
        assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("overlapping_allocation"));
        assert.throws(() => live.allocate(10), isShm("overlapping_allocation"));
        assert.throws(() => live.read(HEADER_SIZE, 1), isShm("overlapping_allocation"));
        assert.throws(() => live.free(HEADER_SIZE), isShm("overlapping_allocation"));
      }
    });

    test("a table entry outside the data region, or too many entries, is out_of_bounds", () => {
      for (const [list, count] of [
        [[[HEADER_SIZE - 16, 32]], 1],
        [[[SIZE - 10, 11]], 1],
        [[[2 ** 62, 1]], 1],
        [[[HEADER_SIZE, 2 ** 60]], 1],
        [[], MAX_ALLOCS + 1],
        [[], 0xffffffff],
      ] as const) {
        const s = make();
        poke(s.path, 24, entries(list));
        poke(s.path, 16, u32(count));
        assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("out_of_bounds"));
        assert.throws(() => s.read(HEADER_SIZE, 1), isShm("out_of_bounds"));
      }
    });

    test("wrong magic, wrong version and a data_size mismatch fail attach with their kinds", () => {
      const s = make();
      poke(s.path, 0, new TextEncoder().encode("XGIS"));
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_magic"));
      assert.throws(() => s.allocate(1), isShm("bad_magic"));
      poke(s.path, 0, new TextEncoder().encode("VGIS"));
      poke(s.path, 4, u32(2));
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_version"));
      poke(s.path, 4, u32(1));
      poke(s.path, 8, entries([[SIZE - HEADER_SIZE - 8, 0]]).subarray(0, 8));
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_size"));
      poke(s.path, 8, entries([[SIZE - HEADER_SIZE, 0]]).subarray(0, 8));
      assert.deepEqual(attach(s).allocations(), []);
    });

    test("an advertised size the file does not have is bad_size; so is a size outside the limits", () => {
      const s = make();
      assert.throws(() => ShmSegment.attach(s.name, SIZE + 1024 * 1024, { backing }), isShm("bad_size"));
      assert.throws(() => ShmSegment.attach(s.name, SIZE - 1024 * 1024, { backing }), isShm("bad_size"));
      assert.throws(() => ShmSegment.attach(s.name, HEADER_SIZE, { backing }), isShm("bad_size"));
      assert.throws(() => ShmSegment.create(HEADER_SIZE, { backing }), isShm("bad_size"));
      assert.throws(() => ShmSegment.create(2 ** 60, { backing }), isShm("bad_size"));
    });

    test("a truncated file is bad_size on attach, and on use after attach (never SIGBUS)", () => {
      const s = make();
      const off = s.allocate(1000)!;
      const a = attach(s);
      const view = a.read(off, 1000);
      truncateSync(s.path, HEADER_SIZE + 10);
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_size"));
      assert.throws(() => a.read(off, 1000), isShm("bad_size"));
      assert.throws(() => a.allocate(10), isShm("bad_size"));
      assert.throws(() => a.reset(), isShm("bad_size"));
      assert.equal(view.byteLength, 1000); // the old view is not touched: that page is gone
      truncateSync(s.path, 10);
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_size"));
      truncateSync(s.path, 0);
      assert.throws(() => ShmSegment.attach(s.name, SIZE, { backing }), isShm("bad_size"));
    });

    test("names: a missing segment is io/ENOENT, a taken one io/EEXIST, a path-like one io/EINVAL", () => {
      const s = make();
      assert.throws(
        () => ShmSegment.attach(`${s.name}_missing`, SIZE, { backing }),
        (e: unknown) => isShm("io")(e) && (e as ShmError).code === "ENOENT",
      );
      assert.throws(
        () => ShmSegment.create(SIZE, { name: s.name, backing }),
        (e: unknown) => isShm("io")(e) && (e as ShmError).code === "EEXIST",
      );
      for (const bad of ["", "/", "../etc/passwd", "a/b", "..", "x".repeat(256), "a\0b"]) {
        assert.throws(() => ShmSegment.attach(bad, SIZE, { backing }), isShm("io"), JSON.stringify(bad));
      }
      // A leading slash (POSIX shm_open style) names the same segment.
      const a = ShmSegment.attach(`/${s.name}`, SIZE, { backing });
      created.push(a);
      assert.equal(a.name, s.name);
    });

    test("after close every operation is not_attached, earlier views stay readable, unlink removes the name", () => {
      const s = make();
      const off = s.allocate(64)!;
      s.write(off, [pattern(64, 9)]);
      const view = s.read(off, 64);
      s.close();
      s.close();
      for (const op of [
        () => s.allocate(1),
        () => s.read(off, 1),
        () => s.write(off, [new Uint8Array(1)]),
        () => s.free(off),
        () => s.reset(),
        () => s.allocations(),
      ]) {
        assert.throws(op, isShm("not_attached"));
      }
      assert.deepEqual(view, pattern(64, 9));
      s.unlink();
      assert.equal(existsSync(s.path), false);
      assert.throws(
        () => s.unlink(),
        (e: unknown) => isShm("io")(e) && (e as ShmError).code === "ENOENT",
      );
    });

    test("random corruption of the header only ever yields ShmErrors (300 deterministic mutations)", () => {
      const s = make();
      let seed = 0x5eed;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let round = 0; round < 300; round++) {
        s.reset();
        const offs = [s.allocate(100)!, s.allocate(200)!, s.allocate(300)!];
        // Flip 1-4 bytes among the fixed fields and the three entries.
        for (let k = 0, n = 1 + rand(4); k < n; k++) poke(s.path, rand(24 + 3 * 16), new Uint8Array([rand(256)]));
        for (const op of [
          () => ShmSegment.attach(s.name, SIZE, { backing }).close(),
          () => s.read(offs[rand(3)]!, 1 + rand(400)),
          () => s.write(offs[rand(3)]!, [new Uint8Array(1 + rand(400))]),
          () => s.free(offs[rand(3)]!),
          () => s.allocate(1 + rand(SIZE)),
        ]) {
          try {
            op();
          } catch (err) {
            assert.ok(err instanceof ShmError, `round ${round}: ${String(err)}`);
          }
        }
        // Put a valid header back for the next round.
        poke(s.path, 0, new TextEncoder().encode("VGIS"));
        poke(s.path, 4, u32(1));
        poke(s.path, 8, entries([[SIZE - HEADER_SIZE, 0]]).subarray(0, 8));
      }
    });

    test("batches round-trip through the region codec, plain and dictionary-encoded", () => {
      const s = make(16 * 1024 * 1024);
      const plain = plainBatch(50_000);
      const dict = dictBatch(50_000);
      const p = writeBatchToShm(s, plain)!;
      const d = writeBatchToShm(s, dict)!;
      assert.ok(p && d);
      assert.equal(p.offset % 8, 0);
      assert.equal(d.offset % 8, 0);
      const a = attach(s);
      const gotPlain = readBatchFromShm(a, p.offset, p.length, plain.schema);
      assert.equal(gotPlain.numRows, 50_000);
      assert.equal(gotPlain.getChild("i")!.get(49_999), 49_999n);
      assert.equal(gotPlain.getChild("s")!.get(12_345), "row 12345");
      const gotDict = readBatchFromShm(a, d.offset, d.length, dict.schema, { copy: true });
      // Typed by the caller's schema again (its dictionary id, not the canonical one the region used).
      assert.equal((gotDict.schema.fields[0]!.type as Dictionary).id, (dict.schema.fields[0]!.type as Dictionary).id);
      assert.deepEqual(
        [0, 1, 2, 49_999].map((k) => gotDict.getChild("d")!.get(k)),
        ["red", "green", "blue", "green"],
      );
      // Plain regions are a whole stream; dictionary regions start at the dictionary message.
      const region = a.read(p.offset, p.length);
      assert.deepEqual([...region.subarray(region.byteLength - 8)], [255, 255, 255, 255, 0, 0, 0, 0]);
      assert.throws(() => decodeFromShm(a.read(d.offset, d.length), plain.schema));
      // Small, empty and non-fitting batches stay on the pipe.
      assert.equal(writeBatchToShm(s, plainBatch(10)), null);
      assert.equal(writeBatchToShm(s, plainBatch(0), { minBatchBytes: 0 }), null);
      assert.equal(writeBatchToShm(s, plainBatch(10), { minBatchBytes: 0 })!.length > 0, true);
      assert.equal(writeBatchToShm(make(HEADER_SIZE + 1024), plain), null);
    });

    test("a truncated or garbage region is a protocol_error, not a read past the region", () => {
      const s = make();
      const batch = plainBatch(1000);
      const { chunks, byteLength } = encodeForShm(batch);
      const off = s.allocate(byteLength)!;
      s.write(off, chunks);
      for (const cut of [4, 100, byteLength - 9, byteLength - 100]) {
        assert.throws(
          () => decodeFromShm(s.read(off, cut), batch.schema),
          (e: unknown) => (e as { kind?: string }).kind === "protocol_error",
          `cut at ${cut}`,
        );
      }
      const junk = s.allocate(64)!;
      s.write(junk, [new Uint8Array(64).fill(0x7f)]);
      assert.throws(
        () => decodeFromShm(s.read(junk, 64), batch.schema),
        (e: unknown) => (e as { kind?: string }).kind === "protocol_error",
      );
    });
  });
}

test("the size threshold follows VGI_RPC_SHM_MIN_BATCH_BYTES like the reference", () => {
  assert.equal(resolveShmMinBatchBytes({}, "linux"), 128 * 1024);
  assert.equal(resolveShmMinBatchBytes({}, "win32"), 1024 * 1024);
  assert.equal(resolveShmMinBatchBytes({ VGI_RPC_SHM_MIN_BATCH_BYTES: "4096" }, "linux"), 4096);
  assert.equal(resolveShmMinBatchBytes({ VGI_RPC_SHM_MIN_BATCH_BYTES: " 0 " }, "linux"), 0);
  assert.equal(resolveShmMinBatchBytes({ VGI_RPC_SHM_MIN_BATCH_BYTES: "lots" }, "linux"), 128 * 1024);
  assert.equal(resolveShmMinBatchBytes({ VGI_RPC_SHM_MIN_BATCH_BYTES: "" }, "linux"), 128 * 1024);
});

// ---------------------------------------------------------------------------------------------
// Against the reference: test/transports/shm-python-peer.py drives vgi_rpc.shm.ShmSegment.

interface Peer {
  ask<T>(line: string): Promise<T>;
  close(): Promise<void>;
}

function startPeer(): Peer {
  const child: ChildProcessWithoutNullStreams = spawn(
    PYTHON,
    [new URL("./shm-python-peer.py", import.meta.url).pathname],
    { stdio: ["pipe", "pipe", "pipe"], timeout: 60_000 },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    async ask<T>(line: string): Promise<T> {
      child.stdin.write(`${line}\n`);
      const r = await lines.next();
      if (r.done) throw new Error(`python peer ended: ${stderr}`);
      return JSON.parse(r.value) as T;
    },
    async close() {
      child.stdin.end("bye\n");
      await exited;
      assert.equal(child.exitCode, 0, stderr);
    },
  };
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
type Span = [number, number];
const spans = (s: ShmSegment): Span[] => s.allocations().map((a) => [a.offset, a.length]);

for (const backing of backings) {
  const skip =
    !support.available || !existsSync(PYTHON)
      ? `needs /dev/shm and the conformance Python (${PYTHON})`
      : backing === "mmap" && support.backing !== "mmap"
        ? `native addon unavailable: ${support.reason}`
        : false;

  describe(`shm segment against the reference vgi_rpc.shm (${backing} backing)`, { skip }, () => {
    test("we attach a segment Python created and read its bytes, batches and table", async () => {
      const py = startPeer();
      try {
        const made = await py.ask<{ name: string; size: number; raw: Span; hole: Span; plain: Span; dict: Span }>(
          `create ${SIZE}`,
        );
        assert.match(made.name, /^psm_/);
        const s = ShmSegment.attach(made.name, made.size, { backing });
        created.push(s);
        assert.deepEqual(spans(s), (await py.ask<{ table: Span[] }>("table")).table);
        assert.deepEqual(s.read(made.raw[0], 1000), pattern(1000, 3));
        const plain = readBatchFromShm(s, made.plain[0], made.plain[1], plainBatch(1).schema);
        assert.equal(plain.numRows, 20_000);
        assert.equal(plain.getChild("s")!.get(19_999), "row 19999");
        const dict = readBatchFromShm(s, made.dict[0], made.dict[1], dictBatch(1).schema);
        assert.deepEqual(
          [0, 1, 2, 2999].map((k) => dict.getChild("d")!.get(k)),
          ["red", "green", "blue", "blue"],
        );
        // Our allocator and the reference's choose the same gap and agree on the table after.
        const ours = s.allocate(3000)!;
        assert.equal(ours, made.hole[0]);
        s.free(made.raw[0]);
        assert.deepEqual(spans(s), (await py.ask<{ table: Span[] }>("table")).table);
        const theirs = await py.ask<{ offset: number }>("allocate 500");
        assert.equal(theirs.offset, HEADER_SIZE);
        assert.deepEqual(spans(s)[0], [HEADER_SIZE, 500]);
        assert.throws(() => s.free(HEADER_SIZE + 1), isShm("unknown_allocation"));
        s.close();
      } finally {
        await py.close();
      }
    });

    test("Python attaches a segment we created and reads our bytes and batches; its allocator agrees", async () => {
      const s = ShmSegment.create(SIZE, { backing });
      created.push(s);
      const raw = s.allocate(1000)!;
      s.write(raw, [pattern(1000, 5)]);
      const hole = s.allocate(4000)!;
      const plainB = plainBatch(20_000);
      const dictB = dictBatch(3000);
      const plain = writeBatchToShm(s, plainB)!;
      const dict = writeBatchToShm(s, dictB, { minBatchBytes: 0 })!;
      s.free(hole);
      const py = startPeer();
      try {
        const att = await py.ask<{ name: string; size: number }>(`attach ${s.name} ${s.size}`);
        assert.deepEqual(att, { name: s.name, size: SIZE });
        assert.deepEqual((await py.ask<{ table: Span[] }>("table")).table, spans(s));
        const r = await py.ask<{ sha256: string }>(`read ${raw} 1000 raw`);
        assert.equal(r.sha256, sha256(pattern(1000, 5)));
        const p = await py.ask<{ sha256: string; batch: { rows: number; first: unknown; last: unknown } }>(
          `read ${plain.offset} ${plain.length} plain`,
        );
        assert.equal(p.sha256, sha256(s.read(plain.offset, plain.length)));
        assert.deepEqual([p.batch.rows, p.batch.first, p.batch.last], [20_000, 0, 19_999]);
        const d = await py.ask<{ batch: { rows: number; first: unknown; last: unknown; schema: string } }>(
          `read ${dict.offset} ${dict.length} dict`,
        );
        assert.deepEqual(d.batch, {
          rows: 3000,
          first: "red",
          last: "blue",
          schema: "dictionary<values=string, indices=int32, ordered=0>",
        });
        // The reference's first fit lands in the hole we left, exactly where ours would.
        const theirs = await py.ask<{ offset: number }>("allocate 3000");
        assert.equal(theirs.offset, hole);
        assert.deepEqual(
          spans(s).find(([o]) => o === hole),
          [hole, 3000],
        );
        assert.deepEqual(await py.ask("free 12345"), { error: "No allocation at offset 12345" });
        assert.deepEqual(await py.ask(`free ${raw}`), { ok: true });
        assert.equal(
          spans(s).some(([o]) => o === raw),
          false,
        );
        assert.equal(s.allocate(1000), raw);
      } finally {
        await py.close();
      }
    });
  });
}

test("QUIVER_SHM_BACKING=file forces the fallback, says why, and refuses an explicit mmap request", {
  skip: support.available ? false : `no shared memory here: ${support.reason}`,
}, () => {
  const before = process.env.QUIVER_SHM_BACKING;
  process.env.QUIVER_SHM_BACKING = "file";
  try {
    assert.equal(shmSupport().backing, "file");
    assert.match(shmSupport().reason ?? "", /QUIVER_SHM_BACKING=file/);
    const s = ShmSegment.create(SIZE);
    created.push(s);
    assert.equal(s.backing, "file");
    assert.match(s.backingReason ?? "", /QUIVER_SHM_BACKING=file/);
    assert.throws(() => ShmSegment.create(SIZE, { backing: "mmap" }), isShm("io"));
  } finally {
    if (before === undefined) delete process.env.QUIVER_SHM_BACKING;
    else process.env.QUIVER_SHM_BACKING = before;
  }
});

test("a schema with a top-level and a nested dictionary stays off the segment; other layouts can go", () => {
  const dict = () => new Dictionary(new Utf8(), new Int32());
  const nested = new Field("b", new List(new Field("item", dict())));
  assert.equal(shmCanCarry(new Schema([new Field("a", dict()), nested])), false);
  assert.equal(shmCanCarry(new Schema([nested])), true); // no top-level dictionary: a whole stream
  assert.equal(shmCanCarry(new Schema([new Field("a", dict()), new Field("c", dict())])), true);
  assert.equal(shmCanCarry(plainBatch(1).schema), true);
});

test("the segment module has the shape the negotiation layer imports dynamically", async () => {
  // negotiate.ts loads ./segment.js through a variable specifier, which the compiler cannot follow:
  // this assignment is the type check, the call the runtime one.
  const loaded: SegmentModule = await import("../../src/transports/shm/segment.js");
  assert.equal(typeof loaded.shmSupport().available, "boolean");
});
