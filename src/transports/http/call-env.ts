/** A call route's request made into what the dispatch core needs: its method, and its call environment. */
import { frameworkError, RpcError } from "../../errors.js";
import type { AuthContext } from "../../protocol/context.js";
import type { ResolvedMethod, ServerCore } from "../../server/types.js";
import type { CallEnv } from "./calls.js";
import { type HeaderCookieJar, parseCookieHeader } from "./cookies.js";
import { answer, errorStreamReply, ok, type Result } from "./replies.js";
import type { RequestSession } from "./sticky-request.js";
import type { UniversalRequest } from "./universal.js";

/** The facts of the request a call's context carries (`ctx.transportMetadata`, cookies, trace context). */
export function callEnv(
  server: ServerCore,
  req: UniversalRequest,
  auth: AuthContext,
  externalCap: number | null,
  cookieJar: HeaderCookieJar | null,
  csrfVerified: boolean,
  session: RequestSession | null,
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
      ...(session !== null ? { session } : {}),
      // One budget per request: a unary call, a stream's init, or one exchange turn.
      ...(externalCap !== null && server.external !== null ? { externalBudget: { limit: externalCap, used: 0 } } : {}),
    },
  };
}

/** The method a route names; 404 when no hosted protocol has it. */
export function resolveMethod(server: ServerCore, protocol: string, method: string): Result<ResolvedMethod> {
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
