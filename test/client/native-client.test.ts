/**
 * The reference's native-client conformance contract: our client against its
 * `vgi_rpc.conformance.client_worker` (ClientConformanceService) over stdio, a Unix socket and
 * TCP. `typed_exchange` must carry `TYPED_EXCHANGE_SCHEMA` exactly: all-null rows,
 * dictionary-encoded strings, timestamps with a zone, decimals and nested struct/list columns.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { schemaText } from "../../src/client/values.js";
import { batchFromRows, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { connectTcp, connectUnix } from "../../src/transports/socket/client.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { clientWorker, type SocketWorker, socketPath, spawnSocketWorker, within } from "./helpers.js";

/** `TYPED_EXCHANGE_SCHEMA`, field for field. */
const Typed = {
  nullable_float: t.float64().optional(),
  tags: t.list(t.utf8()).optional(),
  category: t.dictUtf8().optional(),
  event_time: t.timestampUs("UTC").optional(),
  amount: t.decimal128(18, 4).optional(),
  nested: t.struct({ name: t.utf8().optional(), scores: t.list(t.int32()).optional() }).optional(),
};
const Produced = { index: t.int64(), payload: t.binary() };

const ClientConformance = defineProtocol(
  "ClientConformanceService",
  {},
  {
    typed_exchange: exchange({}, { input: Typed, output: Typed }),
    producer_sequence: producer({ count: t.int64(), payload_bytes: t.int64() }, { output: Produced }),
    producer_zero_row_then_value: producer({}, { output: Produced }),
    producer_emit_and_finish: producer({}, { output: Produced }),
    producer_empty: producer({}, { output: Produced }),
    large_response: unary({ size: t.int64() }, t.binary()),
    echo_bytes: unary({ value: t.binary() }, t.binary()),
  },
);

type TypedRow = {
  nullable_float: number | null;
  tags: string[] | null;
  category: string | null;
  event_time: bigint | null;
  amount: bigint | null;
  nested: { name: string | null; scores: number[] | null } | null;
};

const ALL_NULL: TypedRow = {
  nullable_float: null,
  tags: null,
  category: null,
  event_time: null,
  amount: null,
  nested: null,
};

const FULL: TypedRow[] = [
  {
    nullable_float: 1.5,
    tags: ["a", "b"],
    category: "red",
    event_time: 1_700_000_000_000_001n,
    amount: 123_456_789n,
    nested: { name: "n1", scores: [1, 2, 3] },
  },
  {
    nullable_float: -0.25,
    tags: [],
    category: "blue",
    event_time: 0n,
    amount: -1n,
    nested: { name: null, scores: [] },
  },
  {
    nullable_float: null,
    tags: ["c"],
    category: "red",
    event_time: null,
    amount: 99_990_000n,
    nested: { name: "n3", scores: null },
  },
];

type Case = { name: string; run(client: RpcClient): Promise<void> };

const CASES: Case[] = [
  {
    name: "typed_exchange: all-null row",
    async run(client) {
      const s = await proxy(client, ClientConformance).typed_exchange();
      try {
        assert.deepEqual(await s.exchange([ALL_NULL, ALL_NULL]), [ALL_NULL, ALL_NULL]);
      } finally {
        await s.close();
      }
    },
  },
  {
    name: "typed_exchange: dictionary-encoded, timestamp-tz, decimal and nested columns, several turns",
    async run(client) {
      const s = await proxy(client, ClientConformance).typed_exchange();
      try {
        assert.deepEqual(await s.exchange(FULL), FULL);
        assert.deepEqual(await s.exchange([FULL[1]!]), [FULL[1]!]);
        const out = await s.exchangeBatch(batchFromRows(Typed, FULL));
        // The server answers on TYPED_EXCHANGE_SCHEMA; ours must be the same schema, field for field.
        assert.equal(schemaText(out.schema), schemaText(schemaOf(Typed)));
      } finally {
        await s.close();
      }
    },
  },
  {
    name: "typed_exchange: a zero-row input batch",
    async run(client) {
      const s = await proxy(client, ClientConformance).typed_exchange();
      try {
        assert.deepEqual(await s.exchange([]), []);
      } finally {
        await s.close();
      }
    },
  },
  {
    name: "producer_sequence: deterministic multi-turn producer",
    async run(client) {
      const rows = await (
        await proxy(client, ClientConformance).producer_sequence({ count: 4n, payload_bytes: 5n })
      ).toArray();
      assert.equal(rows.length, 4);
      rows.forEach((r, i) => {
        assert.equal(r.index, BigInt(i));
        assert.deepEqual(r.payload, new Uint8Array(5).fill(i % 251));
      });
    },
  },
  {
    name: "producer_zero_row_then_value: a zero-row data batch is data, not the end",
    async run(client) {
      const s = await proxy(client, ClientConformance).producer_zero_row_then_value();
      const sizes: number[] = [];
      for await (const b of s.batches()) sizes.push(b.numRows);
      assert.deepEqual(sizes, [0, 1]);
    },
  },
  {
    name: "producer_emit_and_finish: data and finish in one turn",
    async run(client) {
      const rows = await (await proxy(client, ClientConformance).producer_emit_and_finish()).toArray();
      assert.deepEqual(rows, [{ index: 99n, payload: new TextEncoder().encode("terminal") }]);
    },
  },
  {
    name: "producer_empty: finishes without data",
    async run(client) {
      assert.deepEqual(await (await proxy(client, ClientConformance).producer_empty()).toArray(), []);
    },
  },
  {
    name: "echo_bytes and large_response (1 MiB)",
    async run(client) {
      const svc = proxy(client, ClientConformance);
      const v = new Uint8Array(70_000).map((_, i) => i % 256);
      assert.deepEqual(await svc.echo_bytes({ value: v }), v);
      const big = await svc.large_response({ size: 1n << 20n });
      assert.equal(big.byteLength, 1 << 20);
      assert.equal(big[300], 300 % 251);
    },
  },
];

function suite(
  transport: string,
  open: () => Promise<RpcClient>,
  setup?: () => Promise<void>,
  teardown?: () => Promise<void>,
) {
  describe(`our client → reference native-client worker over ${transport}`, () => {
    let client: RpcClient;
    before(async () => {
      await setup?.();
      client = await open();
    });
    after(async () => {
      await client?.close();
      await teardown?.();
    });
    for (const c of CASES) test(c.name, () => within(c.run(client), 20_000, c.name));
  });
}

suite("stdio", () => {
  const [cmd, args] = clientWorker("--stdio");
  return connectSubprocess(cmd, args, { timeoutMs: 10_000, stderr: "ignore" });
});

let unixWorker: SocketWorker | undefined;
const unixPath = socketPath("client-worker.sock");
suite(
  "unix",
  () => connectUnix(unixPath, { timeoutMs: 10_000 }),
  async () => {
    const [cmd, args] = clientWorker("--unix", unixPath);
    unixWorker = await spawnSocketWorker(cmd, args);
  },
  async () => unixWorker?.stop(),
);

let tcpWorker: SocketWorker | undefined;
let port = 0;
suite(
  "tcp",
  () => connectTcp("127.0.0.1", port, { timeoutMs: 10_000 }),
  async () => {
    const [cmd, args] = clientWorker("--tcp", "127.0.0.1:0");
    tcpWorker = await spawnSocketWorker(cmd, args);
    port = Number(/:(\d+)$/.exec(tcpWorker.ready)![1]);
  },
  async () => tcpWorker?.stop(),
);
