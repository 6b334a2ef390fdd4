/**
 * Client-side OpenTelemetry metrics: `rpc.client.duration`, recorded by a client interceptor
 * through `@opentelemetry/api` only (a no-op until the application registers a meter provider).
 *
 * No `node:` imports: the browser entry's client runs it.
 */
import { type Attributes, type Histogram, type MeterProvider, metrics } from "@opentelemetry/api";
import { DURATION_BOUNDARIES_S } from "../protocol/telemetry.js";
import type { ClientInterceptor } from "./interceptors.js";

/** The client histogram's name; its unit is seconds (`s`). */
export const CLIENT_DURATION_METRIC = "rpc.client.duration";

export interface ClientMetricsOptions {
  /** Where the histogram comes from. Default: the global provider, looked up again when it changes. */
  readonly meterProvider?: MeterProvider;
  /** Reported as `rpc.vgi_rpc.transport` (`http`, `pipe`, …). Default: none (the attribute is left out). */
  readonly transport?: string;
  /** Attributes added to every data point. Default: none. */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** An `RpcError`'s kind, else its exception type, else the error's name. */
function errorKind(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const { kind, type, name } = err as { kind?: unknown; type?: unknown; name?: unknown };
    for (const v of [kind, type, name]) if (typeof v === "string" && v) return v;
  }
  return "unknown";
}

/**
 * Records `rpc.client.duration` for every call: a unary call until its result, a stream call
 * until it is open (its header read), retries included. Attributes: `rpc.system`, `rpc.service`,
 * `rpc.method`, `rpc.vgi_rpc.method_type`, `status`, `rpc.vgi_rpc.error_kind` on errors, and
 * `rpc.vgi_rpc.transport` when given.
 */
export function clientMetricsInterceptor(opts: ClientMetricsOptions = {}): ClientInterceptor {
  const fixed = opts.meterProvider;
  let provider: MeterProvider | null = null;
  let histogram: Histogram | null = null;
  const instrument = (): Histogram => {
    const now = fixed ?? metrics.getMeterProvider();
    if (histogram === null || now !== provider) {
      provider = now;
      histogram = now.getMeter("quiver-rpc").createHistogram(CLIENT_DURATION_METRIC, {
        unit: "s",
        description: "Duration of outbound RPC calls",
        advice: { explicitBucketBoundaries: [...DURATION_BOUNDARIES_S] },
      });
    }
    return histogram;
  };
  return (next) => async (call) => {
    const t0 = performance.now();
    const attrs: Attributes = {
      ...opts.attributes,
      "rpc.system": "vgi_rpc",
      "rpc.service": call.protocol,
      "rpc.method": call.method,
      "rpc.vgi_rpc.method_type": call.methodType,
    };
    if (opts.transport !== undefined) attrs["rpc.vgi_rpc.transport"] = opts.transport;
    try {
      const answer = await next(call);
      attrs.status = "ok";
      instrument().record((performance.now() - t0) / 1000, attrs);
      return answer;
    } catch (err) {
      attrs.status = "error";
      attrs["rpc.vgi_rpc.error_kind"] = errorKind(err);
      instrument().record((performance.now() - t0) / 1000, attrs);
      throw err;
    }
  };
}
