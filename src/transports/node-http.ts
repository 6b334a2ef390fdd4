/**
 * Compatibility shim: the listeners' `node:http` server moved to `node/http-server.ts`. Only
 * `src/transports/http` still imports this path (it is being split into modules in parallel);
 * delete this file once it imports `../node/http-server.js`.
 */
export {
  createNodeHttpServer,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type NodeHttpTimeouts,
} from "./node/http-server.js";
