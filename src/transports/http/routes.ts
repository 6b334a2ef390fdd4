/**
 * The routes, as the reference lays them out, parsed from the request line alone:
 *
 *   POST {prefix}/{protocol}/{method}            unary call
 *   POST {prefix}/{protocol}/{method}/init       open a stream (a producer's first turn runs here)
 *   POST {prefix}/{protocol}/{method}/exchange   one more turn of a stream, or its cancel
 *   POST {prefix}/{__reserved__}                 server-level reserved methods
 *   DELETE {prefix}/__session__                  close a sticky session (when the handler keeps them)
 *   GET | HEAD | OPTIONS {prefix}/health         health and capability discovery (no auth)
 *
 * Pure: no server, no I/O. Whether a protocol is hosted, whether a method exists and whether its
 * kind fits the route are the core's questions, asked later.
 */

import { SESSION_ENDPOINT } from "./headers.js";

/** What a request line asks for. */
export type Route =
  /** `GET` or `HEAD` on `/health`. */
  | { readonly kind: "health"; readonly head: boolean }
  /** `OPTIONS` on a route: answered with its `Allow` and the capability headers. */
  | { readonly kind: "options"; readonly allow: string }
  | { readonly kind: "not-found" }
  /**
   * A method the route does not take. With `ifHosted`, 405 only when that protocol is hosted and
   * 404 otherwise, as the reference's router answers `GET` on `{protocol}/{method}`.
   */
  | { readonly kind: "method-not-allowed"; readonly allow: string; readonly ifHosted?: string }
  | { readonly kind: "unary" | "init" | "exchange"; readonly protocol: string; readonly method: string }
  /** A server-level method, `POST {prefix}/__name__`. */
  | { readonly kind: "reserved"; readonly method: string }
  /**
   * Any request method on `{prefix}/__session__`: `DELETE` closes a sticky session on a handler
   * that keeps them; elsewhere the path is an ordinary reserved-method route.
   */
  | { readonly kind: "session"; readonly httpMethod: string };

/** The route kinds that run a call. */
export type CallRoute = Extract<Route, { readonly protocol: string } | { readonly kind: "reserved" }>;

const NOT_FOUND: Route = { kind: "not-found" };
const HEALTH: Route = { kind: "health", head: false };
const HEALTH_HEAD: Route = { kind: "health", head: true };
const HEALTH_OPTIONS: Route = { kind: "options", allow: "GET, HEAD, OPTIONS" };
const HEALTH_NOT_ALLOWED: Route = { kind: "method-not-allowed", allow: "GET, HEAD, OPTIONS" };
const RPC_OPTIONS: Route = { kind: "options", allow: "POST, OPTIONS" };
const STREAM_NOT_ALLOWED: Route = { kind: "method-not-allowed", allow: "POST, OPTIONS" };
const UNARY_NOT_ALLOWED: Route = { kind: "method-not-allowed", allow: "GET, POST, OPTIONS" };

/**
 * The route of `method` (upper case) on `path` (no query string) under `prefix` (no trailing
 * slash; `""` for the root).
 */
export function parseRoute(method: string, path: string, prefix: string): Route {
  if (prefix !== "" && path !== prefix && !path.startsWith(`${prefix}/`)) return NOT_FOUND;
  const segments = path.slice(prefix.length).split("/").slice(1);
  if (segments.length === 1 && segments[0] === "health") {
    if (method === "GET") return HEALTH;
    if (method === "HEAD") return HEALTH_HEAD;
    return method === "OPTIONS" ? HEALTH_OPTIONS : HEALTH_NOT_ALLOWED;
  }
  if (segments.length === 1 && segments[0] === SESSION_ENDPOINT) return { kind: "session", httpMethod: method };
  let kind: CallRoute["kind"];
  let protocol = "";
  let name: string;
  if (segments.length === 1 && segments[0] !== "") {
    kind = "reserved";
    name = segments[0]!;
  } else if (segments.length === 2) {
    kind = "unary";
    [protocol, name] = segments as [string, string];
  } else if (segments.length === 3 && (segments[2] === "init" || segments[2] === "exchange")) {
    kind = segments[2];
    [protocol, name] = segments as [string, string];
  } else return NOT_FOUND;
  if ((protocol === "" && kind !== "reserved") || name === "") return NOT_FOUND;
  if (method === "OPTIONS") return RPC_OPTIONS;
  if (method !== "POST") {
    // As the reference's router answers: GET on {protocol}/{method} is 404 unless the protocol is
    // hosted (405 then); any other method there, and any non-POST on a one-segment, /init or
    // /exchange path, is 405 whatever the names.
    if (kind !== "unary") return STREAM_NOT_ALLOWED;
    if (method !== "GET") return UNARY_NOT_ALLOWED;
    return { kind: "method-not-allowed", allow: "POST", ifHosted: protocol };
  }
  if (kind === "reserved") return name.startsWith("__") && name.endsWith("__") ? { kind, method: name } : NOT_FOUND;
  return { kind, protocol, method: name };
}
