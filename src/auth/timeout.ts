/**
 * The bound on an authenticator's answer (`authTimeoutMs` on the HTTP, WebSocket and socket
 * listeners): an authenticator waiting on an authority that never answers (a token introspection
 * endpoint, a database) must not hold the request, or the connection and its place under
 * `maxConnections`, for ever.
 */
import type { AuthContext } from "../protocol/context.js";
import { isThenable } from "../thenable.js";
import { AuthUnavailableError } from "./types.js";

/** Default `authTimeoutMs`: 30 s. */
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000;

/** An `authTimeoutMs` option, checked, with its default. */
export function authTimeout(ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_AUTH_TIMEOUT_MS;
  if (!(Number.isFinite(ms) && ms > 0))
    throw new RangeError(`authTimeoutMs must be a positive number of ms, got ${ms}`);
  return ms;
}

/**
 * What `authenticate(arg)` answers, or an `AuthUnavailableError` (503 over HTTP and WebSocket, the
 * connection refused over a socket) once it has not answered within `ms`. An answer given at once
 * (not a promise) is passed through untimed.
 */
export function authenticateWithin<A>(
  authenticate: (arg: A) => AuthContext | PromiseLike<AuthContext>,
  arg: A,
  ms: number,
): AuthContext | Promise<AuthContext> {
  const answer = authenticate(arg);
  if (!isThenable(answer)) return answer;
  return new Promise<AuthContext>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new AuthUnavailableError(`the authenticator did not answer within ${ms} ms`, { retryAfterSeconds: 1 })),
      ms,
    );
    timer.unref?.();
    answer.then(
      (auth) => {
        clearTimeout(timer);
        resolve(auth);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
