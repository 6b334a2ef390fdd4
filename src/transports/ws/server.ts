/**
 * The WebSocket transport, server side (on the `ws` package). Each WebSocket is one session: the
 * same lockstep byte stream a pipe carries, as binary messages whose concatenation is the
 * stream, served call after call until the peer closes it.
 *
 * It attaches to a `node:http` server through `upgrade` handling (so one port serves HTTP and
 * WebSocket: `attachWebSocket(listener.server, rpc)` next to `listenHttp`), or owns a port
 * (`listenWebSocket`). The upgrade request is authenticated with the same `authenticate` option
 * as HTTP: a refused upgrade is answered 401 (with `VGI-Auth-Reason`) and no socket is opened.
 * `ctx.transportMetadata` carries `remote_addr` and `user_agent` from the upgrade; cookies are
 * refused (`cookie_not_allowed`) as on every session transport.
 *
 * Limits: one inbound message is at most `maxPayload` bytes (larger: close 1009); reading pauses
 * while more than `readHighWaterMark` received bytes wait unread, and writes wait while more than
 * `writeHighWaterMark` bytes are queued, so a slow peer never makes the server buffer without
 * bound. Keep-alive pings drop a peer that stops answering. Close codes: see `CloseCode`.
 */

import { type IncomingMessage, type RequestListener, type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { type CrossSiteOptions, crossSitePolicy, crossSiteVerdict } from "../../auth/cross-site.js";
import { headersOf, peerCertificateOf } from "../../auth/node.js";
import { authenticateWithin, authTimeout } from "../../auth/timeout.js";
import { type Authenticator, type AuthRequest, AuthUnavailableError, authReasonOf } from "../../auth/types.js";
import { frameworkError, type RpcError } from "../../errors.js";
import { ANONYMOUS, type AuthContext } from "../../protocol/context.js";
import type { Connection } from "../../server/connection.js";
import { type CloseOptions, ConnectionSet, connectionIdleTimeout } from "../../server/connections.js";
import { peerGone } from "../../server/dispatcher.js";
import type { RpcServer } from "../../server/server.js";
import { concatBytes, outgoingPieces, totalBytes } from "../../wire/ipc.js";
import { ByteQueue } from "../byte-queue.js";
import { bodyBuffer } from "../node/buffer-pool.js";
import { createNodeHttpServer, type NodeHttpTimeouts } from "../node/http-server.js";
import { binaryFrame, MAX_FAST_FRAME_PAYLOAD } from "./frame.js";
import { CloseCode, closeError, DEFAULT_MAX_SEND_BYTES, keepAlive } from "./shared.js";

/** Default `path`. */
export const DEFAULT_WS_PATH = "/ws";
/** Default `maxPayload`: 64 MiB (quiver's client sends messages of at most 16 KiB unless told otherwise). */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;

/**
 * Options of `attachWebSocket` / `listenWebSocket`. `trustedOrigins` (and the CSRF token names)
 * decide which pages may open a connection with the user's cookies: an upgrade that carries
 * cookies from a page of another, untrusted origin is refused 403 (cross-site WebSocket
 * hijacking); see `CrossSiteOptions`.
 */
export interface WebSocketServerOptions extends CrossSiteOptions {
  /** URL path accepting upgrades (query string ignored); other paths are left to other `upgrade` listeners, or answered 404. Default: `/ws`. */
  readonly path?: string;
  /** Resolves each upgrade request's caller; throwing answers 401 (503 for an `AuthUnavailableError`) and opens no socket. Default: every caller anonymous. */
  readonly authenticate?: Authenticator;
  /** How long `authenticate` may take to answer, in ms; longer answers 503 (`Retry-After: 1`). Default: 30 000. */
  readonly authTimeoutMs?: number;
  /** Largest single inbound WebSocket message, in bytes; a larger one closes the connection with 1009. Default: 64 MiB. */
  readonly maxPayload?: number;
  /** Largest WebSocket message the server sends, in bytes (the byte stream is split). Default: 16 KiB. */
  readonly maxSendBytes?: number;
  /** Queued outbound bytes (`bufferedAmount`) above which writes wait for the peer. Default: 4 MiB. */
  readonly writeHighWaterMark?: number;
  /** Received-but-unread bytes above which the server stops reading the socket. Default: 4 MiB. */
  readonly readHighWaterMark?: number;
  /** Interval between keep-alive pings, in ms (0: no pings). Default: 30 000. */
  readonly pingIntervalMs?: number;
  /** How long a ping may go unanswered before the connection is dropped, in ms. Default: 10 000. */
  readonly pongTimeoutMs?: number;
  /** Most concurrent connections; further upgrades are answered 503. Default: 1024. */
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
  /** How long `close()` waits for peers to answer the 1001 close before dropping them, in ms. Default: 2 000. */
  readonly closeTimeoutMs?: number;
}

/** A WebSocket endpoint serving one `RpcServer`. */
export interface WebSocketEndpoint {
  /** The path upgrades are accepted on. */
  readonly path: string;
  /** Open connections. */
  readonly connections: number;
  /**
   * Handles one `upgrade` event; false when the path is not this endpoint's (the caller decides
   * what to answer). `attachWebSocket` calls it for you.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /**
   * Stops accepting and closes this endpoint's connections with 1001: idle ones at once, busy ones
   * after their call; calls still running after `graceMs` are aborted (`ctx.signal`, a `cancelled`
   * error to their client). Other listeners of the server keep serving.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** A WebSocket endpoint on its own port (HTTP requests go to `onRequest`, if given). */
export interface WebSocketListener extends WebSocketEndpoint {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /** The URL a client connects to, e.g. `ws://127.0.0.1:8080/ws`. */
  readonly url: string;
}

const utf8 = new TextEncoder();

/** Answers an upgrade with a plain HTTP response and closes the socket (no WebSocket opened). */
function refuse(socket: Duplex, status: number, headers: [string, string][], body: unknown): void {
  if (socket.destroyed) return;
  const bytes = utf8.encode(JSON.stringify(body));
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${bytes.byteLength}`,
    ...headers.map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), bytes]));
  socket.once("finish", () => socket.destroy());
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

/** Writes small writes as single frames (see `binaryFrame`) and tells when they reached the OS. */
interface SmallFrameWriter {
  /** Writes `chunks` as one frame if they are small enough; false (nothing written) otherwise. */
  write(chunks: readonly Uint8Array[]): boolean;
  /** Resolves once every frame written here so far has been handed to the OS (or the socket closed). */
  flushed(): Promise<void>;
  /** The connection closed: nothing more will be acknowledged. */
  closed(): void;
}

/**
 * A server's small-frame writer on `socket`, the socket `ws` writes to (the caller checks the
 * connection is open and under its high-water mark). Frames are acknowledged by counting the
 * socket's write callbacks, which run in order: no promise per write.
 */
function smallFrameWriter(socket: Duplex, maxSend: number): SmallFrameWriter {
  const largest = Math.min(maxSend, MAX_FAST_FRAME_PAYLOAD);
  let written = 0;
  let acked = 0;
  let waiters: Array<() => void> = [];
  const settle = () => {
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  };
  const onWritten = () => {
    acked++;
    if (acked === written && waiters.length > 0) settle();
  };
  return {
    write(chunks) {
      const total = totalBytes(chunks);
      if (total > largest) return false;
      if (total === 0) return true;
      written++;
      socket.write(binaryFrame(chunks, total, false, Buffer.allocUnsafe), onWritten);
      return true;
    },
    flushed() {
      if (acked === written || socket.destroyed) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    closed() {
      acked = written;
      settle();
    },
  };
}

/** Creates a WebSocket endpoint for `server`; feed it `upgrade` events (or use `attachWebSocket`). */
export function createWebSocketEndpoint(server: RpcServer, opts: WebSocketServerOptions = {}): WebSocketEndpoint {
  const path = opts.path ?? DEFAULT_WS_PATH;
  const maxSend = opts.maxSendBytes ?? DEFAULT_MAX_SEND_BYTES;
  const writeHwm = opts.writeHighWaterMark ?? 4 * 1024 * 1024;
  const readHwm = opts.readHighWaterMark ?? 4 * 1024 * 1024;
  const pingInterval = opts.pingIntervalMs ?? 30_000;
  const pongTimeout = opts.pongTimeoutMs ?? 10_000;
  const maxConnections = opts.maxConnections ?? 1024;
  const idleTimeoutMs = connectionIdleTimeout(opts.connectionIdleTimeoutMs);
  const closeTimeout = opts.closeTimeoutMs ?? 2_000;
  const crossSitePolicyOf = crossSitePolicy(opts);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const open = new Set<WebSocket>();
  const connections = new ConnectionSet();
  let pendingUpgrades = 0;
  let accepting = true;

  const authTimeoutMs = authTimeout(opts.authTimeoutMs);
  type Verdict =
    | { readonly auth: AuthContext }
    | { readonly reason: string; readonly detail: string }
    | { readonly retryAfterSeconds: number };
  const authenticate = async (req: IncomingMessage, reqPath: string): Promise<Verdict> => {
    if (opts.authenticate === undefined) return { auth: ANONYMOUS };
    const request: AuthRequest = {
      method: (req.method ?? "GET").toUpperCase(),
      path: reqPath,
      headers: headersOf(req),
      remoteAddr: req.socket.remoteAddress ?? "",
      peerCertificate: peerCertificateOf(req),
    };
    try {
      return { auth: await authenticateWithin(opts.authenticate, request, authTimeoutMs) };
    } catch (err) {
      if (err instanceof AuthUnavailableError) {
        // As over HTTP: the authority could not be asked, which says nothing of the credential.
        server.logger.warn({ remote_addr: request.remoteAddr, transport: "ws", err }, "Authentication unavailable");
        return { retryAfterSeconds: err.retryAfterSeconds };
      }
      const reason = authReasonOf(err);
      server.logger.warn({ remote_addr: request.remoteAddr, auth_reason: reason, transport: "ws" }, "Auth failure");
      return { reason, detail: `authentication rejected: ${(err as Error)?.message ?? String(err)}` };
    }
  };

  const serve = (
    ws: WebSocket,
    socket: Duplex,
    req: IncomingMessage,
    auth: AuthContext,
    csrfVerified: boolean,
  ): void => {
    open.add(ws);
    const tracked = connections.track(() => ws.terminate());
    ws.binaryType = "nodebuffer";
    const input = new ByteQueue(
      readHwm,
      () => ws.pause(),
      () => ws.resume(),
      bodyBuffer,
    );
    let inputEnded = false;
    let closed: RpcError | null = null;
    const closeWaiters = new Set<(err: RpcError) => void>();
    const gone = (): RpcError => closed ?? frameworkError("transport_error", "peer went away");

    ws.on("message", (data, isBinary) => {
      if (!isBinary) {
        ws.close(CloseCode.unsupportedData, "binary messages only");
        return;
      }
      input.push(toBytes(data));
    });
    ws.on("error", (err) => {
      server.logger.debug({ err, transport: "ws" }, "WebSocket error");
    });
    ws.on("close", (code, reason) => {
      open.delete(ws);
      frames.closed();
      inputEnded = true;
      closed = closeError(code, reason.toString()) ?? frameworkError("transport_error", "peer closed the connection");
      tracked.peerGone(peerGone("ws"));
      input.end(closeError(code, reason.toString()));
      for (const w of closeWaiters) w(closed);
      closeWaiters.clear();
    });

    keepAlive(ws, pingInterval, pongTimeout);

    /** Sends `m`; resolves once it (and every message before it) reached the OS. */
    const sendAcked = (m: Uint8Array): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const onClose = (err: RpcError) => reject(err);
        closeWaiters.add(onClose);
        ws.send(m, { binary: true }, (err) => {
          closeWaiters.delete(onClose);
          if (err)
            reject(closed ?? frameworkError("transport_error", `peer went away: ${err.message}`, { cause: err }));
          else resolve();
        });
      });

    // The last acknowledged message: its callback runs once it (and every message before it) reached the OS.
    let lastSent: Promise<void> = Promise.resolve();
    /** Sends the messages of one write; the last one, and any that fills the buffer, is acknowledged. */
    const sendCorked = async (pieces: readonly Uint8Array[]): Promise<void> => {
      for (let i = 0; i < pieces.length; i++) {
        if (ws.readyState !== ws.OPEN) throw gone();
        const m = pieces[i]!;
        if (i < pieces.length - 1 && ws.bufferedAmount + m.byteLength <= writeHwm) {
          ws.send(m, { binary: true });
          continue;
        }
        const sent = sendAcked(m);
        sent.catch(() => {});
        lastSent = sent;
        if (ws.bufferedAmount > writeHwm) {
          socket.uncork();
          try {
            await sent;
          } finally {
            socket.cork();
          }
        }
      }
    };
    const frames = smallFrameWriter(socket, maxSend);
    // A small write is one frame written here; others leave as `ws` messages in one vectored write (corked).
    const write = async (chunks: readonly Uint8Array[]): Promise<void> => {
      if (ws.readyState !== ws.OPEN) throw gone();
      if (ws.bufferedAmount <= writeHwm && frames.write(chunks)) {
        if (ws.bufferedAmount > writeHwm) await frames.flushed();
        return;
      }
      socket.cork();
      try {
        await sendCorked(outgoingPieces(chunks, concatBytes, maxSend));
      } finally {
        socket.uncork();
      }
    };

    const meta: Record<string, string> = {};
    if (req.socket.remoteAddress) meta.remote_addr = req.socket.remoteAddress;
    const ua = req.headers["user-agent"];
    if (ua) meta.user_agent = ua;
    // A failed send has closed the connection, which the next read or write reports.
    const flush = () => Promise.all([lastSent.catch(() => {}), frames.flushed()]).then(() => {});
    let idled = false;
    const conn: Connection = {
      input,
      write,
      flush,
      transport: "ws",
      transportMetadata: meta,
      auth,
      ...(csrfVerified ? {} : { csrfVerified }),
      closing: tracked.closing,
      signal: tracked.signal,
      ...(idleTimeoutMs !== undefined ? { idleTimeoutMs, onIdleTimeout: () => (idled = true) } : {}),
    };
    const session = server.serveConnection(conn);
    tracked.served(session);
    session.then(
      () => {
        if (inputEnded) ws.close(CloseCode.normal);
        else if (idled) ws.close(CloseCode.normal, "idle timeout");
        else if (server.draining || connections.isClosing) ws.close(CloseCode.goingAway, "server shutting down");
        else ws.close(CloseCode.policyViolation, "the byte stream is not vgi-rpc");
      },
      (err: unknown) => {
        if (inputEnded) return;
        server.logger.error({ err, transport: "ws" }, "WebSocket session failed");
        ws.close(CloseCode.internalError, "internal error");
      },
    );
  };

  const endpoint: WebSocketEndpoint = {
    path,
    get connections() {
      return open.size;
    },
    handleUpgrade(req, socket, head) {
      const url = req.url ?? "/";
      const q = url.indexOf("?");
      const reqPath = q < 0 ? url : url.slice(0, q);
      if (reqPath !== path) return false;
      socket.on("error", () => {});
      if (!accepting) {
        refuse(socket, 503, [], { error: "unavailable", detail: "server shutting down" });
        return true;
      }
      if (open.size + pendingUpgrades >= maxConnections) {
        refuse(socket, 503, [["Retry-After", "1"]], { error: "unavailable", detail: "too many connections" });
        return true;
      }
      // Cookies sent by a page of an untrusted origin: no socket, whatever they authenticate.
      const crossSite = crossSiteVerdict(crossSitePolicyOf, headersOf(req));
      if (crossSite.refused !== null) {
        server.logger.warn(
          { remote_addr: req.socket.remoteAddress, origin: req.headers.origin, transport: "ws" },
          "Cross-site upgrade refused",
        );
        refuse(socket, 403, [["Cache-Control", "no-store"]], { error: "forbidden", detail: crossSite.refused });
        return true;
      }
      pendingUpgrades++;
      void authenticate(req, reqPath).then((verdict) => {
        pendingUpgrades--;
        if (socket.destroyed) return;
        if ("auth" in verdict) {
          const { auth } = verdict;
          wss.handleUpgrade(req, socket, head, (ws) => serve(ws, socket, req, auth, crossSite.csrfVerified));
          return;
        }
        if ("retryAfterSeconds" in verdict) {
          refuse(
            socket,
            503,
            [
              ["Retry-After", String(Math.ceil(verdict.retryAfterSeconds))],
              ["Cache-Control", "no-store"],
            ],
            { error: "unavailable", detail: "authentication authority unavailable" },
          );
          return;
        }
        refuse(
          socket,
          401,
          [
            ["VGI-Auth-Reason", verdict.reason],
            ["Cache-Control", "no-store"],
            ["WWW-Authenticate", "Bearer"],
          ],
          { error: "unauthorized", reason: verdict.reason, detail: verdict.detail },
        );
      });
      return true;
    },
    close(closeOpts) {
      closed ??= closeAll(closeOpts);
      return closed;
    },
  };
  let closed: Promise<void> | null = null;
  const closeAll = async (closeOpts: CloseOptions | undefined): Promise<void> => {
    accepting = false;
    await connections.close(closeOpts);
    const all = [...open];
    await Promise.all(
      all.map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === ws.CLOSED) return resolve();
            const timer = setTimeout(() => ws.terminate(), closeTimeout);
            ws.once("close", () => {
              clearTimeout(timer);
              resolve();
            });
            ws.close(CloseCode.goingAway, "server shutting down");
          }),
      ),
    );
    wss.close();
    unregister();
  };
  const unregister = server.addListener(endpoint);
  return endpoint;
}

/**
 * Serves WebSocket upgrades on `path` of an existing `node:http` (or `https`) server, beside
 * whatever it serves over HTTP. Upgrades on other paths are answered 404 unless another
 * `upgrade` listener is registered. `close()` detaches and closes the WebSocket connections only.
 */
export function attachWebSocket(http: Server, server: RpcServer, opts: WebSocketServerOptions = {}): WebSocketEndpoint {
  const endpoint = createWebSocketEndpoint(server, opts);
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (endpoint.handleUpgrade(req, socket, head)) return;
    if (http.listenerCount("upgrade") === 1) {
      socket.on("error", () => {});
      refuse(socket, 404, [], { error: "not found", detail: `WebSocket endpoint is ${endpoint.path}` });
    }
  };
  http.on("upgrade", onUpgrade);
  return {
    path: endpoint.path,
    get connections() {
      return endpoint.connections;
    },
    handleUpgrade: endpoint.handleUpgrade,
    async close(closeOpts) {
      http.off("upgrade", onUpgrade);
      await endpoint.close(closeOpts);
    },
  };
}

/** Options of `listenWebSocket`, with the time limits of the `node:http` server it creates. */
export interface WebSocketListenOptions extends WebSocketServerOptions, NodeHttpTimeouts {
  /** Host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default: 0. */
  readonly port?: number;
  /** Plain HTTP requests on the same port (e.g. `createHttpHandler(rpc)`). Default: 426 Upgrade Required. */
  readonly onRequest?: RequestListener;
}

/** Serves `server` over WebSocket on its own port (and HTTP too, when `onRequest` is given). */
export async function listenWebSocket(
  server: RpcServer,
  opts: WebSocketListenOptions = {},
): Promise<WebSocketListener> {
  const http = createNodeHttpServer(
    opts.onRequest ??
      ((_req, res) => {
        res.writeHead(426, { Upgrade: "websocket", "Content-Type": "text/plain" });
        res.end(`This is a vgi-rpc WebSocket endpoint: connect to ${opts.path ?? DEFAULT_WS_PATH} with a WebSocket.\n`);
      }),
    opts,
  );
  const endpoint = attachWebSocket(http, server, opts);
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(opts.port ?? 0, host, () => {
      http.off("error", reject);
      resolve();
    });
  });
  const addr = http.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : (opts.port ?? 0);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    server: http,
    host,
    port,
    url: `ws://${urlHost}:${port}${endpoint.path}`,
    path: endpoint.path,
    get connections() {
      return endpoint.connections;
    },
    handleUpgrade: endpoint.handleUpgrade,
    async close(closeOpts) {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      await endpoint.close(closeOpts);
      http.closeIdleConnections();
      await closed;
    },
  };
}
