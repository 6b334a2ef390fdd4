/**
 * The connections one listener serves, and its graceful close: stop taking new calls (idle
 * connections end at once), let calls in flight finish within a grace, then abort the rest (their
 * `ctx.signal` fires, streams end with a `cancelled` error) and drop the connections. Each
 * listener has its own set, so closing one never touches another's connections.
 */
import { frameworkError, type RpcError } from "../errors.js";

/** Options of a graceful close. */
export interface CloseOptions {
  /**
   * How long calls in flight may take to finish, in ms, before they are aborted and their
   * connections dropped. Default: `DEFAULT_CLOSE_GRACE_MS` (10 s); 0 aborts them at once.
   */
  readonly graceMs?: number;
}

/** Default grace of `close()`: 10 s. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

/** After the grace, how long aborted calls get to write their error before connections drop. */
export const ABORT_FLUSH_MS = 1_000;

/** Resolves when every promise of `work` settled, or after `ms`, whichever is first. */
export function settledWithin(work: readonly Promise<unknown>[], ms: number): Promise<void> {
  if (work.length === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void Promise.allSettled(work).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The grace `opts` asks for, checked. */
export function graceOf(opts: CloseOptions | undefined): number {
  const ms = opts?.graceMs ?? DEFAULT_CLOSE_GRACE_MS;
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`graceMs must be a number >= 0, got ${ms}`);
  return ms;
}

/** A listener's `connectionIdleTimeoutMs` (`Connection.idleTimeoutMs`), checked; undefined: no limit. */
export function connectionIdleTimeout(ms: number | undefined): number | undefined {
  if (ms !== undefined && !(Number.isFinite(ms) && ms > 0)) {
    throw new RangeError(`connectionIdleTimeoutMs must be a positive number of ms, got ${ms}`);
  }
  return ms;
}

/** The error calls still running when the grace runs out are aborted with. */
export function shutdownError(graceMs: number): RpcError {
  return frameworkError("cancelled", `the server is shutting down and did not finish this call within ${graceMs} ms`);
}

/** What a tracked connection hands its session (`Connection.closing` and `Connection.signal`). */
export interface TrackedConnection {
  /** Aborted when the listener closes: take no new call. */
  readonly closing: AbortSignal;
  /** Aborted when the call in progress must stop (grace over, or `peerGone`). */
  readonly signal: AbortSignal;
  /** The peer went away: abort its call in progress with `reason`. */
  peerGone(reason: RpcError): void;
  /** Registers the session serving it; the connection leaves the set when it settles. */
  served(session: Promise<unknown>): void;
}

interface Entry {
  /** Aborted when the set closes; one per connection, so no signal gathers a listener per session. */
  readonly closing: AbortController;
  readonly abort: AbortController;
  readonly drop: () => void;
  session: Promise<unknown> | null;
}

/** A listener's connections (see the module comment). */
export class ConnectionSet {
  private readonly live = new Set<Entry>();
  private closingAll = false;
  private closed: Promise<void> | null = null;

  /** Connections being served. */
  get size(): number {
    return this.live.size;
  }

  /** True once `close` was called: new connections should be refused. */
  get isClosing(): boolean {
    return this.closingAll;
  }

  /** Tracks a connection; `drop` closes it for good (destroys its socket). */
  track(drop: () => void): TrackedConnection {
    const abort = new AbortController();
    const closing = new AbortController();
    if (this.closingAll) closing.abort();
    const entry: Entry = { closing, abort, drop, session: null };
    this.live.add(entry);
    return {
      closing: closing.signal,
      signal: abort.signal,
      peerGone: (reason) => abort.abort(reason),
      served: (session) => {
        entry.session = session;
        const leave = () => this.live.delete(entry);
        session.then(leave, leave);
      },
    };
  }

  /** Closes gracefully (see the module comment); idempotent. */
  close(opts?: CloseOptions): Promise<void> {
    this.closed ??= this.shutdown(graceOf(opts));
    return this.closed;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.closingAll = true;
    for (const entry of this.live) entry.closing.abort();
    await this.settled(graceMs);
    if (this.live.size === 0) return;
    const reason = shutdownError(graceMs);
    for (const entry of this.live) entry.abort.abort(reason);
    await this.settled(ABORT_FLUSH_MS);
    for (const entry of this.live) entry.drop();
    this.live.clear();
  }

  /** Resolves when every tracked session settled, or after `ms`. */
  private settled(ms: number): Promise<void> {
    return settledWithin(
      [...this.live].map((e) => e.session ?? Promise.resolve()),
      ms,
    );
  }
}
