/**
 * `quiver-rpc/http`: the HTTP server (`listenHttp`, or `createHttpHandler` for a server or runtime of
 * your own), the HTTP client (`connectHttp`), and the authenticators and auth helpers.
 *
 * @module quiver-rpc/http
 */
export * from "../../auth/index.js";
export type { ClientAnswer, ClientCall, ClientCallHandler, ClientInterceptor } from "../../client/interceptors.js";
export {
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type NodeHttpTimeouts,
} from "../node/http-server.js";
export { DEFAULT_WRITE_HIGH_WATER_MARK } from "./backpressure.js";
export {
  connectHttp,
  DEFAULT_COMPRESS_MIN_BYTES,
  DEFAULT_HTTP_TIMEOUT_MS,
  DEFAULT_MAX_RESPONSE_BYTES,
  type HttpCapabilities,
  HttpClient,
  type HttpClientOptions,
  HttpError,
  type HttpRetryOptions,
  HttpSession,
  type HttpSessionOptions,
  type HttpStream,
  type HttpStreamCheckpoint,
} from "./client.js";
export type { UploadOptions } from "./client-upload.js";
export { DEFAULT_MAX_REQUEST_BYTES, type HttpServerOptions } from "./config.js";
export type { CorsOptions } from "./cors.js";
export { createHttpHandler, type HttpHandler } from "./handler.js";
export {
  ARROW_CONTENT_TYPE,
  ECHO_HEADER_PREFIX,
  SESSION_ACCEPT_HEADER,
  SESSION_CLOSE_HEADER,
  SESSION_HEADER,
  STICKY_DEFAULT_TTL_HEADER,
  STICKY_ECHO_HEADERS_HEADER,
  STICKY_ENABLED_HEADER,
} from "./headers.js";
export { type HttpListener, type HttpListenOptions, listenHttp } from "./listen.js";
export type { OAuthResourceOptions } from "./oauth.js";
export {
  DEFAULT_MAX_STICKY_SESSIONS,
  DEFAULT_MAX_WAITING_PER_SESSION,
  DEFAULT_STICKY_MAX_TTL_SECONDS,
  DEFAULT_STICKY_TTL_SECONDS,
  type StickyOptions,
  type StickySessions,
} from "./sticky.js";
export type { BodyTooLarge, UniversalRequest, UniversalResponse } from "./universal.js";
