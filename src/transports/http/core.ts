/**
 * The HTTP transport's core: one `UniversalRequest` in, one `UniversalResponse` out, whatever
 * server carries them. A request goes through small steps (route, authenticate, read the body,
 * the response budget, resolve the method, run the call), each returning what the next needs or
 * the reply that ends it; only a failure of the transport itself is thrown, and answered 500.
 */
import { crossSiteError, crossSiteVerdict } from "../../auth/cross-site.js";
import { frameworkError, RpcError } from "../../errors.js";
import type { AuthContext } from "../../protocol/context.js";
import { ABORT_FLUSH_MS, type CloseOptions, graceOf, settledWithin, shutdownError } from "../../server/connections.js";
import type { ResolvedMethod, RpcServer, ServerCore } from "../../server/types.js";
import { concatBytes } from "../../wire/ipc.js";
import { TRANSPORT_OPTIONS_METHOD } from "../../wire/keys.js";
import { authenticateRequest } from "./authenticate.js";
import { contentTypeRefusal, readRequestBody } from "./body.js";
import { responseBudget } from "./budget.js";
import { type CallEnv, HttpCalls, newRequestId, type RunCall } from "./calls.js";
import { pickResponseEncoding } from "./compression.js";
import { type HttpConfig, type HttpServerOptions, resolveConfig } from "./config.js";
import { HeaderCookieJar, parseCookieHeader } from "./cookies.js";
import { addCorsHeaders } from "./cors.js";
import { ACCEPT_MAX_RESPONSE_BYTES_HEADER, AUTH_PROXY_REQUIRED_HEADER, REQUEST_ID_HEADER } from "./headers.js";
import {
  allowReply,
  answer,
  errorStreamReply,
  healthReply,
  htmlReply,
  internalErrorReply,
  methodNotAllowedReply,
  notFoundReply,
  oauthMetadataReply,
  ok,
  type Reply,
  type Result,
} from "./replies.js";
import { typeError } from "./requests.js";
import { respond } from "./respond.js";
import { type CallRoute, parseRoute } from "./routes.js";
import { serveExchange, serveInit } from "./streams.js";
import { serveUnary } from "./unary.js";
import type { UniversalRequest, UniversalResponse } from "./universal.js";
import { serveUploadUrls, UPLOAD_URL_METHOD } from "./upload-urls.js";

/** The transport for one `RpcServer`, independent of any HTTP server. */
export interface HttpCore {
  readonly config: HttpConfig;
  /** Serves one request. Rejects only when the transport itself fails (answer 500 then). */
  handle(request: UniversalRequest): Promise<UniversalResponse>;
  /** Calls in flight. */
  readonly activeCalls: number;
  /**
   * Stops taking calls (new ones are answered 503 `server_draining`), lets those in flight finish
   * within `graceMs`, then aborts the rest with `cancelled` and resolves once they have answered.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** Creates the transport core for `server`; throws on an unusable option. */
export function createHttpCore(server: RpcServer, options: HttpServerOptions): HttpCore {
  const config = resolveConfig(server, options);
  const calls = new HttpCalls();
  let closing = false;
  let closed: Promise<void> | null = null;
  const shutdown = async (graceMs: number): Promise<void> => {
    closing = true;
    await settledWithin([calls.idle()], graceMs);
    if (calls.size === 0) return;
    calls.abortAll(shutdownError(graceMs));
    await settledWithin([calls.idle()], ABORT_FLUSH_MS);
  };
  const state: CallState = {
    calls,
    get closing() {
      return closing;
    },
  };
  return {
    config,
    get activeCalls() {
      return calls.size;
    },
    close(opts) {
      closed ??= shutdown(graceOf(opts));
      return closed;
    },
    async handle(req) {
      const requestId = req.headers.get(REQUEST_ID_HEADER) || newRequestId();
      const coding = pickResponseEncoding(
        req.headers.get("accept-encoding"),
        req.headers.get("x-vgi-accept-encoding"),
        config.encodings,
      );
      let reply: Reply;
      try {
        reply = await route(config, state, req, requestId);
      } catch (err) {
        const e = RpcError.from(err);
        server.logger.error({ err: e }, "HTTP transport failure");
        reply = internalErrorReply(e.message);
      }
      if (reply.status === 401 && config.proxyHint !== null) reply = withProxyHint(reply, config.proxyHint);
      if (reply.status === 401 && config.oauth !== null) challengeWith(reply, config.oauth.challenge);
      if (config.cors !== null) addCorsHeaders(config.cors, req, reply.headers);
      return respond(config, req.method, reply, requestId, coding);
    },
  };
}

/** What the core's calls share: who runs them, and whether the core is closing. */
interface CallState {
  readonly calls: HttpCalls;
  readonly closing: boolean;
}

/** The HTML page a `GET`/`HEAD` asks for (`HttpServerOptions.pages`), or null. */
function pageOf(config: HttpConfig, req: UniversalRequest): Uint8Array | null {
  const pages = config.pages;
  if (pages === null || (req.method !== "GET" && req.method !== "HEAD")) return null;
  const p = config.prefix;
  if (req.path === p || req.path === `${p}/`) return pages.landing;
  return req.path === `${p}/describe` ? pages.describe : null;
}

/** A page, once its caller is authenticated (as for any route but `/health`). */
async function servePage(config: HttpConfig, req: UniversalRequest, html: Uint8Array): Promise<Reply> {
  const auth = await authenticateRequest(req, config.authenticate, config.server);
  return auth.ok ? htmlReply(html) : auth.reply;
}

/** A 401 with the proxy note: `VGI-Auth-Proxy-Required: true`, and `proxy_hint` in its JSON body. */
function withProxyHint(reply: Reply, hint: string): Reply {
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
function challengeWith(reply: Reply, challenge: string): void {
  const at = reply.headers.findIndex(([k]) => k.toLowerCase() === "www-authenticate");
  if (at >= 0) reply.headers.splice(at, 1);
  reply.headers.push(["WWW-Authenticate", challenge]);
}

function route(config: HttpConfig, state: CallState, req: UniversalRequest, requestId: string): Reply | Promise<Reply> {
  if (config.oauth !== null && req.path === config.oauth.path) return oauthMetadataReply(req.method, config.oauth.body);
  const html = pageOf(config, req);
  if (html !== null) return servePage(config, req, html);
  const route = parseRoute(req.method, req.path, config.prefix);
  switch (route.kind) {
    case "health":
      return healthReply(config.healthBody, route.head);
    case "options":
      return allowReply(route.allow);
    case "not-found":
      return notFoundReply(config.prefix);
    case "method-not-allowed":
      if (route.ifHosted !== undefined && !config.server.protocols.has(route.ifHosted)) {
        return notFoundReply(config.prefix);
      }
      return methodNotAllowedReply(route.allow);
    default:
      return call(config, state, req, route, requestId);
  }
}

/** The facts of the request a call's context carries (`ctx.transportMetadata`, cookies, trace context). */
function callEnv(
  server: ServerCore,
  req: UniversalRequest,
  auth: AuthContext,
  externalCap: number | null,
  cookieJar: HeaderCookieJar | null,
  csrfVerified: boolean,
): CallEnv {
  const transportMetadata: Record<string, string> = {};
  if (req.remoteAddr) transportMetadata.remote_addr = req.remoteAddr;
  const ua = req.headers.get("user-agent");
  if (ua) transportMetadata.user_agent = ua;
  const traceContext: Record<string, string> = {};
  for (const h of ["traceparent", "tracestate"]) {
    const v = req.headers.get(h);
    if (v) traceContext[h] = v;
  }
  const idempotencyKey = req.headers.get("idempotency-key") ?? undefined;
  return {
    server,
    transport: "http",
    transportMetadata,
    auth,
    ...(csrfVerified ? {} : { csrfVerified }),
    http: {
      cookies: parseCookieHeader(req.headers.get("cookie")),
      traceContext,
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      ...(cookieJar !== null ? { cookieJar } : {}),
      // One budget per request: a unary call, a stream's init, or one exchange turn.
      ...(externalCap !== null && server.external !== null ? { externalBudget: { limit: externalCap, used: 0 } } : {}),
    },
  };
}

/** The method a route names; 404 when no hosted protocol has it. */
function resolveMethod(server: ServerCore, protocol: string, method: string): Result<ResolvedMethod> {
  if (protocol.includes("%")) {
    return answer(
      errorStreamReply(
        server,
        404,
        frameworkError(
          "protocol_not_specified",
          `Protocol path segment '${protocol}' contains a percent sign. The protocol charset never requires encoding, so this is rejected rather than decoded.`,
        ),
      ),
    );
  }
  // Routing errors (bad name, unhosted protocol, no such method) are the dispatch core's, as 404s.
  try {
    return ok(server.resolve(protocol, method));
  } catch (err) {
    return answer(errorStreamReply(server, 404, RpcError.from(err)));
  }
}

/** A route that runs a call: authenticated, its body read, its method resolved and fitting the route. */
async function call(
  config: HttpConfig,
  state: CallState,
  req: UniversalRequest,
  route: CallRoute,
  requestId: string,
): Promise<Reply> {
  const { server } = config;
  if (state.closing) {
    return errorStreamReply(
      server,
      503,
      frameworkError("server_draining", "The server is shutting down and accepts no new calls."),
    );
  }
  const starting = server.serveStart("http");
  if (starting !== null) {
    try {
      await starting;
    } catch (err) {
      return internalErrorReply(`the server's start hook failed: ${RpcError.from(err).message}`);
    }
  }
  // Cookies sent by a page of an untrusted origin are refused before anything reads them.
  const crossSite = crossSiteVerdict(config.crossSite, req.headers);
  if (crossSite.refused !== null) return errorStreamReply(server, 403, crossSiteError(crossSite.refused));
  const auth = await authenticateRequest(req, config.authenticate, server);
  if (!auth.ok) return auth.reply;
  const body = await readRequestBody(req, config);
  if (!body.ok) return body.reply;
  const budget = responseBudget(server, req.headers.get(ACCEPT_MAX_RESPONSE_BYTES_HEADER), config.maxResponseBytes);
  if (!budget.ok) return budget.reply;
  // A unary call may set cookies (its answer carries them); nothing else may.
  const jar = route.kind === "unary" || route.kind === "reserved" ? new HeaderCookieJar() : null;
  const env = callEnv(server, req, auth.value, config.maxExternalizedResponseBytes, jar, crossSite.csrfVerified);
  const run: RunCall = (callEnv, work) => state.calls.run(callEnv, requestId, req, work);
  if (route.kind === "reserved") {
    if (route.method !== TRANSPORT_OPTIONS_METHOD) {
      const error = frameworkError(
        "method_not_implemented",
        `This server does not implement the reserved method '${route.method}'.`,
      );
      return errorStreamReply(server, 404, error);
    }
    const refused = contentTypeRefusal(server, req.headers);
    if (refused !== null) return refused;
    return server.track(serveUnary(server, env, null, route.method, body.value, run, budget.value, jar));
  }
  if (config.uploadUrls !== null && route.kind === "unary" && route.protocol === UPLOAD_URL_METHOD) {
    // `POST {prefix}/__upload_url__/init` (two segments, so routed as a unary path).
    if (route.method === "init") {
      const refused = contentTypeRefusal(server, req.headers);
      if (refused !== null) return refused;
      return server.track(serveUploadUrls(server, config.uploadUrls, body.value));
    }
  }
  const resolved = resolveMethod(server, route.protocol, route.method);
  if (!resolved.ok) return resolved.reply;
  const method = resolved.value;
  const kind = method.decl.kind;
  if (route.kind === "unary" && kind !== "unary") {
    return errorStreamReply(
      server,
      400,
      typeError(`Stream method '${route.method}' requires /init and /exchange endpoints`),
    );
  }
  if (route.kind === "init" && kind === "unary") {
    return errorStreamReply(server, 400, typeError(`Method '${route.method}' is not a stream`));
  }
  if (route.kind === "exchange" && kind === "unary") {
    return errorStreamReply(server, 400, typeError(`Method '${route.method}' does not support /exchange`));
  }
  const refused = contentTypeRefusal(server, req.headers);
  if (refused !== null) return refused;
  if (route.kind === "unary") {
    return server.track(serveUnary(server, env, method, route.method, body.value, run, budget.value, jar));
  }
  const stream = { server, keys: config.keys, env, method, run, budget: budget.value };
  return server.track(route.kind === "init" ? serveInit(stream, body.value) : serveExchange(stream, body.value));
}
