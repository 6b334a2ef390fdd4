/** `createHttpHandler`: the transport core behind its node:http, fetch-style and universal entry points. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { CloseOptions } from "../../server/connections.js";
import type { RpcServer } from "../../server/server.js";
import { DEFAULT_WRITE_HIGH_WATER_MARK } from "./backpressure.js";
import type { HttpServerOptions } from "./config.js";
import { createHttpCore } from "./core.js";
import { fetchHandler } from "./fetch-adapter.js";
import { nodeListener } from "./node-adapter.js";
import type { StickySessions } from "./sticky.js";
import type { UniversalRequest, UniversalResponse } from "./universal.js";

/** A `node:http` request listener that also offers the fetch-style and universal forms. */
export interface HttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** The same transport as a fetch-style handler (`Request` in, `Response` out). */
  fetch(request: Request): Promise<Response>;
  /**
   * The same transport on plain values, for an adapter to another server or runtime. Rejects only
   * when the transport itself fails; answer 500 then.
   */
  handle(request: UniversalRequest): Promise<UniversalResponse>;
  readonly server: RpcServer;
  readonly options: HttpServerOptions;
  /**
   * Requests read by the node:http listener that wait for their connection's earlier answers to
   * be written (see `writeHighWaterMark`); dropped when their connection closes.
   */
  readonly waitingRequests: number;
  /** Calls in flight (a stream's turn counts while it runs; an idle stream holds nothing). */
  readonly activeCalls: number;
  /**
   * The sticky sessions (`HttpServerOptions.sticky`): how many are open, draining them before a
   * rotation, closing them all; null when the handler keeps none.
   */
  readonly sessions: StickySessions | null;
  /**
   * Closes the transport gracefully: calls arriving from now on are answered 503
   * (`server_draining`), calls in flight get `graceMs` (default 10 s) to finish, then are aborted
   * (their `ctx.signal` fires; they answer with a `cancelled` error), then every sticky session
   * is closed (its state's `close()` runs). Resolves when they have answered. Idempotent.
   * `listenHttp`'s `close` does this, then closes the connections.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** Creates the HTTP transport for `server` as a `node:http` listener with `.fetch` and `.handle` forms. */
export function createHttpHandler(server: RpcServer, options: HttpServerOptions = {}): HttpHandler {
  const core = createHttpCore(server, options);
  const node = nodeListener(core, server, options.writeHighWaterMark ?? DEFAULT_WRITE_HIGH_WATER_MARK);
  const handler = Object.assign(node.listener, {
    fetch: fetchHandler(core),
    handle: core.handle,
    close: core.close,
    sessions: core.sessions,
    server,
    options,
  });
  return Object.defineProperties(handler, {
    waitingRequests: { get: () => node.waiting, enumerable: true },
    activeCalls: { get: () => core.activeCalls, enumerable: true },
  }) as HttpHandler;
}
