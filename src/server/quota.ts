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
import type { CallHandler, CallInterceptor, CallOutcome, ServerCall } from "./interceptors.js";
import { boundedQuotaStore, createMemoryQuotaStore, type QuotaStore, type WindowCount } from "./quota-store.js";
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
  /**
   * How long a store operation may take, in ms; one that takes longer fails with a
   * `QuotaStoreTimeoutError` (told to `onStoreError`, the call let through). Default: 1 000.
   */
  readonly storeTimeoutMs?: number;
}

interface Rule {
  readonly name: string;
  readonly spec: QuotaRule;
  readonly windowMs: number;
  readonly methods: ReadonlySet<string> | null;
  /** Counts rows or bytes (so a call's volume is added as it moves). */
  readonly metered: boolean;
  /** Each subject's store keys, kept so the store's lookups reuse the same strings. */
  readonly stems: Map<string, Keys>;
}

/** One subject's store keys under one rule: `prefix` + rule + subject + what is counted. */
interface Keys {
  readonly calls: string;
  readonly rows: string;
  readonly bytes: string;
  readonly streams: string;
}

/** Subjects whose key stems a rule keeps; past it the cache starts over. */
const MAX_STEMS = 10_000;

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
      metered: spec.rowsPerWindow !== undefined || spec.bytesPerWindow !== undefined,
      stems: new Map(),
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
  const storeTimeout = opts.storeTimeoutMs ?? 1_000;
  if (!(Number.isFinite(storeTimeout) && storeTimeout > 0)) {
    throw new RangeError(`quota storeTimeoutMs must be a positive number of ms, got ${storeTimeout}`);
  }
  // The memory store answers at once: nothing to bound.
  const store = opts.store === undefined ? createMemoryQuotaStore() : boundedQuotaStore(opts.store, storeTimeout);
  const prefix = opts.keyPrefix ?? "quiver:quota:";
  const slotTtl = opts.streamSlotTtlMs ?? 3_600_000;
  const concurrencyRetry = opts.concurrencyRetryMs ?? 1_000;
  const storeFailed = (err: unknown): null => {
    opts.onStoreError?.(err);
    return null;
  };
  /** `op`'s answer through `ok`, a failure (thrown or rejected) through `storeFailed`: at once for a store that answers at once. */
  const ask = <T, R>(op: () => Awaitable<T>, ok: (value: T) => R, failed: (err: unknown) => R): Awaitable<R> => {
    let answer: Awaitable<T>;
    try {
      answer = op();
    } catch (err) {
      return failed(err);
    }
    return isPromise(answer) ? answer.then(ok, failed) : ok(answer);
  };

  /** Adds a volume delta to every metered rule's windows; the limits it crossed. */
  const addVolume = (
    metered: readonly Rule[],
    key: (r: Rule) => Keys,
    rows: number,
    bytes: number,
    subject: string,
  ): Awaitable<Violation[]> => {
    const checks: Awaitable<Violation | null>[] = [];
    for (const r of metered) {
      const check = (what: "rows" | "bytes", amount: number, limit: number | undefined) => {
        if (limit === undefined || amount === 0) return;
        checks.push(
          ask(
            () => store.add(key(r)[what], amount, r.windowMs),
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
    return then(all(checks), (found) => found.filter((v): v is Violation => v !== null));
  };

  /** `subject`'s store keys under `r`, made once per subject and kept. */
  const keysOf = (r: Rule, subject: string): Keys => {
    let keys = r.stems.get(subject);
    if (keys === undefined) {
      if (r.stems.size >= MAX_STEMS) r.stems.clear();
      const stem = `${prefix}${r.name}:${subject}`;
      keys = { calls: `${stem}:calls`, rows: `${stem}:rows`, bytes: `${stem}:bytes`, streams: `${stem}:streams` };
      r.stems.set(subject, keys);
    }
    return keys;
  };
  const callsOver = (r: Rule, subject: string, c: WindowCount): Violation | null =>
    c.total > r.spec.callsPerSecond!
      ? {
          subject: `${r.name}:${subject}`,
          description: `more than ${r.spec.callsPerSecond} calls per second`,
          retryMs: c.resetMs,
        }
      : null;
  /**
   * Admission when every rule that applies limits calls per second only (the common case): the
   * call counted in each, then let in or refused. Nothing is allocated for a call let in by a
   * store that answers at once.
   */
  const admitByCalls = (
    call: ServerCall,
    next: CallHandler,
    applicable: readonly Rule[],
    subject: string,
  ): Promise<CallOutcome> => {
    let violations: Violation[] | null = null;
    let pending: Promise<Violation | null>[] | null = null;
    for (const r of applicable) {
      if (r.spec.callsPerSecond === undefined) continue;
      let counted: Awaitable<WindowCount>;
      try {
        counted = store.add(keysOf(r, subject).calls, 1, 1000);
      } catch (err) {
        storeFailed(err);
        continue;
      }
      if (isPromise(counted)) {
        pending ??= [];
        pending.push(counted.then((c) => callsOver(r, subject, c), storeFailed));
      } else {
        const v = callsOver(r, subject, counted);
        if (v !== null) {
          violations ??= [];
          violations.push(v);
        }
      }
    }
    if (pending === null) return violations === null ? next(call) : Promise.reject(quotaExceeded(subject, violations));
    return Promise.all(pending).then((found) => {
      const all = violations ?? [];
      for (const v of found) if (v !== null) all.push(v);
      return all.length === 0 ? next(call) : Promise.reject(quotaExceeded(subject, all));
    });
  };

  return (next) => (call) => {
    // Most callers match no rule: nothing is allocated for them.
    let applicable: Rule[] | null = null;
    for (const r of rules) {
      if (!applies(r, call)) continue;
      if (applicable === null) applicable = [];
      applicable.push(r);
    }
    if (applicable === null) return next(call);
    const subject = call.auth.principal || ANONYMOUS_SUBJECT;
    const stream = call.methodType === "stream";
    // The common case, calls per second alone: checked without the general path's bookkeeping.
    let callsOnly = true;
    for (const r of applicable) if (r.metered || (stream && r.spec.concurrentStreams !== undefined)) callsOnly = false;
    if (callsOnly) return admitByCalls(call, next, applicable, subject);
    const key = (r: Rule): Keys => keysOf(r, subject);

    // Admission: every limit read (and the call counted) at once.
    const checks: Awaitable<Violation | null>[] = [];
    // A slot's token, null when all are held, "" when the store failed (let through, nothing to release).
    const slots: Awaitable<Slot>[] = [];
    const over = (r: Rule, description: string, c: WindowCount): Violation => ({
      subject: `${r.name}:${subject}`,
      description,
      retryMs: c.resetMs,
    });
    for (const r of applicable) {
      const { callsPerSecond, rowsPerWindow, bytesPerWindow, concurrentStreams } = r.spec;
      if (callsPerSecond !== undefined) {
        checks.push(
          ask(
            () => store.add(key(r).calls, 1, 1000),
            (c) => callsOver(r, subject, c),
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
          ask(
            () => store.add(key(r)[what], 0, r.windowMs),
            (c) => (c.total >= limit ? over(r, `${c.total} ${what} of ${limit} per ${r.windowMs} ms used`, c) : null),
            storeFailed,
          ),
        );
      }
      if (stream && concurrentStreams !== undefined) {
        const k = key(r).streams;
        slots.push(
          ask(
            () => store.acquire(k, concurrentStreams, slotTtl),
            (token): Slot => ({ rule: r, key: k, token }),
            (err): Slot => ({ rule: r, key: k, token: storeFailed(err) ?? "" }),
          ),
        );
      }
    }
    const admitted = (found: readonly (Violation | null)[], held: readonly Slot[]): Promise<CallOutcome> => {
      const violations = found.filter((v): v is Violation => v !== null);
      for (const { rule, token } of held) {
        if (token !== null) continue;
        violations.push({
          subject: `${rule.name}:${subject}`,
          description: `${rule.spec.concurrentStreams} concurrent streams already open`,
          retryMs: concurrencyRetry,
        });
      }
      const release = (): Awaitable<unknown> => {
        const releases: Awaitable<unknown>[] = [];
        for (const { key: k, token } of held) {
          if (token !== null && token !== "") releases.push(ask(() => store.release(k, token), noop, storeFailed));
        }
        return all(releases);
      };
      if (violations.length > 0) {
        const refusal = quotaExceeded(subject, violations);
        return Promise.resolve(release()).then(() => Promise.reject(refusal));
      }
      // Volume: counted as it moves; a stream's turn that crosses a limit ends the stream.
      const metered = applicable.filter((r) => r.metered);
      if (metered.length === 0 && held.length === 0) return next(call); // nothing to do once it ends
      let counted = { rows: 0, bytes: 0 };
      const countTo = (st: Readonly<CallStatistics>): Awaitable<Violation[]> => {
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
        call.onTurn((st) =>
          then(countTo(st), (crossed) => (ends && crossed.length > 0 ? quotaExceeded(subject, crossed) : null)),
        );
      }
      // What moved after the last turn (a unary call's whole volume) counts toward the next call.
      const settle = (): Awaitable<unknown> =>
        all<unknown>([metered.length > 0 ? countTo(call.stats) : null, release()]);
      let running: Promise<CallOutcome>;
      try {
        running = next(call);
      } catch (err) {
        running = Promise.reject(err);
      }
      return running.then(
        (outcome) => then(settle(), () => outcome),
        (err: unknown) =>
          then(settle(), () => {
            throw err;
          }),
      );
    };
    const found = all(checks);
    const held = all(slots);
    if (!isPromise(found) && !isPromise(held)) return admitted(found, held);
    return Promise.all([found, held]).then(([f, h]) => admitted(f, h));
  };
}

type Awaitable<T> = T | Promise<T>;

/** A stream slot asked for: its token, null when all are held, `""` when the store failed. */
interface Slot {
  readonly rule: Rule;
  readonly key: string;
  readonly token: string | null;
}

function isPromise<T>(v: Awaitable<T>): v is Promise<T> {
  return v instanceof Promise;
}

/** The values, at once when none is a promise. */
function all<T>(values: readonly Awaitable<T>[]): Awaitable<T[]> {
  for (const v of values) if (isPromise(v)) return Promise.all(values);
  return values as T[];
}

/** `f(v)`, after `v` settles when it is a promise. */
function then<T, R>(v: Awaitable<T>, f: (value: T) => Awaitable<R>): Awaitable<R> {
  return isPromise(v) ? v.then(f) : f(v);
}

function noop(): void {}
