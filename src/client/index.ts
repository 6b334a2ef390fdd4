export {
  type CallTarget,
  type ClientOptions,
  DEFAULT_TIMEOUT_MS,
  PIPELINE_UNWRITTEN_BYTES,
  type RawStream,
  type RequestMetadata,
  RpcClient,
  requestBatch,
  requestMetadata,
} from "./client.js";
export {
  DESCRIBE_VERSION,
  type DescribedSecurityScheme,
  describeProtocol,
  type HostedProtocolInfo,
  listProtocols,
  type MethodDescription,
  type ProtocolListing,
  primaryProtocol,
  REFLECTION_PROTOCOL,
  reflectionNotHosted,
  type ServiceDescription,
} from "./describe.js";
export type {
  ClientAnswer,
  ClientCall,
  ClientCallHandler,
  ClientInterceptor,
} from "./interceptors.js";
export { CLIENT_DURATION_METRIC, type ClientMetricsOptions, clientMetricsInterceptor } from "./metrics.js";
export {
  type CallChannel,
  type ClientSideChannel,
  type ClientTransport,
  MAX_IN_FLIGHT,
  type PointerResolver,
  type StreamChannel,
  type StreamOpenOptions,
} from "./transport.js";
export {
  type CallOptions,
  type ClientMethod,
  DEFAULT_PIPELINE_WINDOW,
  type ExchangeSession,
  exchangeSession,
  type HeaderOf,
  type MethodsOfKind,
  type ParamsIn,
  type PipelineOptions,
  type ProducerOptions,
  type ProducerStream,
  type ProtocolClient,
  paramsBatch,
  producerStream,
  proxy,
  type ResultOf,
  type StreamOptions,
  targetOf,
} from "./typed.js";
export { batchFromJsonRows, jsonReady, plainRows, schemaText, typeName } from "./values.js";
