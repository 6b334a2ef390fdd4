/**
 * The shared-memory side channel at the integration layer, over an in-memory pipe with an
 * in-process segment stand-in: pointer batches both ways, who frees what, negotiation, and bad
 * pointers arriving on the wire.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Field, Float64, Schema } from "apache-arrow";
import { RpcClient } from "../../src/client/client.js";
import { paramsBatch, proxy, targetOf } from "../../src/client/typed.js";
import { ConformanceService, createConformanceImplementation } from "../../src/conformance/service.js";
import { RpcError } from "../../src/errors.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { SharedMemoryChannel } from "../../src/transports/shm/client.js";
import { workerTakesSharedMemory } from "../../src/transports/shm/negotiate.js";
import { sharedMemorySideChannel } from "../../src/transports/shm/server.js";
import { emptyBatch } from "../../src/wire/batches.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { encodeStream } from "../../src/wire/ipc.js";
import {
  SHM_LENGTH_KEY,
  SHM_OFFSET_KEY,
  SHM_SEGMENT_NAME_KEY,
  SHM_SEGMENT_SIZE_KEY,
  SHM_SOURCE_KEY,
} from "../../src/wire/keys.js";
import { floats } from "../helpers/shm.js";
import { FakeSegment, fakeAccess } from "./shm-fake.js";

const MiB = 1024 * 1024;
let seq = 0;

interface Rig {
  readonly client: RpcClient;
  readonly segment: FakeSegment | null;
  readonly access: ReturnType<typeof fakeAccess> | null;
  /** Bytes each way on the pipe. */
  readonly bytes: { toServer: number; toClient: number };
  close(): Promise<void>;
}

function rig(opts: { clientSegment?: boolean; serverAccess?: boolean; size?: number } = {}): Rig {
  const server = createServer({ protocols: [bind(ConformanceService, createConformanceImplementation())] });
  const pipe = memoryPipe("pipe");
  const access = opts.serverAccess === false ? null : fakeAccess();
  const bytes = { toServer: 0, toClient: 0 };
  const conn = {
    input: pipe.server.input,
    transport: "pipe",
    write: async (chunks: readonly Uint8Array[]) => {
      for (const c of chunks) bytes.toClient += c.byteLength;
      await pipe.server.write(chunks);
    },
    ...(access ? { sideChannel: sharedMemorySideChannel(access) } : {}),
  };
  const served = server.serveConnection(conn).finally(() => pipe.server.close());
  const segment =
    opts.clientSegment === false ? null : FakeSegment.create(`quiver-fake-${++seq}`, opts.size ?? 32 * MiB);
  const client = new RpcClient(
    {
      name: "pipe",
      input: pipe.client.input,
      write: async (chunks) => {
        for (const c of chunks) bytes.toServer += c.byteLength;
        await pipe.client.write(chunks);
      },
      close: () => pipe.client.close(),
    },
    { timeoutMs: 10_000, ...(segment ? { sideChannel: new SharedMemoryChannel(segment) } : {}) },
  );
  return {
    client,
    segment,
    access,
    bytes,
    close: async () => {
      await client.close();
      await served;
      segment?.unlink();
    },
  };
}

test("a large unary argument and result travel through the segment as pointer batches, and every region is freed", async () => {
  const r = rig();
  try {
    const data = new Uint8Array(4 * MiB);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const out = await proxy(r.client, ConformanceService).echo_bytes({ data });
    assert.deepEqual(Buffer.compare(Buffer.from(out), Buffer.from(data)), 0);
    assert.ok(r.bytes.toServer < 16 * 1024, `pipe carried ${r.bytes.toServer} bytes to the server`);
    assert.ok(r.bytes.toClient < 16 * 1024, `pipe carried ${r.bytes.toClient} bytes to the client`);
    assert.equal(r.segment!.allocations, 1, "the client wrote the request into the segment");
    assert.equal(r.access!.attached[0]!.allocations, 1, "the server wrote the result into the segment");
    assert.equal(r.segment!.allocs.length, 0, "the reader freed what it consumed");
    assert.equal(r.access!.attached.length, 1);
  } finally {
    await r.close();
  }
});

test("exchange inputs and outputs above the threshold go through the segment; small ones stay on the pipe", async () => {
  const r = rig();
  try {
    const session = await r.client.exchange(ConformanceService, "exchange_scale", { factor: 2 });
    const big = floats(256 * 1024);
    const rows = await session.exchange(big);
    assert.equal(rows.length, 256 * 1024);
    assert.equal(rows[1000]!.value, (1000 + 0.5) * 2);
    const allocated = () => r.segment!.allocations + r.access!.attached[0]!.allocations;
    assert.equal(allocated(), 2, "input and output each took a region");
    const small = await session.exchange([{ value: 1.5 }]);
    assert.deepEqual(small, [{ value: 3 }]);
    assert.equal(allocated(), 2, "a small batch is not worth the segment");
    await session.close();
    assert.ok(r.bytes.toServer + r.bytes.toClient < 32 * 1024);
    assert.equal(r.segment!.allocs.length, 0);
  } finally {
    await r.close();
  }
});

test("producer outputs above the threshold come through the segment, and draining a closed stream frees them", async () => {
  const r = rig();
  try {
    // 16 bytes a row: 16 384 rows make a 256 KiB batch.
    const rows: { index: bigint | null }[] = [];
    const stream = await r.client.stream(ConformanceService, "produce_large_batches", {
      rows_per_batch: 16_384n,
      batch_count: 3n,
    });
    for await (const row of stream) rows.push(row);
    assert.equal(rows.length, 3 * 16_384);
    assert.equal(rows.at(-1)!.index, 3n * 16_384n - 1n);
    assert.equal(r.access!.attached[0]!.allocations, 3);
    assert.equal(r.segment!.allocs.length, 0, "the client freed every output region");
    assert.ok(r.bytes.toClient < 16 * 1024);
  } finally {
    await r.close();
  }
});

test("with prefetch over a segment one tick is in flight (the table has no lock), and a break leaves no region", async () => {
  const r = rig();
  try {
    const stream = await r.client.stream(
      ConformanceService,
      "produce_large_batches",
      { rows_per_batch: 16_384n, batch_count: 10n },
      { prefetch: 4 },
    );
    let batches = 0;
    for await (const b of stream.batches()) {
      assert.equal(b.numRows, 16_384);
      if (++batches === 3) break;
    }
    // Four ticks asked ahead, one kept in flight: three ticks preceded the cancel (four ahead
    // would have sent six), and the server answered each through the segment.
    assert.equal(r.access!.attached[0]!.allocations, 3);
    assert.equal(r.segment!.allocs.length, 0, "the client freed every output region");
    assert.equal(await proxy(r.client, ConformanceService).echo_int({ value: 3n }), 3n);
  } finally {
    await r.close();
  }
});

test("a pipelined exchange sends its inputs through the segment and frees every region", async () => {
  const r = rig();
  try {
    const session = await r.client.exchange(ConformanceService, "exchange_scale", { factor: 2 });
    const inputs = Array.from({ length: 6 }, (_, k) => floats(64 * 1024, k + 1));
    let k = 0;
    for await (const rows of session.pipeline(inputs, { window: 4 })) {
      assert.equal(rows.length, 64 * 1024);
      assert.equal(rows[10]!.value, (10 * (k + 1) + 0.5) * 2);
      k++;
    }
    assert.equal(k, 6);
    assert.equal(r.segment!.allocations, 6, "every input went through the segment");
    assert.equal(r.access!.attached[0]!.allocations, 6, "every answer went through the segment");
    assert.equal(r.segment!.allocs.length, 0, "every region was freed");
    await session.close();
  } finally {
    await r.close();
  }
});

test("a pipelined exchange over a segment sends one input at a time: the segment's table has no lock", async () => {
  const r = rig();
  try {
    const session = await r.client.exchange(ConformanceService, "exchange_error_on_nth", { fail_on: 2n });
    const inputs = Array.from({ length: 6 }, (_, k) => floats(64 * 1024, k + 1));
    let answers = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of session.pipeline(inputs, { window: 4 })) answers++;
      })(),
      /intentional error on exchange 2/,
    );
    assert.equal(answers, 1);
    // Window 4 asked, one input in flight kept: the second input went into the segment only after
    // the first answer, and the error on it ended the stream (four ahead would have put five in).
    assert.equal(r.segment!.allocations, 2);
    assert.equal(r.segment!.allocs.length, 0, "the server read and freed both");
    assert.equal(await proxy(r.client, ConformanceService).echo_int({ value: 2n }), 2n);
  } finally {
    await r.close();
  }
});

test("a pipelined exchange over a segment left early leaves nothing allocated", async () => {
  const r = rig();
  try {
    const session = await r.client.exchange(ConformanceService, "exchange_scale", { factor: 1 });
    const inputs = Array.from({ length: 10 }, (_, k) => floats(64 * 1024, k + 1));
    for await (const _ of session.pipeline(inputs, { window: 4 })) break;
    assert.equal(r.segment!.allocations, 1, "one input in flight");
    assert.equal(r.segment!.allocs.length, 0, "the server read and freed it before the cancel");
    assert.equal(r.access!.attached[0]!.allocations, 1, "and answered it through the segment");
  } finally {
    await r.close();
  }
});

test("a segment that cannot allocate leaves the batch on the pipe", async () => {
  const r = rig();
  try {
    r.segment!.allocate = () => {
      throw new Error("table corrupt");
    };
    const data = new Uint8Array(MiB).fill(9);
    const out = await proxy(r.client, ConformanceService).echo_bytes({ data });
    assert.equal(out.byteLength, MiB);
    assert.ok(r.bytes.toServer > MiB, "the request travelled on the pipe");
  } finally {
    await r.close();
  }
});

test("a resolved batch carries the segment's name as vgi_rpc.shm_source and no pointer keys", async () => {
  const r = rig();
  try {
    const stream = await r.client.openStream(
      targetOf(ConformanceService, "exchange_scale"),
      paramsBatch("exchange_scale", ConformanceService.methods.exchange_scale.params, { factor: 1 }),
      { hasHeader: false },
    );
    const out = await stream.send(floats(64 * 1024));
    assert.ok(out !== null);
    assert.equal(out.metadata.get(SHM_SOURCE_KEY), r.segment!.name);
    assert.equal(out.metadata.has(SHM_OFFSET_KEY), false);
    await stream.close();
  } finally {
    await r.close();
  }
});

test("__transport_options__ answers shm=true only where the connection offers the side channel", async () => {
  const yes = rig({ clientSegment: false });
  const no = rig({ clientSegment: false, serverAccess: false });
  try {
    assert.equal(await workerTakesSharedMemory(yes.client), true);
    assert.equal(await workerTakesSharedMemory(no.client), false);
  } finally {
    await yes.close();
    await no.close();
  }
});

test("a server without a segment answers a pointer input with a typed error, and the connection stays usable", async () => {
  const r = rig({ serverAccess: false });
  try {
    const session = await r.client.exchange(ConformanceService, "exchange_scale", { factor: 2 });
    await assert.rejects(session.exchange(floats(64 * 1024)), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.kind, "protocol_error");
      assert.match(err.message, /no shared-memory segment/);
      return true;
    });
    assert.equal(await proxy(r.client, ConformanceService).echo_int({ value: 7n }), 7n);
  } finally {
    await r.close();
  }
});

for (const [what, md] of [
  ["past the end of the segment", { offset: String(31 * MiB), length: String(8 * MiB) }],
  ["at no allocation", { offset: String(65536 + 8), length: "64" }],
  ["with a malformed offset", { offset: "-5", length: "64" }],
] as const) {
  test(`a pointer ${what} arriving at the server is a typed error and the connection stays usable`, async () => {
    const r = rig();
    try {
      const stream = await r.client.openStream(
        targetOf(ConformanceService, "exchange_scale"),
        paramsBatch("exchange_scale", ConformanceService.methods.exchange_scale.params, { factor: 1 }),
        { hasHeader: false },
      );
      const pointer = emptyBatch(
        floats(1).schema,
        new Map([
          [SHM_OFFSET_KEY, md.offset],
          [SHM_LENGTH_KEY, md.length],
        ]),
      );
      await assert.rejects(stream.send(pointer), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.kind, "protocol_error");
        return true;
      });
      assert.equal(await proxy(r.client, ConformanceService).echo_int({ value: 3n }), 3n);
    } finally {
      await r.close();
    }
  });
}

for (const [what, name, pattern] of [
  ["a name that is a path", "../../etc/passwd", /not a segment name/],
  ["a segment that does not exist", "quiver-fake-missing", /cannot attach shared-memory segment/],
] as const) {
  test(`a request advertising ${what} is refused with a typed error, and the connection stays usable`, async () => {
    const r = rig({ clientSegment: false });
    try {
      const target = targetOf(ConformanceService, "echo_int");
      const params = paramsBatch("echo_int", ConformanceService.methods.echo_int.params, { value: 1n });
      const md = new Map([
        [SHM_SEGMENT_NAME_KEY, name],
        [SHM_SEGMENT_SIZE_KEY, String(4 * MiB)],
      ]);
      await assert.rejects(r.client.unaryBatch(target, params, md), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.kind, "protocol_error");
        assert.match(err.message, pattern);
        return true;
      });
      assert.equal(r.access!.attached.length, 0);
      assert.equal(await proxy(r.client, ConformanceService).echo_int({ value: 5n }), 5n);
    } finally {
      await r.close();
    }
  });
}

/** A peer that answers every unary request with a pointer batch (whatever it points at). */
function pointerServer(md: ReadonlyMap<string, string>, clientSegment: FakeSegment | null) {
  const pipe = memoryPipe();
  const framer = new MessageFramer(pipe.server.input[Symbol.asyncIterator]());
  const schema = new Schema([new Field("result", new Float64(), true)]);
  void (async () => {
    for (;;) {
      const f = await framer.next();
      if (f === "end") return;
      if (f !== "eos") continue;
      // Each request stream ends: answer with a pointer, then (second call) a plain result.
      await pipe.server.write(encodeStream(schema, [emptyBatch(schema, md)]));
    }
  })();
  const client = new RpcClient(
    { name: "memory", input: pipe.client.input, write: pipe.client.write, close: () => pipe.client.close() },
    { timeoutMs: 5_000, ...(clientSegment ? { sideChannel: new SharedMemoryChannel(clientSegment) } : {}) },
  );
  return client;
}

test("a pointer reaching a client with no segment fails loudly with protocol_error and keeps the connection", async () => {
  const client = pointerServer(
    new Map([
      [SHM_OFFSET_KEY, "65536"],
      [SHM_LENGTH_KEY, "100"],
    ]),
    null,
  );
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(proxy(client, ConformanceService).echo_float({ value: 1 }), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.kind, "protocol_error");
        assert.match(err.message, /no shared-memory segment is attached/);
        return true;
      });
    }
    assert.equal(client.isBroken, false);
  } finally {
    await client.close();
  }
});

test("a pointer past the end of the client's segment is a typed error, not a crash", async () => {
  const seg = FakeSegment.create(`quiver-fake-${++seq}`, 1 * MiB);
  const client = pointerServer(
    new Map([
      [SHM_OFFSET_KEY, String(2 * MiB)],
      [SHM_LENGTH_KEY, "100"],
    ]),
    seg,
  );
  try {
    await assert.rejects(proxy(client, ConformanceService).echo_float({ value: 1 }), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.kind, "protocol_error");
      assert.match(err.message, /cannot resolve shared-memory pointer/);
      return true;
    });
    assert.equal(client.isBroken, false);
  } finally {
    await client.close();
    seg.unlink();
  }
});
