/**
 * Sticky sessions, as the reference defines them (`http/server/_sticky.py`,
 * `docs/sticky-sessions-spec.md`): state that cannot travel in a token (a cursor, a loaded model,
 * an open file) kept in this instance's memory and found again by a sealed `VGI-Session` token.
 *
 * - A method opens one with `ctx.openSession(state)` when its client sent `VGI-Session-Accept:
 *   true`; the answer carries `VGI-Session: <token>` (and `VGI-Echo-<name>` routing hints).
 * - Requests carrying the token get the state back as `ctx.session`; those of one session run one
 *   at a time (each waits for the previous to answer), different sessions in parallel.
 * - A token that does not resolve here — forged, another caller's, minted by another instance,
 *   expired, closed, evicted — is answered `session_lost` (200, `X-VGI-RPC-Error`, an error
 *   stream), before the request's body is read.
 * - A session ends at `ctx.closeSession()` (the answer says `VGI-Session-Close: true`), at
 *   `DELETE {prefix}/__session__`, when its lifetime or idle timeout passes, or at shutdown; its
 *   state's `close()`, if it has one, runs then (after the call using it, if one is running).
 *
 * Off by default (`HttpServerOptions.sticky`). The registry is bounded (`maxSessions`, and
 * `maxWaitingPerSession` requests queued on one session); a timer sweeps expired sessions while
 * any are open.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { frameworkError, type RpcError } from "../../errors.js";
import type { AuthContext, SessionOptions } from "../../protocol/context.js";
import {
  openSessionToken,
  SESSION_ID_BYTES,
  type SessionTokenFields,
  sealSessionToken,
  sessionAad,
  sessionAadText,
  sessionLost,
} from "./session-token.js";
import type { StickyConfig } from "./sticky-config.js";

export * from "./sticky-config.js";

/** Opened tokens kept (see `SessionRegistry.opened`); past it the cache starts over. */
const OPENED_TOKENS_MAX = 4096;
const utf8 = new TextEncoder();

/** One session's turn-taking: its calls run one at a time, in arrival order. */
class SessionLock {
  held = false;
  private readonly waiters: (() => void)[] = [];

  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes the lock now if it is free. */
  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  /**
   * Waits for the lock (it passes to waiters in order): true once held, false when `timeoutMs`
   * passed first (the waiter is then out of the queue, so the lock never passes to it).
   */
  acquire(timeoutMs: number): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next !== undefined) next();
    else this.held = false;
  }
}

/** A live session. */
export class Entry {
  readonly lock = new SessionLock();
  /** Removed from the registry (closed, expired, evicted); a request waiting for it gets `session_lost`. */
  removed = false;
  /** The state's `close()` has been called (or it has none). */
  stateClosed = false;
  lastUsed: number;

  constructor(
    readonly id: Uint8Array,
    readonly idHex: string,
    readonly state: unknown,
    /** Epoch ms after which the session is gone. */
    readonly expiresAt: number,
    readonly principalKey: string,
    now: number,
  ) {
    this.lastUsed = now;
  }
}

/** The operator's handle on a handler's sticky sessions (`HttpHandler.sessions`). */
export interface StickySessions {
  /** Sessions open now. */
  readonly size: number;
  /** True while new sessions are refused (`setDraining`). */
  readonly draining: boolean;
  /**
   * Refuses new sessions (`openSession` throws `server_draining`) while `draining` is true;
   * sessions already open keep serving until they end. For rotating an instance out: drain, wait,
   * then close it.
   */
  setDraining(draining: boolean): void;
  /** Closes every session now (each state's `close()` runs and is awaited) and forgets them. */
  closeAll(): Promise<void>;
}

/**
 * The caller a session belongs to, as the reference keys its registry (the AAD already binds the
 * token to its caller; this is the second check behind it).
 */
function principalKey(auth: AuthContext): string {
  const claim = auth.claims.peer_evidence_binding;
  const binding = typeof claim === "string" && claim !== "" ? `\u0000${claim}` : "";
  if (!auth.authenticated) return `\u0000anonymous${binding}`;
  return `${auth.domain}\u0000${auth.principal}${binding}`;
}

/** One handler's sessions: the registry, its sweeper, and the token key and server id it seals with. */
export class SessionRegistry implements StickySessions {
  private readonly entries = new Map<string, Entry>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private drainingFlag = false;
  /** `close()` calls not yet settled, awaited by `closeAll`. */
  private readonly closing = new Set<Promise<unknown>>();
  /**
   * Tokens this instance opened, by caller binding and token: a session's token is the same on
   * every call, and opening it (AEAD) cost a sticky call about a third of its rate. Only what
   * verified is kept; the session it names is still looked up (and checked alive) on every call.
   */
  private readonly opened = new Map<string, SessionTokenFields>();

  constructor(
    readonly config: StickyConfig,
    private readonly key: Uint8Array,
    private readonly serverId: string,
    private readonly logger: Logger,
    /** The clock, in epoch ms (tests move it). */
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get draining(): boolean {
    return this.drainingFlag;
  }

  setDraining(draining: boolean): void {
    this.drainingFlag = draining;
  }

  /** Runs a state's `close()` once, if it has one; a throw or rejection is logged, never raised. */
  closeState(entry: Entry): void {
    if (entry.stateClosed) return;
    entry.stateClosed = true;
    const state = entry.state as { close?: unknown } | null;
    const close = state !== null && typeof state === "object" ? state.close : undefined;
    if (typeof close !== "function") return;
    const failed = (err: unknown) =>
      this.logger.error({ err, session_id: entry.idHex }, "a sticky session's close() failed");
    try {
      const result: unknown = close.call(state);
      if (result instanceof Promise) {
        const settled = result.then(undefined, failed).finally(() => this.closing.delete(settled));
        this.closing.add(settled);
      }
    } catch (err) {
      failed(err);
    }
  }

  /** Removes `entry`; its state closes now, or when the call holding it answers. */
  retire(entry: Entry): void {
    if (!entry.removed) {
      entry.removed = true;
      this.entries.delete(entry.idHex);
      if (this.entries.size === 0) this.stopSweeper();
    }
    if (!entry.lock.held) this.closeState(entry);
  }

  /** True when `entry` has outlived its lifetime or idle timeout (`busy`: a call holds it). */
  private stale(entry: Entry, now: number, busy: boolean): boolean {
    if (entry.expiresAt < now) return true;
    const idle = this.config.idleMs;
    return idle !== null && !busy && now - entry.lastUsed > idle;
  }

  /** Retires every expired or idle session; returns how many. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const entry of [...this.entries.values()]) {
      if (this.stale(entry, now, entry.lock.held)) {
        this.retire(entry);
        n++;
      }
    }
    return n;
  }

  private startSweeper(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(), this.config.sweepMs);
    this.timer.unref();
  }

  private stopSweeper(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Registers `state` for the caller `auth`, held (locked) by the opening request; returns the
   * entry and its sealed token. Throws `server_draining`, `session_limit`, or `RangeError`.
   */
  open(state: unknown, options: SessionOptions, auth: AuthContext): { entry: Entry; token: string } {
    if (this.drainingFlag) {
      throw frameworkError("server_draining", "server is draining — new sessions are rejected", {
        details: [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 1 }],
      });
    }
    const ttl = options.ttlSeconds ?? this.config.defaultTtlSeconds;
    if (typeof ttl !== "number" || !(ttl > 0) || ttl > this.config.maxTtlSeconds) {
      throw new RangeError(`ttlSeconds must be in (0, ${this.config.maxTtlSeconds}], got ${String(ttl)}`);
    }
    if (this.entries.size >= this.config.maxSessions) {
      this.sweep();
      if (this.entries.size >= this.config.maxSessions) {
        throw frameworkError(
          "session_limit",
          `this server keeps at most ${this.config.maxSessions} sticky sessions, and that many are open`,
        );
      }
    }
    const now = this.now();
    const id = new Uint8Array(randomBytes(SESSION_ID_BYTES));
    const idHex = Buffer.from(id).toString("hex");
    const entry = new Entry(id, idHex, state, now + ttl * 1000, principalKey(auth), now);
    entry.lock.tryAcquire();
    this.entries.set(idHex, entry);
    this.startSweeper();
    const token = sealSessionToken(
      { serverId: this.serverId, sessionId: id, expiresAt: Math.floor(entry.expiresAt / 1000) },
      this.key,
      sessionAad(auth),
    );
    return { entry, token };
  }

  /**
   * The live session `token` names for `auth`, or the `session_lost` error saying why not (the
   * reference's messages). An expired entry found here is retired.
   */
  lookup(token: string, auth: AuthContext): Entry | RpcError {
    const text = token.trim();
    const aad = sessionAadText(auth);
    const cacheKey = `${aad}\u0001${text}`;
    let fields = this.opened.get(cacheKey);
    if (fields === undefined) {
      try {
        fields = openSessionToken(text, this.key, utf8.encode(aad));
      } catch (err) {
        return err as RpcError;
      }
      if (this.opened.size >= OPENED_TOKENS_MAX) this.opened.clear();
      this.opened.set(cacheKey, fields);
    }
    if (fields.serverId !== this.serverId) {
      return sessionLost("session token was issued by a different worker (server_id mismatch)");
    }
    const entry = this.entries.get(Buffer.from(fields.sessionId).toString("hex"));
    const lost = () => sessionLost("session not found, expired, or principal mismatch");
    if (entry === undefined) return lost();
    if (this.stale(entry, this.now(), entry.lock.held)) {
      this.retire(entry);
      return lost();
    }
    if (entry.principalKey !== principalKey(auth)) return lost();
    return entry;
  }

  /** Waits for `entry`'s turn; returns false (not holding it) when the session ended meanwhile. */
  async take(entry: Entry): Promise<boolean> {
    if (!entry.lock.tryAcquire()) {
      if (entry.lock.waiting >= this.config.maxWaiting) {
        throw frameworkError(
          "session_limit",
          `${entry.lock.waiting} requests already wait for this sticky session (maxWaitingPerSession)`,
        );
      }
      if (!(await entry.lock.acquire(this.config.maxWaitMs))) {
        throw frameworkError(
          "session_limit",
          `waited ${this.config.maxWaitMs} ms for this sticky session's call in progress (maxWaitMs)`,
        );
      }
    }
    const now = this.now();
    if (!entry.removed && this.stale(entry, now, false)) this.retire(entry);
    if (entry.removed) {
      this.give(entry);
      return false;
    }
    entry.lastUsed = now;
    return true;
  }

  /** Hands `entry` on to its next request; a session retired meanwhile closes its state now. */
  give(entry: Entry): void {
    entry.lastUsed = this.now();
    entry.lock.release();
    if (entry.removed && !entry.lock.held) this.closeState(entry);
  }

  async closeAll(): Promise<void> {
    this.stopSweeper();
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const entry of all) {
      entry.removed = true;
      this.closeState(entry);
    }
    await Promise.allSettled([...this.closing]);
  }
}
