/** Client side of the socket transports: Unix-domain and TCP. */
import { connect, type Socket } from "node:net";
import { type ClientOptions, RpcClient } from "../../client/client.js";
import type { ClientTransport } from "../../client/transport.js";
import { frameworkError } from "../../errors.js";
import { widenSendBuffer } from "../node/send-buffer.js";
import { CLOSE_FLUSH_MS, flushWithin, writableSink } from "../node/sink.js";
import { type SocketSource, socketSource } from "../node/socket-source.js";

export interface SocketClientOptions extends ClientOptions {
  /** How long connecting may take, in ms. Default: 10 000. */
  readonly connectTimeoutMs?: number;
}

/**
 * A client transport over a connected socket. `source`: the socket's reader when it was created
 * with `onread: source.onread` (see `socketSource`); by default its `data` events are read.
 */
export function socketTransport(socket: Socket, name: string, source?: SocketSource): ClientTransport {
  socket.setNoDelay?.(true);
  socket.on("error", () => {});
  const sink = writableSink(socket);
  return {
    name,
    input: source ? source.attach(socket) : (socket as AsyncIterable<Uint8Array>),
    write: sink.write,
    close: async () => {
      if (socket.destroyed) return;
      // Queued bytes may go first, for at most CLOSE_FLUSH_MS: then the socket is dropped with them.
      await flushWithin(sink, CLOSE_FLUSH_MS);
      socket.end();
      socket.destroy();
    },
  };
}

async function open(
  options: { path: string } | { host: string; port: number },
  name: string,
  opts: SocketClientOptions,
): Promise<RpcClient> {
  const where = "path" in options ? options.path : `${options.host}:${options.port}`;
  const timeout = opts.connectTimeoutMs ?? 10_000;
  const source = socketSource();
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ ...options, onread: source.onread });
    const timer = setTimeout(() => {
      s.destroy();
      reject(frameworkError("transport_error", `cannot connect to ${name} ${where}: timed out after ${timeout} ms`));
    }, timeout);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (err) => {
      clearTimeout(timer);
      reject(frameworkError("transport_error", `cannot connect to ${name} ${where}: ${err.message}`, { cause: err }));
    });
  });
  if ("path" in options) widenSendBuffer(socket);
  return new RpcClient(socketTransport(socket, name, source), opts);
}

/** Connects to a server on a Unix-domain socket. */
export function connectUnix(path: string, opts: SocketClientOptions = {}): Promise<RpcClient> {
  return open({ path }, "unix", opts);
}

/** Connects to a server on TCP. */
export function connectTcp(host: string, port: number, opts: SocketClientOptions = {}): Promise<RpcClient> {
  return open({ host, port }, "tcp", opts);
}
