/**
 * OpenTelemetry metrics, recorded by an interceptor from the one per-call record: the RPC
 * semantic-convention duration histogram and request counter (the names, units and attributes of
 * the reference's `otel.py`), and quiver's counters of batches, rows and bytes in each direction.
 * The library depends on `@opentelemetry/api` only: with no meter provider registered every
 * instrument is the API's no-op. Over HTTP each request is one call (a stream's init, each
 * exchange), so a stream counts once per request there, as its spans do.
 */
import { type Attributes, type Counter, type Histogram, type MeterProvider, metrics } from "@opentelemetry/api";
import { RpcError } from "../errors.js";
import type { CallInterceptor, CallOutcome, ServerCall } from "./interceptors.js";

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
}

interface ServerInstruments {
  readonly duration: Histogram;
  readonly requests: Counter;
  readonly batches: Counter;
  readonly rows: Counter;
  readonly bytes: Counter;
}

function serverInstruments(provider: MeterProvider): ServerInstruments {
  const meter = provider.getMeter(METER_NAME);
  return {
    duration: meter.createHistogram(SERVER_METRICS.duration, { unit: "s", description: "Duration of RPC requests" }),
    requests: meter.createCounter(SERVER_METRICS.requests, {
      unit: "{request}",
      description: "Number of RPC requests handled",
    }),
    batches: meter.createCounter(SERVER_METRICS.batches, {
      unit: "{batch}",
      description: "Arrow batches per direction",
    }),
    rows: meter.createCounter(SERVER_METRICS.rows, { unit: "{row}", description: "Rows per direction" }),
    bytes: meter.createCounter(SERVER_METRICS.bytes, {
      unit: "By",
      description: "Logical Arrow buffer bytes per direction",
    }),
  };
}

/** Instruments from `fixed`, or from the global provider, made again only when it changes. */
function instrumentCache<T>(fixed: MeterProvider | undefined, make: (p: MeterProvider) => T): () => T {
  if (fixed !== undefined) {
    const made = make(fixed);
    return () => made;
  }
  let provider: MeterProvider | null = null;
  let made: T | null = null;
  return () => {
    const now = metrics.getMeterProvider();
    if (now !== provider || made === null) {
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
  const instruments = instrumentCache(opts.meterProvider, serverInstruments);
  const extra = opts.attributes ?? {};
  const withPrincipal = opts.includePrincipal ?? false;
  const record = (call: ServerCall, outcome: CallOutcome): void => {
    const i = instruments();
    const attrs: Attributes = {
      ...extra,
      "rpc.system": "vgi_rpc",
      "rpc.service": call.protocol,
      "rpc.method": call.method,
      "rpc.vgi_rpc.method_type": call.methodType,
      "rpc.vgi_rpc.transport": call.transport,
      status: outcome.status,
    };
    if (outcome.error !== null) attrs["rpc.vgi_rpc.error_kind"] = outcome.error.kind || outcome.error.type;
    if (call.auth.domain) attrs["rpc.vgi_rpc.auth.domain"] = call.auth.domain;
    if (withPrincipal) attrs["rpc.vgi_rpc.auth.principal"] = call.auth.principal;
    i.requests.add(1, attrs);
    i.duration.record(outcome.durationMs / 1000, attrs);
    const st = call.stats;
    const inAttrs: Attributes = { ...attrs, "rpc.vgi_rpc.direction": "in" };
    const outAttrs: Attributes = { ...attrs, "rpc.vgi_rpc.direction": "out" };
    i.batches.add(st.inputBatches, inAttrs);
    i.batches.add(st.outputBatches, outAttrs);
    i.rows.add(st.inputRows, inAttrs);
    i.rows.add(st.outputRows, outAttrs);
    i.bytes.add(st.inputBytes, inAttrs);
    i.bytes.add(st.outputBytes, outAttrs);
  };
  return (next) => async (call) => {
    const t0 = performance.now();
    let outcome: CallOutcome;
    try {
      outcome = await next(call);
    } catch (err) {
      record(call, {
        status: "error",
        error: RpcError.from(err),
        cancelled: false,
        durationMs: performance.now() - t0,
      });
      throw err;
    }
    record(call, outcome);
    return outcome;
  };
}
