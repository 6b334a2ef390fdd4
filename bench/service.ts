/**
 * The bench service, declared once and served by every quiver figure: a no-op unary call, a
 * 3-field unary call, a producer re-emitting one prebuilt batch and an exchange echoing its input.
 * The Python and npm peers host the same surface (bench/peers/) so the same calls can be compared.
 */
import type { RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../src/protocol/methods.js";
import { t } from "../src/protocol/types.js";
import { bind, createServer, type ServerOptions } from "../src/server/server.js";

/** The row every stream figure moves: int64, float64, utf8. */
export const Row = { i: t.int64(), f: t.float64(), s: t.utf8() };

export const Bench = defineProtocol(
  "bench.Bench.v1",
  {},
  {
    noop: unary({}, null),
    /** Three parameters in, the string back: one of each column type on both sides. */
    three: unary(Row, t.utf8()),
    rows: producer(
      { batches: t.int64(), rows: t.int64() },
      { output: Row, state: { left: t.int64(), rows: t.int64() } },
    ),
    echo: exchange({}, { input: Row, output: Row }),
  },
);

/** Builds the bench batch of `n` rows: row k is (k, k / 2, "row-k") on every side. */
export function benchBatch(n: number): RecordBatch {
  return batchFromColumns(Row, {
    i: Array.from({ length: n }, (_, k) => BigInt(k)),
    f: Array.from({ length: n }, (_, k) => k * 0.5),
    s: Array.from({ length: n }, (_, k) => `row-${k}`),
  });
}

/** Built once per size: the figures measure the RPC path, not the batch builder. */
const prebuilt = new Map<bigint, RecordBatch>();
function batchOf(rows: bigint): RecordBatch {
  let b = prebuilt.get(rows);
  if (b === undefined) {
    b = benchBatch(Number(rows));
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
        three: ({ s }) => s,
        rows: {
          init: ({ batches, rows }) => ({ state: { left: batches, rows } }),
          produce: (state, out) => {
            if (state.left <= 0n) return out.finish();
            state.left -= 1n;
            out.emitBatch(batchOf(state.rows));
          },
        },
        echo: {
          init: () => ({}),
          process: (_state, input, out) => out.emitBatch(input.batch),
        },
      }),
    ],
  });
}
