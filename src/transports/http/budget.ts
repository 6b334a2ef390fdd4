/**
 * The response budget: the smaller of the server's `maxResponseBytes` and the client's
 * `VGI-Accept-Max-Response-Bytes`. A successful answer over it is replaced by a
 * `ResponseTooLargeError`, as the reference does.
 */
import type { Schema } from "apache-arrow";
import { RpcError } from "../../errors.js";
import type { RpcServer } from "../../server/server.js";
import { totalBytes } from "../../wire/ipc.js";
import type { RequestCall } from "./calls.js";
import { ACCEPT_MAX_RESPONSE_BYTES_HEADER, MAX_RESPONSE_BUDGET_BYTES, MIN_RESPONSE_BUDGET_BYTES } from "./headers.js";
import { answer, answerBatches, answerReply, errorStreamReply, ok, type Reply, type Result } from "./replies.js";

function badHeader(server: RpcServer, message: string) {
  return answer(
    errorStreamReply(
      server,
      400,
      new RpcError(`${ACCEPT_MAX_RESPONSE_BYTES_HEADER} ${message}`, { type: "TypeError", code: "INVALID_ARGUMENT" }),
    ),
  );
}

/** The response budget in bytes (null: none); 400 for a header that is not a canonical integer in range. */
export function responseBudget(
  server: RpcServer,
  header: string | null,
  serverMax: number | null,
): Result<number | null> {
  if (header === null) return ok(serverMax);
  if (!/^[1-9][0-9]*$/.test(header)) return badHeader(server, "must be one canonical positive decimal integer");
  const value = Number(header);
  if (value < MIN_RESPONSE_BUDGET_BYTES) return badHeader(server, `must be at least ${MIN_RESPONSE_BUDGET_BYTES}`);
  if (value > MAX_RESPONSE_BUDGET_BYTES) return badHeader(server, `exceeds ${MAX_RESPONSE_BUDGET_BYTES}`);
  return ok(serverMax === null ? value : Math.min(serverMax, value));
}

/** The smaller of two limits, either possibly absent. */
export function tighter(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

/**
 * A call's answer under the budget: a successful body over `limit` becomes the call's
 * `ResponseTooLargeError` on `schema` (recorded as its failure); anything else goes as it is.
 */
export function budgetedAnswer(
  call: RequestCall,
  body: readonly Uint8Array[],
  failed: boolean,
  limit: number | null,
  schema: Schema,
): Reply {
  if (!failed && limit !== null) {
    const size = totalBytes(body);
    if (size > limit) {
      const error = new RpcError(
        `HTTP body exceeds max_response_bytes (${size} > ${limit}) for method '${call.methodName}'`,
        { type: "ResponseTooLargeError", code: "RESOURCE_EXHAUSTED" },
      );
      const refused = call.fail(schema, error);
      return answerBatches(refused.schema, refused.batches, true);
    }
  }
  return answerReply(body, failed);
}
