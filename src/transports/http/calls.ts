/**
 * The HTTP transport's one seam onto the dispatch core: the only module here that imports
 * `src/server`'s dispatcher. Each request that runs a call is one `RequestCall`, whose life the
 * dispatcher owns (`withRequestCall`); this module ties it to the request (its client going away)
 * and to the handler's shutdown (see `HttpCalls`).
 */

import type { CallEnv } from "../../server/dispatch.js";
import { type ActiveCall, peerGone, type RequestCall, withRequestCall } from "../../server/dispatcher.js";

export type { Answer, CallEnv, CookieJar, OpenStream, StreamOpening, TurnResult } from "../../server/dispatch.js";
export { newRequestId } from "../../server/dispatch.js";
export type { RequestCall } from "../../server/dispatcher.js";

/** Runs one request's call (`HttpCalls.run` bound to the request). */
export type RunCall = <T>(env: CallEnv, work: (call: RequestCall) => Promise<T>) => Promise<T>;

/** The calls one HTTP handler is running, so its `close` can wait for them and abort the rest. */
export class HttpCalls {
  private readonly live = new Map<Promise<unknown>, ActiveCall>();

  /** Calls in flight. */
  get size(): number {
    return this.live.size;
  }

  /** The calls in flight, settled or not. */
  running(): Promise<unknown>[] {
    return [...this.live.keys()];
  }

  /** Aborts every call in flight with `reason`. */
  abortAll(reason: Parameters<ActiveCall["abort"]>[0]): void {
    for (const call of this.live.values()) call.abort(reason);
  }

  /**
   * Runs `work` as one call (see `withRequestCall`): aborted with `cancelled` when `signal` (the
   * request's: its client went away) aborts, and tracked until it settles.
   */
  run<T>(
    env: CallEnv,
    requestId: string,
    signal: AbortSignal | undefined,
    work: (call: RequestCall) => Promise<T>,
  ): Promise<T> {
    let active: ActiveCall | null = null;
    const running = withRequestCall(env, requestId, work, (call) => {
      active = call;
    });
    const call = active as ActiveCall | null;
    if (call === null) return running;
    this.live.set(running, call);
    let onAbort: (() => void) | null = null;
    if (signal !== undefined) {
      if (signal.aborted) call.abort(peerGone("http"));
      else {
        onAbort = () => call.abort(peerGone("http"));
        signal.addEventListener("abort", onAbort, { once: true });
      }
    }
    const settle = () => {
      this.live.delete(running);
      if (onAbort !== null) signal?.removeEventListener("abort", onAbort);
    };
    running.then(settle, settle);
    return running;
  }
}
