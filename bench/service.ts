/** The bench service: a no-op unary method and a producer re-emitting one prebuilt wide batch. */
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/protocol/batch.js";
import { defineProtocol, producer, unary } from "../src/protocol/methods.js";
import { t } from "../src/protocol/types.js";
import { bind, createServer, type ServerOptions } from "../src/server/server.js";

const Row = { i: t.int64(), f: t.float64(), s: t.utf8() };

export const Bench = defineProtocol(
  "bench.Bench.v1",
  {},
  {
    noop: unary({}, null),
    rows: producer(
      { batches: t.int64(), rows: t.int64() },
      { output: Row, state: { left: t.int64(), rows: t.int64() } },
    ),
  },
);

/** Built once per size: the figures measure the RPC path, not the batch builder. */
const prebuilt = new Map<bigint, RecordBatch>();
function batchOf(rows: bigint): RecordBatch {
  let b = prebuilt.get(rows);
  if (b === undefined) {
    const n = Number(rows);
    b = batchFromColumns(Row, {
      i: Array.from({ length: n }, (_, k) => BigInt(k)),
      f: Array.from({ length: n }, (_, k) => k * 0.5),
      s: Array.from({ length: n }, (_, k) => `row-${k}`),
    });
    prebuilt.set(rows, b);
  }
  return b;
}

export function benchServer(opts: Omit<ServerOptions, "protocols">) {
  return createServer({
    ...opts,
    protocols: [
      bind(Bench, {
        noop: () => undefined,
        rows: {
          init: ({ batches, rows }) => ({ state: { left: batches, rows } }),
          produce: (state, out) => {
            if (state.left <= 0n) return out.finish();
            state.left -= 1n;
            out.emitBatch(batchOf(state.rows));
          },
        },
      }),
    ],
  });
}
