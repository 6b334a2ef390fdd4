/**
 * Bounds a connection's waits with one timer. Each wait records its deadline; the timer, armed
 * when a wait starts and none is pending, expires the waits past their deadline and re-arms for
 * the earliest one left. A timer per wait costs a timer object and two timer-list updates each
 * time, and a unary call waits four times (the write, three frames).
 *
 * The timer is left pending when the last wait ends, but unreferenced (under Node, a counter
 * update), so an idle client does not keep the process alive; `close` stops it. Works wherever
 * `setTimeout` does (the client layer also runs in browsers).
 */
type Timer = ReturnType<typeof setTimeout>;

/** Node's timer handle can stop keeping the event loop alive; in browsers a timer is a number. */
type MaybeNodeTimer = { ref?(): unknown; unref?(): unknown };

interface Wait {
  readonly deadline: number;
  readonly expire: () => void;
}

export class Watchdog {
  private timer: Timer | null = null;
  private readonly waits = new Map<number, Wait>();
  private next = 0;
  private closed = false;

  /** `ms`: how long each wait may last (> 0). */
  constructor(private readonly ms: number) {}

  /** Starts a wait: `expire` runs `ms` from now unless `stop` with the returned number comes first. */
  start(expire: () => void): number {
    const id = ++this.next;
    this.waits.set(id, { deadline: performance.now() + this.ms, expire });
    if (this.timer === null) this.arm(this.ms);
    else if (this.waits.size === 1) (this.timer as MaybeNodeTimer).ref?.();
    return id;
  }

  /** Ends a wait that completed in time (nothing when it has expired already). */
  stop(id: number): void {
    if (!this.waits.delete(id) || this.waits.size > 0) return;
    if (this.closed) this.disarm();
    else if (this.timer !== null) (this.timer as MaybeNodeTimer).unref?.();
  }

  /** The connection is closing: the timer stops once no wait runs (waits still running stay bounded). */
  close(): void {
    this.closed = true;
    if (this.waits.size === 0) this.disarm();
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.fire(), ms);
  }

  private fire(): void {
    this.timer = null;
    const now = performance.now();
    const expired: Wait[] = [];
    for (const [id, w] of this.waits) {
      if (w.deadline <= now) {
        this.waits.delete(id);
        expired.push(w);
      }
    }
    let earliest = Number.POSITIVE_INFINITY;
    for (const w of this.waits.values()) earliest = Math.min(earliest, w.deadline);
    if (earliest !== Number.POSITIVE_INFINITY) this.arm(Math.max(1, Math.ceil(earliest - now)));
    // Last: an expiry may start another wait, which finds the timer armed.
    for (const w of expired) w.expire();
  }
}
