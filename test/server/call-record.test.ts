import assert from "node:assert/strict";
import { test } from "node:test";
import { ValueError } from "../../src/errors.js";
import { batchFromColumns, EMPTY_SCHEMA, emptyBatch, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import type { CallRecord } from "../../src/server/records.js";
import { bind, createServer } from "../../src/server/server.js";
import { batchBytes } from "../../src/server/stats.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { readStream, requestBytes, streamBytes } from "../helpers/raw-peer.js";

const P = defineProtocol(
  "test.Stats.v1",
  {},
  {
    five: producer({}, { output: { v: t.int64() }, state: { sent: t.int64() } }),
    echo: exchange({}, { input: { v: t.int64() }, output: { v: t.int64() } }),
    bad: unary({}, t.utf8()),
  },
);

function start() {
  const records: CallRecord[] = [];
  const server = createServer({
    protocols: [
      bind(P, {
        five: {
          init: () => ({ state: { sent: 0n } }),
          produce: (state, out) => {
            if (state.sent === 5n) return out.finish();
            out.emitColumns({ v: Array.from({ length: 100 }, (_, i) => BigInt(i)) });
            state.sent += 1n;
          },
        },
        echo: { init: () => ({}), process: (_s, input, out) => out.emitBatch(input.batch) },
        bad: () => {
          throw new ValueError("nope");
        },
      }),
    ],
    onCallEnd: (r) => records.push(r),
  });
  const pipe = memoryPipe("memory");
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  return { records, served, pipe, framer };
}

const req = (method: string) => requestBytes(method, {}, {}, {}, "test.Stats.v1", null);

test("a producer of 5 batches of 100 rows is counted exactly: 5 batches, 500 rows out", async () => {
  const { records, pipe, framer, served } = start();
  await pipe.client.write(req("five"));
  const tick = emptyBatch(EMPTY_SCHEMA);
  await pipe.client.write(streamBytes(EMPTY_SCHEMA, [tick, tick, tick, tick, tick, tick]));
  const out = await readStream(framer);
  assert.equal(out!.batches.length, 5);
  pipe.client.close();
  await served;
  assert.equal(records.length, 1);
  const r = records[0]!;
  assert.equal(r.method, "five");
  assert.equal(r.methodType, "stream");
  assert.equal(r.status, "ok");
  assert.match(r.streamId, /^[0-9a-f]{32}$/);
  assert.equal(r.stats.outputBatches, 5);
  assert.equal(r.stats.outputRows, 500);
  assert.equal(r.stats.outputBytes, 5 * batchBytes(out!.batches[0]!));
  assert.equal(r.stats.outputBytes, 5 * 100 * 8);
  // The request batch is the only input: ticks are protocol artifacts.
  assert.equal(r.stats.inputBatches, 1);
  assert.equal(r.stats.inputRows, 0);
  assert.equal(r.transport, "memory");
});

test("exchange inputs are counted, and a failing unary call records its error", async () => {
  const { records, pipe, framer, served } = start();
  await pipe.client.write(req("echo"));
  const fields = { v: t.int64() };
  const b = batchFromColumns(fields, { v: [1n, 2n, 3n] });
  await pipe.client.write(streamBytes(schemaOf(fields), [b, b]));
  await readStream(framer);
  await pipe.client.write(req("bad"));
  await readStream(framer);
  pipe.client.close();
  await served;
  const [echo, bad] = records;
  assert.equal(echo!.stats.inputBatches, 3);
  assert.equal(echo!.stats.inputRows, 6);
  assert.equal(echo!.stats.inputBytes, 2 * 3 * 8);
  assert.equal(echo!.stats.outputRows, 6);
  assert.equal(bad!.status, "error");
  assert.equal(bad!.errorType, "ValueError");
  assert.equal(bad!.errorMessage, "nope");
  assert.equal(bad!.errorCode, "UNKNOWN");
  assert.equal(bad!.stats.outputBatches, 1);
  // What the handler threw, stack included, stays on the server (callers get no traceback by default).
  assert.ok(bad!.error?.cause instanceof ValueError);
  assert.match(bad!.error.cause.stack ?? "", /call-record\.test\.ts/);
  assert.equal(echo!.error, null);
});
