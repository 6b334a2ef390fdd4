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

/** How a request tells that its client went away: `UniversalRequest.watchGone`, else its `signal`. */
export interface GoneSource {
  readonly watchGone?: (listener: () => void) => () => void;
  readonly signal?: AbortSignal;
}

/** Registers `listener` on `gone`; returns its unregistering function. */
function watch(gone: GoneSource, listener: () => void): () => void {
  if (gone.watchGone !== undefined) return gone.watchGone(listener);
  const signal = gone.signal;
  if (signal === undefined) return noop;
  if (signal.aborted) {
    listener();
    return noop;
  }
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

function noop(): void {}

/** The calls one HTTP handler is running, so its `close` can wait for them and abort the rest. */
export class HttpCalls {
  private readonly live = new Set<ActiveCall>();
  /** Told when the last call in flight ends. */
  private drained: (() => void)[] = [];

  /** Calls in flight. */
  get size(): number {
    return this.live.size;
  }

  /** Settles once no call is in flight (at once when none is). */
  idle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  /** Aborts every call in flight with `reason`. */
  abortAll(reason: Parameters<ActiveCall["abort"]>[0]): void {
    for (const call of this.live) call.abort(reason);
  }

  /**
   * Runs `work` as one call (see `withRequestCall`): aborted with `cancelled` when the request's
   * client goes away (`gone`), and tracked until it ends.
   */
  run<T>(env: CallEnv, requestId: string, gone: GoneSource, work: (call: RequestCall) => Promise<T>): Promise<T> {
    let unwatch = noop;
    return withRequestCall(env, requestId, work, {
      started: (call) => {
        this.live.add(call);
        unwatch = watch(gone, () => call.abort(peerGone("http")));
      },
      ended: (call) => {
        unwatch();
        this.live.delete(call);
        if (this.live.size === 0 && this.drained.length > 0) for (const d of this.drained.splice(0)) d();
      },
    });
  }
}
