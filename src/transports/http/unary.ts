/** A unary call over HTTP (`POST {prefix}/{protocol}/{method}`, and the reserved methods). */
import type { ResolvedMethod, RpcServer } from "../../server/server.js";
import { encodeStream } from "../../wire/ipc.js";
import { budgetedAnswer } from "./budget.js";
import type { CallEnv, RunCall } from "./calls.js";
import type { HeaderCookieJar } from "./cookies.js";
import { errorStreamReply, type Reply } from "./replies.js";
import { admissionReply, checkRequest, decodeRequest, exhaustedReply, typeError } from "./requests.js";

/**
 * Runs one unary call from its request body: the answer stream under the response budget, with
 * the `Set-Cookie` headers the handler queued in `jar` (the one `env` carries). `resolved` is null
 * for a reserved method, which admission answers itself.
 */
export async function serveUnary(
  server: RpcServer,
  env: CallEnv,
  resolved: ResolvedMethod | null,
  method: string,
  body: Uint8Array,
  run: RunCall,
  budget: number | null,
  jar: HeaderCookieJar | null,
): Promise<Reply> {
  const decoded = await decodeRequest(server, body);
  if (!decoded.ok) return decoded.reply;
  const request = checkRequest(server, decoded.value, resolved, method);
  if (!request.ok) return request.reply;
  const reply = await run(env, async (call) => {
    const admission = call.admit(request.value);
    if (admission.kind === "answer") return admissionReply(server, call.error, call.origin, admission.answer);
    if (admission.kind !== "unary") {
      return errorStreamReply(
        server,
        400,
        typeError(`Stream method '${method}' requires /init and /exchange endpoints`),
      );
    }
    const answer = await call.unary(admission.method, admission.params);
    const failed = call.error !== null;
    if (failed) {
      const exhausted = exhaustedReply(call.error, answer);
      if (exhausted !== null) return exhausted;
    }
    return budgetedAnswer(call, encodeStream(answer.schema, answer.batches), failed, budget, answer.schema);
  });
  if (jar !== null) for (const c of jar.headers) reply.headers.push(["Set-Cookie", c]);
  return reply;
}
