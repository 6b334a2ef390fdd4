/**
 * Bounds a connection's waits (or an HTTP client's requests in flight) with one timer. Each wait
 * records its deadline; the timer, armed when a wait starts and none is pending, expires the waits
 * past their deadline and re-arms for the earliest one left. A timer per wait costs a timer object and two timer-list updates each
 * time, and every call waits at least twice (its request's write, its answer's first frame; the
 * frames that arrived with it are polled, not waited for), a stream twice per batch.
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
  /**
   * The one wait a connection usually has, in fields: a Map entry and an object per wait made
   * the collector run measurably more often (10k-row producer batches, 4 waits a batch).
   */
  private id = 0;
  private deadline = 0;
  private expire: (() => void) | null = null;
  /**
   * Waits started while another was running: rare on a session connection (one call at a time),
   * the rule for the HTTP client, whose requests in flight each hold a wait.
   */
  private readonly others = new Map<number, Wait>();
  private next = 0;
  private closed = false;

  /** `ms`: how long each wait may last (> 0). */
  constructor(private readonly ms: number) {}

  /** Starts a wait: `expire` runs `ms` from now unless `stop` with the returned number comes first. */
  start(expire: () => void): number {
    const id = ++this.next;
    const deadline = performance.now() + this.ms;
    const idle = this.running === 0;
    if (this.expire === null) {
      this.id = id;
      this.deadline = deadline;
      this.expire = expire;
    } else this.others.set(id, { deadline, expire });
    if (this.timer === null) this.arm(this.ms);
    else if (idle) (this.timer as MaybeNodeTimer).ref?.();
    return id;
  }

  /** Ends a wait that completed in time (nothing when it has expired already). */
  stop(id: number): void {
    if (id === this.id && this.expire !== null) this.expire = null;
    else if (!this.others.delete(id)) return;
    if (this.running > 0) return;
    if (this.closed) this.disarm();
    else if (this.timer !== null) (this.timer as MaybeNodeTimer).unref?.();
  }

  /** The connection is closing: the timer stops once no wait runs (waits still running stay bounded). */
  close(): void {
    this.closed = true;
    if (this.running === 0) this.disarm();
  }

  private get running(): number {
    return (this.expire === null ? 0 : 1) + this.others.size;
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
    const expired: Array<() => void> = [];
    let earliest = Number.POSITIVE_INFINITY;
    if (this.expire !== null) {
      if (this.deadline <= now) {
        expired.push(this.expire);
        this.expire = null;
      } else earliest = this.deadline;
    }
    for (const [id, w] of this.others) {
      if (w.deadline <= now) {
        this.others.delete(id);
        expired.push(w.expire);
      } else earliest = Math.min(earliest, w.deadline);
    }
    if (earliest !== Number.POSITIVE_INFINITY) this.arm(Math.max(1, Math.ceil(earliest - now)));
    // Last: an expiry may start another wait, which finds the timer armed.
    for (const expire of expired) expire();
  }
}
