/**
 * Shared memory across implementations: the reference's Python client with a segment against our
 * worker, and our client with a segment against the reference's worker. Each side asserts that
 * the large batches went through the segment: the pipe carried only pointer batches, and the
 * regions were allocated and freed by the sides the reference's ownership rules name.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { workerTakesSharedMemory } from "../../src/transports/shm/negotiate.js";
import { ShmSegment, shmSupport } from "../../src/transports/shm/segment.js";
import { connectSubprocess, pipeConnect } from "../../src/transports/stdio/client.js";
import { ourWorker, python, referenceWorker, within } from "../client/helpers.js";
import { counter, floats, pattern } from "../helpers/shm.js";

/**
 * The segment's allocations once the worker has freed what it read: it frees a region after it
 * has answered, so right after our last answer a region may still be on its way back (up to 2 s).
 */
async function settledAllocations(segment: ShmSegment): Promise<readonly unknown[]> {
  const until = Date.now() + 2000;
  while (segment.allocations().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return segment.allocations();
}

const MiB = 1024 * 1024;
const ROOT = new URL("../..", import.meta.url).pathname;
const support = shmSupport();
const skip = support.available ? false : `shared memory unavailable: ${support.reason ?? "unknown"}`;

interface PythonReport {
  readonly segment: string;
  readonly unary: { identical: boolean; pipe_in: number; client_allocated: number; client_freed: number };
  readonly exchange: {
    correct: boolean;
    pipe_in: number;
    pipe_out: number;
    client_allocated: number;
    client_freed: number;
  };
  readonly echo_after: string;
  readonly live_allocations: number;
}

describe("the reference's Python client with a segment → our worker", { skip }, () => {
  test("a 64 MiB result and an 8 MiB exchange come back through the segment, freed by their readers", () => {
    const [cmd, args] = ourWorker();
    const r = spawnSync(python(), [join(ROOT, "test/interop/shm_python_client.py"), JSON.stringify([cmd, ...args])], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
      maxBuffer: 16 * MiB,
    });
    assert.equal(r.status, 0, `python client failed: ${r.stderr}`);
    const report = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as PythonReport;
    // Unary: the Python client advertises the segment; our worker answers through it.
    assert.equal(report.unary.identical, true);
    assert.ok(report.unary.pipe_in < 4096, `pipe carried ${report.unary.pipe_in} bytes of response`);
    assert.equal(report.unary.client_freed, 1, "the Python client freed the region holding the result");
    // Exchange: the Python client's input goes into the segment (our worker frees it); our
    // output comes back through it (the Python client frees it).
    assert.equal(report.exchange.correct, true);
    assert.equal(report.exchange.client_allocated, 1);
    assert.equal(report.exchange.client_freed, 1);
    assert.ok(report.exchange.pipe_out < 4096 && report.exchange.pipe_in < 4096);
    assert.equal(report.echo_after, "still usable");
    assert.equal(report.live_allocations, 0, "every region was freed");
    assert.equal(existsSync(join("/dev/shm", report.segment)), false);
  });
});

describe("our client with a segment → the reference's Python worker", { skip }, () => {
  test("the worker says yes to __transport_options__, and 64 MiB crosses each way as pointer batches", async () => {
    const segment = ShmSegment.create(192 * MiB);
    let allocations = 0;
    const allocate = segment.allocate.bind(segment);
    segment.allocate = (length: number) => {
      allocations++;
      return allocate(length);
    };
    const [cmd, args] = referenceWorker("--pipe", "--describe");
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "ignore"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    const up = counter();
    const down = counter();
    child.stdout.pipe(down.stream);
    up.stream.pipe(child.stdin);
    const fromWorker = new PassThrough();
    down.stream.pipe(fromWorker);
    const client = pipeConnect(fromWorker, up.stream, { timeoutMs: 60_000 });
    try {
      assert.equal(await workerTakesSharedMemory(client), true);
      client.useSharedMemory(segment);
      const data = pattern(64 * MiB);
      const [u0, d0] = [up.bytes(), down.bytes()];
      const out = await within(proxy(client, ConformanceService).echo_bytes({ data }), 90_000, "echo_bytes");
      assert.equal(Buffer.compare(Buffer.from(out), Buffer.from(data)), 0, "byte-identical echo");
      assert.ok(up.bytes() - u0 < 4096, `request side of the pipe carried ${up.bytes() - u0} bytes`);
      assert.ok(down.bytes() - d0 < 4096, `response side of the pipe carried ${down.bytes() - d0} bytes`);
      assert.equal(allocations, 1, "our request went into the segment");
      assert.deepEqual(segment.allocations(), [], "the worker freed our request, we freed its result");

      const session = await client.exchange(ConformanceService, "exchange_scale", { factor: 3 });
      const [u1, d1] = [up.bytes(), down.bytes()];
      const rows = await within(session.exchange(floats(MiB)), 60_000, "exchange");
      assert.equal(rows.length, MiB);
      assert.equal(rows[777]!.value, (777 + 0.5) * 3);
      assert.ok(up.bytes() - u1 < 4096 && down.bytes() - d1 < 4096, "only pointer batches on the pipe");
      await session.close();
      assert.equal(allocations, 2);
      assert.deepEqual(segment.allocations(), []);
      assert.equal(await proxy(client, ConformanceService).echo_string({ value: "ok" }), "ok");
    } finally {
      await client.close();
      clearTimeout(timer);
      child.kill("SIGTERM");
      segment.close();
      segment.unlink();
    }
  });

  test("a pipelined exchange through the segment: the worker frees what it read, we free what it discarded unread", async () => {
    const [cmd, args] = referenceWorker("--pipe", "--describe");
    const client = await connectSubprocess(cmd, args, { shm: { size: 64 * MiB }, timeoutMs: 60_000, stderr: "ignore" });
    const segment = client.sharedMemory as ShmSegment;
    let refused = 0;
    const free = segment.free.bind(segment);
    segment.free = (offset: number) => {
      try {
        free(offset);
      } catch (err) {
        refused++;
        throw err;
      }
    };
    try {
      const inputs = Array.from({ length: 6 }, (_, k) => floats(256 * 1024, k + 1));
      const ok = await client.exchange(ConformanceService, "exchange_scale", { factor: 2 });
      let k = 0;
      for await (const rows of ok.pipeline(inputs, { window: 4 })) {
        assert.equal(rows[9]!.value, (9 * (k + 1) + 0.5) * 2);
        k++;
      }
      await ok.close();
      assert.equal(k, 6);
      assert.deepEqual(await settledAllocations(segment), []);

      const failing = await client.exchange(ConformanceService, "exchange_error_on_nth", { fail_on: 2n });
      await assert.rejects(
        within(
          (async () => {
            for await (const _ of failing.pipeline(inputs, { window: 4 })) {
              // one answer, then the error
            }
          })(),
          60_000,
          "pipeline",
        ),
        /intentional error on exchange 2/,
      );
      assert.deepEqual(segment.allocations(), [], "no region left allocated");
      assert.equal(refused, 0, "no region freed twice");
      assert.equal(await proxy(client, ConformanceService).echo_string({ value: "ok" }), "ok");
    } finally {
      await client.close();
    }
  });

  test("connectSubprocess({ shm }) negotiates with the reference worker and unlinks its segment on close", async () => {
    const [cmd, args] = referenceWorker("--pipe", "--describe");
    const client = await connectSubprocess(cmd, args, { shm: { size: 32 * MiB }, timeoutMs: 60_000, stderr: "ignore" });
    const seg = client.sharedMemory;
    try {
      assert.ok(seg !== null);
      const data = pattern(4 * MiB);
      const out = await proxy(client, ConformanceService).echo_bytes({ data });
      assert.equal(Buffer.compare(Buffer.from(out), Buffer.from(data)), 0);
    } finally {
      await client.close();
    }
    assert.equal(existsSync(join("/dev/shm", seg.name)), false);
  });
});
