/** The `vgi_rpc.*` custom-metadata keys and fixed values of the wire protocol. */

export const METHOD_KEY = "vgi_rpc.method";
export const REQUEST_VERSION_KEY = "vgi_rpc.request_version";
/** The only request envelope version there is. */
export const REQUEST_VERSION = "1";
export const PROTOCOL_KEY = "vgi_rpc.protocol";
export const PROTOCOL_VERSION_KEY = "vgi_rpc.protocol_version";
export const REQUEST_ID_KEY = "vgi_rpc.request_id";
export const SERVER_ID_KEY = "vgi_rpc.server_id";

export const LOG_LEVEL_KEY = "vgi_rpc.log_level";
export const LOG_MESSAGE_KEY = "vgi_rpc.log_message";
export const LOG_EXTRA_KEY = "vgi_rpc.log_extra";
export const ERROR_KIND_KEY = "vgi_rpc.error_kind";
export const ERROR_CODE_KEY = "vgi_rpc.error_code";
export const ERROR_DETAILS_KEY = "vgi_rpc.error_details";

export const CANCEL_KEY = "vgi_rpc.cancel";
export const SHM_OFFSET_KEY = "vgi_rpc.shm_offset";
export const SHM_LENGTH_KEY = "vgi_rpc.shm_length";
export const SHM_SEGMENT_NAME_KEY = "vgi_rpc.shm_segment_name";
export const SHM_SEGMENT_SIZE_KEY = "vgi_rpc.shm_segment_size";
/** On a batch resolved from a segment: the segment's name. */
export const SHM_SOURCE_KEY = "vgi_rpc.shm_source";
/** `__transport_options__` capability: whether the worker takes the shared-memory side channel. */
export const TRANSPORT_SHM_KEY = "vgi_rpc.transport.shm";
export const LOCATION_KEY = "vgi_rpc.location";
export const STREAM_STATE_KEY = "vgi_rpc.stream_state#b64";
export const CALL_STATE_KEY = "vgi_rpc.call_state#b64";

export const TRACEPARENT_KEY = "traceparent";
export const TRACESTATE_KEY = "tracestate";
/**
 * quiver's own request key: how long the client will wait for the call, in whole milliseconds.
 * The server aborts the call when it passes (peers that do not know the key ignore it).
 */
export const TIMEOUT_MS_KEY = "quiver.timeout_ms";

/** Built-in method names owned by no protocol. */
export const TRANSPORT_OPTIONS_METHOD = "__transport_options__";
export const RETIRED_DESCRIBE_METHOD = "__describe__";

/** The request-metadata key a client puts its idempotency key under (the HTTP header's name). */
export const IDEMPOTENCY_KEY_METADATA = "idempotency-key";
