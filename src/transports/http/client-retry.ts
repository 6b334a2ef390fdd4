/**
 * Retrying the HTTP client's replay-safe requests: a stream's turns (the server keeps nothing
 * between them, so a turn re-sent with the same tokens starts from the same state) and calls the
 * caller made safe to repeat (an idempotency key, or a describe). A failure is retried when no
 * answer arrived (connection refused or reset, timeout) or the answer is a transient status (429,
 * 502, 503, 504 by default), with exponential backoff, full jitter and the server's `Retry-After`.
 * As the reference's `HttpRetryConfig`, with the same defaults. No `node:` imports.
 */
import { HttpError } from "./client-errors.js";

/** `HttpClientOptions.retry`. */
export interface HttpRetryOptions {
  /** Retries after the first attempt (so at most `maxRetries + 1` requests). Default: 3. */
  readonly maxRetries?: number;
  /** Backoff before retry n (from 0): up to `backoffBaseMs * 2^n`, jittered. Default: 500. */
  readonly backoffBaseMs?: number;
  /** Longest wait between attempts, `Retry-After` included. Default: 30 000. */
  readonly backoffMaxMs?: number;
  /** Statuses worth another attempt. Default: 429, 502, 503, 504. */
  readonly retryableStatuses?: readonly number[];
  /** Retry when no answer arrived (refused, reset, timed out). Default: true. */
  readonly retryOnConnectionError?: boolean;
  /** Wait as long as a 429/503's `Retry-After` asks (capped by `backoffMaxMs`). Default: true. */
  readonly respectRetryAfter?: boolean;
}

/** The checked form of `HttpRetryOptions`. */
export interface RetryPolicy {
  readonly maxRetries: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly retryableStatuses: ReadonlySet<number>;
  readonly retryOnConnectionError: boolean;
  readonly respectRetryAfter: boolean;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`retry.${name} must be a number >= 0, got ${value}`);
  return value;
}

/** Checks `options` (false: never retry). */
export function retryPolicy(options: HttpRetryOptions | false | undefined): RetryPolicy {
  const o = options === false ? { maxRetries: 0 } : (options ?? {});
  const maxRetries = nonNegative("maxRetries", o.maxRetries ?? 3);
  if (!Number.isInteger(maxRetries)) throw new RangeError(`retry.maxRetries must be an integer, got ${maxRetries}`);
  return {
    maxRetries,
    backoffBaseMs: nonNegative("backoffBaseMs", o.backoffBaseMs ?? 500),
    backoffMaxMs: nonNegative("backoffMaxMs", o.backoffMaxMs ?? 30_000),
    retryableStatuses: new Set(o.retryableStatuses ?? [429, 502, 503, 504]),
    retryOnConnectionError: o.retryOnConnectionError ?? true,
    respectRetryAfter: o.respectRetryAfter ?? true,
  };
}

/** A transient answer that still came back as an Arrow response (its error batch is the caller's to read). */
export class TransientAnswer<T> extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | null,
    readonly answer: T,
  ) {
    super(`HTTP ${status}`);
  }
}

/** Whether `err` may be retried under `policy`, and the wait the server asked for. */
function retryable(policy: RetryPolicy, err: unknown): { readonly retry: boolean; readonly afterMs: number | null } {
  if (err instanceof TransientAnswer) return { retry: true, afterMs: err.retryAfterMs };
  if (err instanceof HttpError) {
    if (err.status === 0)
      return { retry: policy.retryOnConnectionError && err.message !== "the client is closed", afterMs: null };
    return { retry: policy.retryableStatuses.has(err.status), afterMs: err.retryAfterMs };
  }
  return { retry: false, afterMs: null };
}

/** The wait before retry `n` (from 0): full jitter under the exponential cap, or the server's ask. */
function delayMs(policy: RetryPolicy, n: number, afterMs: number | null): number {
  if (afterMs !== null && policy.respectRetryAfter) return Math.min(afterMs, policy.backoffMaxMs);
  const cap = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** n);
  return Math.random() * cap;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or `policy.maxRetries` retries are spent;
 * `closed()` stops it between attempts. The last failure is thrown as it was (a transient Arrow
 * answer is returned, for its error batch to be read).
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: () => Promise<T>,
  closed: () => boolean,
  onRetry?: (n: number, err: unknown) => void,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const verdict = retryable(policy, err);
      if (!verdict.retry || n >= policy.maxRetries || closed()) {
        if (err instanceof TransientAnswer) return err.answer as T;
        throw err;
      }
      onRetry?.(n, err);
      const wait = delayMs(policy, n, verdict.afterMs);
      // `Retry-After: 0` (or no backoff) retries at once: a timer would add a millisecond.
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (closed()) {
        if (err instanceof TransientAnswer) return err.answer as T;
        throw err;
      }
    }
  }
}
