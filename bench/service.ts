/**
 * The bench service, declared once and served by every quiver figure: a no-op unary call, a
 * 3-field unary call, a producer re-emitting one prebuilt batch and an exchange echoing its input.
 * The Python and npm peers host the same surface (bench/peers/) so the same calls can be compared.
 */
import { type Float64, type Int64, makeData, type RecordBatch, type Utf8 } from "apache-arrow";
import { batchFromData, schemaOf } from "../src/protocol/batch.js";
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
    /** The same echo, its handler letting the server borrow inputs (`borrowInput`). */
    echoBorrowed: exchange({}, { input: Row, output: Row }),
  },
);

const ROW_SCHEMA = schemaOf(Row);
const ROW_PREFIX = [0x72, 0x6f, 0x77, 0x2d]; // "row-"

/**
 * Builds the bench batch of `n` rows: row k is (k, k / 2, "row-k") on every side. Straight into
 * typed arrays (no JS array of a million BigInts and strings), so building it costs milliseconds
 * and the server's peak RSS is quiver's, not the builder's.
 */
export function benchBatch(n: number): RecordBatch {
  const ints = new BigInt64Array(n);
  const floats = new Float64Array(n);
  const offsets = new Int32Array(n + 1);
  let bytes = 0;
  for (let k = 0; k < n; k++) bytes += ROW_PREFIX.length + String(k).length;
  const text = new Uint8Array(bytes);
  let at = 0;
  for (let k = 0; k < n; k++) {
    ints[k] = BigInt(k);
    floats[k] = k * 0.5;
    for (const c of ROW_PREFIX) text[at++] = c;
    const digits = String(k);
    for (let d = 0; d < digits.length; d++) text[at++] = digits.charCodeAt(d);
    offsets[k + 1] = at;
  }
  const [i, f, s] = ROW_SCHEMA.fields.map((field) => field.type) as [Int64, Float64, Utf8];
  return batchFromData(
    ROW_SCHEMA,
    [
      makeData({ type: i, length: n, nullCount: 0, data: ints }),
      makeData({ type: f, length: n, nullCount: 0, data: floats }),
      makeData({ type: s, length: n, nullCount: 0, valueOffsets: offsets, data: text }),
    ],
    n,
  );
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
        echoBorrowed: {
          init: () => ({}),
          process: (_state, input, out) => out.emitBatch(input.batch),
          borrowInput: true,
        },
      }),
    ],
  });
}
