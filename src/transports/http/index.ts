export * from "../../auth/index.js";
export {
  connectHttp,
  DEFAULT_HTTP_TIMEOUT_MS,
  DEFAULT_MAX_RESPONSE_BYTES,
  HttpClient,
  type HttpClientOptions,
  HttpError,
  HttpStream,
} from "./client.js";
export {
  ARROW_CONTENT_TYPE,
  createHttpHandler,
  DEFAULT_MAX_REQUEST_BYTES,
  type HttpHandler,
  type HttpListener,
  type HttpServerOptions,
  listenHttp,
} from "./server.js";
