/**
 * OpenTelemetry metrics, read through an in-memory reader: the interceptor records the RPC
 * semantic-convention duration and request counts and quiver's batch, row and byte counters with
 * the documented names, units and attributes, for known calls on every transport; the client's
 * interceptor records `rpc.client.duration`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  type MetricProducer,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { authenticated } from "../../src/auth/types.js";
import { clientMetricsInterceptor } from "../../src/client/metrics.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { DURATION_BOUNDARIES_S, durationProducer, metricsInterceptor } from "../../src/server/metrics.js";
import { bind, createServer } from "../../src/server/server.js";
import { ALL_TRANSPORTS, allHarnesses } from "../helpers/all-transports.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const P = defineProtocol(
  "test.Metered.v1",
  { version: "1.0.0" },
  {
    echo: unary({ n: t.int64() }, t.int64()),
    fail: unary({}, t.utf8()),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
  },
);

const impl = bind(P, {
  echo: ({ n }) => n,
  fail: () => {
    throw new ValueError("nope");
  },
  count: {
    init: ({ n }) => ({ state: { i: 0n, n } }),
    produce(state, out) {
      if (state.i >= state.n) return out.finish();
      out.emit([{ i: state.i }]);
      state.i += 1n;
    },
  },
});

function meterWithReader(metricProducers: MetricProducer[] = []) {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async collect(): Promise<MetricData[]> {
      await reader.forceFlush();
      const all = exporter.getMetrics();
      return all.at(-1)?.scopeMetrics.flatMap((s) => s.metrics) ?? [];
    },
  };
}

function find(metrics: MetricData[], name: string): MetricData {
  const m = metrics.find((x) => x.descriptor.name === name);
  assert.ok(m, `metric ${name} recorded (have: ${metrics.map((x) => x.descriptor.name).join(", ")})`);
  return m;
}

function point<T>(m: MetricData, match: Attributes): DataPoint<T> {
  const hit = (m.dataPoints as DataPoint<T>[]).filter((p) =>
    Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
  assert.equal(hit.length, 1, `one ${m.descriptor.name} point for ${JSON.stringify(match)}`);
  return hit[0]!;
}

const ALICE = authenticated("test", "alice");

describe("server metrics", () => {
  for (const transport of ALL_TRANSPORTS) {
    it(`${transport}: names, units, attributes and values match the calls made`, async () => {
      const otel = meterWithReader();
      const server = createServer({
        interceptors: [metricsInterceptor({ meterProvider: otel.provider })],
        protocols: [impl],
      });
      const harness = await allHarnesses({ alice: ALICE })[transport](server);
      const channel = await harness.connect("alice");
      try {
        const svc = proxy(channel, P);
        assert.equal(await svc.echo({ n: 1n }), 1n);
        assert.equal(await svc.echo({ n: 2n }), 2n);
        await assert.rejects(svc.fail(), (err: unknown) => err instanceof RpcError && err.type === "ValueError");
        const rows: bigint[] = [];
        for await (const r of await svc.count({ n: 3n })) rows.push(r.i);
        assert.deepEqual(rows, [0n, 1n, 2n]);
      } finally {
        await channel.close();
        await harness.close();
      }
      const metrics = await otel.collect();
      const base = { "rpc.system": "vgi_rpc", "rpc.service": P.name, "rpc.vgi_rpc.transport": transport };

      const requests = find(metrics, "rpc.server.requests");
      assert.equal(requests.descriptor.unit, "{request}");
      const echo = { ...base, "rpc.method": "echo", "rpc.vgi_rpc.method_type": "unary", status: "ok" };
      assert.equal(point<number>(requests, echo).value, 2);
      const failed = point<number>(requests, { ...base, "rpc.method": "fail", status: "error" });
      assert.equal(failed.value, 1);
      assert.equal(failed.attributes["rpc.vgi_rpc.error_kind"], "ValueError");
      assert.equal(failed.attributes["rpc.vgi_rpc.auth.domain"], "test");
      assert.equal(failed.attributes["rpc.vgi_rpc.auth.principal"], undefined, "principal only when opted in");
      // HTTP serves a producer as one request per batch of turns: count the calls, not the requests.
      const count = point<number>(requests, { ...base, "rpc.method": "count", "rpc.vgi_rpc.method_type": "stream" });
      assert.ok(count.value >= 1);

      const duration = find(metrics, "rpc.server.duration");
      assert.equal(duration.descriptor.unit, "s");
      const h = point<Histogram>(duration, echo).value;
      assert.equal(h.count, 2);
      const total = h.sum ?? 0;
      assert.ok(total > 0 && total < 5, `durations are seconds (sum ${total})`);

      const rows = find(metrics, "rpc.vgi_rpc.server.rows");
      assert.equal(rows.descriptor.unit, "{row}");
      const countAttrs = { ...base, "rpc.method": "count" };
      const sum = (m: MetricData, attrs: Attributes) =>
        (m.dataPoints as DataPoint<number>[])
          .filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
          .reduce((a, p) => a + p.value, 0);
      assert.equal(sum(rows, { ...countAttrs, "rpc.vgi_rpc.direction": "out" }), 3);
      assert.equal(sum(rows, { ...echo, "rpc.vgi_rpc.direction": "out" }), 2);
      assert.equal(sum(rows, { ...echo, "rpc.vgi_rpc.direction": "in" }), 2);
      const bytes = find(metrics, "rpc.vgi_rpc.server.bytes");
      assert.equal(bytes.descriptor.unit, "By");
      // Three int64 rows out of the producer: 24 logical bytes.
      assert.equal(sum(bytes, { ...countAttrs, "rpc.vgi_rpc.direction": "out" }), 24);
      const batches = find(metrics, "rpc.vgi_rpc.server.batches");
      assert.equal(batches.descriptor.unit, "{batch}");
      assert.equal(sum(batches, { ...echo, "rpc.vgi_rpc.direction": "out" }), 2);
    });
  }

  it("adds the principal and the operator's attributes when asked", async () => {
    const otel = meterWithReader();
    const server = createServer({
      interceptors: [
        metricsInterceptor({ meterProvider: otel.provider, includePrincipal: true, attributes: { region: "eu" } }),
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    assert.equal(await proxy(client, P).echo({ n: 5n }), 5n);
    await client.close();
    const p = point<number>(find(await otel.collect(), "rpc.server.requests"), { "rpc.method": "echo" });
    assert.equal(p.attributes["rpc.vgi_rpc.auth.principal"], "alice");
    assert.equal(p.attributes.region, "eu");
  });

  it("counts a call an inner interceptor refused, with the refusal's kind", async () => {
    const otel = meterWithReader();
    const server = createServer({
      interceptors: [
        metricsInterceptor({ meterProvider: otel.provider }),
        () => () => {
          throw new RpcError("no", { kind: "resource_exhausted", code: "RESOURCE_EXHAUSTED" });
        },
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    await assert.rejects(proxy(client, P).echo({ n: 5n }));
    await client.close();
    const p = point<number>(find(await otel.collect(), "rpc.server.requests"), { "rpc.method": "echo" });
    assert.equal(p.attributes.status, "error");
    assert.equal(p.attributes["rpc.vgi_rpc.error_kind"], "resource_exhausted");
  });
});

describe("durations kept by a DurationProducer", () => {
  it("aggregates exactly as the SDK's explicit-bucket histogram does", async () => {
    // Boundary values themselves, values between and beyond them, zero.
    const values = [0, 0.0001, 0.00011, 0.001, 0.0009999, 0.004, 0.25, 0.2500001, 10, 12.5, 0.0001, 3];
    const attrs = { "rpc.method": "m", status: "ok" };
    const durations = durationProducer();
    const viaSdk = meterWithReader([durations]);
    const histogram = viaSdk.provider.getMeter("sdk-side").createHistogram("sdk.duration", {
      unit: "s",
      advice: { explicitBucketBoundaries: [...DURATION_BOUNDARIES_S] },
    });
    const series = durations.seriesOf(attrs);
    for (const v of values) {
      histogram.record(v, attrs);
      series.record(v);
    }
    const metrics = await viaSdk.collect();
    const sdk = point<Histogram>(find(metrics, "sdk.duration"), attrs).value;
    const ours = point<Histogram>(find(metrics, "rpc.server.duration"), attrs).value;
    assert.deepEqual(ours, sdk);
    assert.equal(ours.count, values.length);
  });

  it("reports rpc.server.duration through a reader's metricProducers, the counters through the API", async () => {
    const durations = durationProducer();
    const producer: MetricProducer = durations; // what a reader takes, type-checked
    const otel = meterWithReader([producer]);
    const server = createServer({
      interceptors: [metricsInterceptor({ meterProvider: otel.provider, durations })],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    const svc = proxy(client, P);
    assert.equal(await svc.echo({ n: 1n }), 1n);
    assert.equal(await svc.echo({ n: 2n }), 2n);
    assert.equal(await svc.echo({ n: 3n }), 3n);
    await assert.rejects(svc.fail());
    await client.close();
    const metrics = await otel.collect();
    const all = metrics.filter((m) => m.descriptor.name === "rpc.server.duration");
    assert.equal(all.length, 1, "the API histogram is not made beside the producer's");
    const duration = all[0]!;
    assert.equal(duration.descriptor.unit, "s");
    const base = { "rpc.system": "vgi_rpc", "rpc.service": P.name, "rpc.vgi_rpc.transport": "memory" };
    const echo = point<Histogram>(duration, { ...base, "rpc.method": "echo", status: "ok" });
    assert.equal(echo.value.count, 3);
    assert.deepEqual(echo.value.buckets.boundaries, [...DURATION_BOUNDARIES_S]);
    assert.equal(
      echo.value.buckets.counts.reduce((a, b) => a + b, 0),
      3,
    );
    assert.ok((echo.value.sum ?? 0) > 0 && (echo.value.sum ?? 0) < 5, "seconds");
    const failed = point<Histogram>(duration, { ...base, "rpc.method": "fail", status: "error" });
    assert.equal(failed.value.count, 1);
    assert.equal(failed.attributes["rpc.vgi_rpc.error_kind"], "ValueError");
    const requests = find(metrics, "rpc.server.requests");
    assert.equal(point<number>(requests, { ...base, "rpc.method": "echo", status: "ok" }).value, 3);
  });

  it("refuses boundaries that are not finite and increasing", () => {
    assert.throws(() => durationProducer({ boundaries: [0.1, 0.1] }), RangeError);
    assert.throws(() => durationProducer({ boundaries: [Number.NaN] }), RangeError);
    assert.throws(() => durationProducer({ boundaries: [0.1, Number.POSITIVE_INFINITY] }), RangeError);
  });
});

describe("client metrics", () => {
  it("records rpc.client.duration in seconds per call, with status and error kind", async () => {
    const otel = meterWithReader();
    const server = createServer({ protocols: [impl] });
    const { RpcClient } = await import("../../src/client/client.js");
    const { memoryPipe } = await import("../../src/transports/memory/index.js");
    const pipe = memoryPipe();
    void server.serveConnection(pipe.server);
    const client = new RpcClient(
      { name: "memory", input: pipe.client.input, write: pipe.client.write, close: () => pipe.client.close() },
      { interceptors: [clientMetricsInterceptor({ meterProvider: otel.provider, transport: "memory" })] },
    );
    const svc = proxy(client, P);
    await svc.echo({ n: 1n });
    await assert.rejects(svc.fail());
    await client.close();
    const m = find(await otel.collect(), "rpc.client.duration");
    assert.equal(m.descriptor.unit, "s");
    const ok = point<Histogram>(m, { "rpc.method": "echo", status: "ok", "rpc.vgi_rpc.transport": "memory" });
    assert.equal(ok.value.count, 1);
    const bad = point<Histogram>(m, { "rpc.method": "fail", status: "error" });
    assert.equal(bad.attributes["rpc.vgi_rpc.error_kind"], "ValueError");
  });
});
