/**
 * Per-connection backpressure for the `node:http` adapter.
 *
 * HTTP/1.1 answers a connection's requests in order, so while one answer is still unwritten there
 * is no point producing the next: a client that pipelines requests and never reads would otherwise
 * have the server produce, and hold in memory, every answer it asked for. So a request is served
 * only once the connection's previous request has been answered (its response ended) and the
 * connection's unwritten answer bytes are at most `highWaterMark`; until then it waits its turn,
 * and requests still waiting when the connection closes are dropped unserved.
 *
 * What a connection can make the server hold is then one answer being produced or queued behind
 * the one being written, plus at most `highWaterMark` bytes of the one being written (beyond what
 * the operating system's socket buffers take).
 *
 * This works with `node:http`'s own flow control rather than against it. `node:http` assigns the
 * socket to one response at a time (later ones queue their bytes until it is their turn), stops
 * parsing a connection while its socket needs draining (`socket._paused`), and resumes parsing on
 * the socket's `'drain'`. The gate waits on that same `'drain'` and on the previous response's
 * `'finish'`, only decides when a request's handler starts, and never pauses or resumes the socket.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** Default `writeHighWaterMark`: 1 MiB. */
export const DEFAULT_WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** Decides when each request on a connection is served. */
export interface RequestGate {
  /**
   * Runs `serve` (which answers `res` and resolves once it has ended it) when it is `res`'s turn on
   * its connection: at once on an idle connection, later behind unwritten answers, and never if
   * the connection closes first. `serve` gets its request's `watchGone` (see `UniversalRequest`):
   * the connection closing while `serve` runs is the client going away.
   */
  enter(res: ServerResponse, serve: (watchGone: WatchGone) => Promise<void>): void;
  /** Requests waiting for their turn, over all connections. */
  readonly waiting: number;
}

/** Registers a listener run once if the client goes away; returns its unregistering function. */
export type WatchGone = (listener: () => void) => () => void;

interface Waiting {
  readonly res: ServerResponse;
  readonly serve: (watchGone: WatchGone) => Promise<void>;
}

const unwatched = (): void => {};

/** The count of waiting requests a gate shares with its connections. */
interface Tally {
  waiting: number;
}

/** The turns of one connection's requests. */
class ConnectionTurns {
  /** A request is being served (its answer not yet ended). */
  private serving = false;
  /** The latest ended answer, until it is known to be written. */
  private last: ServerResponse | null = null;
  /** The answer whose `'finish'` the gate listens for. */
  private watched: ServerResponse | null = null;
  private readonly waiting: Waiting[] = [];
  private closed = false;
  /** Told when the connection closes while a request is served (one request is served at a time). */
  private gone: (() => void) | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly highWaterMark: number,
    private readonly tally: Tally,
  ) {
    socket.on("drain", this.pump);
    socket.once("close", this.drop);
  }

  enter(res: ServerResponse, serve: (watchGone: WatchGone) => Promise<void>): void {
    if (this.closed) return;
    this.waiting.push({ res, serve });
    this.tally.waiting++;
    this.pump();
  }

  /** True while the previous answer's unwritten bytes allow producing the next. */
  private clear(): boolean {
    const last = this.last;
    if (last === null || last.writableFinished) return true;
    // Until it holds the socket, an answer waits in memory whole behind the one being written;
    // once it does, what is not yet handed to the OS is the socket's `writableLength`.
    return last.socket !== null && this.socket.writableLength <= this.highWaterMark;
  }

  private readonly pump = (): void => {
    // A failed write ends (and 'finish'es) the answer before the socket is destroyed and closes:
    // once the socket can take no more, nothing more is served.
    if (!this.socket.writable) this.drop();
    while (!this.serving && !this.closed && this.waiting.length > 0) {
      if (!this.clear()) {
        const last = this.last;
        if (last !== null && this.watched !== last) {
          this.watched = last;
          last.once("finish", this.pump);
        }
        return;
      }
      const next = this.waiting.shift()!;
      this.tally.waiting--;
      this.serving = true;
      this.last = next.res;
      next.serve(this.watchGone).then(this.served, this.served);
    }
  };

  private readonly watchGone: WatchGone = (listener) => {
    if (this.closed) {
      listener();
      return unwatched;
    }
    this.gone = listener;
    return () => {
      if (this.gone === listener) this.gone = null;
    };
  };

  private readonly served = (): void => {
    this.serving = false;
    this.gone = null;
    this.pump();
  };

  private readonly drop = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.tally.waiting -= this.waiting.length;
    this.waiting.length = 0;
    this.last = null;
    this.watched = null;
    this.socket.off("drain", this.pump);
    const gone = this.gone;
    this.gone = null;
    if (this.serving) gone?.();
  };
}

/** Creates the gate of one `node:http` listener (state per connection, dropped with it). */
export function createRequestGate(highWaterMark: number = DEFAULT_WRITE_HIGH_WATER_MARK): RequestGate {
  if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 0) {
    throw new RangeError(`writeHighWaterMark must be an integer >= 0, got ${highWaterMark}`);
  }
  const connections = new WeakMap<Socket, ConnectionTurns>();
  const tally: Tally = { waiting: 0 };
  return {
    get waiting() {
      return tally.waiting;
    },
    enter(res, serve) {
      const socket = res.req.socket;
      let turns = connections.get(socket);
      if (turns === undefined) {
        turns = new ConnectionTurns(socket, highWaterMark, tally);
        connections.set(socket, turns);
      }
      turns.enter(res, serve);
    },
  };
}
