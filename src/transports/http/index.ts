export * from "../../auth/index.js";
export {
  ARROW_CONTENT_TYPE,
  createHttpHandler,
  DEFAULT_MAX_REQUEST_BYTES,
  type HttpHandler,
  type HttpListener,
  type HttpServerOptions,
  listenHttp,
} from "./server.js";
