/**
 * Cross-site protection for requests a browser sends with the user's cookies (ambient
 * credentials): any page the user visits can make the browser send them, so a cookie proves
 * nothing about which page asked. Two checks, both on by default:
 *
 * - **Origin**: a request that carries a `Cookie` header and an `Origin` (or `Sec-Fetch-Site:
 *   cross-site`) from a page that is neither the server's own origin nor a trusted one is refused
 *   (HTTP 403, or a refused WebSocket upgrade: cross-site WebSocket hijacking). Browsers send
 *   `Origin` on every cross-origin POST and every WebSocket upgrade.
 * - **CSRF state** in the call's context (`ctx.csrfVerified`, `requireCsrf(ctx)`): verified when
 *   the request carried no cookie (its credentials, if any, are not ambient), when a browser said
 *   which page sent it and that page is trusted, or by a double-submit token (the `X-VGI-CSRF-Token`
 *   header equal to the `vgi_csrf` cookie, names configurable). A cookie-carrying request that
 *   says none of this (no `Origin`, no `Sec-Fetch-Site`: an old browser, or not a browser) is
 *   served with `csrfVerified` false, for handlers that change state to refuse.
 *
 * Pure: no `node:` imports; the HTTP core and the WebSocket upgrade both use it.
 */
import { frameworkError } from "../errors.js";

/** Cross-site options of the HTTP and WebSocket servers. */
export interface CrossSiteOptions {
  /**
   * Origins (`https://app.example`, exact) besides the server's own whose pages may send requests
   * with the user's cookies. Default: none (same origin only).
   */
  readonly trustedOrigins?: readonly string[];
  /** The double-submit cookie. Default: `vgi_csrf`. */
  readonly csrfCookie?: string;
  /** The double-submit header, which must equal the cookie. Default: `X-VGI-CSRF-Token`. */
  readonly csrfHeader?: string;
}

/** The checked form of `CrossSiteOptions`. */
export interface CrossSitePolicy {
  readonly trusted: ReadonlySet<string>;
  readonly csrfCookie: string;
  readonly csrfHeader: string;
}

/** What a request's headers say about where it came from. */
export type CrossSiteVerdict =
  /** Served; `csrfVerified` goes into the call's context. */
  | { readonly refused: null; readonly csrfVerified: boolean }
  /** Refused (403): cookies sent by a page of an untrusted origin. */
  | { readonly refused: string; readonly csrfVerified: false };

const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i;

/** Checks `options` (and `extraTrusted`, e.g. the CORS origins allowed credentials); throws on a bad origin. */
export function crossSitePolicy(options: CrossSiteOptions = {}, extraTrusted: readonly string[] = []): CrossSitePolicy {
  const trusted = new Set<string>();
  for (const o of [...(options.trustedOrigins ?? []), ...extraTrusted]) {
    if (typeof o !== "string" || !ORIGIN.test(o)) {
      throw new TypeError(`trustedOrigins: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path)`);
    }
    trusted.add(o.toLowerCase());
  }
  return {
    trusted,
    csrfCookie: options.csrfCookie ?? "vgi_csrf",
    csrfHeader: (options.csrfHeader ?? "X-VGI-CSRF-Token").toLowerCase(),
  };
}

/**
 * The first value of cookie `name` in a `Cookie` header (RFC 6265 syntax, surrounding quotes
 * removed), or null.
 */
export function cookieValue(header: string | null, name: string): string | null {
  if (header === null) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return null;
}

/** True when `origin` names the host the request was sent to (`Host`), whatever the scheme. */
function sameOrigin(origin: string, host: string | null): boolean {
  if (host === null || !ORIGIN.test(origin)) return false;
  return origin.slice(origin.indexOf("://") + 3).toLowerCase() === host.toLowerCase();
}

/** Constant-time enough for tokens of equal length: no early exit on the first difference. */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length || a.length === 0) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Judges a request (or WebSocket upgrade) by its headers under `policy`. */
export function crossSiteVerdict(
  policy: CrossSitePolicy,
  headers: { get(name: string): string | null },
): CrossSiteVerdict {
  const cookies = headers.get("cookie");
  if (cookies === null || cookies.trim() === "") return { refused: null, csrfVerified: true };
  const origin = headers.get("origin");
  if (origin !== null) {
    if (sameOrigin(origin, headers.get("host")) || policy.trusted.has(origin.toLowerCase())) {
      return { refused: null, csrfVerified: true };
    }
    return {
      refused: `a request carrying cookies from the page origin ${JSON.stringify(origin)}, which this server does not trust (trustedOrigins)`,
      csrfVerified: false,
    };
  }
  const site = headers.get("sec-fetch-site");
  if (site === "cross-site") {
    return { refused: "a request carrying cookies sent by a page of another site", csrfVerified: false };
  }
  if (site === "same-origin") return { refused: null, csrfVerified: true };
  const token = headers.get(policy.csrfHeader);
  const expected = cookieValue(cookies, policy.csrfCookie);
  return {
    refused: null,
    csrfVerified: token !== null && expected !== null && sameToken(token, expected),
  };
}

/** The error a refused cross-site request is answered with (403). */
export function crossSiteError(reason: string) {
  return frameworkError("permission_denied", `Cross-site request refused: ${reason}.`);
}

/**
 * Throws `permission_denied` unless the call's request is known not to be a cross-site forgery
 * (`ctx.csrfVerified`): call it first in handlers that change state on behalf of a
 * cookie-authenticated user.
 */
export function requireCsrf(ctx: { readonly csrfVerified: boolean; readonly method: string }): void {
  if (ctx.csrfVerified) return;
  throw frameworkError(
    "permission_denied",
    `'${ctx.method}' needs proof that its request was not forged cross-site: a request with cookies must come from a trusted page (Origin) or carry the CSRF token header equal to its cookie.`,
  );
}
