/**
 * Usage per caller: an in-process meter that tallies calls, errors, rows and bytes per principal
 * and method in rolling windows (a ring of fixed buckets), fed by an interceptor from each call's
 * record; and `quiver.Usage.v1`, a built-in protocol operators query it through remotely, guarded
 * by the security requirement the operator declares (the protocol is never open).
 */
import { frameworkError } from "../errors.js";
import { defineProtocol, producer, type SecurityRequirement } from "../protocol/methods.js";
import { t } from "../protocol/types.js";
import type { CallInterceptor, CallOutcome, ServerCall } from "./interceptors.js";
import { type Binding, bind } from "./server.js";

/** The usage protocol's name. */
export const USAGE_PROTOCOL = "quiver.Usage.v1";

export interface UsageMeterOptions {
  /** Width of one bucket, in ms: the resolution of a window. Default: 60 000 (a minute). */
  readonly bucketMs?: number;
  /** Buckets kept: the longest window is `bucketMs * buckets`. Default: 60 (an hour of minutes). */
  readonly buckets?: number;
  /**
   * Most (principal, method) series kept. Past it, calls of new series are tallied under the
   * principal `<other>` (and their method), so a flood of callers cannot exhaust memory. Default: 10 000.
   */
  readonly maxSeries?: number;
  /** The clock, in ms since the epoch (tests move it). Default: `Date.now`. */
  readonly now?: () => number;
}

/** What a principal did with a method over a window. */
export interface UsageEntry {
  /** The caller (`""` for anonymous callers, `<other>` past `maxSeries`). */
  readonly principal: string;
  /** `protocol.method`. */
  readonly method: string;
  readonly calls: number;
  readonly errors: number;
  readonly inputRows: number;
  readonly outputRows: number;
  readonly inputBytes: number;
  readonly outputBytes: number;
}

/** A usage meter: feed it with `interceptor`, read it with `report` or remotely through `binding`. */
export interface UsageMeter {
  /** Tallies every call it wraps (over HTTP: each request of a stream, as its statistics are counted). */
  readonly interceptor: CallInterceptor;
  /**
   * Totals per principal and method over the last `windowMs` (whole buckets, the current one
   * included; at most the meter's span), optionally for one principal; sorted by principal, then method.
   */
  report(windowMs?: number, principal?: string): UsageEntry[];
  /**
   * `quiver.Usage.v1` bound to this meter, for `ServerOptions.protocols`: its `report` method
   * streams the entries as rows. `security` names the scheme (declared in the server's
   * `securitySchemes`) and scopes an operator's credential needs.
   */
  binding(security: SecurityRequirement): Binding;
}

/** Counters in each bucket: calls, errors, in rows, out rows, in bytes, out bytes. */
const FIELDS = 6;
const OTHER = "<other>";

interface Series {
  readonly principal: string;
  readonly method: string;
  /** `buckets * FIELDS` counters. */
  readonly counts: Float64Array;
  /** The bucket number each slot holds (its counters are stale otherwise). */
  readonly epochs: Float64Array;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** The `quiver.Usage.v1` declaration, its `report` guarded by `security`. */
export function usageProtocol(security: SecurityRequirement) {
  return defineProtocol(
    USAGE_PROTOCOL,
    { version: "1.0.0" },
    {
      report: producer(
        { window_seconds: t.int64().default(3600n), principal: t.utf8().optional().default(null) },
        {
          output: {
            principal: t.utf8(),
            method: t.utf8(),
            calls: t.int64(),
            errors: t.int64(),
            input_rows: t.int64(),
            output_rows: t.int64(),
            input_bytes: t.int64(),
            output_bytes: t.int64(),
          },
          state: { window_ms: t.int64(), principal: t.utf8().optional(), done: t.bool() },
          security,
        },
      ),
    },
  );
}

/** Creates a usage meter. */
export function createUsageMeter(opts: UsageMeterOptions = {}): UsageMeter {
  const bucketMs = positiveInt("bucketMs", opts.bucketMs ?? 60_000);
  const buckets = positiveInt("buckets", opts.buckets ?? 60);
  const maxSeries = positiveInt("maxSeries", opts.maxSeries ?? 10_000);
  const now = opts.now ?? Date.now;
  const series = new Map<string, Series>();

  const seriesOf = (principal: string, method: string): Series => {
    const key = `${principal}\u0000${method}`;
    let s = series.get(key);
    if (s !== undefined) return s;
    if (series.size >= maxSeries && principal !== OTHER) return seriesOf(OTHER, method);
    s = { principal, method, counts: new Float64Array(buckets * FIELDS), epochs: new Float64Array(buckets).fill(-1) };
    series.set(key, s);
    return s;
  };

  const tally = (call: ServerCall, outcome: CallOutcome): void => {
    const s = seriesOf(call.auth.principal, `${call.protocol}.${call.method}`);
    const epoch = Math.floor(now() / bucketMs);
    const slot = epoch % buckets;
    const at = slot * FIELDS;
    if (s.epochs[slot] !== epoch) {
      s.epochs[slot] = epoch;
      s.counts.fill(0, at, at + FIELDS);
    }
    const st = call.stats;
    const add = [1, outcome.status === "error" ? 1 : 0, st.inputRows, st.outputRows, st.inputBytes, st.outputBytes];
    for (let f = 0; f < FIELDS; f++) s.counts[at + f] = s.counts[at + f]! + add[f]!;
  };

  const interceptor: CallInterceptor = (next) => async (call) => {
    let outcome: CallOutcome;
    try {
      outcome = await next(call);
    } catch (err) {
      tally(call, { status: "error", error: null, cancelled: false, durationMs: 0 });
      throw err;
    }
    tally(call, outcome);
    return outcome;
  };

  const report = (windowMs = bucketMs * buckets, principal?: string): UsageEntry[] => {
    const span = Math.min(buckets, Math.max(1, Math.ceil(windowMs / bucketMs)));
    const current = Math.floor(now() / bucketMs);
    const out: UsageEntry[] = [];
    for (const s of series.values()) {
      if (principal !== undefined && s.principal !== principal) continue;
      const sum = new Float64Array(FIELDS);
      for (let slot = 0; slot < buckets; slot++) {
        const epoch = s.epochs[slot]!;
        if (epoch <= current - span || epoch > current) continue;
        for (let f = 0; f < FIELDS; f++) sum[f]! += s.counts[slot * FIELDS + f]!;
      }
      if (sum[0] === 0) continue;
      out.push({
        principal: s.principal,
        method: s.method,
        calls: sum[0]!,
        errors: sum[1]!,
        inputRows: sum[2]!,
        outputRows: sum[3]!,
        inputBytes: sum[4]!,
        outputBytes: sum[5]!,
      });
    }
    return out.sort((a, b) =>
      a.principal === b.principal ? (a.method < b.method ? -1 : 1) : a.principal < b.principal ? -1 : 1,
    );
  };

  return {
    interceptor,
    report,
    binding(security) {
      const decl = usageProtocol(security);
      return bind(decl, {
        report: {
          init: ({ window_seconds, principal }) => {
            if (window_seconds <= 0n) {
              throw frameworkError("invalid_request", `window_seconds must be positive, got ${window_seconds}`);
            }
            return { state: { window_ms: window_seconds * 1000n, principal, done: false } };
          },
          produce(state, out) {
            if (state.done) return out.finish();
            state.done = true;
            const rows = report(Number(state.window_ms), state.principal ?? undefined).map((e) => ({
              principal: e.principal,
              method: e.method,
              calls: BigInt(e.calls),
              errors: BigInt(e.errors),
              input_rows: BigInt(e.inputRows),
              output_rows: BigInt(e.outputRows),
              input_bytes: BigInt(e.inputBytes),
              output_bytes: BigInt(e.outputBytes),
            }));
            out.emit(rows);
          },
        },
      });
    },
  };
}
