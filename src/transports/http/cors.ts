/**
 * Cross-origin access (CORS) for browsers calling the HTTP transport from another origin, as the
 * reference configures it (`cors_origins`, `cors_max_age`, `cors_resource_policy`, with Falcon's
 * CORS middleware): off unless `HttpServerOptions.cors` is set, and then
 *
 * - a request whose `Origin` is allowed gets `Access-Control-Allow-Origin` (`*` for a wildcard
 *   without credentials, else the origin itself with `Vary: Origin`) and
 *   `Access-Control-Expose-Headers` naming every header a browser client needs to read: the
 *   capability headers this server sends, the request id, the error flag, the 401 reason;
 * - a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin also gets
 *   the route's methods, the request headers it asked for, and `Access-Control-Max-Age`;
 * - every response carries `Cross-Origin-Resource-Policy` (callers under COEP `require-corp` need it);
 * - an origin not allowed gets none of these, so the browser withholds the answer from its page.
 */
import { AUTH_REASON_HEADER, REQUEST_ID_HEADER, RPC_ERROR_HEADER } from "./headers.js";

/** `HttpServerOptions.cors`. */
export interface CorsOptions {
  /** Origins allowed to read answers (`https://app.example`, exact match), or `"*"` for any. */
  readonly origins: "*" | readonly string[];
  /**
   * Origins whose requests may carry credentials (cookies, HTTP auth): answered with the origin
   * itself and `Access-Control-Allow-Credentials: true`; `"*"` for every allowed origin. Default: none.
   */
  readonly credentials?: "*" | readonly string[];
  /** `Access-Control-Max-Age` on preflight answers, in seconds (null: not sent). Default: 7200. */
  readonly maxAgeSeconds?: number | null;
  /** `Cross-Origin-Resource-Policy` on every answer (null: not sent). Default: `cross-origin`. */
  readonly resourcePolicy?: string | null;
}

/** A handler's CORS policy, checked once. */
export interface CorsPolicy {
  readonly anyOrigin: boolean;
  readonly origins: ReadonlySet<string>;
  readonly anyCredentials: boolean;
  readonly credentials: ReadonlySet<string>;
  readonly maxAge: string | null;
  readonly resourcePolicy: string | null;
  /** `Access-Control-Expose-Headers`. */
  readonly expose: string;
}

/** Headers exposed whatever the configuration: they ride errors and refusals, which nothing advertises. */
const ALWAYS_EXPOSED = ["WWW-Authenticate", REQUEST_ID_HEADER, "X-VGI-Content-Encoding", RPC_ERROR_HEADER];

function originList(what: string, value: "*" | readonly string[]): ReadonlySet<string> {
  if (value === "*") return new Set();
  if (!Array.isArray(value)) throw new TypeError(`cors.${what} must be "*" or an array of origins`);
  for (const o of value) {
    if (typeof o !== "string" || o === "*") {
      throw new TypeError(`cors.${what}: "*" is allowed only as the whole value, not inside the list`);
    }
    if (!/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(o) && o !== "null") {
      throw new TypeError(`cors.${what}: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path)`);
    }
  }
  return new Set(value);
}

/**
 * Checks `options` and makes the policy; `advertised` are the capability header names every
 * answer carries (each is exposed).
 */
export function corsPolicy(options: CorsOptions, advertised: readonly string[]): CorsPolicy {
  const maxAge = options.maxAgeSeconds === undefined ? 7200 : options.maxAgeSeconds;
  if (maxAge !== null && (!Number.isSafeInteger(maxAge) || maxAge < 0)) {
    throw new RangeError(`cors.maxAgeSeconds must be an integer >= 0 or null, got ${maxAge}`);
  }
  const resourcePolicy = options.resourcePolicy === undefined ? "cross-origin" : options.resourcePolicy;
  const expose: string[] = [];
  for (const name of [...ALWAYS_EXPOSED, ...advertised, AUTH_REASON_HEADER]) {
    if (!expose.some((n) => n.toLowerCase() === name.toLowerCase())) expose.push(name);
  }
  const credentials = options.credentials ?? [];
  return {
    anyOrigin: options.origins === "*",
    origins: originList("origins", options.origins),
    anyCredentials: credentials === "*",
    credentials: originList("credentials", credentials),
    maxAge: maxAge === null ? null : String(maxAge),
    resourcePolicy,
    expose: expose.join(", "),
  };
}

/** What of the request CORS reads. */
interface CorsRequest {
  readonly method: string;
  readonly headers: { get(name: string): string | null };
}

/**
 * Adds `policy`'s headers for `req` to `headers` (a reply's, before it is sent). A preflight's
 * `Allow` (the route's methods) becomes `Access-Control-Allow-Methods`.
 */
export function addCorsHeaders(policy: CorsPolicy, req: CorsRequest, headers: (readonly [string, string])[]): void {
  if (policy.resourcePolicy !== null) headers.push(["Cross-Origin-Resource-Policy", policy.resourcePolicy]);
  const origin = req.headers.get("origin");
  if (origin === null || (!policy.anyOrigin && !policy.origins.has(origin))) return;
  const withCredentials = policy.anyCredentials || policy.credentials.has(origin);
  if (policy.anyOrigin && !withCredentials) headers.push(["Access-Control-Allow-Origin", "*"]);
  else {
    headers.push(["Access-Control-Allow-Origin", origin]);
    headers.push(["Vary", "Origin"]);
    if (withCredentials) headers.push(["Access-Control-Allow-Credentials", "true"]);
  }
  headers.push(["Access-Control-Expose-Headers", policy.expose]);
  if (req.method !== "OPTIONS" || req.headers.get("access-control-request-method") === null) return;
  const at = headers.findIndex(([k]) => k === "Allow");
  if (at < 0) return;
  const allow = headers[at]![1];
  headers.splice(at, 1);
  headers.push(["Access-Control-Allow-Methods", allow]);
  headers.push(["Access-Control-Allow-Headers", req.headers.get("access-control-request-headers") ?? "*"]);
  if (policy.maxAge !== null) headers.push(["Access-Control-Max-Age", policy.maxAge]);
}
