/**
 * NaN bits through the conformance arithmetic (`exchange_scale`, `exchange_accumulate`,
 * `add_floats`), compared with what the reference's own worker returned for the same inputs
 * (test/fixtures/nan-arithmetic.json, written by scripts/make-nan-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { Field, Float64, makeData, type RecordBatch, Schema } from "apache-arrow";
import { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService, createConformanceImplementation } from "../../src/conformance/service.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { batchFromData } from "../../src/wire/batches.js";

type Bits = string | null;

interface NanFixture {
  readonly scale: readonly {
    readonly factor: string;
    readonly input: readonly Bits[];
    readonly output: readonly Bits[];
  }[];
  readonly accumulate: readonly {
    readonly turns: readonly (readonly Bits[])[];
    readonly running_sums: readonly Bits[];
  }[];
  readonly add_floats: readonly { readonly a: string; readonly b: string; readonly result: string }[];
}

const FIXTURE: NanFixture = JSON.parse(
  readFileSync(new URL("../fixtures/nan-arithmetic.json", import.meta.url), "utf8"),
);

const fromHex = (hex: string): number => {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
};

const hexOf = (x: number): string => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  return view.getBigUint64(0).toString(16).padStart(16, "0");
};

const VALUE = new Schema([new Field("value", new Float64(), true)]);

/** A `value: double` batch with exactly these bits (null for a null). */
function inputBatch(values: readonly Bits[]): RecordBatch {
  const data = new Float64Array(values.length);
  const bits = new BigUint64Array(data.buffer);
  const nullBitmap = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  values.forEach((v, i) => {
    if (v === null) nullCount++;
    else {
      bits[i] = BigInt(`0x${v}`);
      nullBitmap[i >> 3]! |= 1 << (i & 7);
    }
  });
  const column = makeData({ type: new Float64(), length: values.length, nullCount, nullBitmap, data });
  return batchFromData(VALUE, [column], values.length);
}

/** A float64 column's bits, null for nulls. */
function columnBits(batch: RecordBatch, name: string): Bits[] {
  const data = batch.data.children[batch.schema.fields.findIndex((f) => f.name === name)]!;
  const values = data.values as Float64Array;
  const bits = new BigUint64Array(values.buffer, values.byteOffset, values.length);
  return Array.from({ length: data.length }, (_, i) =>
    data.getValid(i) ? bits[i]!.toString(16).padStart(16, "0") : null,
  );
}

/** Runs `body` against a conformance server of its own over an in-memory pipe. */
async function withClient(body: (client: RpcClient) => Promise<void>): Promise<void> {
  const server = createServer({ protocols: [bind(ConformanceService, createConformanceImplementation())] });
  const pipe = memoryPipe("pipe");
  const served = server
    .serveConnection({ input: pipe.server.input, transport: "pipe", write: (c) => pipe.server.write(c) })
    .finally(() => pipe.server.close());
  const client = new RpcClient(
    { name: "pipe", input: pipe.client.input, write: (c) => pipe.client.write(c), close: () => pipe.client.close() },
    { timeoutMs: 10_000 },
  );
  try {
    await body(client);
  } finally {
    await client.close();
    await served;
  }
}

describe("NaN bits through the conformance arithmetic match the reference's", () => {
  for (const c of FIXTURE.scale) {
    test(`exchange_scale by ${c.factor} keeps each NaN the reference keeps`, () =>
      withClient(async (client) => {
        const session = await client.exchange(ConformanceService, "exchange_scale", { factor: fromHex(c.factor) });
        try {
          const out = await session.exchangeBatch(inputBatch(c.input));
          assert.deepEqual(columnBits(out, "value"), c.output);
        } finally {
          await session.close();
        }
      }));
  }

  FIXTURE.accumulate.forEach((c, k) => {
    test(`exchange_accumulate's running sums keep the reference's NaN (case ${k + 1})`, () =>
      withClient(async (client) => {
        const session = await client.exchange(ConformanceService, "exchange_accumulate", {});
        const sums: Bits[] = [];
        try {
          for (const turn of c.turns) {
            sums.push(columnBits(await session.exchangeBatch(inputBatch(turn)), "running_sum")[0]!);
          }
        } finally {
          await session.close();
        }
        assert.deepEqual(sums, c.running_sums);
      }));
  });

  for (const c of FIXTURE.add_floats) {
    test(`add_floats(${c.a}, ${c.b}) is ${c.result}`, () =>
      withClient(async (client) => {
        const result = await proxy(client, ConformanceService).add_floats({ a: fromHex(c.a), b: fromHex(c.b) });
        assert.equal(hexOf(result), c.result);
      }));
  }
});
