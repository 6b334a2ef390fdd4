/** `listenHttp`: the handler on a `node:http` server of its own. */
import type { Server } from "node:http";
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
  /** Stops accepting connections and closes idle ones. */
  close(): Promise<void>;
}

/** Options of `listenHttp`: the transport's, and the time limits of the `node:http` server it creates. */
export interface HttpListenOptions extends HttpServerOptions, NodeHttpTimeouts {
  /** Host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default: 0. */
  readonly port?: number;
}

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
  return {
    server: http,
    handler,
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
      }),
  };
}
