/**
 * The WebSocket transport, client side: `connectWebSocket(url)` opens a WebSocket and returns a
 * `ClientTransport` for `RpcClient` (`connectWebSocketClient` does both).
 *
 * It uses the global `WebSocket` when there is one (browsers, Node 22+) and the `ws` package
 * otherwise (Node 20), loaded by dynamic import so a browser bundle never sees a `node:` module.
 * With `ws`, reading pauses while more than `readHighWaterMark` bytes wait unread and request
 * headers can be set (`headers`, for auth); the browser's `WebSocket` can do neither (a browser
 * authenticates with a cookie, sent with the upgrade, which the server's `authenticate` reads).
 * Writes wait while more than `writeHighWaterMark` bytes are queued (`bufferedAmount`).
 */
import { type ClientOptions, RpcClient } from "../../client/client.js";
import type { ClientTransport } from "../../client/transport.js";
import { frameworkError, RpcError } from "../../errors.js";
import { concatBytes, outgoingPieces, totalBytes } from "../../wire/ipc.js";
import { ByteQueue } from "../byte-queue.js";
import { binaryFrame, MAX_FAST_FRAME_PAYLOAD } from "./frame.js";
import { CloseCode, closeError, DEFAULT_MAX_SEND_BYTES, keepAlive } from "./shared.js";

/** Options of `connectWebSocket`. */
export interface WebSocketClientOptions {
  /** Request headers on the upgrade (e.g. `Authorization`); forces the `ws` package (browsers cannot set them). Default: none. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Which implementation: the global `WebSocket`, the `ws` package, or `auto` (global when present). Default: `auto`. */
  readonly implementation?: "auto" | "global" | "ws";
  /** How long opening may take, in ms. Default: 10 000. */
  readonly connectTimeoutMs?: number;
  /** Largest WebSocket message sent, in bytes (the byte stream is split). Default: 16 KiB. */
  readonly maxSendBytes?: number;
  /** Largest inbound WebSocket message, in bytes (`ws` only; a browser has its own limits). Default: 64 MiB. */
  readonly maxPayload?: number;
  /** Queued outbound bytes (`bufferedAmount`) above which writes wait. Default: 4 MiB. */
  readonly writeHighWaterMark?: number;
  /** Received-but-unread bytes above which reading pauses (`ws` only). Default: 4 MiB. */
  readonly readHighWaterMark?: number;
  /**
   * Interval between keep-alive pings, in ms (`ws` only: a browser cannot send pings); 0: none.
   * A server host that dies without closing the connection is noticed this way. Default: 30 000.
   */
  readonly pingIntervalMs?: number;
  /** How long a ping may go unanswered before the connection is dropped, in ms (`ws` only). Default: 10 000. */
  readonly pongTimeoutMs?: number;
}

/** The part of a WebSocket (browser or `ws`) this transport uses. */
interface Socket {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: SocketEvent) => void): void;
}

interface SocketEvent {
  readonly data?: unknown;
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
}

type SocketCtor = new (url: string, protocols?: string | string[]) => Socket;

const OPEN = 1;

function globalWebSocket(): SocketCtor | undefined {
  return (globalThis as { WebSocket?: SocketCtor }).WebSocket;
}

/** What `ws` gives beyond a WHATWG socket. */
interface WsExtras {
  readonly pause: () => void;
  readonly resume: () => void;
  readonly terminate: () => void;
  /** Listens for messages without `ws`'s WHATWG event objects: binary ones as bytes, text ones as null. */
  readonly onMessage: (listener: (data: Uint8Array | null) => void) => void;
  /**
   * Writes `chunks` as one masked frame straight to the socket (see `binaryFrame`) when they are
   * at most `MAX_FAST_FRAME_PAYLOAD` bytes; false (nothing written) otherwise.
   */
  readonly sendSmall: (chunks: readonly Uint8Array[], total: number) => boolean;
}

/** Opens `url` with the `ws` package; resolves to the open socket plus what `ws` adds. */
async function openWithWs(
  url: string,
  opts: WebSocketClientOptions,
  timeoutMs: number,
): Promise<{ socket: Socket } & WsExtras> {
  const { WebSocket: WsSocket } = await import("ws");
  const ws = new WsSocket(url, {
    headers: { ...opts.headers },
    maxPayload: opts.maxPayload ?? 64 * 1024 * 1024,
    perMessageDeflate: false,
    handshakeTimeout: timeoutMs,
  });
  // The socket `ws` writes to, from the upgrade's response (public API, unlike `ws._socket`).
  let raw: import("node:stream").Writable | null = null;
  ws.once("upgrade", (res) => {
    raw = res.socket;
  });
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: RpcError) => {
      if (settled) return;
      settled = true;
      ws.removeAllListeners("open");
      ws.terminate();
      reject(err);
    };
    ws.once("open", () => {
      if (settled) return;
      settled = true;
      ws.removeAllListeners("unexpected-response");
      resolve();
    });
    ws.once("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      const reason = res.headers["vgi-auth-reason"];
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 4096) body += c;
      });
      res.on("end", () => {
        const refused = status === 401;
        const err = frameworkError(
          "transport_error",
          `cannot connect to ${url}: HTTP ${status}${typeof reason === "string" ? ` (${reason})` : ""}${body ? ` ${body}` : ""}`,
        );
        fail(
          new RpcError(err.message, {
            type: err.type,
            kind: err.kind,
            code: refused ? "UNAUTHENTICATED" : "UNAVAILABLE",
            details: [{ "@type": "quiver.WebSocketRefused", status, reason: typeof reason === "string" ? reason : "" }],
          }),
        );
      });
      res.on("error", () => {});
    });
    ws.on("error", (err) => {
      fail(frameworkError("transport_error", `cannot connect to ${url}: ${err.message}`, { cause: err }));
    });
    ws.once("close", (code) => {
      fail(frameworkError("transport_error", `cannot connect to ${url}: closed (${code})`));
    });
  });
  ws.binaryType = "nodebuffer";
  keepAlive(ws, opts.pingIntervalMs ?? 30_000, opts.pongTimeoutMs ?? 10_000);
  const socket = raw as import("node:stream").Writable | null;
  return {
    socket: ws as unknown as Socket,
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    terminate: () => ws.terminate(),
    onMessage: (listener) => ws.on("message", (data, isBinary) => listener(isBinary ? wsBytes(data) : null)),
    sendSmall: (chunks, total) => {
      if (socket === null || total > MAX_FAST_FRAME_PAYLOAD) return false;
      if (total > 0) socket.write(binaryFrame(chunks, total, true, Buffer.allocUnsafe));
      return true;
    },
  };
}

/** A `ws` message's bytes (`nodebuffer`: a Buffer, or its fragments). */
function wsBytes(data: unknown): Uint8Array {
  return Array.isArray(data) ? Buffer.concat(data as Uint8Array[]) : (data as Uint8Array);
}

/** Opens `url` with a WHATWG `WebSocket`. */
async function openWithGlobal(ctor: SocketCtor, url: string, timeoutMs: number): Promise<Socket> {
  const ws = new ctor(url);
  ws.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      ws.close();
      reject(frameworkError("transport_error", `cannot connect to ${url}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    ws.addEventListener("open", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve();
    });
    const failed = (ev: SocketEvent) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A browser does not reveal why a handshake failed (a 401 looks like any other failure).
      reject(frameworkError("transport_error", `cannot connect to ${url}${ev.code ? ` (close ${ev.code})` : ""}`));
    };
    ws.addEventListener("error", failed);
    ws.addEventListener("close", failed);
  });
  return ws;
}

function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) {
    const parts = data as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
  return null;
}

/**
 * Opens a WebSocket to `url` (`ws://` or `wss://`) and returns it as a client transport. Rejects
 * with `transport_error` when it cannot be opened (code `UNAUTHENTICATED` on a 401, with the
 * `VGI-Auth-Reason`, when the `ws` package is used). A close other than 1000 makes the pending
 * read fail with the typed error for its code (1009: `message_too_large`).
 */
export async function connectWebSocket(url: string, opts: WebSocketClientOptions = {}): Promise<ClientTransport> {
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  const maxSend = opts.maxSendBytes ?? DEFAULT_MAX_SEND_BYTES;
  const writeHwm = opts.writeHighWaterMark ?? 4 * 1024 * 1024;
  const readHwm = opts.readHighWaterMark ?? 4 * 1024 * 1024;
  const ctor = globalWebSocket();
  const impl = opts.implementation ?? "auto";
  const useGlobal = impl === "global" || (impl === "auto" && ctor !== undefined && opts.headers === undefined);
  if (useGlobal && ctor === undefined) throw new TypeError("no global WebSocket in this runtime");

  let socket: Socket;
  let extras: WsExtras | null = null;
  if (useGlobal) socket = await openWithGlobal(ctor!, url, timeoutMs);
  else ({ socket, ...extras } = await openWithWs(url, opts, timeoutMs));
  const terminate = extras?.terminate ?? (() => socket.close());

  const input = new ByteQueue(readHwm, extras?.pause ?? (() => {}), extras?.resume ?? (() => {}));
  let closedError: RpcError | null = null;
  const closeWaiters = new Set<() => void>();
  const onMessage = (bytes: Uint8Array | null) => {
    if (bytes === null) {
      socket.close(CloseCode.unsupportedData, "binary messages only");
      return;
    }
    input.push(bytes);
  };
  if (extras !== null) extras.onMessage(onMessage);
  else socket.addEventListener("message", (ev) => onMessage(bytesOf(ev.data)));
  socket.addEventListener("close", (ev) => {
    const err = closeError(ev.code ?? CloseCode.abnormal, ev.reason ?? "");
    closedError = err ?? frameworkError("transport_error", "the server closed the connection");
    input.end(err);
    for (const w of closeWaiters) w();
    closeWaiters.clear();
  });
  socket.addEventListener("error", () => {});

  /** Waits until `bufferedAmount` is at most `limit` (no event exists for it: poll). */
  const drained = async (limit: number): Promise<void> => {
    let delay = 1;
    while (socket.bufferedAmount > limit) {
      if (socket.readyState !== OPEN) throw closedError ?? frameworkError("transport_error", "WebSocket is closed");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          closeWaiters.delete(resolve);
          resolve();
        }, delay);
        closeWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      delay = Math.min(delay * 2, 20);
    }
  };

  return {
    name: "ws",
    input,
    async write(chunks) {
      // A small write (a call's request) as one frame written here, else `ws` messages.
      const total = totalBytes(chunks);
      if (socket.readyState !== OPEN) throw closedError ?? frameworkError("transport_error", "WebSocket is closed");
      if (total <= maxSend && extras?.sendSmall(chunks, total)) {
        if (socket.bufferedAmount > writeHwm) await drained(writeHwm);
        return;
      }
      for (const m of outgoingPieces(chunks, concatBytes, maxSend)) {
        if (socket.readyState !== OPEN) throw closedError ?? frameworkError("transport_error", "WebSocket is closed");
        socket.send(m);
        if (socket.bufferedAmount > writeHwm) await drained(writeHwm);
      }
    },
    async close() {
      if (socket.readyState !== OPEN) return;
      // Let queued bytes go before the close frame, but never wait on a peer that stopped reading.
      await Promise.race([drained(0).catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
      const done = new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          terminate();
          resolve();
        }, 2000);
        closeWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      socket.close(CloseCode.normal);
      await done;
    },
  };
}

/** Connects an `RpcClient` over WebSocket (`connectWebSocket` plus the client options). */
export async function connectWebSocketClient(
  url: string,
  opts: WebSocketClientOptions & ClientOptions = {},
): Promise<RpcClient> {
  return new RpcClient(await connectWebSocket(url, opts), opts);
}
