/**
 * Our client and our worker (a subprocess) with a real shared-memory segment: 64 MiB each way
 * through the segment while the pipe carries only pointer batches, negotiation through
 * `connectSubprocess`, and the segment's lifecycle.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import { paramsBatch, proxy, targetOf } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { RpcError } from "../../src/errors.js";
import { workerTakesSharedMemory } from "../../src/transports/shm/negotiate.js";
import { ShmSegment, shmSupport } from "../../src/transports/shm/segment.js";
import type { PipeClient } from "../../src/transports/stdio/client.js";
import { connectSubprocess, pipeConnect } from "../../src/transports/stdio/client.js";
import { emptyBatch } from "../../src/wire/batches.js";
import { SHM_LENGTH_KEY, SHM_OFFSET_KEY } from "../../src/wire/keys.js";
import { ourWorker, within } from "../client/helpers.js";
import { counter, floats, pattern } from "../helpers/shm.js";

const MiB = 1024 * 1024;
const support = shmSupport();
const skip = support.available ? false : `shared memory unavailable: ${support.reason ?? "unknown"}`;

describe("our client ↔ our worker through a shared-memory segment", { skip }, () => {
  let segment: ShmSegment;
  let client: PipeClient;
  let kill: () => void;
  const up = counter();
  const down = counter();
  let allocations = 0;

  before(async () => {
    segment = ShmSegment.create(160 * MiB);
    const count = segment.allocate.bind(segment);
    segment.allocate = (length: number) => {
      allocations++;
      return count(length);
    };
    const [cmd, args] = ourWorker();
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    kill = () => {
      clearTimeout(timer);
      child.kill("SIGTERM");
    };
    child.stdout.pipe(down.stream);
    up.stream.pipe(child.stdin);
    const fromWorker = new PassThrough();
    down.stream.pipe(fromWorker);
    // An existing segment, given to pipeConnect: used from the first call, without asking.
    client = pipeConnect(fromWorker, up.stream, { timeoutMs: 60_000, shm: segment });
    assert.equal(client.sharedMemory, segment);
    assert.equal(await workerTakesSharedMemory(client), true, "our pipe worker offers shared memory");
  });

  after(async () => {
    await client?.close();
    kill?.();
    segment?.close();
    segment?.unlink();
  });

  test("a 64 MiB argument and its 64 MiB echo cross as pointer batches, byte for byte", async () => {
    const data = pattern(64 * MiB, 7);
    const [u0, d0, a0] = [up.bytes(), down.bytes(), allocations];
    const out = await within(proxy(client, ConformanceService).echo_bytes({ data }), 60_000, "echo_bytes");
    assert.equal(out.byteLength, data.byteLength);
    assert.equal(Buffer.compare(Buffer.from(out.buffer, out.byteOffset, out.byteLength), Buffer.from(data)), 0);
    const [u, d] = [up.bytes() - u0, down.bytes() - d0];
    assert.ok(u < 4096, `client → worker pipe carried ${u} bytes`);
    assert.ok(d < 4096, `worker → client pipe carried ${d} bytes`);
    assert.equal(allocations - a0, 1, "the client wrote its request into the segment");
    assert.deepEqual(segment.allocations(), [], "both regions were freed by their readers");
  });

  test("exchange inputs and outputs of 8 MiB go through the segment both ways", async () => {
    const session = await client.exchange(ConformanceService, "exchange_scale", { factor: 2 });
    const [u0, d0] = [up.bytes(), down.bytes()];
    const rows = await within(session.exchange(floats(MiB)), 60_000, "exchange");
    assert.equal(rows.length, MiB);
    assert.equal(rows[12345]!.value, (12345 + 0.5) * 2);
    assert.ok(up.bytes() - u0 < 4096 && down.bytes() - d0 < 4096, "only pointer batches on the pipe");
    await session.close();
    assert.deepEqual(segment.allocations(), []);
  });

  for (const [what, offset, length, kind] of [
    ["past the end of the segment", 159 * MiB, 4 * MiB, /out_of_bounds|outside|past/],
    ["at no allocation", 65536 + 4096, 1024, /no allocation/],
  ] as const) {
    test(`a pointer ${what} reaching the worker fails that call with protocol_error; the connection stays usable`, async () => {
      const stream = await client.openStream(
        targetOf(ConformanceService, "exchange_scale"),
        paramsBatch("exchange_scale", ConformanceService.methods.exchange_scale.params, { factor: 1 }),
        { hasHeader: false },
      );
      const pointer = emptyBatch(
        floats(1).schema,
        new Map([
          [SHM_OFFSET_KEY, String(offset)],
          [SHM_LENGTH_KEY, String(length)],
        ]),
      );
      await assert.rejects(stream.send(pointer), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.kind, "protocol_error");
        assert.match(err.message, kind);
        return true;
      });
      assert.equal(await proxy(client, ConformanceService).echo_string({ value: "after" }), "after");
    });
  }

  test("small calls stay on the pipe while the segment is in use", async () => {
    const a0 = allocations;
    assert.equal(await proxy(client, ConformanceService).echo_string({ value: "hi" }), "hi");
    assert.equal(allocations, a0);
  });
});

describe("connectSubprocess({ shm })", { skip }, () => {
  test("negotiates with the worker, routes large batches through the segment, and unlinks it on close", async () => {
    const [cmd, args] = ourWorker();
    const client = await connectSubprocess(cmd, args, { shm: { size: 64 * MiB }, timeoutMs: 60_000 });
    const seg = client.sharedMemory;
    try {
      assert.ok(seg !== null, "the worker said yes, so the client uses the segment");
      const data = pattern(16 * MiB, 3);
      const out = await proxy(client, ConformanceService).echo_bytes({ data });
      assert.equal(Buffer.compare(Buffer.from(out), Buffer.from(data)), 0);
      assert.ok(existsSync(join("/dev/shm", seg.name)));
    } finally {
      await client.close();
    }
    assert.equal(existsSync(join("/dev/shm", seg.name)), false, "the segment is unlinked on close");
  });

  test("a worker that declines gets no segment and calls use the pipe", async () => {
    const [cmd, args] = ourWorker("--no-shm");
    const client = await connectSubprocess(cmd, args, { shm: { size: 8 * MiB }, timeoutMs: 60_000 });
    try {
      assert.equal(client.sharedMemory, null);
      assert.equal(await proxy(client, ConformanceService).echo_string({ value: "x" }), "x");
    } finally {
      await client.close();
    }
  });
});
