/**
 * Quotas: declarative limits per principal, role or scheme — calls per second, rows and bytes per
 * window, concurrent streams — enforced by an interceptor over a `QuotaStore` (in memory, or Redis
 * for several instances). A call over a limit is refused at admission with `resource_exhausted`
 * (a `vgi_rpc.RetryInfo` and a `vgi_rpc.QuotaFailure` in its details; HTTP answers 429 with
 * `Retry-After`); a stream whose turn crosses a row or byte limit ends with that error right after
 * the turn's batches (over HTTP: its next request is refused). Callers no rule names pass through
 * untouched.
 */
import { frameworkError, quotaFailure, type RpcError, retryInfo } from "../errors.js";
import type { CallInterceptor, ServerCall } from "./interceptors.js";
import { createMemoryQuotaStore, type QuotaStore, type WindowCount } from "./quota-store.js";
import type { CallStatistics } from "./stats.js";

/**
 * One limit set and whom it binds. A rule applies to a call when every selector given matches
 * (none given: every caller); each caller is counted separately (by principal; anonymous callers
 * share one count), and every applicable rule is enforced.
 */
export interface QuotaRule {
  /** Names the rule in errors and store keys; unique per interceptor. Default: `rule<index>`. */
  readonly name?: string;
  /** Applies to this principal only. Default: any. */
  readonly principal?: string;
  /** Applies to callers holding this role (`AuthContext.roles`). Default: any. */
  readonly role?: string;
  /** Applies to callers authenticated by this scheme (`AuthContext.scheme`; `""` for anonymous). Default: any. */
  readonly scheme?: string;
  /** Applies to these methods only (`method` or `protocol.method`). Default: every method. */
  readonly methods?: readonly string[];
  /** Most calls (HTTP: requests) a caller may start per second. Default: no limit. */
  readonly callsPerSecond?: number;
  /** Most rows (in and out together) per window of `windowMs`. Default: no limit. */
  readonly rowsPerWindow?: number;
  /** Most logical Arrow bytes (in and out together) per window of `windowMs`. Default: no limit. */
  readonly bytesPerWindow?: number;
  /** The row and byte window, in ms. Default: 60 000. */
  readonly windowMs?: number;
  /**
   * Most streams a caller may have open at once. Over HTTP a stream holds its slot only while one
   * of its requests runs (the stream lives in tokens between them). Default: no limit.
   */
  readonly concurrentStreams?: number;
}

export interface QuotaOptions {
  /** The limits. */
  readonly rules: readonly QuotaRule[];
  /** Where counters live. Default: `createMemoryQuotaStore()` (this process only). */
  readonly store?: QuotaStore;
  /** Prefix of every store key (several services sharing one Redis). Default: `quiver:quota:`. */
  readonly keyPrefix?: string;
  /** How long a stream slot outlives a holder that died without releasing it, in ms. Default: 3 600 000. */
  readonly streamSlotTtlMs?: number;
  /** The retry delay a refusal for concurrent streams carries, in ms. Default: 1 000. */
  readonly concurrencyRetryMs?: number;
  /**
   * Told when the store fails; the call is then let through (a quota store outage must not take
   * the service down with it). Default: nothing is told.
   */
  readonly onStoreError?: (err: unknown) => void;
}

interface Rule {
  readonly name: string;
  readonly spec: QuotaRule;
  readonly windowMs: number;
  readonly methods: ReadonlySet<string> | null;
}

interface Violation {
  readonly subject: string;
  readonly description: string;
  readonly retryMs: number;
}

function positive(rule: string, field: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) {
    throw new RangeError(`quota rule '${rule}': ${field} must be a positive integer, got ${v}`);
  }
}

function compile(rules: readonly QuotaRule[]): readonly Rule[] {
  const names = new Set<string>();
  return rules.map((spec, i) => {
    const name = spec.name ?? `rule${i}`;
    if (names.has(name)) throw new TypeError(`quota rule name '${name}' is used twice`);
    names.add(name);
    for (const field of [
      "callsPerSecond",
      "rowsPerWindow",
      "bytesPerWindow",
      "windowMs",
      "concurrentStreams",
    ] as const) {
      positive(name, field, spec[field]);
    }
    return {
      name,
      spec,
      windowMs: spec.windowMs ?? 60_000,
      methods: spec.methods === undefined ? null : new Set(spec.methods),
    };
  });
}

function applies(rule: Rule, call: ServerCall): boolean {
  const { spec } = rule;
  const auth = call.auth;
  if (spec.principal !== undefined && auth.principal !== spec.principal) return false;
  if (spec.scheme !== undefined && auth.scheme !== spec.scheme) return false;
  if (spec.role !== undefined && !auth.roles.includes(spec.role)) return false;
  if (rule.methods !== null && !rule.methods.has(call.method) && !rule.methods.has(`${call.protocol}.${call.method}`)) {
    return false;
  }
  return true;
}

/** The error a caller over its quota gets: the longest retry delay of the limits it hit. */
function quotaExceeded(subject: string, violations: readonly Violation[]): RpcError {
  const retryMs = Math.max(...violations.map((v) => v.retryMs));
  const seconds = Math.ceil(retryMs) / 1000;
  return frameworkError(
    "resource_exhausted",
    `Quota exceeded for '${subject}': ${violations.map((v) => v.description).join("; ")}. Retry in ${seconds} s.`,
    {
      details: [
        retryInfo(seconds),
        quotaFailure(violations.map(({ subject: s, description: d }) => ({ subject: s, description: d }))),
      ],
    },
  );
}

const ANONYMOUS_SUBJECT = "<anonymous>";

/** The rows and bytes (in and out together) a call has moved so far. */
function volume(st: Readonly<CallStatistics>): { readonly rows: number; readonly bytes: number } {
  return { rows: st.inputRows + st.outputRows, bytes: st.inputBytes + st.outputBytes };
}

/**
 * The quota interceptor. Place it after `metricsInterceptor` (so refusals are counted) and before
 * interceptors that do work for a call.
 */
export function quotaInterceptor(opts: QuotaOptions): CallInterceptor {
  const rules = compile(opts.rules);
  const store = opts.store ?? createMemoryQuotaStore();
  const prefix = opts.keyPrefix ?? "quiver:quota:";
  const slotTtl = opts.streamSlotTtlMs ?? 3_600_000;
  const concurrencyRetry = opts.concurrencyRetryMs ?? 1_000;
  const storeFailed = (err: unknown): null => {
    opts.onStoreError?.(err);
    return null;
  };

  /** Adds a volume delta to every applicable rule's windows; the limits it crossed. */
  const addVolume = async (
    applicable: readonly Rule[],
    key: (r: Rule) => string,
    rows: number,
    bytes: number,
    subject: string,
  ): Promise<Violation[]> => {
    const checks: Promise<Violation | null>[] = [];
    for (const r of applicable) {
      const check = (what: "rows" | "bytes", amount: number, limit: number | undefined) => {
        if (limit === undefined || amount === 0) return;
        checks.push(
          store.add(`${key(r)}:${what}`, amount, r.windowMs).then(
            (c) =>
              c.total > limit
                ? {
                    subject: `${r.name}:${subject}`,
                    description: `${c.total} ${what} of ${limit} per ${r.windowMs} ms`,
                    retryMs: c.resetMs,
                  }
                : null,
            storeFailed,
          ),
        );
      };
      check("rows", rows, r.spec.rowsPerWindow);
      check("bytes", bytes, r.spec.bytesPerWindow);
    }
    return (await Promise.all(checks)).filter((v): v is Violation => v !== null);
  };

  return (next) => async (call) => {
    // Most callers match no rule: nothing is allocated for them.
    let applicable: Rule[] | null = null;
    for (const r of rules) {
      if (!applies(r, call)) continue;
      if (applicable === null) applicable = [];
      applicable.push(r);
    }
    if (applicable === null) return next(call);
    const subject = call.auth.principal || ANONYMOUS_SUBJECT;
    const key = (r: Rule) => `${prefix}${r.name}:${subject}`;
    const stream = call.methodType === "stream";

    // Admission: every limit read (and the call counted) at once.
    const checks: Promise<Violation | null>[] = [];
    // A slot's token, null when all are held, "" when the store failed (let through, nothing to release).
    const slots: Promise<{ readonly rule: Rule; readonly key: string; readonly token: string | null }>[] = [];
    const over = (r: Rule, description: string, c: WindowCount): Violation => ({
      subject: `${r.name}:${subject}`,
      description,
      retryMs: c.resetMs,
    });
    for (const r of applicable) {
      const { callsPerSecond, rowsPerWindow, bytesPerWindow, concurrentStreams } = r.spec;
      if (callsPerSecond !== undefined) {
        checks.push(
          store
            .add(`${key(r)}:calls`, 1, 1000)
            .then(
              (c) => (c.total > callsPerSecond ? over(r, `more than ${callsPerSecond} calls per second`, c) : null),
              storeFailed,
            ),
        );
      }
      for (const [what, limit] of [
        ["rows", rowsPerWindow],
        ["bytes", bytesPerWindow],
      ] as const) {
        if (limit === undefined) continue;
        checks.push(
          store
            .add(`${key(r)}:${what}`, 0, r.windowMs)
            .then(
              (c) => (c.total >= limit ? over(r, `${c.total} ${what} of ${limit} per ${r.windowMs} ms used`, c) : null),
              storeFailed,
            ),
        );
      }
      if (stream && concurrentStreams !== undefined) {
        const k = `${key(r)}:streams`;
        slots.push(
          store.acquire(k, concurrentStreams, slotTtl).then(
            (token) => ({ rule: r, key: k, token }),
            (err: unknown) => ({ rule: r, key: k, token: storeFailed(err) ?? "" }),
          ),
        );
      }
    }
    const [found, held] = await Promise.all([Promise.all(checks), Promise.all(slots)]);
    const violations = found.filter((v): v is Violation => v !== null);
    for (const { rule, token } of held) {
      if (token !== null) continue;
      violations.push({
        subject: `${rule.name}:${subject}`,
        description: `${rule.spec.concurrentStreams} concurrent streams already open`,
        retryMs: concurrencyRetry,
      });
    }
    const release = () =>
      Promise.all(
        held.flatMap(({ key: k, token }) => (token === null || token === "" ? [] : [store.release(k, token)])),
      ).catch(storeFailed);
    if (violations.length > 0) {
      await release();
      throw quotaExceeded(subject, violations);
    }

    // Volume: counted as it moves; a stream's turn that crosses a limit ends the stream.
    const metered = applicable.filter((r) => r.spec.rowsPerWindow !== undefined || r.spec.bytesPerWindow !== undefined);
    let counted = { rows: 0, bytes: 0 };
    const countTo = async (st: Readonly<CallStatistics>): Promise<Violation[]> => {
      const now = volume(st);
      const rows = now.rows - counted.rows;
      const bytes = now.bytes - counted.bytes;
      counted = now;
      if (rows === 0 && bytes === 0) return [];
      return addVolume(metered, key, rows, bytes, subject);
    };
    if (stream && metered.length > 0) {
      // Over HTTP each turn is a request of its own, whose client drops a turn's batches when an
      // error follows them: the crossing turn is answered whole, and the stream's next request is
      // refused at admission (429), its window being used up.
      const ends = call.transport !== "http";
      call.onTurn(async (st) => {
        const crossed = await countTo(st);
        return ends && crossed.length > 0 ? quotaExceeded(subject, crossed) : null;
      });
    }
    try {
      return await next(call);
    } finally {
      // What moved after the last turn (a unary call's whole volume) counts toward the next call.
      if (metered.length > 0) await countTo(call.stats);
      if (held.length > 0) await release();
    }
  };
}
