/** The HTTP server's options, and what one handler derives from them once. */
import { randomBytes } from "node:crypto";
import { type CrossSiteOptions, type CrossSitePolicy, crossSitePolicy } from "../../auth/cross-site.js";
import { identityAuthenticate } from "../../auth/identity-bearer.js";
import { PROOF_HEADER, PROOF_REQUIRED_HEADER, proxyHeadersOf } from "../../auth/proxy-proof.js";
import { authTimeout } from "../../auth/timeout.js";
import type { Authenticator } from "../../auth/types.js";
import { type Encoding, loadZstd, producibleEncodings } from "../../codec/compression.js";
import { DEFAULT_MAX_ZSTD_WINDOW_BYTES } from "../../codec/inflate.js";
import type { UploadUrlProvider } from "../../external/storage.js";
import { coreOf, type RpcServer, type ServerCore } from "../../server/types.js";
import { STATE_TOKEN_KEY_BYTES } from "../../wire/state-token.js";
import { type CorsOptions, type CorsPolicy, corsPolicy } from "./cors.js";
import {
  ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER,
  AUTH_PROXY_REQUIRED_HEADER,
  EXTERNALIZATION_ENABLED_HEADER,
  MAX_EXTERNALIZED_RESPONSE_BYTES_HEADER,
  MAX_REQUEST_BYTES_HEADER,
  MAX_RESPONSE_BYTES_HEADER,
  MAX_UPLOAD_BYTES_HEADER,
  MIN_RESPONSE_BUDGET_BYTES,
  SUPPORTED_ENCODINGS_HEADER,
  UPLOAD_URL_HEADER,
} from "./headers.js";
import { type OAuthDiscovery, type OAuthResourceOptions, oauthDiscovery } from "./oauth.js";
import { describePage, hostsReflection, landingPage } from "./pages.js";
import { type StickyConfig, type StickyOptions, stickyConfig } from "./sticky.js";
import type { TokenKeyring } from "./tokens.js";

/** Default `callTokenCacheEntries`. */
export const DEFAULT_CALL_TOKEN_CACHE_ENTRIES = 1024;
/** Default `maxRequestBytes`: 256 MiB. */
export const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024;

/** Options of `createHttpHandler` / `listenHttp`. */
export interface HttpServerOptions extends CrossSiteOptions {
  /** URL prefix of every route, e.g. `/vgi`. Default: `""` (the root). */
  readonly prefix?: string;
  /** 32-byte XChaCha20-Poly1305 key sealing stream tokens; share it so instances can continue each other's streams. Default: random per handler. */
  readonly tokenKey?: Uint8Array;
  /** Stream token lifetime in seconds (0: never expire). Default: 3600. */
  readonly tokenTtlSeconds?: number;
  /**
   * Call tokens kept opened (decrypted, schemas decoded) for the streams' next turns; each is
   * checked against its lifetime again when used. 0 opens every turn's afresh. Default: 1024.
   */
  readonly callTokenCacheEntries?: number;
  /**
   * Largest request body accepted, before and after content decoding, in bytes (null: no cap, not
   * advertised); a compressed body is refused as soon as its decoded size passes it. Default: 256 MiB.
   */
  readonly maxRequestBytes?: number | null;
  /** Largest window a zstd request body's frame may declare, in bytes (larger: 400). Default: 8 MiB. */
  readonly maxZstdWindowBytes?: number;
  /** Largest response body (decoded Arrow bytes) a call may produce; larger ones answer `ResponseTooLargeError`. Min 65536. Default: null (only the client's `VGI-Accept-Max-Response-Bytes` applies). */
  readonly maxResponseBytes?: number | null;
  /** Resolves each request's caller; throwing answers 401 (503 for an `AuthUnavailableError`). `/health` and `OPTIONS` are exempt. Default: every caller anonymous. */
  readonly authenticate?: Authenticator;
  /** How long `authenticate` may take to answer, in ms; longer answers 503 (`AuthUnavailableError`, `Retry-After: 1`). Default: 30 000. */
  readonly authTimeoutMs?: number;
  /**
   * When the server hosts `vgi_rpc.Identity.v2` with sealed grants or a `resolveToken` hook, accept
   * those credentials as bearers after `authenticate` (`identityAuthenticate`): a sealed grant
   * authenticates with domain `grant`, a resolved token with domain `token`. false leaves
   * `authenticate` as given (compose `grantAuthenticate` / `resolveTokenAuthenticate` yourself).
   * Default: true.
   */
  readonly identityBearer?: boolean;
  /** Compress responses with the client's preferred coding (zstd or gzip); false advertises and produces none. Default: true. */
  readonly compressResponses?: boolean;
  /** gzip level for responses (1-9). Default: 6. */
  readonly gzipLevel?: number;
  /** zstd level for responses. Default: 1 (the reference's default). */
  readonly zstdLevel?: number;
  /** `Cache-Control: max-age` on `OPTIONS` capability answers, in seconds. Default: 300. */
  readonly capabilitiesMaxAgeSeconds?: number;
  /**
   * Unwritten answer bytes on one connection (node:http adapter) above which its next request,
   * pipelined or not, waits before it is read or run. Default: 1 MiB.
   */
  readonly writeHighWaterMark?: number;
  /**
   * Vend upload URL pairs on `POST {prefix}/__upload_url__/init` (`request_upload_urls` in the
   * reference's client) and advertise it (`VGI-Upload-URL-Support: true`): clients upload large
   * inputs there and send pointer batches, which a server with `external` set resolves. Default: none.
   */
  readonly uploadUrls?: UploadUrlProvider;
  /** Advertised as `VGI-Max-Upload-Bytes` with `uploadUrls`. Default: none (not advertised). */
  readonly maxUploadBytes?: number;
  /**
   * The most one response (a unary call, a stream's init, one exchange) may upload to external
   * storage (`ServerOptions.external`), in raw IPC bytes: an upload that would pass it is refused
   * before it happens, with a `RuntimeError` naming `max_externalized_response_bytes`; advertised as
   * `VGI-Max-Externalized-Response-Bytes`. Hard on every kind of call (uploaded bytes cannot be
   * taken back). Default: none.
   */
  readonly maxExternalizedResponseBytes?: number;
  /**
   * Cross-origin access for browser clients (see `CorsOptions`): allowed origins, credentials,
   * preflight lifetime, `Cross-Origin-Resource-Policy`. Default: none (no CORS header is sent, so
   * browsers keep answers from pages of other origins).
   */
  readonly cors?: CorsOptions;
  /**
   * OAuth discovery (RFC 9728): serve the protected-resource metadata at
   * `/.well-known/oauth-protected-resource{prefix}` and name it in every 401's `WWW-Authenticate`.
   * `true` takes the resource and the authorization servers from the `jwtAuthenticate` authenticator
   * (its audience and issuers); an object gives or adds to them. Default: none.
   */
  readonly oauthResource?: OAuthResourceOptions | true;
  /**
   * Serve the HTML pages: a landing page at `GET {prefix}` and, when the server hosts reflection,
   * the API page at `GET {prefix}/describe` (both after authentication, like the RPC routes).
   * Default: true (as the reference).
   */
  readonly pages?: boolean;
  /**
   * Sticky sessions (`true` for the defaults, or `StickyOptions`): handlers may keep state in this
   * instance's memory across calls (`ctx.openSession`), found again by the sealed `VGI-Session`
   * token the client sends back; advertised as `VGI-Sticky-Enabled`, closed by `DELETE
   * {prefix}/__session__`. Tokens are sealed with `tokenKey` and name this server's id, so another
   * instance answers them `session_lost`. Default: off.
   */
  readonly sticky?: boolean | StickyOptions;
}

/** The options of one handler, checked and with their defaults applied. */
export interface HttpConfig {
  readonly server: ServerCore;
  readonly options: HttpServerOptions;
  /** `options.authenticate`, followed by the identity bearer authenticators when they apply. */
  readonly authenticate: Authenticator | undefined;
  /** `options.authTimeoutMs` with its default. */
  readonly authTimeoutMs: number;
  /** `prefix` without trailing slashes. */
  readonly prefix: string;
  readonly keys: TokenKeyring;
  readonly maxRequestBytes: number | null;
  readonly maxZstdWindowBytes: number;
  readonly maxResponseBytes: number | null;
  /** Response codings produced, in preference order (none when `compressResponses` is false). */
  readonly encodings: readonly Encoding[];
  readonly levels: { readonly gzip: number; readonly zstd: number };
  /** Headers every answer carries: the limits and what the server supports. */
  readonly capabilityHeaders: readonly (readonly [string, string])[];
  /** The `Cache-Control` value of `OPTIONS` answers. */
  readonly capabilitiesCacheControl: string;
  /** The `/health` body, made once. */
  readonly healthBody: Uint8Array;
  /** `HttpServerOptions.uploadUrls`, or null. */
  readonly uploadUrls: UploadUrlProvider | null;
  /** `HttpServerOptions.maxExternalizedResponseBytes`, or null. */
  readonly maxExternalizedResponseBytes: number | null;
  /** `HttpServerOptions.cors` checked, or null (off). */
  readonly cors: CorsPolicy | null;
  /** Which pages may send requests with cookies (`trustedOrigins`, the CORS credential origins), and the CSRF token names. */
  readonly crossSite: CrossSitePolicy;
  /** `HttpServerOptions.oauthResource` made into its document and challenge, or null. */
  readonly oauth: OAuthDiscovery | null;
  /**
   * The note a 401 carries when the authenticator depends on a trusted proxy's headers (a proxy
   * proof gate): `VGI-Auth-Proxy-Required: true` and `proxy_hint`; null otherwise.
   */
  readonly proxyHint: string | null;
  /** The HTML pages, made once, or null when `pages` is false. */
  readonly pages: { readonly landing: Uint8Array; readonly describe: Uint8Array | null } | null;
  /** `HttpServerOptions.sticky` checked, or null (off). */
  readonly sticky: StickyConfig | null;
}

const utf8 = new TextEncoder();

/** The origins CORS lets send credentials: trusted with cookies too (`"*"`: every allowed origin). */
function corsCredentialOrigins(cors: CorsOptions | undefined): readonly string[] {
  if (cors === undefined || cors.credentials === undefined) return [];
  if (cors.credentials !== "*") return cors.credentials;
  if (cors.origins === "*") throw new TypeError('cors: credentials "*" needs a list of origins, not origins "*"');
  return cors.origins;
}

/** The operator's note on a 401 of a service behind a proxy that must add `headers` (the reference's words). */
function proxyHint(headers: readonly string[]): string | null {
  if (headers.length === 0) return null;
  const one = headers.length === 1;
  return (
    "This service only accepts requests that arrive through its configured reverse proxy, " +
    `which must set the ${headers.join(", ")} ${one ? "header" : "headers"}. A rejection here is as likely to be a proxy that is ` +
    `not forwarding ${one ? "that header" : "those headers"} — or a request ` +
    "that reached the service without passing through the proxy at all — as it is a bad " +
    "credential. Check the proxy configuration before rotating credentials."
  );
}

/** The landing page and, with reflection, the API page. */
function htmlPages(server: ServerCore, prefix: string): HttpConfig["pages"] {
  const describe = hostsReflection(server) ? describePage(server) : null;
  return { landing: landingPage(server, prefix, describe === null ? null : `${prefix}/describe`), describe };
}

/** Checks `options` and derives the handler's configuration; throws on an unusable option. */
export function resolveConfig(rpcServer: RpcServer, options: HttpServerOptions): HttpConfig {
  const server = coreOf(rpcServer);
  const key = options.tokenKey ?? randomBytes(STATE_TOKEN_KEY_BYTES);
  if (key.byteLength !== STATE_TOKEN_KEY_BYTES) {
    throw new TypeError(`tokenKey must be ${STATE_TOKEN_KEY_BYTES} bytes, got ${key.byteLength}`);
  }
  const cached = options.callTokenCacheEntries ?? DEFAULT_CALL_TOKEN_CACHE_ENTRIES;
  if (!Number.isInteger(cached) || cached < 0) {
    throw new RangeError(`callTokenCacheEntries must be an integer >= 0, got ${cached}`);
  }
  const keys: TokenKeyring = {
    key: new Uint8Array(key),
    ttlSeconds: options.tokenTtlSeconds ?? 3600,
    ...(cached > 0 ? { openedCalls: new Map(), callTokenCacheEntries: cached } : {}),
  };
  const maxRequestBytes = options.maxRequestBytes === undefined ? DEFAULT_MAX_REQUEST_BYTES : options.maxRequestBytes;
  const maxZstdWindowBytes = options.maxZstdWindowBytes ?? DEFAULT_MAX_ZSTD_WINDOW_BYTES;
  if (!Number.isSafeInteger(maxZstdWindowBytes) || maxZstdWindowBytes < 0) {
    throw new RangeError(`maxZstdWindowBytes must be an integer >= 0, got ${maxZstdWindowBytes}`);
  }
  const maxResponseBytes = options.maxResponseBytes ?? null;
  if (maxResponseBytes !== null && maxResponseBytes < MIN_RESPONSE_BUDGET_BYTES) {
    throw new TypeError(`maxResponseBytes must be at least ${MIN_RESPONSE_BUDGET_BYTES}`);
  }
  const encodings = options.compressResponses === false ? [] : producibleEncodings();
  if (encodings.includes("zstd")) void loadZstd();
  const caps: [string, string][] = [];
  if (maxRequestBytes !== null) caps.push([MAX_REQUEST_BYTES_HEADER, String(maxRequestBytes)]);
  if (maxResponseBytes !== null) caps.push([MAX_RESPONSE_BYTES_HEADER, String(maxResponseBytes)]);
  caps.push([ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER, "true"]);
  caps.push([EXTERNALIZATION_ENABLED_HEADER, server.external === null ? "false" : "true"]);
  const maxUploadBytes = options.maxUploadBytes;
  if (maxUploadBytes !== undefined && (!Number.isSafeInteger(maxUploadBytes) || maxUploadBytes < 1)) {
    throw new RangeError(`maxUploadBytes must be a positive integer, got ${maxUploadBytes}`);
  }
  const maxExternalized = options.maxExternalizedResponseBytes ?? null;
  if (maxExternalized !== null && (!Number.isSafeInteger(maxExternalized) || maxExternalized < 0)) {
    throw new RangeError(`maxExternalizedResponseBytes must be an integer >= 0, got ${maxExternalized}`);
  }
  if (maxExternalized !== null) caps.push([MAX_EXTERNALIZED_RESPONSE_BYTES_HEADER, String(maxExternalized)]);
  if (options.uploadUrls !== undefined) {
    caps.push([UPLOAD_URL_HEADER, "true"]);
    if (maxUploadBytes !== undefined) caps.push([MAX_UPLOAD_BYTES_HEADER, String(maxUploadBytes)]);
  }
  caps.push([SUPPORTED_ENCODINGS_HEADER, encodings.join(", ")]);
  const proxyHeaders = proxyHeadersOf(options.authenticate);
  if (proxyHeaders.includes(PROOF_HEADER)) caps.push([PROOF_REQUIRED_HEADER, "true"]);
  const sticky = options.sticky === undefined || options.sticky === false ? null : stickyConfig(options.sticky);
  if (sticky !== null) for (const [name, value] of sticky.capabilityHeaders) caps.push([name, value]);
  const primary = [...server.protocols.keys()][0] ?? "";
  const bearer = options.identityBearer === false ? null : server.identityBearer;
  return {
    server,
    options,
    authenticate: bearer === null ? options.authenticate : identityAuthenticate(options.authenticate, bearer),
    authTimeoutMs: authTimeout(options.authTimeoutMs),
    prefix: (options.prefix ?? "").replace(/\/+$/, ""),
    keys,
    maxRequestBytes,
    maxZstdWindowBytes,
    maxResponseBytes,
    encodings,
    levels: { gzip: options.gzipLevel ?? 6, zstd: options.zstdLevel ?? 1 },
    capabilityHeaders: caps,
    capabilitiesCacheControl: `public, max-age=${options.capabilitiesMaxAgeSeconds ?? 300}`,
    uploadUrls: options.uploadUrls ?? null,
    maxExternalizedResponseBytes: maxExternalized,
    crossSite: crossSitePolicy(options, corsCredentialOrigins(options.cors)),
    proxyHint: proxyHint(proxyHeaders),
    pages: options.pages === false ? null : htmlPages(server, (options.prefix ?? "").replace(/\/+$/, "")),
    oauth:
      options.oauthResource === undefined
        ? null
        : oauthDiscovery(options.oauthResource, options.authenticate, (options.prefix ?? "").replace(/\/+$/, "")),
    cors:
      options.cors === undefined
        ? null
        : corsPolicy(options.cors, [
            ...caps.map(([name]) => name),
            ...(proxyHeaders.length > 0 ? [AUTH_PROXY_REQUIRED_HEADER] : []),
            ...(sticky?.exposed ?? []),
          ]),
    sticky,
    healthBody: utf8.encode(JSON.stringify({ status: "ok", server_id: server.serverId, protocol: primary })),
  };
}
