/** The `node:http` server both the HTTP and the WebSocket listeners create, with its time limits. */
import { createServer, type RequestListener, type Server } from "node:http";

/** How often node:http checks `headersTimeoutMs` and `requestTimeoutMs`. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;
/** Default `headersTimeoutMs`: 30 s. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
/** Default `requestTimeoutMs`: 300 s. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** Default `keepAliveTimeoutMs`: 30 s. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 30_000;

/** Time limits of a listener's `node:http` server. */
export interface NodeHttpTimeouts {
  /** How long a client may take to send a request's headers, in ms (then 408 and close; 0: no limit). Default: 30 000. */
  readonly headersTimeoutMs?: number;
  /** How long a client may take to send a whole request, body included, in ms (then 408 and close; 0: no limit). Default: 300 000. */
  readonly requestTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept open for the client's next request, in ms. Default: 30 000. */
  readonly keepAliveTimeoutMs?: number;
}

/** A `node:http` server for `listener` with `timeouts` applied. */
export function createNodeHttpServer(listener: RequestListener, timeouts: NodeHttpTimeouts = {}): Server {
  const http = createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
      requestTimeout: timeouts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      // node:http enforces both timeouts on this tick (its default, 30 s, would let a 30 s limit run to 60).
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    },
    listener,
  );
  http.keepAliveTimeout = timeouts.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  return http;
}
