/** `listenHttp`: the handler on a `node:http` server of its own. */
import type { Server } from "node:http";
import { type CloseOptions, graceOf } from "../../server/connections.js";
import type { RpcServer } from "../../server/server.js";
import { createNodeHttpServer, type NodeHttpTimeouts } from "../node/http-server.js";
import type { HttpServerOptions } from "./config.js";
import { createHttpHandler, type HttpHandler } from "./handler.js";

/** A listening HTTP server. */
export interface HttpListener {
  readonly server: Server;
  /** The request listener serving it (`waitingRequests` and the fetch-style form). */
  readonly handler: HttpHandler;
  readonly host: string;
  readonly port: number;
  /** The base URL, e.g. `http://127.0.0.1:8080` (the prefix not included). */
  readonly url: string;
  /**
   * Closes gracefully: stops accepting connections and closes idle ones, lets calls in flight
   * finish within `graceMs` (default 10 s; see `HttpHandler.close`), aborts the rest, then closes
   * every connection. Leaves the server's other listeners serving. `server.close()` calls it too.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** Options of `listenHttp`: the transport's, and the time limits of the `node:http` server it creates. */
export interface HttpListenOptions extends HttpServerOptions, NodeHttpTimeouts {
  /** Host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default: 0. */
  readonly port?: number;
}

/** After the calls have answered, how long their answers may take to be written before connections drop. */
const ANSWER_FLUSH_MS = 1_000;

/** Serves `server` over HTTP on `host:port` (port 0 picks a free port). */
export async function listenHttp(server: RpcServer, options: HttpListenOptions = {}): Promise<HttpListener> {
  const handler = createHttpHandler(server, options);
  const http = createNodeHttpServer(handler, options);
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, host, () => {
      http.off("error", reject);
      resolve();
    });
  });
  const addr = http.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : (options.port ?? 0);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closed: Promise<void> | null = null;
  const shutdown = async (opts: CloseOptions | undefined): Promise<void> => {
    graceOf(opts); // checked before anything closes
    unregister();
    const ended = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeIdleConnections();
    await handler.close(opts);
    // Answers still being written get a moment; connections go idle as they finish.
    const sweep = setInterval(() => http.closeIdleConnections(), 25);
    const flushed = setTimeout(() => http.closeAllConnections(), ANSWER_FLUSH_MS);
    await ended;
    clearInterval(sweep);
    clearTimeout(flushed);
  };
  const listener: HttpListener = {
    server: http,
    handler,
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close(opts) {
      closed ??= shutdown(opts);
      return closed;
    },
  };
  const unregister = server.addListener(listener);
  return listener;
}
