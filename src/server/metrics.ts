/**
 * OpenTelemetry metrics, recorded by an interceptor from the one per-call record: the RPC
 * semantic-convention duration histogram and request counter (the names, units and attributes of
 * the reference's `otel.py`), and quiver's counters of batches, rows and bytes in each direction.
 * The library depends on `@opentelemetry/api` only: with no meter provider registered every
 * instrument is the API's no-op. Over HTTP each request is one call (a stream's init, each
 * exchange), so a stream counts once per request there, as its spans do.
 */
import { type Attributes, type Histogram, type MeterProvider, metrics } from "@opentelemetry/api";
import { RpcError } from "../errors.js";
import { DURATION_BOUNDARIES_S } from "../protocol/telemetry.js";
import { DurationProducer, type SeriesHistogram } from "./durations.js";
import type { CallInterceptor, CallOutcome, ServerCall } from "./interceptors.js";

export { DURATION_BOUNDARIES_S } from "../protocol/telemetry.js";
export type { DurationProducer, ProducedMetrics } from "./durations.js";

/** The meter's name (the instrumentation scope) for the server and client instruments. */
export const METER_NAME = "quiver-rpc";

/** The names of the server instruments, with their units. */
export const SERVER_METRICS = {
  /** Histogram of call durations, in seconds (`s`). */
  duration: "rpc.server.duration",
  /** Counter of calls, `{request}`. */
  requests: "rpc.server.requests",
  /** Counter of batches, `{batch}`, with `rpc.vgi_rpc.direction` `in` or `out`. */
  batches: "rpc.vgi_rpc.server.batches",
  /** Counter of rows, `{row}`, with `rpc.vgi_rpc.direction`. */
  rows: "rpc.vgi_rpc.server.rows",
  /** Counter of logical Arrow bytes (`By`), with `rpc.vgi_rpc.direction`. */
  bytes: "rpc.vgi_rpc.server.bytes",
} as const;

export interface MetricsOptions {
  /** Where instruments come from. Default: the global provider (`metrics.getMeterProvider()`), looked up again when it changes. */
  readonly meterProvider?: MeterProvider;
  /**
   * Add `rpc.vgi_rpc.auth.principal` to every data point. Default: false — one series per caller
   * can be many; turn it on only when callers are few.
   */
  readonly includePrincipal?: boolean;
  /** Attributes added to every data point (deployment, region). Default: none. */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * Keep `rpc.server.duration` here, for a reader to collect through its `metricProducers`,
   * instead of recording every call through the API (whose SDK hashes each point's attributes:
   * the larger part of what metrics cost a small call). Default: none (recorded through the API).
   */
  readonly durations?: DurationProducer;
}

/**
 * A producer of `rpc.server.duration` for `MetricsOptions.durations`, to pass in an SDK reader's
 * `metricProducers`. Default boundaries: `DURATION_BOUNDARIES_S`.
 */
export function durationProducer(opts: { readonly boundaries?: readonly number[] } = {}): DurationProducer {
  return new DurationProducer({
    scope: METER_NAME,
    name: SERVER_METRICS.duration,
    description: DURATION_DESCRIPTION,
    ...(opts.boundaries === undefined ? {} : { boundaries: opts.boundaries }),
  });
}

const DURATION_DESCRIPTION = "Duration of RPC requests";

/**
 * One series: its attribute sets (made once, reused for every call of the series) and its
 * running totals, which the observable counters report at each collection.
 */
interface Cell {
  readonly attrs: Attributes;
  readonly inAttrs: Attributes;
  readonly outAttrs: Attributes;
  /** The series' durations when a `DurationProducer` keeps them. */
  readonly durations: SeriesHistogram | null;
  /** requests, then batches, rows and bytes in, then out. */
  readonly totals: Float64Array;
}

/** Past this many series, new ones are counted under one overflow series (the SDK's default limit). */
const MAX_SERIES = 2000;

function cellOf(attrs: Attributes, durations: DurationProducer | undefined): Cell {
  return {
    attrs,
    durations: durations?.seriesOf(attrs) ?? null,
    inAttrs: { ...attrs, "rpc.vgi_rpc.direction": "in" },
    outAttrs: { ...attrs, "rpc.vgi_rpc.direction": "out" },
    totals: new Float64Array(7),
  };
}

/**
 * The server instruments of one provider. The duration histogram is recorded per call; the
 * counters are observable, reporting the cells' running totals when the reader collects, so a
 * call costs a few additions instead of seven attribute lookups in the SDK.
 */
function serverInstruments(
  provider: MeterProvider,
  cells: ReadonlyMap<string, Cell>,
  withHistogram: boolean,
): Histogram | null {
  const meter = provider.getMeter(METER_NAME);
  const requests = meter.createObservableCounter(SERVER_METRICS.requests, {
    unit: "{request}",
    description: "Number of RPC requests handled",
  });
  const batches = meter.createObservableCounter(SERVER_METRICS.batches, {
    unit: "{batch}",
    description: "Arrow batches per direction",
  });
  const rows = meter.createObservableCounter(SERVER_METRICS.rows, { unit: "{row}", description: "Rows per direction" });
  const bytes = meter.createObservableCounter(SERVER_METRICS.bytes, {
    unit: "By",
    description: "Logical Arrow buffer bytes per direction",
  });
  meter.addBatchObservableCallback(
    (observer) => {
      for (const c of cells.values()) {
        const t = c.totals;
        observer.observe(requests, t[0]!, c.attrs);
        observer.observe(batches, t[1]!, c.inAttrs);
        observer.observe(rows, t[2]!, c.inAttrs);
        observer.observe(bytes, t[3]!, c.inAttrs);
        observer.observe(batches, t[4]!, c.outAttrs);
        observer.observe(rows, t[5]!, c.outAttrs);
        observer.observe(bytes, t[6]!, c.outAttrs);
      }
    },
    [requests, batches, rows, bytes],
  );
  if (!withHistogram) return null; // a DurationProducer reports the durations
  return meter.createHistogram(SERVER_METRICS.duration, {
    unit: "s",
    description: DURATION_DESCRIPTION,
    advice: { explicitBucketBoundaries: [...DURATION_BOUNDARIES_S] },
  });
}

/** Instruments from `fixed`, or from the global provider, made again only when it changes. */
function instrumentCache<T>(fixed: MeterProvider | undefined, make: (p: MeterProvider) => T): () => T {
  if (fixed !== undefined) {
    const made = make(fixed);
    return () => made;
  }
  let provider: MeterProvider | null = null;
  let made!: T;
  return () => {
    const now = metrics.getMeterProvider();
    if (now !== provider) {
      provider = now;
      made = make(now);
    }
    return made;
  };
}

/**
 * The metrics interceptor: put it first in `ServerOptions.interceptors` so it also sees calls an
 * inner interceptor (a quota) refuses. Attributes: `rpc.system` (`vgi_rpc`), `rpc.service` (the
 * protocol), `rpc.method`, `rpc.vgi_rpc.method_type`, `rpc.vgi_rpc.transport`, `status` (`ok` or
 * `error`), `rpc.vgi_rpc.error_kind` (on errors), `rpc.vgi_rpc.auth.domain` (when authenticated),
 * `rpc.vgi_rpc.auth.principal` (when `includePrincipal`).
 */
export function metricsInterceptor(opts: MetricsOptions = {}): CallInterceptor {
  const cells = new Map<string, Cell>();
  const duration = instrumentCache(opts.meterProvider, (p) =>
    serverInstruments(p, cells, opts.durations === undefined),
  );
  const extra = opts.attributes ?? {};
  const withPrincipal = opts.includePrincipal ?? false;
  const seriesOf = (call: ServerCall, outcome: CallOutcome): Cell => {
    const e = outcome.error;
    const kind = e === null ? "" : e.kind || e.type;
    const domain = call.auth.domain;
    const principal = withPrincipal ? call.auth.principal : "";
    const key = `${call.protocol}\u0000${call.method}\u0000${call.methodType}\u0000${call.transport}\u0000${outcome.status}\u0000${kind}\u0000${domain}\u0000${principal}`;
    let cell = cells.get(key);
    if (cell !== undefined) return cell;
    if (cells.size >= MAX_SERIES) {
      cell = cells.get("") ?? cellOf({ ...extra, "otel.metric.overflow": true }, opts.durations);
      cells.set("", cell);
      return cell;
    }
    const attrs: Attributes = {
      ...extra,
      "rpc.system": "vgi_rpc",
      "rpc.service": call.protocol,
      "rpc.method": call.method,
      "rpc.vgi_rpc.method_type": call.methodType,
      "rpc.vgi_rpc.transport": call.transport,
      status: outcome.status,
    };
    if (e !== null) attrs["rpc.vgi_rpc.error_kind"] = kind;
    if (domain) attrs["rpc.vgi_rpc.auth.domain"] = domain;
    if (withPrincipal) attrs["rpc.vgi_rpc.auth.principal"] = principal;
    cell = cellOf(attrs, opts.durations);
    cells.set(key, cell);
    return cell;
  };
  const record = (call: ServerCall, outcome: CallOutcome): void => {
    const histogram = duration();
    const cell = seriesOf(call, outcome);
    const st = call.stats;
    const t = cell.totals;
    t[0] = t[0]! + 1;
    t[1] = t[1]! + st.inputBatches;
    t[2] = t[2]! + st.inputRows;
    t[3] = t[3]! + st.inputBytes;
    t[4] = t[4]! + st.outputBatches;
    t[5] = t[5]! + st.outputRows;
    t[6] = t[6]! + st.outputBytes;
    if (cell.durations !== null) cell.durations.record(outcome.durationMs / 1000);
    else histogram?.record(outcome.durationMs / 1000, cell.attrs);
  };
  return (next) => (call) => {
    const t0 = performance.now();
    let running: Promise<CallOutcome>;
    try {
      running = next(call);
    } catch (err) {
      running = Promise.reject(err); // an inner interceptor that refused by throwing at once
    }
    // Settled by hand rather than in an async frame: one promise less per call.
    return running.then(
      (outcome) => {
        record(call, outcome);
        return outcome;
      },
      (err: unknown) => {
        record(call, {
          status: "error",
          error: RpcError.from(err),
          cancelled: false,
          durationMs: performance.now() - t0,
        });
        throw err;
      },
    );
  };
}
