/**
 * quiver: vgi-rpc for Node.js. The package root has what a service or a caller writes against:
 * declarations and types, `createServer`/`bind`, `RpcClient`/`proxy` and the client's seams,
 * errors, auth helpers, observability (call records, statistics, the access log) and the batch
 * helpers. Each transport is a subpath export (`quiver-rpc/stdio`, `/socket`, `/http`, `/ws`,
 * `/ws/client`, `/memory`, `/shm`); the framing and the transports' shared plumbing are not exported.
 *
 * @module quiver-rpc
 */

export {
  anonymous,
  authenticated,
  authenticatedUser,
  type GrantOptions,
  hasCapability,
  optionalUser,
  requireCapability,
  requireRole,
  withGrants,
} from "./auth/types.js";
export {
  type CallChannel,
  type CallOptions,
  type CallTarget,
  type ClientAnswer,
  type ClientCall,
  type ClientCallHandler,
  type ClientInterceptor,
  type ClientOptions,
  type ClientSideChannel,
  type ClientTransport,
  DEFAULT_PIPELINE_WINDOW,
  type ExchangeSession,
  MAX_IN_FLIGHT,
  type MethodDescription,
  PIPELINE_UNWRITTEN_BYTES,
  type PipelineOptions,
  type PointerResolver,
  type ProducerOptions,
  type ProducerStream,
  type ProtocolClient,
  type ProtocolListing,
  proxy,
  type RawStream,
  type RequestMetadata,
  RpcClient,
  type ServiceDescription,
  type StreamChannel,
  type StreamOpenOptions,
  type StreamOptions,
} from "./client/index.js";
export {
  ERROR_CODES,
  type ErrorCode,
  type ErrorDetail,
  type FrameworkErrorKind,
  InvalidValueError,
  type InvalidValueType,
  NonIpcBytesError,
  RpcError,
  type RpcErrorOptions,
  RuntimeError,
  ValueError,
} from "./errors.js";
export {
  type ContentEncoding,
  type ExternalCompression,
  ExternalFetchError,
  type ExternalizePolicy,
  ExternalRef,
  ExternalResolver,
  type ExternalStorage,
  ExternalStorageError,
  FakeStorage,
  type FetchOptions as ExternalFetchOptions,
  httpsOnly,
  isPointerBatch,
  LOCATION_FETCH_MS_KEY,
  LOCATION_SHA256_KEY,
  LOCATION_SOURCE_KEY,
  loopbackOnly,
  makePointerBatch,
  publishExternal,
  redactUrl,
  type UploadUrl,
  type UploadUrlProvider,
  type UrlValidator,
} from "./external/index.js";
export {
  batchFromColumns,
  batchFromRows,
  columnFromBatch,
  EMPTY_SCHEMA,
  emptyBatch,
  rowsFromBatch,
  schemaOf,
} from "./protocol/batch.js";
export {
  ANONYMOUS,
  type AuthContext,
  type CallContext,
  type Injected,
  type LogExtra,
  type LogLevel,
} from "./protocol/context.js";
export {
  type ContextOf,
  defineProtocol,
  type ExchangeDecl,
  type ExchangeHandler,
  exchange,
  type HandlerOf,
  type Implementation,
  type InjectedOf,
  type InjectSpec,
  type InputBatch,
  type MethodDecl,
  type MethodOptions,
  type OutputCollector,
  type ProducerDecl,
  type ProducerHandler,
  type ProtocolDecl,
  producer,
  type Resolver,
  type SecurityRequirement,
  type StreamInit,
  type UnaryDecl,
  unary,
} from "./protocol/methods.js";
export { UnsupportedArrowTypeError } from "./protocol/type-tokens.js";
export {
  type DayTime,
  type FieldSpecs,
  type MonthDayNano,
  type RowOf,
  type TimeUnitName,
  type TypeSpec,
  t,
  type UnionValue,
  type ValueOf,
} from "./protocol/types.js";
export { type AccessLog, type AccessLogOptions, createAccessLog } from "./server/access-log.js";
export type { Connection, SideChannel } from "./server/connection.js";
export { type CloseOptions, DEFAULT_CLOSE_GRACE_MS } from "./server/connections.js";
export type { CallHandler, CallInterceptor, CallOutcome, ServerCall } from "./server/interceptors.js";
export type { CallObserver, CallRecord } from "./server/records.js";
export type { SecurityScheme, SecuritySchemes } from "./server/security.js";
export {
  type Binding,
  bind,
  createServer,
  DEFAULT_MAX_MESSAGE_BYTES,
  type RpcServer,
  type ServerOptions,
} from "./server/server.js";
export type { CallStatistics } from "./server/stats.js";
export {
  type BufferPoolOptions,
  type BufferPoolStats,
  bufferPoolStats,
  configureBufferPool,
  trimBufferPool,
} from "./transports/node/buffer-pool.js";
export type { LogRecord } from "./wire/messages.js";
