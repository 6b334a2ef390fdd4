/**
 * Unix-domain and TCP socket servers: each accepted connection is one session, served call after
 * call until the peer closes it. No credentials travel on the wire (as in the reference); an
 * optional `authenticate` names each connection's caller from what the socket knows.
 */
import { existsSync, unlinkSync } from "node:fs";
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server,
  Socket,
  type SocketConstructorOpts,
} from "node:net";
import { authenticateWithin, authTimeout } from "../../auth/timeout.js";
import { AuthUnavailableError } from "../../auth/types.js";
import type { AuthContext } from "../../protocol/context.js";
import type { Connection } from "../../server/connection.js";
import {
  type CloseOptions,
  ConnectionSet,
  connectionIdleTimeout,
  type TrackedConnection,
} from "../../server/connections.js";
import { peerGone } from "../../server/dispatcher.js";
import type { RpcServer } from "../../server/server.js";
import { widenSendBuffer } from "../node/send-buffer.js";
import { writableSink } from "../node/sink.js";
import { type SocketSource, socketSource } from "../node/socket-source.js";

export interface SocketServeOptions {
  /** TCP host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** TCP port; 0 picks a free one. Default: 0. */
  readonly port?: number;
  /** Unix socket path; when set, `host`/`port` are ignored. */
  readonly path?: string;
  /** Most concurrent connections; extra ones are closed at once. Default: 1024. */
  readonly maxConnections?: number;
  /**
   * How long an open connection may go without a request, in ms: from its start and from the end
   * of each call, its next request must have arrived whole within it, or the connection is closed
   * (logged at info; the client's next call fails with `transport_error`). Set it when the
   * listener faces callers you do not trust: a connection that sends nothing otherwise holds one
   * of `maxConnections` until its peer closes it. A stream call's inputs are the call's: bound them with
   * `callTimeoutMs` on `createServer`. Default: no limit (a session may idle between calls).
   */
  readonly connectionIdleTimeoutMs?: number;
  /** Received-but-unread bytes per connection above which the server stops reading it. Default: 1 MiB. */
  readonly readHighWaterMark?: number;
  /**
   * After the server ends a connection (the peer closed its side, or sent bytes that are not
   * vgi-rpc), how long the peer has to close its own side before the socket is dropped, in ms.
   * Default: 5 000.
   */
  readonly closeLingerMs?: number;
  /**
   * Names the caller of each accepted connection (every call on it runs as that caller); throw to
   * refuse the connection, which is closed unserved. Default: every connection anonymous.
   */
  readonly authenticate?: (peer: SocketPeer) => AuthContext | Promise<AuthContext>;
  /**
   * How long `authenticate` may take to answer, in ms; a connection it has not answered within it
   * is closed unserved, as a refused one. Default: 30 000.
   */
  readonly authTimeoutMs?: number;
  /**
   * Close the listener once it has had no connection for this long, in ms (the launcher's worker
   * contract, `--idle-timeout`): it stops as `close()` does and `onIdle` runs. Before the first
   * connection `startupGraceMs` applies instead. Default: none (serve until closed).
   */
  readonly idleTimeoutMs?: number;
  /**
   * With `idleTimeoutMs`, how long the listener waits for its first connection, in ms, so a
   * launcher slow to connect does not find the worker gone. Default: the larger of
   * `idleTimeoutMs` and 60 000 (the reference's startup grace).
   */
  readonly startupGraceMs?: number;
  /** Runs once the listener closed itself for being idle (e.g. to exit the process). Default: none. */
  readonly onIdle?: () => void;
}

/** What a socket server knows about a connecting peer. */
export interface SocketPeer {
  /** `unix` or `tcp`. */
  readonly transport: string;
  /** `host:port` of a TCP peer; `""` for a Unix socket. */
  readonly remoteAddr: string;
  /** The Unix socket path, or `""` for TCP. */
  readonly path: string;
}

export interface SocketServer {
  /** `{ host, port }` for TCP, `{ path }` for a Unix socket. */
  readonly address: { readonly host: string; readonly port: number } | { readonly path: string };
  /**
   * Stops accepting and closes this listener's connections: idle ones at once, busy ones after
   * their call; calls still running after `graceMs` are aborted (`ctx.signal`, a `cancelled` error
   * to their client) and their connections dropped. Other listeners of the server keep serving.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** Default `closeLingerMs`: 5 s. */
const CLOSE_LINGER_MS = 5_000;

/** Each connection's read slab: about what Node's own reading holds per read, kept per connection. */
const CONNECTION_SLAB_BYTES = 64 * 1024;

/**
 * An accepted connection read through `socketSource`: a `node:net` server cannot give the sockets
 * it accepts `onread`, so the accepted socket's handle (it has not read yet: the server pauses on
 * connect) moves to a socket created with it. Requests then land in a reused slab and a large
 * batch (an exchange's input) straight in its message buffer, instead of in a fresh 64 KiB buffer
 * per read copied once more into the body. The accepted socket is destroyed without its handle,
 * which counts it out of the server; where the handle cannot be taken (a runtime without it), the
 * accepted socket is read as it is.
 */
function adopt(accepted: Socket, highWaterMark: number | undefined): { socket: Socket; input: SocketSource | Socket } {
  const shell = accepted as unknown as { _handle?: object | null };
  const handle = shell._handle;
  if (handle === undefined || handle === null) {
    accepted.resume();
    return { socket: accepted, input: accepted };
  }
  shell._handle = null;
  accepted.destroy();
  const source = socketSource({
    slabBytes: CONNECTION_SLAB_BYTES,
    ...(highWaterMark !== undefined ? { highWaterMark } : {}),
  });
  const options: SocketConstructorOpts & { handle: object; onread: SocketSource["onread"] } = {
    handle,
    readable: true,
    writable: true,
    onread: source.onread,
  };
  const socket = new Socket(options);
  return { socket, input: source.attach(socket) };
}

async function serveSocket(
  server: RpcServer,
  socket: Socket,
  input: SocketSource | Socket,
  transport: string,
  opts: SocketServeOptions,
  tracked: TrackedConnection,
) {
  socket.setNoDelay?.(true);
  if (transport === "unix") widenSendBuffer(socket);
  const sink = writableSink(socket);
  const meta: Record<string, string> = {};
  if (socket.remoteAddress) meta.remote_addr = `${socket.remoteAddress}:${socket.remotePort ?? ""}`;
  let auth: AuthContext | undefined;
  if (opts.authenticate !== undefined) {
    const peer: SocketPeer = { transport, remoteAddr: meta.remote_addr ?? "", path: opts.path ?? "" };
    try {
      auth = await authenticateWithin(opts.authenticate, peer, authTimeout(opts.authTimeoutMs));
    } catch (err) {
      const why = err instanceof AuthUnavailableError ? "authentication unavailable" : "refused by authenticate";
      server.logger.warn({ transport, remote_addr: peer.remoteAddr, err }, `Connection closed: ${why}`);
      socket.destroy();
      // Served by nothing: it leaves the listener's connections (and its place under maxConnections).
      tracked.served(Promise.resolve());
      return;
    }
  }
  const conn: Connection = {
    input,
    write: sink.write,
    flush: sink.flush,
    transport,
    transportMetadata: meta,
    closing: tracked.closing,
    signal: tracked.signal,
    ...(auth !== undefined ? { auth } : {}),
    ...(opts.connectionIdleTimeoutMs !== undefined ? { idleTimeoutMs: opts.connectionIdleTimeoutMs } : {}),
  };
  const session = server.serveConnection(conn).catch(() => {});
  tracked.served(session);
  await session;
  // The peer gets the last answer and our FIN; a peer that never closes its side (a half-open
  // socket) would otherwise hold the connection and its descriptor forever.
  socket.end();
  const linger = setTimeout(() => socket.destroy(), opts.closeLingerMs ?? CLOSE_LINGER_MS);
  linger.unref();
  socket.once("close", () => clearTimeout(linger));
}

/** Listens on TCP or a Unix socket and serves every connection with `server`. */
export async function listenSocket(server: RpcServer, opts: SocketServeOptions = {}): Promise<SocketServer> {
  const transport = opts.path !== undefined ? "unix" : "tcp";
  const connections = new ConnectionSet();
  const maxConnections = opts.maxConnections ?? 1024;
  connectionIdleTimeout(opts.connectionIdleTimeoutMs);
  authTimeout(opts.authTimeoutMs);
  const idleTimeoutMs = opts.idleTimeoutMs;
  if (idleTimeoutMs !== undefined && !(idleTimeoutMs > 0)) {
    throw new RangeError(`idleTimeoutMs must be positive, got ${idleTimeoutMs}`);
  }
  /** Connections open now, for the idle timer. */
  let open = 0;
  let idleTimer: NodeJS.Timeout | null = null;
  const armIdle = (ms: number) => {
    if (idleTimer !== null) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      idleTimer = null;
      if (open > 0) return;
      void listener.close().then(() => opts.onIdle?.());
    }, ms);
  };
  const net: Server = createNetServer({ pauseOnConnect: true }, (accepted) => {
    // Counted here: an adopted connection no longer counts toward `net.maxConnections`.
    if (connections.size >= maxConnections || connections.isClosing) {
      accepted.destroy();
      return;
    }
    const { socket, input } = adopt(accepted, opts.readHighWaterMark);
    const tracked = connections.track(() => socket.destroy());
    open++;
    if (idleTimer !== null) {
      clearTimeout(idleTimer);
      idleTimer = null;
    }
    socket.once("close", () => {
      open--;
      if (open === 0 && idleTimeoutMs !== undefined && !connections.isClosing) armIdle(idleTimeoutMs);
      tracked.peerGone(peerGone(transport));
    });
    socket.on("error", () => {});
    void serveSocket(server, socket, input, transport, opts, tracked);
  });
  if (opts.path !== undefined && existsSync(opts.path)) unlinkSync(opts.path);
  await new Promise<void>((resolve, reject) => {
    net.once("error", reject);
    if (opts.path !== undefined) net.listen(opts.path, resolve);
    else net.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve);
  });
  const addr = net.address();
  const address =
    opts.path !== undefined
      ? { path: opts.path }
      : { host: (addr as AddressInfo).address, port: (addr as AddressInfo).port };
  let closed: Promise<void> | null = null;
  const listener: SocketServer = {
    address,
    close(closeOpts) {
      closed ??= (async () => {
        if (idleTimer !== null) clearTimeout(idleTimer);
        idleTimer = null;
        const stopped = new Promise<void>((resolve) => net.close(() => resolve()));
        await connections.close(closeOpts);
        await stopped;
        if (opts.path !== undefined && existsSync(opts.path)) unlinkSync(opts.path);
        unregister();
      })();
      return closed;
    },
  };
  const unregister = server.addListener(listener);
  if (idleTimeoutMs !== undefined) armIdle(opts.startupGraceMs ?? Math.max(idleTimeoutMs, 60_000));
  return listener;
}
