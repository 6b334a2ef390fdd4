/**
 * What the core answers besides calls, and what it adds to any reply: the HTML pages (after
 * authentication), the proxy note of a 401, the OAuth challenge.
 */

import { concatBytes } from "../../wire/ipc.js";
import { authenticateRequest } from "./authenticate.js";
import type { HttpConfig } from "./config.js";
import { AUTH_PROXY_REQUIRED_HEADER } from "./headers.js";
import { htmlReply, type Reply } from "./replies.js";
import type { UniversalRequest } from "./universal.js";

/** The HTML page a `GET`/`HEAD` asks for (`HttpServerOptions.pages`), or null. */
export function pageOf(config: HttpConfig, req: UniversalRequest): Uint8Array | null {
  const pages = config.pages;
  if (pages === null || (req.method !== "GET" && req.method !== "HEAD")) return null;
  const p = config.prefix;
  if (req.path === p || req.path === `${p}/`) return pages.landing;
  return req.path === `${p}/describe` ? pages.describe : null;
}

/** A page, once its caller is authenticated (as for any route but `/health`). */
export async function servePage(config: HttpConfig, req: UniversalRequest, html: Uint8Array): Promise<Reply> {
  const auth = await authenticateRequest(req, config.authenticate, config.server, config.authTimeoutMs);
  return auth.ok ? htmlReply(html) : auth.reply;
}

/** A 401 with the proxy note: `VGI-Auth-Proxy-Required: true`, and `proxy_hint` in its JSON body. */
export function withProxyHint(reply: Reply, hint: string): Reply {
  let body = reply.body;
  if (reply.contentType === "application/json") {
    try {
      const value = JSON.parse(new TextDecoder().decode(concatBytes(reply.body))) as Record<string, unknown>;
      body = [new TextEncoder().encode(JSON.stringify({ ...value, proxy_hint: hint }))];
    } catch {
      // Not the JSON envelope: the header alone says it.
    }
  }
  return { ...reply, headers: [...reply.headers, [AUTH_PROXY_REQUIRED_HEADER, "true"]], body };
}

/** `reply`'s `WWW-Authenticate` set to `challenge` (OAuth discovery's). */
export function challengeWith(reply: Reply, challenge: string): void {
  const at = reply.headers.findIndex(([k]) => k.toLowerCase() === "www-authenticate");
  if (at >= 0) reply.headers.splice(at, 1);
  reply.headers.push(["WWW-Authenticate", challenge]);
}
