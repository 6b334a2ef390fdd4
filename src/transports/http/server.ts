/**
 * The HTTP transport, server side: where its parts live.
 *
 *   routes.ts        the pure route parser
 *   config.ts        the options, checked once per handler (cors.ts, oauth.ts, pages.ts,
 *                    sticky-config.ts)
 *   core.ts          one UniversalRequest in, one UniversalResponse out, in small steps:
 *                    authenticate.ts, body.ts (reading, decoding), budget.ts, requests.ts,
 *                    call-env.ts, unary.ts, streams.ts (with tokens.ts), replies.ts,
 *                    decorate.ts (pages, 401 notes), cors.ts, respond.ts
 *   sticky.ts        sticky sessions' registry (sticky-request.ts: a request's session;
 *                    session-token.ts: the sealed tokens)
 *   calls.ts         the one seam onto the dispatch core
 *   node-adapter.ts  node:http (with backpressure.ts), fetch-adapter.ts  fetch-style
 *   handler.ts       createHttpHandler, listen.ts  listenHttp
 *
 * This module keeps the names importers have used from it.
 */
export { DEFAULT_CALL_TOKEN_CACHE_ENTRIES, DEFAULT_MAX_REQUEST_BYTES, type HttpServerOptions } from "./config.js";
export { createHttpHandler, type HttpHandler } from "./handler.js";
export {
  ACCEPT_MAX_RESPONSE_BYTES_HEADER,
  ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER,
  ARROW_CONTENT_TYPE,
  AUTH_REASON_HEADER,
  EXTERNALIZATION_ENABLED_HEADER,
  MAX_REQUEST_BYTES_HEADER,
  MAX_RESPONSE_BYTES_HEADER,
  REQUEST_ID_HEADER,
  RPC_ERROR_HEADER,
  SUPPORTED_ENCODINGS_HEADER,
} from "./headers.js";
export { type HttpListener, type HttpListenOptions, listenHttp } from "./listen.js";
