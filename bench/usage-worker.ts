/**
 * The bench service over stdio with one usage-accounting feature on (`npm run bench -- --only
 * usage`): argv[2] is `plain`, `pass` (one interceptor that only calls next), `metrics` (the
 * metrics interceptor, an SDK meter provider aggregating in memory), `metrics-producer` (the same,
 * its durations kept by a `DurationProducer`), `quota-memory` or `quota-redis <url>` (a
 * calls-per-second quota every call is checked against, never reached, in the memory or Redis
 * store).
 */
import { metrics } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { createRedisQuotaStore } from "../src/quota/redis.js";
import type { CallInterceptor } from "../src/server/interceptors.js";
import { durationProducer, metricsInterceptor } from "../src/server/metrics.js";
import { quotaInterceptor } from "../src/server/quota.js";
import { serveStdio } from "../src/transports/stdio/server.js";
import { benchServer } from "./service.js";

const [mode, url] = process.argv.slice(2);
/** A limit no bench run reaches: every call is checked and counted, none refused. */
const rules = [{ name: "bench", callsPerSecond: 1_000_000_000 }];
let interceptors: CallInterceptor[];
switch (mode) {
  case "plain":
    interceptors = [];
    break;
  case "pass":
    // The interceptor mechanism alone: one interceptor that only calls next.
    interceptors = [(next) => (call) => next(call)];
    break;
  case "metrics":
  case "metrics-producer": {
    // Collected once an hour: the run measures recording and aggregation, not exporting.
    const durations = mode === "metrics-producer" ? durationProducer() : undefined;
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: 3_600_000,
      metricProducers: durations === undefined ? [] : [durations],
    });
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    interceptors = [metricsInterceptor(durations === undefined ? {} : { durations })];
    break;
  }
  case "quota-memory":
    interceptors = [quotaInterceptor({ rules })];
    break;
  case "quota-redis":
    interceptors = [quotaInterceptor({ rules, store: await createRedisQuotaStore({ url: url! }) })];
    break;
  default:
    throw new Error(`usage-worker: unknown mode '${mode}'`);
}
await serveStdio(benchServer({ interceptors }));
process.exit(0);
