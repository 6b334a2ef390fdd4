/**
 * The names the HTTP transport puts on the wire, shared by server and client. No imports: the
 * client side bundles for browsers.
 */

/** The Arrow IPC stream media type every RPC body uses. */
export const ARROW_CONTENT_TYPE = "application/vnd.apache.arrow.stream";
/** `true` on a 200 answer whose body is an error stream (a method error). */
export const RPC_ERROR_HEADER = "X-VGI-RPC-Error";
/** Taken from the request (or minted) and echoed on its answer. */
export const REQUEST_ID_HEADER = "X-Request-ID";
/** The server's request body cap, advertised on every answer. */
export const MAX_REQUEST_BYTES_HEADER = "VGI-Max-Request-Bytes";
/** The server's response body cap, advertised when it has one. */
export const MAX_RESPONSE_BYTES_HEADER = "VGI-Max-Response-Bytes";
/** The largest decoded answer body the client accepts. */
export const ACCEPT_MAX_RESPONSE_BYTES_HEADER = "VGI-Accept-Max-Response-Bytes";
/** `true`: the server honours `VGI-Accept-Max-Response-Bytes`. */
export const ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER = "VGI-Accept-Max-Response-Bytes-Support";
/** The response codings the server produces, in its preference order. */
export const SUPPORTED_ENCODINGS_HEADER = "VGI-Supported-Encodings";
/** `false`: answers never point at external storage. */
export const EXTERNALIZATION_ENABLED_HEADER = "VGI-Externalization-Enabled";
/** Capability: the most a response may upload to external storage (`maxExternalizedResponseBytes`). */
export const MAX_EXTERNALIZED_RESPONSE_BYTES_HEADER = "VGI-Max-Externalized-Response-Bytes";
/** Capability: the server vends upload URLs (`POST {prefix}/__upload_url__/init`). */
export const UPLOAD_URL_HEADER = "VGI-Upload-URL-Support";
/** Capability: the largest object a client may upload through a vended URL. */
export const MAX_UPLOAD_BYTES_HEADER = "VGI-Max-Upload-Bytes";
/** The reason code of a 401. */
export const AUTH_REASON_HEADER = "VGI-Auth-Reason";
/** `true` on a 401 of a service whose authentication depends on a trusted proxy's headers. */
export const AUTH_PROXY_REQUIRED_HEADER = "VGI-Auth-Proxy-Required";

/** The smallest response budget either side accepts (`VGI-Accept-Max-Response-Bytes`, `maxResponseBytes`). */
export const MIN_RESPONSE_BUDGET_BYTES = 65536;
/** The largest response budget a client may ask for: 2^53-1. */
export const MAX_RESPONSE_BUDGET_BYTES = 2 ** 53 - 1;

/** Sticky sessions: the sealed session token, on a request (resume) and on the answer that opened it. */
export const SESSION_HEADER = "VGI-Session";
/** `true`: the client tracks session tokens, so a method may open a session for it. */
export const SESSION_ACCEPT_HEADER = "VGI-Session-Accept";
/** `true` on an answer: the session was closed; the client drops its token. */
export const SESSION_CLOSE_HEADER = "VGI-Session-Close";
/** Capability: `true` when the server keeps sticky sessions. */
export const STICKY_ENABLED_HEADER = "VGI-Sticky-Enabled";
/** Capability: the lifetime of a session opened without one, in whole seconds. */
export const STICKY_DEFAULT_TTL_HEADER = "VGI-Sticky-Default-TTL";
/** Capability: the names of the headers a client echoes on every request of a session. */
export const STICKY_ECHO_HEADERS_HEADER = "VGI-Sticky-Echo-Headers";
/** Prefix of `VGI-Echo-<name>: <value>` on a session-opening answer: send `<name>: <value>` from then on. */
export const ECHO_HEADER_PREFIX = "VGI-Echo-";
/** `DELETE {prefix}/__session__` closes the session its `VGI-Session` names. */
export const SESSION_ENDPOINT = "__session__";
