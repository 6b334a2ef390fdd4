/**
 * Where quota counters live: a small interface, an in-memory store (one process), and — behind
 * the `quiver-rpc/quota/redis` subpath — a Redis store several instances share. Windows are fixed
 * and aligned to the epoch (`floor(now / windowMs)`), so every store and instance agrees on
 * which window a moment belongs to.
 */
import { isThenable } from "../thenable.js";

/** A counter's total in its current window. */
export interface WindowCount {
  /** The window's total after the addition. */
  readonly total: number;
  /** Milliseconds until the window ends (and the total starts again from 0). */
  readonly resetMs: number;
}

/**
 * Counters for quotas: fixed windows and concurrency slots. Each operation must be atomic. An
 * in-process store may answer at once (a value, not a promise): the quota check then adds no
 * wait to a call.
 */
export interface QuotaStore {
  /** Adds `amount` (0 reads) to `key` in the current window of `windowMs`; the total after. */
  add(key: string, amount: number, windowMs: number): WindowCount | Promise<WindowCount>;
  /**
   * Takes one of `limit` slots of `key`: a token to release it with, or null when all are held.
   * A slot not released within `ttlMs` (its holder died) frees itself.
   */
  acquire(key: string, limit: number, ttlMs: number): string | null | Promise<string | null>;
  /** Gives back a slot `acquire` handed out. */
  release(key: string, token: string): void | Promise<void>;
}

export interface MemoryQuotaStoreOptions {
  /**
   * Most counters and slot sets kept; reaching it drops ended windows, then the oldest counters,
   * down to 90 % (a dropped counter starts again from 0). Default: 100 000.
   */
  readonly maxKeys?: number;
  /** The clock, in ms since the epoch (tests move it). Default: `Date.now`. */
  readonly now?: () => number;
}

interface Window {
  readonly windowMs: number;
  readonly index: number;
  total: number;
}

/** Quota counters in this process's memory: the default store, right for one instance. */
export function createMemoryQuotaStore(opts: MemoryQuotaStoreOptions = {}): QuotaStore {
  const maxKeys = opts.maxKeys ?? 100_000;
  const now = opts.now ?? Date.now;
  const windows = new Map<string, Window>();
  const slots = new Map<string, Map<string, number>>();
  let nextToken = 0;

  const prune = (t: number): void => {
    for (const [key, held] of slots) {
      for (const [token, expires] of held) if (expires <= t) held.delete(token);
      if (held.size === 0) slots.delete(key);
    }
    // Down to 90 %, so a flood of new keys pays for one scan per tenth of maxKeys, not one per key.
    const target = Math.floor(maxKeys * 0.9);
    if (windows.size + slots.size <= target) return;
    for (const [key, w] of windows) if (w.index < Math.floor(t / w.windowMs)) windows.delete(key);
    // Still over: drop the oldest (insertion order) until under.
    for (const key of windows.keys()) {
      if (windows.size + slots.size <= target) break;
      windows.delete(key);
    }
  };

  return {
    add(key, amount, windowMs) {
      const t = now();
      const index = Math.floor(t / windowMs);
      let w = windows.get(key);
      if (w === undefined || w.index !== index) {
        if (w === undefined && windows.size + slots.size >= maxKeys) prune(t);
        w = { windowMs, index, total: 0 };
        windows.delete(key); // re-inserted last: insertion order approximates age
        windows.set(key, w);
      }
      w.total += amount;
      return { total: w.total, resetMs: (index + 1) * windowMs - t };
    },
    acquire(key, limit, ttlMs) {
      const t = now();
      let held = slots.get(key);
      if (held === undefined) {
        if (windows.size + slots.size >= maxKeys) prune(t);
        held = new Map();
        slots.set(key, held);
      }
      for (const [token, expires] of held) if (expires <= t) held.delete(token);
      if (held.size >= limit) return null;
      const token = String(++nextToken);
      held.set(token, t + ttlMs);
      return token;
    },
    release(key, token) {
      const held = slots.get(key);
      if (held === undefined) return;
      held.delete(token);
      if (held.size === 0) slots.delete(key);
    },
  };
}

/**
 * A quota store's answer did not come within the quota interceptor's `storeTimeoutMs` (or a Redis
 * store did not connect within its `connectTimeoutMs`); or, with `skipped`, the operation was not
 * sent: an earlier one timed out and the store has not answered since (see `boundedQuotaStore`).
 */
export class QuotaStoreTimeoutError extends Error {
  override readonly name = "QuotaStoreTimeoutError";
  constructor(
    /** The store operation that did not answer. */
    readonly operation: "add" | "acquire" | "release" | "connect",
    /** The time it was given, in ms. */
    readonly timeoutMs: number,
    /** True when it was not sent, the store being unresponsive. */
    readonly skipped = false,
  ) {
    super(
      skipped
        ? `the quota store's ${operation} was skipped: an earlier operation did not answer within ${timeoutMs} ms, and the store has not answered since`
        : `the quota store's ${operation} did not answer within ${timeoutMs} ms`,
    );
  }
}

/**
 * `answer`, or a `QuotaStoreTimeoutError` once `timeoutMs` pass first; an answer that comes later
 * goes to `late` (a slot taken after its caller gave up is given back there). `health` hears
 * whether the store answered in time, and of a late answer.
 */
function within<T>(
  answer: PromiseLike<T>,
  operation: QuotaStoreTimeoutError["operation"],
  timeoutMs: number,
  late: (value: T) => void,
  health: (answered: boolean) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      health(false);
      reject(new QuotaStoreTimeoutError(operation, timeoutMs));
    }, timeoutMs);
    timer.unref?.();
    answer.then(
      (value) => {
        health(true);
        if (expired) return late(value);
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        health(true);
        if (expired) return;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

const ignore = () => {};

/**
 * `store` with every answer it gives as a promise (any thenable) bounded by `timeoutMs` (answers
 * given at once pass as they are): a store that stops answering, e.g. a Redis behind a dropped
 * network, fails the operation in bounded time instead of holding the call. A slot acquired after
 * its operation timed out is released as soon as it arrives.
 *
 * Once an operation timed out, and until the store answers anything (even late, even an error),
 * the store counts as unresponsive: an `add` or `acquire` is still sent now and then, as a probe
 * (one at a time, at least `timeoutMs` after the last one ended), and the others fail at once
 * (`QuotaStoreTimeoutError` with `skipped`) rather than each waiting `timeoutMs` and queueing behind
 * a connection that may never answer (a half-open TCP connection can stay so for many minutes).
 * Releases are always sent.
 */
export function boundedQuotaStore(store: QuotaStore, timeoutMs: number): QuotaStore {
  let unresponsive = false;
  let probing = false;
  /** When the next probe may start (`performance.now()`). */
  let probeAfter = 0;
  const health = (answered: boolean) => {
    unresponsive = !answered;
  };
  /** The probe out now; an answer to an earlier one (late) does not end it. */
  let probeId = 0;
  const probed = (id: number) => (answered: boolean) => {
    if (id === probeId) {
      probing = false;
      probeAfter = performance.now() + timeoutMs;
    }
    health(answered);
  };
  /** Sends `op`, unless the store is unresponsive and it is no time for a probe; see above. */
  const guarded = <T>(
    operation: "add" | "acquire",
    op: () => T | PromiseLike<T>,
    late: (value: T) => void,
  ): T | Promise<T> => {
    const probe = unresponsive;
    if (probe && (probing || performance.now() < probeAfter)) {
      return Promise.reject(new QuotaStoreTimeoutError(operation, timeoutMs, true));
    }
    const answer = op();
    if (!isThenable(answer)) {
      unresponsive = false;
      return answer;
    }
    if (!probe) return within(answer, operation, timeoutMs, late, health);
    probing = true;
    return within(answer, operation, timeoutMs, late, probed(++probeId));
  };
  const release = (key: string, token: string): void | Promise<void> => {
    const answer = store.release(key, token);
    return isThenable(answer) ? within(answer, "release", timeoutMs, ignore, health) : answer;
  };
  return {
    add(key, amount, windowMs) {
      return guarded("add", () => store.add(key, amount, windowMs), ignore);
    },
    acquire(key, limit, ttlMs) {
      return guarded(
        "acquire",
        () => store.acquire(key, limit, ttlMs),
        (token) => {
          if (token === null) return;
          try {
            Promise.resolve(release(key, token)).catch(ignore);
          } catch {
            // the slot frees itself after its TTL
          }
        },
      );
    },
    release,
  };
}
