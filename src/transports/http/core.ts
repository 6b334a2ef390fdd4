/**
 * The HTTP transport's core: one `UniversalRequest` in, one `UniversalResponse` out, whatever
 * server carries them. A request goes through small steps (route, authenticate, read the body,
 * the response budget, resolve the method, run the call), each returning what the next needs or
 * the reply that ends it; only a failure of the transport itself is thrown, and answered 500.
 */
import { crossSiteError, crossSiteVerdict } from "../../auth/cross-site.js";
import { pickResponseEncoding } from "../../codec/compression.js";
import { frameworkError, RpcError } from "../../errors.js";
import { ABORT_FLUSH_MS, type CloseOptions, graceOf, settledWithin, shutdownError } from "../../server/connections.js";
import type { RpcServer, ServerCore } from "../../server/types.js";
import { EMPTY_SCHEMA } from "../../wire/batches.js";
import { encodeStream } from "../../wire/ipc.js";
import { TRANSPORT_OPTIONS_METHOD } from "../../wire/keys.js";
import { errorBatch } from "../../wire/messages.js";
import { authenticateRequest } from "./authenticate.js";
import { contentTypeRefusal, readRequestBody } from "./body.js";
import { responseBudget } from "./budget.js";
import { callEnv, resolveMethod } from "./call-env.js";
import { type CallEnv, HttpCalls, newRequestId, type RunCall } from "./calls.js";
import { type HttpConfig, type HttpServerOptions, resolveConfig } from "./config.js";
import { HeaderCookieJar } from "./cookies.js";
import { addCorsHeaders } from "./cors.js";
import { challengeWith, pageOf, servePage, withProxyHint } from "./decorate.js";
import {
  ACCEPT_MAX_RESPONSE_BYTES_HEADER,
  REQUEST_ID_HEADER,
  SESSION_CLOSE_HEADER,
  SESSION_ENDPOINT,
} from "./headers.js";
import {
  allowReply,
  answerReply,
  emptyReply,
  errorStreamReply,
  healthReply,
  internalErrorReply,
  methodNotAllowedReply,
  notFoundReply,
  oauthMetadataReply,
  type Reply,
} from "./replies.js";
import { typeError } from "./requests.js";
import { respond } from "./respond.js";
import { type CallRoute, parseRoute } from "./routes.js";
import { sessionLost } from "./session-token.js";
import { SessionRegistry, type StickySessions } from "./sticky.js";
import { deleteSession, type RequestSession, requestSession } from "./sticky-request.js";
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
  /** The sticky sessions, or null when the handler keeps none (`HttpServerOptions.sticky`). */
  readonly sessions: StickySessions | null;
  /**
   * Stops taking calls (new ones are answered 503 `server_draining`), lets those in flight finish
   * within `graceMs`, then aborts the rest with `cancelled` and resolves once they have answered;
   * then closes every sticky session.
   */
  close(opts?: CloseOptions): Promise<void>;
}

/** Creates the transport core for `server`; throws on an unusable option. */
export function createHttpCore(server: RpcServer, options: HttpServerOptions): HttpCore {
  const config = resolveConfig(server, options);
  const calls = new HttpCalls();
  const sessions =
    config.sticky === null
      ? null
      : new SessionRegistry(config.sticky, config.keys.key, config.server.serverId, config.server.logger);
  let closing = false;
  let closed: Promise<void> | null = null;
  const drain = async (graceMs: number): Promise<void> => {
    await settledWithin([calls.idle()], graceMs);
    if (calls.size === 0) return;
    calls.abortAll(shutdownError(graceMs));
    await settledWithin([calls.idle()], ABORT_FLUSH_MS);
  };
  const shutdown = async (graceMs: number): Promise<void> => {
    closing = true;
    sessions?.setDraining(true);
    await drain(graceMs);
    // Sessions hold their state for calls to come; none will come now. A close() that never
    // settles does not hold the shutdown up past the flush.
    if (sessions !== null) await settledWithin([sessions.closeAll()], ABORT_FLUSH_MS);
  };
  const state: CallState = {
    calls,
    sessions,
    get closing() {
      return closing;
    },
  };
  return {
    config,
    sessions,
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

/** What the core's calls share: who runs them, the sticky sessions, and whether the core is closing. */
interface CallState {
  readonly calls: HttpCalls;
  readonly sessions: SessionRegistry | null;
  readonly closing: boolean;
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
    case "session":
      return sessionRoute(config, state, req, route.httpMethod, requestId);
    default:
      return call(config, state, req, route, requestId);
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
  const auth = await authenticateRequest(req, config.authenticate, server, config.authTimeoutMs);
  if (!auth.ok) return auth.reply;
  // A presented session token is resolved before the body is read: one that does not resolve
  // here is answered at once.
  let session: RequestSession | null = null;
  if (state.sessions !== null) {
    const found = requestSession(state.sessions, req.headers, auth.value);
    if (found instanceof RpcError) return sessionLostReply(server, found, requestId);
    session = found;
  }
  const body = await readRequestBody(req, config);
  if (!body.ok) return body.reply;
  const budget = responseBudget(server, req.headers.get(ACCEPT_MAX_RESPONSE_BYTES_HEADER), config.maxResponseBytes);
  if (!budget.ok) return budget.reply;
  // A unary call may set cookies (its answer carries them); nothing else may.
  const jar = route.kind === "unary" || route.kind === "reserved" ? new HeaderCookieJar() : null;
  const env = callEnv(
    server,
    req,
    auth.value,
    config.maxExternalizedResponseBytes,
    jar,
    crossSite.csrfVerified,
    session,
  );
  const run: RunCall = (callEnv, work) => state.calls.run(callEnv, requestId, req, work);
  if (session === null) return dispatchCall(config, req, route, env, run, body.value, budget.value, jar);
  return inSession(server, session, requestId, () =>
    dispatchCall(config, req, route, env, run, body.value, budget.value, jar),
  );
}

/** The session-lost answer: an error stream under 200 with `X-VGI-RPC-Error`, as the reference's middleware sends it. */
function sessionLostReply(server: ServerCore, error: RpcError, requestId: string): Reply {
  const batch = errorBatch(EMPTY_SCHEMA, error, { serverId: server.serverId, requestId }, false);
  return answerReply(encodeStream(EMPTY_SCHEMA, [batch]), true);
}

/**
 * Runs `work` in the request's session's turn (after the calls before it on the same session),
 * then adds the session headers to its answer. A session that ended while the request waited is
 * answered `session_lost`; too many waiting, `session_limit`.
 */
async function inSession(
  server: ServerCore,
  session: RequestSession,
  requestId: string,
  work: () => Promise<Reply> | Reply,
): Promise<Reply> {
  let mine: boolean;
  try {
    mine = await session.begin();
  } catch (err) {
    return sessionLostReply(server, RpcError.from(err), requestId);
  }
  if (!mine)
    return sessionLostReply(server, sessionLost("session not found, expired, or principal mismatch"), requestId);
  let reply: Reply | undefined;
  try {
    reply = await work();
    return reply;
  } finally {
    session.end(reply?.headers ?? []);
  }
}

/** `{prefix}/__session__`: `DELETE` closes a sticky session; without sticky sessions, a reserved-method route. */
async function sessionRoute(
  config: HttpConfig,
  state: CallState,
  req: UniversalRequest,
  httpMethod: string,
  requestId: string,
): Promise<Reply> {
  const sessions = state.sessions;
  if (sessions === null) {
    if (httpMethod === "OPTIONS") return allowReply("POST, OPTIONS");
    if (httpMethod !== "POST") return methodNotAllowedReply("POST, OPTIONS");
    return call(config, state, req, { kind: "reserved", method: SESSION_ENDPOINT }, requestId);
  }
  // As the reference's Falcon route answers: OPTIONS allows DELETE, anything else is 405.
  if (httpMethod === "OPTIONS") return allowReply("DELETE");
  if (httpMethod !== "DELETE") return methodNotAllowedReply("DELETE, OPTIONS");
  const crossSite = crossSiteVerdict(config.crossSite, req.headers);
  if (crossSite.refused !== null) return errorStreamReply(config.server, 403, crossSiteError(crossSite.refused));
  const auth = await authenticateRequest(req, config.options.authenticate, config.server, config.authTimeoutMs);
  if (!auth.ok) return auth.reply;
  if (!(await deleteSession(sessions, req.headers, auth.value))) return emptyReply(200);
  const reply = emptyReply(204);
  reply.headers.push([SESSION_CLOSE_HEADER, "true"]);
  return reply;
}

/** Resolves the route's method and runs the call (the session, if any, already taken). */
function dispatchCall(
  config: HttpConfig,
  req: UniversalRequest,
  route: CallRoute,
  env: CallEnv,
  run: RunCall,
  body: Uint8Array,
  budget: number | null,
  jar: HeaderCookieJar | null,
): Promise<Reply> | Reply {
  const { server } = config;
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
    return server.track(serveUnary(server, env, null, route.method, body, run, budget, jar));
  }
  if (config.uploadUrls !== null && route.kind === "unary" && route.protocol === UPLOAD_URL_METHOD) {
    // `POST {prefix}/__upload_url__/init` (two segments, so routed as a unary path).
    if (route.method === "init") {
      const refused = contentTypeRefusal(server, req.headers);
      if (refused !== null) return refused;
      return server.track(serveUploadUrls(server, config.uploadUrls, body));
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
    return server.track(serveUnary(server, env, method, route.method, body, run, budget, jar));
  }
  const stream = { server, keys: config.keys, env, method, run, budget };
  return server.track(route.kind === "init" ? serveInit(stream, body) : serveExchange(stream, body));
}
