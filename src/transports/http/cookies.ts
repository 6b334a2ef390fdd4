/** Cookie headers: parsing `Cookie`, formatting `Set-Cookie` (RFC 6265 syntax). */
import type { CookieOptions } from "../../protocol/context.js";
import type { CookieJar } from "./calls.js";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/;
const ATTRIBUTE_VALUE = /^[\x20-\x3A\x3C-\x7E]*$/;

/** The request's cookies by name (the first occurrence of a name wins). */
export function parseCookieHeader(header: string | null): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name && !out.has(name)) out.set(name, value);
  }
  return out;
}

function attr(name: string, value: string): string {
  if (!ATTRIBUTE_VALUE.test(value)) throw new TypeError(`cookie ${name} '${value}' contains characters not allowed`);
  return `; ${name}=${value}`;
}

/**
 * One `Set-Cookie` value. `HttpOnly` defaults to on and `Path` to `/`; a deletion sets an empty
 * value that expired at the epoch with `Max-Age=0`. Throws `TypeError` for a name or value that
 * cannot appear in the header.
 */
export function formatSetCookie(name: string, value: string, options: CookieOptions, deletion: boolean): string {
  if (!TOKEN.test(name)) throw new TypeError(`cookie name '${name}' is not a valid token`);
  if (!COOKIE_VALUE.test(value)) {
    throw new TypeError(`cookie value for '${name}' contains characters not allowed in a cookie (encode it first)`);
  }
  let out = `${name}=${value}`;
  if (deletion) {
    out += "; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0";
  } else {
    if (options.expires !== undefined) out += `; Expires=${options.expires.toUTCString()}`;
    if (options.maxAge !== undefined) {
      if (!Number.isFinite(options.maxAge)) throw new TypeError("cookie maxAge must be a finite number of seconds");
      out += `; Max-Age=${Math.trunc(options.maxAge)}`;
    }
  }
  if (options.domain !== undefined) out += attr("Domain", options.domain);
  out += attr("Path", options.path ?? "/");
  if (options.secure === true) out += "; Secure";
  if (options.httpOnly !== false) out += "; HttpOnly";
  if (options.sameSite !== undefined) out += `; SameSite=${options.sameSite}`;
  if (options.partitioned === true) out += "; Partitioned";
  return out;
}

/** Collects the `Set-Cookie` headers a unary handler queues, for its answer. */
export class HeaderCookieJar implements CookieJar {
  readonly headers: string[] = [];
  set(name: string, value: string, options: CookieOptions): void {
    this.headers.push(formatSetCookie(name, value, options, false));
  }
  delete(name: string, options: CookieOptions): void {
    this.headers.push(formatSetCookie(name, "", options, true));
  }
}
