/**
 * Interop cases: our client against the reference's conformance worker (ConformanceService),
 * driven by our port of its declaration. The same cases run over every session transport.
 */
import assert from "node:assert/strict";
import { Field, Float64, Int64, makeData, type RecordBatch, Schema } from "apache-arrow";
import type { RpcClient } from "../../src/client/client.js";
import { type ProtocolClient, paramsBatch } from "../../src/client/typed.js";
import { buildRichHeader, ConformanceService } from "../../src/conformance/service.js";
import { InvalidValueError, RpcError } from "../../src/errors.js";
import { batchFromData } from "../../src/wire/batches.js";
import type { LogRecord } from "../../src/wire/messages.js";

export interface CaseContext {
  readonly client: RpcClient;
  readonly svc: ProtocolClient<typeof ConformanceService>;
  /** Log records received since the case started. */
  readonly logs: LogRecord[];
}

export interface InteropCase {
  readonly name: string;
  run(ctx: CaseContext): Promise<void>;
}

const te = new TextEncoder();

/** The reference's rich header for `seed`, its float32 field rounded as float32 travels. */
function richHeader(seed: bigint) {
  const h = buildRichHeader(seed);
  return { ...h, annotated_float32: Math.fround(h.annotated_float32) };
}

async function rejectsWith(p: Promise<unknown>, type: string, message: RegExp | string, kind?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RpcError, `expected RpcError, got ${String(e)}`);
    assert.equal(e.type, type);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    if (kind !== undefined) assert.equal(e.kind, kind);
    return true;
  });
}

const echo = <V>(name: string, call: (svc: CaseContext["svc"]) => Promise<V>, want: V): InteropCase => ({
  name: `unary ${name}`,
  async run({ svc }) {
    assert.deepEqual(await call(svc), want);
  },
});

export const CASES: readonly InteropCase[] = [
  echo("echo_string (unicode)", (s) => s.echo_string({ value: "héllo ✓ 𝄞" }), "héllo ✓ 𝄞"),
  echo("echo_string (empty)", (s) => s.echo_string({ value: "" }), ""),
  echo("echo_bytes", (s) => s.echo_bytes({ data: new Uint8Array([0, 1, 254, 255]) }), new Uint8Array([0, 1, 254, 255])),
  echo("echo_int (int64 extremes)", (s) => s.echo_int({ value: -(2n ** 63n) }), -(2n ** 63n)),
  echo("echo_float", (s) => s.echo_float({ value: -0.1 }), -0.1),
  echo("echo_bool", (s) => s.echo_bool({ value: true }), true),
  echo("void_noop", (s) => s.void_noop(), undefined),
  echo("void_with_param", (s) => s.void_with_param({ value: 7n }), undefined),
  echo("echo_enum", (s) => s.echo_enum({ status: "ACTIVE" }), "ACTIVE"),
  echo("echo_list", (s) => s.echo_list({ values: ["a", "b", "c"] }), ["a", "b", "c"]),
  echo(
    "echo_dict (map, order kept)",
    (s) =>
      s.echo_dict({
        mapping: new Map([
          ["z", 1n],
          ["a", 2n],
        ]),
      }),
    new Map([
      ["z", 1n],
      ["a", 2n],
    ]),
  ),
  echo("echo_nested_list", (s) => s.echo_nested_list({ matrix: [[1n, 2n], [], [3n]] }), [[1n, 2n], [], [3n]]),
  echo("echo_optional_string (null)", (s) => s.echo_optional_string({ value: null }), null),
  echo("echo_optional_string (value)", (s) => s.echo_optional_string({ value: "x" }), "x"),
  echo("echo_optional_int (null)", (s) => s.echo_optional_int({ value: null }), null),
  echo("echo_annotated_optional_int", (s) => s.echo_annotated_optional_int({ value: -5 }), -5),
  echo("echo_int32", (s) => s.echo_int32({ value: -2147483648 }), -2147483648),
  echo("echo_float32", (s) => s.echo_float32({ value: 1.5 }), 1.5),
  echo("echo_int8", (s) => s.echo_int8({ value: -128 }), -128),
  echo("echo_int16", (s) => s.echo_int16({ value: 32767 }), 32767),
  echo("echo_uint8", (s) => s.echo_uint8({ value: 255 }), 255),
  echo("echo_uint16", (s) => s.echo_uint16({ value: 65535 }), 65535),
  echo("echo_uint32", (s) => s.echo_uint32({ value: 4294967295 }), 4294967295),
  echo("echo_uint64", (s) => s.echo_uint64({ value: 2n ** 64n - 1n }), 2n ** 64n - 1n),
  echo("echo_date", (s) => s.echo_date({ value: 19000 }), 19000),
  echo("echo_timestamp", (s) => s.echo_timestamp({ value: 1_700_000_000_123_456n }), 1_700_000_000_123_456n),
  echo("echo_timestamp_utc", (s) => s.echo_timestamp_utc({ value: -1n }), -1n),
  echo("echo_time", (s) => s.echo_time({ value: 86_399_999_999n }), 86_399_999_999n),
  echo("echo_duration", (s) => s.echo_duration({ value: -42n }), -42n),
  echo("echo_decimal", (s) => s.echo_decimal({ value: 12345678901234567890n }), 12345678901234567890n),
  echo("echo_large_string", (s) => s.echo_large_string({ value: "large" }), "large"),
  echo("echo_large_binary", (s) => s.echo_large_binary({ value: te.encode("lb") }), te.encode("lb")),
  echo("echo_fixed_binary", (s) => s.echo_fixed_binary({ value: te.encode("12345678") }), te.encode("12345678")),
  echo("echo_status_list", (s) => s.echo_status_list({ statuses: ["PENDING", "CLOSED", "PENDING"] }), [
    "PENDING",
    "CLOSED",
    "PENDING",
  ]),
  echo("echo_dict_encoded_string", (s) => s.echo_dict_encoded_string({ value: "dict" }), "dict"),
  echo("add_floats", (s) => s.add_floats({ a: 1.25, b: 2 }), 3.25),
  echo(
    "concatenate (default filled client-side)",
    (s) => s.concatenate({ prefix: "a", suffix: "b" } as { prefix: string; suffix: string; separator: string }),
    "a-b",
  ),
  echo("concatenate (explicit)", (s) => s.concatenate({ prefix: "a", suffix: "b", separator: "+" }), "a+b"),
  echo(
    "with_defaults (defaults filled client-side)",
    (s) => s.with_defaults({ required: 3n } as { required: bigint; optional_str: string; optional_int: bigint }),
    "required=3, optional_str=default, optional_int=42",
  ),
  {
    name: "errors: ValueError / RuntimeError / TypeError keep type and message",
    async run({ svc }) {
      await rejectsWith(svc.raise_value_error({ message: "bad" }), "ValueError", "bad");
      await rejectsWith(svc.raise_runtime_error({ message: "rt" }), "RuntimeError", "rt");
      await rejectsWith(svc.raise_type_error({ message: "ty" }), "TypeError", "ty");
      assert.equal(await svc.echo_string({ value: "after errors" }), "after errors");
    },
  },
  {
    name: "errors: unknown method and protocol version mismatch carry their error_kind",
    async run({ client }) {
      const none = paramsBatch("m", {}, {});
      await assert.rejects(
        client.unaryBatch({ protocol: "ConformanceService", protocolVersion: "2.0.0", method: "no_such" }, none),
        (e: unknown) => e instanceof RpcError && e.kind === "method_not_implemented",
      );
      await assert.rejects(
        client.unaryBatch({ protocol: "ConformanceService", protocolVersion: "1.0.0", method: "void_noop" }, none),
        (e: unknown) => e instanceof RpcError && e.kind === "protocol_version_mismatch",
      );
      await assert.rejects(
        client.unaryBatch({ protocol: "no.Such.v1", method: "void_noop" }, none),
        (e: unknown) => e instanceof RpcError && e.kind === "protocol_not_supported",
      );
    },
  },
  {
    name: "logs: unary logs reach onLog in order, with levels and extras",
    async run({ svc, logs }) {
      assert.equal(await svc.echo_with_multi_logs({ value: "v" }), "v");
      assert.deepEqual(
        logs.map((l) => [l.level, l.message]),
        [
          ["DEBUG", "debug: v"],
          ["INFO", "info: v"],
          ["WARN", "warn: v"],
        ],
      );
      logs.length = 0;
      await svc.echo_with_all_log_levels({ value: "w" });
      assert.deepEqual(
        logs.map((l) => l.level),
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"],
      );
      logs.length = 0;
      await svc.echo_with_log_extras({ value: "x" });
      assert.equal(logs[0]!.extra.source, "conformance");
      assert.equal(logs[0]!.extra.detail, "x");
    },
  },
  {
    name: "producer produce_n",
    async run({ svc }) {
      const rows = await (await svc.produce_n({ count: 3n })).toArray();
      assert.deepEqual(rows, [
        { index: 0n, value: 0n },
        { index: 1n, value: 10n },
        { index: 2n, value: 20n },
      ]);
    },
  },
  {
    name: "producer produce_empty and produce_single",
    async run({ svc }) {
      assert.deepEqual(await (await svc.produce_empty()).toArray(), []);
      assert.deepEqual(await (await svc.produce_single()).toArray(), [{ index: 0n, value: 0n }]);
    },
  },
  {
    name: "producer produce_large_batches (many rows per batch)",
    async run({ svc }) {
      let rows = 0;
      let batches = 0;
      for await (const b of (await svc.produce_large_batches({ rows_per_batch: 5000n, batch_count: 3n })).batches()) {
        batches++;
        rows += b.numRows;
      }
      assert.equal(batches, 3);
      assert.equal(rows, 15000);
    },
  },
  {
    name: "producer produce_with_logs (logs interleaved with data)",
    async run({ svc, logs }) {
      const rows = await (await svc.produce_with_logs({ count: 2n })).toArray();
      assert.equal(rows.length, 2);
      assert.ok(logs.length >= 2, `expected logs, got ${logs.length}`);
    },
  },
  {
    name: "producer produce_error_mid_stream (rows, then RpcError), lockstep and with ticks in flight",
    async run({ svc }) {
      for (const prefetch of [1, 4]) {
        const seen: bigint[] = [];
        await rejectsWith(
          (async () => {
            for await (const r of await svc.produce_error_mid_stream({ emit_before_error: 2n }, { prefetch })) {
              seen.push(r.index!);
            }
          })(),
          "RuntimeError",
          /intentional error after 2 batches/,
        );
        assert.deepEqual(seen, [0n, 1n]);
        assert.equal(await svc.echo_int({ value: BigInt(prefetch) }), BigInt(prefetch));
      }
    },
  },
  {
    name: "producer produce_with_header (typed header)",
    async run({ svc }) {
      const s = await svc.produce_with_header({ count: 2n });
      assert.deepEqual(s.header, { total_expected: 2n, description: "producing 2 batches" });
      assert.equal((await s.toArray()).length, 2);
    },
  },
  {
    name: "producer produce_with_header_and_logs",
    async run({ svc, logs }) {
      const s = await svc.produce_with_header_and_logs({ count: 2n });
      assert.equal(s.header.total_expected, 2n);
      assert.equal((await s.toArray()).length, 2);
      assert.ok(logs.length >= 1);
    },
  },
  {
    name: "producer produce_with_rich_header (every header type)",
    async run({ svc }) {
      const s = await svc.produce_with_rich_header({ seed: 7n, count: 1n });
      await s.close();
      assert.deepEqual(s.header, richHeader(7n));
    },
  },
  {
    name: "producer produce_dynamic_schema (dynamic output rows)",
    async run({ svc }) {
      const s = await svc.produce_dynamic_schema({ seed: 3n, count: 2n, include_strings: true, include_floats: true });
      const rows = await s.toArray();
      assert.deepEqual(s.header, richHeader(3n));
      assert.equal(rows.length, 2);
      assert.ok("index" in rows[0]!);
    },
  },
  {
    name: "producer produce_error_on_init (RpcError on the first read; connection reusable)",
    async run({ svc }) {
      await rejectsWith(
        (async () => (await svc.produce_error_on_init()).toArray())(),
        "RuntimeError",
        /intentional init error/,
      );
      assert.equal(await svc.echo_string({ value: "still in sync" }), "still in sync");
    },
  },
  {
    name: "producer prefetch: every batch in order, finishing with ticks in flight; the connection stays in sync",
    async run({ svc }) {
      for (const prefetch of [2, 4, 64]) {
        const rows = await (await svc.produce_n({ count: 10n }, { prefetch })).toArray();
        assert.deepEqual(
          rows.map((r) => r.index),
          Array.from({ length: 10 }, (_, i) => BigInt(i)),
        );
        assert.equal(await svc.echo_int({ value: BigInt(prefetch) }), BigInt(prefetch));
      }
      let rows = 0;
      for await (const b of (
        await svc.produce_large_batches({ rows_per_batch: 5000n, batch_count: 3n }, { prefetch: 8 })
      ).batches()) {
        rows += b.numRows;
      }
      assert.equal(rows, 15000);
      const s = await svc.produce_with_header({ count: 3n }, { prefetch: 3 });
      assert.equal((await s.toArray()).length, 3);
      assert.equal(await svc.echo_string({ value: "in sync" }), "in sync");
    },
  },
  {
    name: "producer prefetch: a count outside 1-64 is refused before anything is sent",
    async run({ svc }) {
      for (const prefetch of [0, 1.5, 65, Number.NaN]) {
        await assert.rejects(svc.produce_n({ count: 1n }, { prefetch }), RangeError);
      }
      assert.deepEqual(await (await svc.produce_n({ count: 1n }, { prefetch: 64 })).toArray(), [
        { index: 0n, value: 0n },
      ]);
    },
  },
  {
    name: "exchange exchange_scale (lockstep)",
    async run({ svc }) {
      const s = await svc.exchange_scale({ factor: 2 });
      assert.deepEqual(await s.exchange([{ value: 1.5 }, { value: null }]), [{ value: 3 }, { value: null }]);
      assert.deepEqual(await s.exchange([{ value: -4 }]), [{ value: -8 }]);
      await s.close();
    },
  },
  {
    name: "exchange pipeline: exchange_scale answers every input in order; the session stays open for more turns",
    async run({ svc }) {
      const s = await svc.exchange_scale({ factor: 2 });
      const inputs = function* () {
        for (let i = 0; i < 40; i++) yield [{ value: i }, { value: null }];
      };
      const got: (number | null)[] = [];
      for await (const rows of s.pipeline(inputs(), { window: 8 })) {
        assert.equal(rows.length, 2);
        got.push(rows[0]!.value);
        assert.equal(rows[1]!.value, null);
      }
      assert.deepEqual(
        got,
        Array.from({ length: 40 }, (_, i) => 2 * i),
      );
      // Async inputs and prebuilt batches, window 1 (one at a time), on the same session.
      const asyncInputs = async function* () {
        yield [{ value: 0.5 }];
        yield paramsBatch("x", { value: ConformanceService.methods.exchange_scale.input.value }, { value: 3 });
      };
      const more: (number | null)[] = [];
      for await (const b of s.pipelineBatches(asyncInputs(), { window: 1 })) more.push(b.getChild("value")!.get(0));
      assert.deepEqual(more, [1, 6]);
      assert.deepEqual(await s.exchange([{ value: -4 }]), [{ value: -8 }]);
      await s.close();
      assert.equal(await svc.echo_string({ value: "in sync" }), "in sync");
    },
  },
  {
    name: "exchange pipeline: large batches both ways with 8 in flight (no deadlock on full buffers)",
    async run({ svc }) {
      const s = await svc.exchange_scale({ factor: 0.5 });
      const rows = Array.from({ length: 200_000 }, (_, i) => ({ value: i }));
      const batch = paramsBatch("x", { value: ConformanceService.methods.exchange_scale.input.value }, { value: 0 });
      const big = s.pipelineBatches(
        (function* () {
          for (let k = 0; k < 12; k++) yield k === 0 ? batch : rows;
        })(),
        { window: 8 },
      );
      let answers = 0;
      for await (const b of big) {
        assert.equal(b.numRows, answers === 0 ? 1 : 200_000);
        if (answers > 0) assert.equal(b.getChild("value")!.get(199_999), 199_999 / 2);
        answers++;
      }
      assert.equal(answers, 12);
      await s.close();
    },
  },
  {
    name: "exchange pipeline: a server error arrives after the answers before it; the connection stays usable",
    async run({ svc }) {
      const s = await svc.exchange_error_on_nth({ fail_on: 3n });
      const seen: (number | null)[] = [];
      await assert.rejects(
        (async () => {
          const inputs = Array.from({ length: 10 }, (_, i) => [{ value: i }]);
          for await (const rows of s.pipeline(inputs, { window: 4 })) seen.push(rows[0]!.value);
        })(),
        (e: unknown) => e instanceof RpcError && /intentional error on exchange 3/.test(e.message),
      );
      assert.deepEqual(seen, [0, 1]);
      await assert.rejects(s.exchange([{ value: 3 }]), /closed or cancelled/);
      assert.equal(await svc.echo_string({ value: "ok" }), "ok");
    },
  },
  {
    name: "exchange pipeline: a window outside 1-64 is refused before anything is sent",
    async run({ svc }) {
      const s = await svc.exchange_scale({ factor: 1 });
      for (const window of [0, 65, 2.5]) {
        await assert.rejects(s.pipeline([[{ value: 1 }]], { window }).next(), RangeError);
      }
      assert.deepEqual(await s.exchange([{ value: 7 }]), [{ value: 7 }]);
      await s.close();
    },
  },
  {
    name: "exchange exchange_accumulate (state across turns)",
    async run({ svc }) {
      const s = await svc.exchange_accumulate();
      assert.deepEqual(await s.exchange([{ value: 1 }, { value: 2 }]), [{ running_sum: 3, exchange_count: 1n }]);
      assert.deepEqual(await s.exchange([{ value: 10 }]), [{ running_sum: 13, exchange_count: 2n }]);
      await s.close();
    },
  },
  {
    name: "exchange exchange_with_logs",
    async run({ svc, logs }) {
      const s = await svc.exchange_with_logs();
      await s.exchange([{ value: 1 }]);
      await s.close();
      assert.ok(logs.length >= 1);
    },
  },
  {
    name: "exchange exchange_error_on_nth (error ends the session, connection reusable)",
    async run({ svc }) {
      const s = await svc.exchange_error_on_nth({ fail_on: 2n });
      assert.deepEqual(await s.exchange([{ value: 1 }]), [{ value: 1 }]);
      await assert.rejects(s.exchange([{ value: 2 }]), (e: unknown) => e instanceof RpcError && e.type !== "");
      await assert.rejects(s.exchange([{ value: 3 }]), /closed or cancelled/);
      assert.equal(await svc.echo_string({ value: "ok" }), "ok");
    },
  },
  {
    name: "exchange exchange_input_metadata (custom metadata on input batches)",
    async run({ svc }) {
      const s = await svc.exchange_input_metadata();
      try {
        const [row] = await s.exchange([{ value: 1 }], new Map([["vgi.conformance.input", "hello"]]));
        assert.equal(row!.seen, "hello");
      } finally {
        await s.close();
      }
    },
  },
  {
    name: "exchange exchange_zero_columns",
    async run({ svc }) {
      const s = await svc.exchange_zero_columns();
      const out = await s.exchangeBatch(batchFromData(new Schema([]), [], 0));
      assert.equal(out.schema.fields.length, 0);
      await s.close();
    },
  },
  {
    name: "exchange exchange_with_header",
    async run({ svc }) {
      const s = await svc.exchange_with_header({ factor: 3 });
      assert.equal(s.header.total_expected, 0n);
      assert.deepEqual(await s.exchange([{ value: 2 }]), [{ value: 6 }]);
      await s.close();
    },
  },
  {
    name: "exchange exchange_with_rich_header",
    async run({ svc }) {
      const s = await svc.exchange_with_rich_header({ seed: 5n, factor: 2 });
      try {
        assert.deepEqual(s.header, richHeader(5n));
        assert.deepEqual(await s.exchange([{ value: 2 }]), [{ value: 4 }]);
      } finally {
        await s.close();
      }
    },
  },
  {
    name: "range: a header whose int64 overflows fails the call with OverflowError; the connection stays usable",
    async run({ svc }) {
      // The reference raises OverflowError serializing the header (seed * 7 past int64); so must
      // any port, instead of sending the wrapped value.
      const overflow = async (open: () => Promise<unknown>) =>
        assert.rejects(open, (e: unknown) => e instanceof RpcError && e.type === "OverflowError");
      await overflow(() => svc.produce_with_rich_header({ seed: 2n ** 62n, count: 0n }));
      await overflow(() =>
        svc.produce_dynamic_schema({ seed: -(2n ** 63n), count: 0n, include_strings: false, include_floats: false }),
      );
      await overflow(() => svc.exchange_with_rich_header({ seed: 2n ** 62n, factor: 1 }));
      assert.equal(await svc.echo_int({ value: 5n }), 5n);
    },
  },
  {
    name: "range: parameters outside their type are refused before anything is sent; the connection stays usable",
    async run({ svc }) {
      const refused = async (call: () => Promise<unknown>, type: string, message: RegExp) =>
        assert.rejects(call, (e: unknown) => {
          assert.ok(e instanceof InvalidValueError, `expected an InvalidValueError, got ${String(e)}`);
          assert.equal(e.type, type);
          assert.match(e.message, message);
          return true;
        });
      const wide = /out of range/;
      await refused(
        () => svc.echo_int({ value: 2n ** 64n + 5n }),
        "OverflowError",
        /^echo_int\(\) parameter 'value': 18446744073709551621 is out of range for int64/,
      );
      await refused(() => svc.echo_int({ value: 2n ** 63n }), "OverflowError", wide);
      await refused(() => svc.echo_int32({ value: 2 ** 40 + 7 }), "OverflowError", wide);
      await refused(() => svc.echo_int32({ value: 1.9 }), "TypeError", /1.9 is not an integer/);
      await refused(
        () => svc.echo_uint8({ value: 300 }),
        "OverflowError",
        /300 is out of range for uint8 \(0 to 255\)/,
      );
      await refused(() => svc.echo_uint8({ value: -1 }), "OverflowError", wide);
      await refused(() => svc.echo_uint64({ value: -1n }), "OverflowError", wide);
      await refused(() => svc.echo_float32({ value: 1e300 }), "OverflowError", wide);
      await refused(() => svc.echo_time({ value: 86_400_000_000n }), "ValueError", /not a time of day/);
      await refused(() => svc.echo_decimal({ value: 10n ** 20n }), "OverflowError", /more than the 20 digits/);
      await refused(() => svc.echo_fixed_binary({ value: te.encode("short") }), "ValueError", /not 8 bytes long/);
      await refused(
        () => svc.echo_enum({ status: "BOGUS" as "ACTIVE" }),
        "ValueError",
        /not one of PENDING, ACTIVE, CLOSED/,
      );
      await refused(
        () => svc.echo_nested_list({ matrix: [[1n], [2n ** 63n]] }),
        "OverflowError",
        /parameter 'matrix\[1\]\[0\]'/,
      );
      await refused(() => svc.produce_n({ count: 99999999999999999999n }), "OverflowError", wide);
      assert.equal(await svc.echo_uint8({ value: 255 }), 255);
    },
  },
  {
    name: "exchange exchange_cast_compatible (int64 input cast by the server)",
    async run({ svc }) {
      const s = await svc.exchange_cast_compatible();
      const schema = new Schema([new Field("value", new Int64(), true)]);
      const data = makeData({ type: new Int64(), length: 2, nullCount: 0, data: new BigInt64Array([2n, 5n]) });
      const out = await s.exchangeBatch(batchFromData(schema, [data], 2));
      assert.ok(out.schema.fields[0]!.type instanceof Float64 || String(out.schema.fields[0]!.type) === "Float64");
      await s.close();
    },
  },
  {
    name: "exchange exchange_error_on_init (connection reusable)",
    async run({ svc }) {
      await rejectsWith(
        (async () => (await svc.exchange_error_on_init()).exchange([{ value: 1 }]))(),
        "RuntimeError",
        /intentional exchange init error/,
      );
      assert.equal(await svc.echo_string({ value: "still in sync" }), "still in sync");
    },
  },
  {
    name: "cancel: producer (break) and exchange (cancel()) fire on_cancel; the connection stays usable",
    async run({ svc }) {
      await svc.reset_cancel_probe();
      for await (const r of await svc.cancellable_producer()) if (r.index === 1n) break;
      const afterProducer = await svc.cancel_probe_counters();
      assert.equal(afterProducer[2], 1n, `on_cancel after producer: ${afterProducer}`);
      const ex = await svc.cancellable_exchange();
      await ex.exchange([{ value: 1 }]);
      await ex.cancel();
      const after = await svc.cancel_probe_counters();
      assert.equal(after[2], 2n, `on_cancel after exchange: ${after}`);
    },
  },
  {
    name: "cancel: AbortSignal cancels a producer mid-iteration",
    async run({ svc }) {
      await svc.reset_cancel_probe();
      const ac = new AbortController();
      const seen: bigint[] = [];
      await assert.rejects(
        (async () => {
          for await (const r of await svc.cancellable_producer({}, { signal: ac.signal })) {
            seen.push(r.index!);
            if (seen.length === 3) ac.abort(new Error("enough"));
          }
        })(),
        /enough/,
      );
      assert.equal(seen.length, 3);
      assert.equal((await svc.cancel_probe_counters())[2], 1n);
    },
  },
  {
    name: "describe via vgi_rpc.Reflection.v1",
    async run({ client }) {
      const d = await client.describe();
      assert.equal(d.protocolName, "ConformanceService");
      assert.equal(d.protocolVersion, ConformanceService.version);
      assert.equal(d.methods.size, Object.keys(ConformanceService.methods).length);
      assert.deepEqual(
        d.methods.get("add_floats")!.paramsSchema.fields.map((f) => f.name),
        ["a", "b"],
      );
      assert.equal(d.methods.get("produce_with_header")!.hasHeader, true);
    },
  },
];

/**
 * Pipelines endless inputs through `cancellable_exchange` with 8 in flight and breaks after two
 * answers; returns the session and the server's exchange and on_cancel counts since.
 */
export async function breakPipelineAfterTwo(svc: CaseContext["svc"]) {
  await svc.reset_cancel_probe();
  const ex = await svc.cancellable_exchange();
  const forever = function* () {
    for (let i = 0; ; i++) yield [{ value: i }];
  };
  let answers = 0;
  for await (const rows of ex.pipeline(forever(), { window: 8 })) {
    assert.deepEqual(rows, [{ value: answers }]);
    if (++answers === 2) break;
  }
  const [, exchanged, cancels] = await svc.cancel_probe_counters();
  return { ex, exchanged, cancels };
}

/**
 * Cases for session transports only (pipe, Unix, TCP): they rely on ticks kept in flight, which
 * HTTP does not do (each turn chains on the previous one's token).
 */
export const SESSION_CASES: readonly InteropCase[] = [
  {
    name: "producer prefetch: the server answers every tick sent before a break's cancel (prefetch - 1 extra produce calls)",
    async run({ svc }) {
      await svc.reset_cancel_probe();
      for await (const r of await svc.cancellable_producer({}, { prefetch: 4 })) if (r.index === 1n) break;
      // Two batches consumed; the client had topped the ticks in flight up to 4 before each read,
      // so 5 ticks preceded the cancel batch and the server produced for each, in order.
      const [produced, , cancels] = await svc.cancel_probe_counters();
      assert.equal(produced, 5n);
      assert.equal(cancels, 1n);
      assert.equal(await svc.echo_string({ value: "after cancel" }), "after cancel");
    },
  },
  {
    name: "producer prefetch: a tick sent with answers owed gets the oldest answer; ticks keep their order",
    async run({ client }) {
      const target = {
        protocol: ConformanceService.name,
        protocolVersion: ConformanceService.version,
        method: "produce_tick_metadata",
      };
      const params = paramsBatch("produce_tick_metadata", ConformanceService.methods.produce_tick_metadata.params, {
        count: 5n,
      });
      const raw = await client.openStream(target, params, { hasHeader: false });
      const seen = async (b: Promise<RecordBatch | null>) => {
        const batch = await b;
        assert.ok(batch !== null);
        return `${batch.getChild("index")!.get(0)}:${batch.getChild("seen")!.get(0)}`;
      };
      assert.equal(await seen(raw.pull(3)), "0:");
      assert.equal(await seen(raw.tick(new Map([["vgi.conformance.tick", "x"]]))), "1:");
      assert.equal(await seen(raw.pull(1)), "2:");
      assert.equal(await seen(raw.pull(1)), "3:x");
      assert.equal(await seen(raw.pull(2)), "4:");
      assert.equal(await raw.pull(2), null);
      assert.ok(raw.ended);
      await assert.rejects(raw.pull(0), RangeError);
    },
  },
  {
    name: "exchange pipeline: a break cancels the exchange after the server answered every input sent (window - 1 extra)",
    async run({ svc }) {
      const { ex, exchanged, cancels } = await breakPipelineAfterTwo(svc);
      // Two answers read with eight inputs kept in flight: nine inputs preceded the cancel.
      assert.equal(exchanged, 9n);
      assert.equal(cancels, 1n);
      await assert.rejects(ex.exchange([{ value: 1 }]), /closed or cancelled/);
      assert.equal(await svc.echo_string({ value: "after cancel" }), "after cancel");
    },
  },
  {
    name: "exchange pipeline: inputs that throw (an RpcError too) cancel the exchange and the error reaches the caller",
    async run({ svc }) {
      for (const failure of [
        new Error("inputs failed"),
        new RpcError("an upstream call failed", { type: "RuntimeError" }),
      ]) {
        await svc.reset_cancel_probe();
        const ex = await svc.cancellable_exchange();
        const failing = async function* () {
          yield [{ value: 1 }];
          yield [{ value: 2 }];
          throw failure;
        };
        const seen: (number | null)[] = [];
        await assert.rejects(
          (async () => {
            for await (const rows of ex.pipeline(failing(), { window: 4 })) seen.push(rows[0]!.value);
          })(),
          (e: unknown) => e === failure,
        );
        // The inputs failed while the first two were in flight: nothing was read before the
        // cancel, and the server ran on_cancel (a close would not).
        assert.deepEqual(seen, []);
        const [, exchanged, cancels] = await svc.cancel_probe_counters();
        assert.equal(exchanged, 2n);
        assert.equal(cancels, 1n);
        assert.equal(await svc.echo_int({ value: 9n }), 9n);
      }
    },
  },
  {
    name: "exchange pipeline: leaving early with large inputs queued cancels at once (answers are read while the queue drains)",
    async run({ svc }) {
      const s = await svc.exchange_scale({ factor: 2 });
      const rows = Array.from({ length: 200_000 }, (_, i) => ({ value: i }));
      let answers = 0;
      for await (const b of s.pipelineBatches(
        (function* () {
          for (;;) yield rows;
        })(),
        { window: 8 },
      )) {
        assert.equal(b.numRows, 200_000);
        if (++answers === 1) break;
      }
      // Had the cancel waited for the queued inputs without reading, the server (blocked writing
      // an answer) would never have read them: the client's 10 s write timeout would have broken
      // the connection, and this call would fail.
      assert.equal(await svc.echo_string({ value: "after break" }), "after break");
    },
  },
  {
    name: "exchange pipeline: bad inputs (not iterable, not batches, a cleanup that throws) end the stream and release it",
    async run({ client, svc }) {
      const target = {
        protocol: ConformanceService.name,
        protocolVersion: ConformanceService.version,
        method: "exchange_scale",
      };
      const params = paramsBatch("exchange_scale", ConformanceService.methods.exchange_scale.params, { factor: 1 });
      const open = () => client.openStream(target, params, { hasHeader: false });
      const scale = ConformanceService.methods.exchange_scale.input;
      const one = paramsBatch("x", { value: scale.value }, { value: 2 });

      let raw = await open();
      await assert.rejects(raw.pipeline([], Number.NaN).next(), RangeError);
      await assert.rejects(raw.pipeline(42 as unknown as Iterable<RecordBatch>, 2).next(), TypeError);
      assert.ok(raw.ended);
      // The lock was released: these settle.
      await raw.close();
      await raw.cancel();

      raw = await open();
      await assert.rejects(
        raw.pipeline([{ value: 1 }] as unknown as RecordBatch[], 4).next(),
        /must be an Arrow RecordBatch/,
      );
      assert.ok(raw.ended);
      await raw.close();

      raw = await open();
      const throwingCleanup = (function* () {
        try {
          for (;;) yield one;
        } finally {
          // biome-ignore lint/correctness/noUnsafeFinally: the case under test is a cleanup that throws
          throw new Error("cleanup failed");
        }
      })();
      for await (const b of raw.pipeline(throwingCleanup, 4)) {
        assert.equal(b.getChild("value")!.get(0), 2);
        break;
      }
      assert.ok(raw.ended);
      await raw.close();
      assert.equal(await svc.echo_string({ value: "usable" }), "usable");
    },
  },
];
