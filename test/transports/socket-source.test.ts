import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { test } from "node:test";
import type { RecordBatch } from "apache-arrow";
import { type SocketSource, socketSource } from "../../src/transports/node/socket-source.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, IpcStreamDecoder } from "../../src/wire/ipc.js";
import { expectFramedStreams, framedStreams } from "../helpers/framed.js";

/** A TCP server that runs `serve` on its one connection, and a client socket read through a source. */
async function pair(
  serve: (s: Socket) => void,
  opts: { readonly onread?: boolean; readonly highWaterMark?: number } = {},
): Promise<{ source: SocketSource; socket: Socket; server: Server }> {
  const server = createServer(serve);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const source = socketSource(opts.highWaterMark === undefined ? {} : { highWaterMark: opts.highWaterMark });
  const { port } = server.address() as AddressInfo;
  const socket = connect({ port, host: "127.0.0.1", ...(opts.onread === false ? {} : { onread: source.onread }) });
  await once(socket, "connect");
  source.attach(socket);
  return { source, socket, server };
}

/** `n` bytes whose value at stream position k is k mod 251. */
function pattern(n: number, from = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = (from + k) % 251;
  return out;
}

async function readAll(source: SocketSource): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of source) parts.push(Uint8Array.prototype.slice.call(c));
  return concatBytes(parts);
}

for (const onread of [true, false]) {
  const how = onread ? "with onread" : "from data events";

  test(`socketSource ${how}: a stream larger than its high-water mark arrives whole and in order`, async () => {
    const bytes = pattern(3 * 1024 * 1024 + 13);
    const { source, server } = await pair(
      (s) => {
        for (let at = 0; at < bytes.byteLength; at += 1000) s.write(bytes.subarray(at, at + 1000));
        s.end();
      },
      { onread, highWaterMark: 64 * 1024 },
    );
    // A slow reader: the socket must pause and resume rather than queue everything.
    const parts: Uint8Array[] = [];
    for await (const c of source) {
      parts.push(Uint8Array.prototype.slice.call(c));
      if (parts.length % 16 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    assert.deepEqual(concatBytes(parts), bytes);
    server.close();
  });

  test(`socketSource ${how}: readInto fills its target and leaves what follows for next()`, async () => {
    const bytes = pattern(5 * 1024 * 1024);
    const { source, server } = await pair((s) => s.end(bytes), { onread });
    const first = await source.next();
    assert.equal(first.done, false);
    const head = Uint8Array.prototype.slice.call(first.value as Uint8Array);
    const target = new Uint8Array(2 * 1024 * 1024);
    assert.equal(await source.readInto(target), target.byteLength);
    assert.deepEqual(target, pattern(target.byteLength, head.byteLength));
    const rest = await readAll(source);
    assert.deepEqual(concatBytes([head, target, rest]), bytes);
    server.close();
  });

  test(`socketSource ${how}: a stream ending inside readInto resolves to the bytes it had`, async () => {
    const { source, server } = await pair((s) => s.end(pattern(100_000)), { onread });
    const target = new Uint8Array(1024 * 1024);
    assert.equal(await source.readInto(target), 100_000);
    assert.deepEqual(target.subarray(0, 100_000), pattern(100_000));
    assert.equal((await source.next()).done, true);
    server.close();
  });
}

test("socketSource: a destroyed socket fails a pending readInto and later reads", async () => {
  const { source, socket, server } = await pair((s) => s.write(pattern(1000)));
  const pending = source.readInto(new Uint8Array(1024 * 1024));
  setTimeout(() => socket.destroy(new Error("gone")), 20);
  await assert.rejects(pending, /gone/);
  await assert.rejects(async () => {
    for (;;) if ((await source.next()).done) break;
  }, /gone/);
  server.close();
});

test("socketSource: batches framed from it decode with their bodies 8-byte aligned, large ones read in place", async () => {
  const sizes = [1, 3, 70_000, 2, 300_000, 5];
  const bytes = framedStreams(sizes);
  const { source, server } = await pair((s) => {
    // Odd write sizes, so reads and messages never line up.
    for (let at = 0; at < bytes.byteLength; at += 40_961) s.write(bytes.subarray(at, at + 40_961));
    s.end();
  });
  const bodies = await expectFramedStreams(new MessageFramer(source), sizes);
  for (const body of bodies) assert.equal(body.byteOffset % 8, 0);
  server.close();
});

test("socketSource: small reads share slabs of `slabBytes`, and the bytes held in them stay right", async () => {
  const slabBytes = 48 * 1024;
  const source = socketSource({ slabBytes });
  // Offered read regions never reach past one slab.
  for (let k = 0; k < 4; k++) {
    const region = source.onread.buffer();
    assert.ok(region.byteLength <= slabBytes, `a read region of ${region.byteLength} bytes`);
    assert.ok(region.byteLength >= 16 * 1024, "a read gets room for at least 16 KiB");
    region.fill(k);
    source.onread.callback(10_000, region);
  }
  // Four 10 000-byte reads, queued as views: the third slab-full did not overwrite the first.
  for (let k = 0; k < 4; k++) {
    const r = await source.next();
    assert.equal(r.done, false);
    assert.deepEqual(r.value, new Uint8Array(10_000).fill(k));
  }
});

test("socketSource: a read into the default slab is offered at most 64 KiB (4 KiB just after a large body), so a large body's rest is read into its own buffer", async () => {
  const source = socketSource();
  for (let k = 0; k < 6; k++) {
    const region = source.onread.buffer();
    assert.ok(region.byteLength <= 64 * 1024, `a read region of ${region.byteLength} bytes`);
    assert.ok(region.byteLength >= 16 * 1024);
    source.onread.callback(region.byteLength, region.fill(k + 1));
  }
  for (let k = 0; k < 6; k++) {
    const r = await source.next();
    assert.equal(r.done, false);
    assert.ok(r.value.every((b) => b === k + 1));
  }
  // With a target pending, the whole rest of the target is offered, whatever its size.
  const target = new Uint8Array(300 * 1024);
  const pending = source.readInto(target);
  const region = source.onread.buffer();
  assert.equal(region.buffer, target.buffer);
  assert.equal(region.byteLength, target.byteLength);
  source.onread.callback(region.byteLength, region.fill(9));
  assert.equal(await pending, target.byteLength);
  // After a body read in place, the next message is likely another large one: its header's read,
  // and the read Node asks a buffer for before the framer has seen that one, get 4 KiB each.
  const sizes: number[] = [];
  for (let k = 0; k < 3; k++) {
    const next = source.onread.buffer();
    sizes.push(next.byteLength);
    source.onread.callback(next.byteLength, next.fill(k));
  }
  assert.deepEqual(sizes, [4096, 4096, 64 * 1024]);
});

test("socketSource: recycle gives back the last read's spent bytes, never an earlier read's or queued ones", async () => {
  const source = socketSource();
  const read = (n: number, fill: number) => {
    const region = source.onread.buffer();
    source.onread.callback(n, region.fill(fill, 0, n));
    return region;
  };
  const first = read(1000, 1);
  const held = (await source.next()).value as Uint8Array;
  const second = read(5000, 2);
  await source.next();
  // More than the last read is claimed: only the last read's room comes back.
  source.recycle(5000 + 300);
  assert.equal(source.onread.buffer().byteOffset, second.byteOffset);
  const third = read(3000, 3);
  assert.equal(third.byteOffset, second.byteOffset);
  assert.ok(
    held.every((b) => b === 1),
    "the first read's view is intact",
  );
  assert.equal(first.byteOffset + 1000 <= third.byteOffset, true);
  // Part of the last read: the room after the bytes still held comes back.
  await source.next();
  source.recycle(1000);
  assert.equal(source.onread.buffer().byteOffset, third.byteOffset + 2000);
  // Bytes still queued are not the reader's to give back.
  const fourth = read(4000, 4);
  source.recycle(4000);
  assert.equal(source.onread.buffer().byteOffset, fourth.byteOffset + 4000);
  assert.ok(((await source.next()).value as Uint8Array).every((b) => b === 4));
  // Nor are bytes when others arrived after them (here into a target).
  const target = new Uint8Array(100);
  const pending = source.readInto(target);
  source.onread.callback(100, source.onread.buffer());
  assert.equal(await pending, 100);
  source.recycle(4000);
  const after = source.onread.buffer().byteOffset - fourth.byteOffset;
  assert.ok(after >= 4000 && after < 4008, `the next read starts ${after} bytes after the fourth`);
});

test("socketSource: large messages' first reads reuse one slab, and small batches held from it stay right", async () => {
  // Each large body's first read brings its header and some KiB of it into the slab (64 KiB, or
  // 4 KiB after a large body); the framer copies those out and gives the room back. The small
  // batches between stay views there.
  const sizes = Array.from({ length: 120 }, (_, k) => (k % 2 === 0 ? 1 + k : 10_000 + k));
  const wire = framedStreams(sizes);
  const source = socketSource();
  const slabs = new Set<ArrayBufferLike>();
  let at = 0;
  const feeding = (async () => {
    while (at < wire.byteLength) {
      await new Promise((r) => setImmediate(r));
      const region = source.onread.buffer();
      const n = Math.min(region.byteLength, wire.byteLength - at);
      region.set(wire.subarray(at, at + n));
      at += n;
      if (region.byteLength <= 64 * 1024) slabs.add(region.buffer);
      source.onread.callback(n, region);
    }
  })();
  const framer = new MessageFramer(source);
  const kept: RecordBatch[] = [];
  for (const n of sizes) {
    const decoder = new IpcStreamDecoder();
    for (;;) {
      const f = framer.poll() ?? (await framer.next(true));
      if (f === "end") assert.fail("the stream ended early");
      if (f === "eos") break;
      const r = decoder.accept(f);
      if (r !== null && "numRows" in r) {
        assert.equal(r.getChildAt(1)?.get(n - 1), `v${n - 1}`);
        if (!("borrowed" in f)) kept.push(r);
      }
    }
  }
  await feeding;
  assert.equal(slabs.size, 1, "sixty large messages' first reads fit one 256 KiB slab only if it is reused");
  assert.equal(kept.length, 60);
  for (const b of kept) {
    const n = b.numRows;
    for (let k = 0; k < n; k++) {
      assert.equal(b.getChildAt(0)?.get(k), BigInt(k));
      assert.equal(b.getChildAt(1)?.get(k), `v${k}`);
    }
  }
});
