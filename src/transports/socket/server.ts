/**
 * Unix-domain and TCP socket servers: each accepted connection is one session, served call after
 * call until the peer closes it. No auth or TLS here (as in the reference).
 */
import { existsSync, unlinkSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";
import type { Connection } from "../../server/connection.js";
import type { RpcServer } from "../../server/server.js";
import { writableSink } from "../stdio/sink.js";

export interface SocketServeOptions {
  /** TCP host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** TCP port; 0 picks a free one. Default: 0. */
  readonly port?: number;
  /** Unix socket path; when set, `host`/`port` are ignored. */
  readonly path?: string;
  /** Most concurrent connections; extra ones are closed at once. Default: 1024. */
  readonly maxConnections?: number;
}

export interface SocketServer {
  /** `{ host, port }` for TCP, `{ path }` for a Unix socket. */
  readonly address: { readonly host: string; readonly port: number } | { readonly path: string };
  /** Stops accepting, lets calls in progress finish, then closes every connection. */
  close(): Promise<void>;
}

function serveSocket(server: RpcServer, socket: Socket, transport: string): void {
  socket.setNoDelay?.(true);
  const sink = writableSink(socket);
  const meta: Record<string, string> = {};
  if (socket.remoteAddress) meta.remote_addr = `${socket.remoteAddress}:${socket.remotePort ?? ""}`;
  const conn: Connection = { input: socket, write: sink.write, transport, transportMetadata: meta };
  server
    .serveConnection(conn)
    .catch(() => {})
    .finally(() => socket.end());
}

/** Listens on TCP or a Unix socket and serves every connection with `server`. */
export async function listenSocket(server: RpcServer, opts: SocketServeOptions = {}): Promise<SocketServer> {
  const transport = opts.path !== undefined ? "unix" : "tcp";
  const sockets = new Set<Socket>();
  const net: Server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    serveSocket(server, socket, transport);
  });
  net.maxConnections = opts.maxConnections ?? 1024;
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
  return {
    address,
    async close() {
      const closed = new Promise<void>((resolve) => net.close(() => resolve()));
      await server.drain();
      for (const s of sockets) s.destroy();
      await closed;
      if (opts.path !== undefined && existsSync(opts.path)) unlinkSync(opts.path);
    },
  };
}
