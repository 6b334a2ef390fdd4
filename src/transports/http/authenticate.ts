/** Authentication of an RPC request: the caller, or the 401 that refuses it. */
import { authenticateWithin } from "../../auth/timeout.js";
import { type Authenticator, type AuthRequest, AuthUnavailableError, authReasonOf } from "../../auth/types.js";
import { ANONYMOUS, type AuthContext } from "../../protocol/context.js";
import type { RpcServer } from "../../server/server.js";
import { answer, ok, type Result, unauthorizedReply, unavailableReply } from "./replies.js";
import type { UniversalRequest } from "./universal.js";

/**
 * Runs `authenticate` on the request line, headers and connection facts (never the body). An
 * authenticator that throws refuses the request: 401 with the reason it names (`AuthFailure`),
 * logged as a warning; an `AuthUnavailableError`, or no answer within `timeoutMs`, answers 503 with
 * its `Retry-After` instead.
 */
export async function authenticateRequest(
  req: UniversalRequest,
  authenticate: Authenticator | undefined,
  server: RpcServer,
  timeoutMs: number,
): Promise<Result<AuthContext>> {
  if (authenticate === undefined) return ok(ANONYMOUS);
  const request: AuthRequest = {
    method: req.method,
    path: req.path,
    headers: req.headers,
    remoteAddr: req.remoteAddr,
    peerCertificate: req.peerCertificate,
  };
  try {
    return ok(await authenticateWithin(authenticate, request, timeoutMs));
  } catch (err) {
    if (err instanceof AuthUnavailableError) {
      // Not a refusal: the authority could not be asked. A 401 would send every caller to
      // re-authenticate against a service that is merely down.
      server.logger.warn({ remote_addr: req.remoteAddr, err }, "Authentication unavailable");
      return answer(unavailableReply(err.retryAfterSeconds));
    }
    const reason = authReasonOf(err);
    server.logger.warn({ remote_addr: req.remoteAddr, auth_reason: reason }, "Auth failure");
    return answer(unauthorizedReply(reason, `authentication rejected: ${(err as Error)?.message ?? String(err)}`));
  }
}
