/**
 * quiver: vgi-rpc for Node.js. The package root has what a service or a caller writes against:
 * declarations and types, `createServer`/`bind`, `RpcClient`/`proxy` and the client's seams,
 * errors, auth helpers, observability (call records, statistics, the access log) and the batch
 * helpers. Each transport is a subpath export (`quiver-rpc/stdio`, `/socket`, `/http`, `/ws`,
 * `/ws/client`, `/memory`, `/shm`); the framing and the transports' shared plumbing are not exported.
 *
 * @module quiver-rpc
 */

export { type CrossSiteOptions, requireCsrf } from "./auth/cross-site.js";
export {
  DEFAULT_GRANT_CLOCK_SKEW_SECONDS,
  DEFAULT_GRANT_MAX_TTL_SECONDS,
  GRANT_AUDIENCE_ENV,
  GRANT_KEYS_ENV,
  GRANT_MAX_TTL_ENV,
  GRANT_TOKEN_PREFIX,
  type GrantClaims,
  GrantInvalidError,
  type GrantKeys,
  type GrantKeysOptions,
  type GrantMintRequest,
  grantKeyId,
  grantKeys,
  grantKeysFromEnv,
  MAX_GRANT_TOKEN_CHARS,
  mintGrantToken,
  parseGrantKeys,
  verifyGrantToken,
} from "./auth/grants.js";
export {
  DEFAULT_MAX_AUTH_AGE_SECONDS,
  DEFAULT_TOKEN_TTL_SECONDS,
  GrantRefusedError,
  type GrantRequest,
  IdentityUnavailableError,
  type IssuedGrant,
  MAX_TOKEN_BYTES,
  type MintGrant,
  type ResolveToken,
  sealedGrantMinter,
  type TokenIdentity,
} from "./auth/identity.js";
export {
  AuthUnavailableError,
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
  CLIENT_DURATION_METRIC,
  type ClientAnswer,
  type ClientCall,
  type ClientCallHandler,
  type ClientInterceptor,
  type ClientMetricsOptions,
  type ClientOptions,
  type ClientSideChannel,
  type ClientTransport,
  clientMetricsInterceptor,
  DEFAULT_PIPELINE_WINDOW,
  type ExchangeSession,
  exchangeSession,
  MAX_IN_FLIGHT,
  type MethodDescription,
  PIPELINE_UNWRITTEN_BYTES,
  type PipelineOptions,
  type PointerResolver,
  type ProducerOptions,
  type ProducerStream,
  type ProtocolClient,
  type ProtocolListing,
  producerStream,
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
  quotaFailure,
  RpcError,
  type RpcErrorOptions,
  RuntimeError,
  retryInfo,
  UnavailableError,
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
  type SessionOptions,
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
export {
  type AccessLog,
  type AccessLogOptions,
  type ClaimRedactor,
  createAccessLog,
  noRedaction,
  redactClaims,
} from "./server/access-log.js";
export type { Connection, SideChannel } from "./server/connection.js";
export { type CloseOptions, DEFAULT_CLOSE_GRACE_MS } from "./server/connections.js";
export type { DurationMetric, SeriesHistogram } from "./server/durations.js";
export {
  decodeIssuedGrant,
  decodeTokenIdentity,
  IDENTITY_PROTOCOL,
  type IdentityOptions,
  IdentityProtocol,
} from "./server/identity.js";
export type { CallHandler, CallInterceptor, CallOutcome, ServerCall, TurnCheck } from "./server/interceptors.js";
export {
  DURATION_BOUNDARIES_S,
  type DurationProducer,
  durationProducer,
  METER_NAME,
  type MetricsOptions,
  metricsInterceptor,
  type ProducedMetrics,
  SERVER_METRICS,
} from "./server/metrics.js";
export { type QuotaOptions, type QuotaRule, quotaInterceptor } from "./server/quota.js";
export {
  createMemoryQuotaStore,
  type MemoryQuotaStoreOptions,
  type QuotaStore,
  QuotaStoreTimeoutError,
  type WindowCount,
} from "./server/quota-store.js";
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
  createUsageMeter,
  USAGE_PROTOCOL,
  type UsageEntry,
  type UsageMeter,
  type UsageMeterOptions,
  usageProtocol,
} from "./server/usage.js";
export {
  type BufferPoolOptions,
  type BufferPoolStats,
  bufferPoolStats,
  configureBufferPool,
  trimBufferPool,
} from "./transports/node/buffer-pool.js";
export type { LogRecord } from "./wire/messages.js";
