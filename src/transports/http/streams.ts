/**
 * Streams over HTTP, stateless on the server: `/init` opens a stream and answers its two tokens
 * (see tokens.ts), each `/exchange` opens them, runs one turn and answers a fresh cursor.
 *
 *   /init      header stream (when declared), then the output stream: init logs, a producer's
 *              first turn, and a zero-row batch carrying the cursor and call tokens (none once
 *              a producer has finished)
 *   /exchange  one turn: the answer carries the next cursor on an exchange's data batch, or on a
 *              zero-row batch after a producer's; a cancel batch runs `onCancel` and answers empty
 */
import { randomBytes } from "node:crypto";
import type { RecordBatch } from "apache-arrow";
import { RpcError } from "../../errors.js";
import { externalizeTurn } from "../../external/externalize.js";
import type { AuthContext } from "../../protocol/context.js";
import type { ResolvedMethod, RpcServer } from "../../server/server.js";
import { coreOf } from "../../server/types.js";
import { EMPTY_SCHEMA, emptyBatch, withMetadata } from "../../wire/batches.js";
import { encodeStream } from "../../wire/ipc.js";
import { CALL_STATE_KEY, CANCEL_KEY, STREAM_STATE_KEY } from "../../wire/keys.js";
import { classifyBatch } from "../../wire/messages.js";
import { budgetedAnswer, tighter } from "./budget.js";
import type { CallEnv, OpenStream, RunCall } from "./calls.js";
import { answer, answerBatches, errorStreamReply, ok, type Reply, type Result } from "./replies.js";
import { admissionReply, checkRequest, decodeRequest, exhaustedReply, refusalReply, typeError } from "./requests.js";
import {
  type CallTokenData,
  openCallToken,
  openCursorToken,
  sealCallToken,
  sealCursorToken,
  type TokenKeyring,
} from "./tokens.js";

/** What a stream route needs besides the request. */
export interface StreamRoute {
  readonly server: RpcServer;
  readonly keys: TokenKeyring;
  readonly env: CallEnv;
  readonly method: ResolvedMethod;
  /** Runs the request's call. */
  readonly run: RunCall;
  /** The response budget of this request. */
  readonly budget: number | null;
}

/** A sealed token, or what sealing threw (a state value outside its declared type). */
type Sealed = { readonly ok: true; readonly token: string } | { readonly ok: false; readonly error: unknown };

function seal(make: () => string): Sealed {
  try {
    return { ok: true, token: make() };
  } catch (error) {
    return { ok: false, error };
  }
}

function sealCursor(route: StreamRoute, callId: Uint8Array, stream: OpenStream): Sealed {
  return seal(() => sealCursorToken(callId, stream.state, stream.method, route.env.auth, route.keys));
}

/**
 * The call token (sealed once: schemas, stream id, response limit) and the first cursor, both
 * sealed before the first turn whatever the kind, so a state that cannot travel fails the init;
 * or what sealing threw.
 */
function sealTokens(
  route: StreamRoute,
  streamId: string,
  callId: Uint8Array,
  stream: OpenStream,
):
  | { readonly ok: true; readonly callToken: string; readonly cursor: string }
  | { readonly ok: false; readonly error: unknown } {
  try {
    const data = {
      callId,
      streamId,
      outputSchema: stream.outputSchema,
      inputSchema: stream.inputSchema,
      responseLimit: route.budget,
    };
    const callToken = sealCallToken(data, stream.method, route.env.auth, route.keys);
    return {
      ok: true,
      callToken,
      cursor: sealCursorToken(callId, stream.state, stream.method, route.env.auth, route.keys),
    };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Opens a stream from its init request; a producer's first turn runs here. */
export async function serveInit(route: StreamRoute, body: Uint8Array): Promise<Reply> {
  const { server, method: resolved } = route;
  const decoded = await decodeRequest(server, body);
  if (!decoded.ok) return decoded.reply;
  const checked = checkRequest(server, decoded.value, resolved, resolved.name);
  if (!checked.ok) return checked.reply;
  const request = checked.value;
  return route.run(route.env, async (call) => {
    const admission = call.admit(request);
    if (admission.kind === "answer") return admissionReply(server, call.error, call.origin, admission.answer);
    if (admission.kind !== "stream") {
      return errorStreamReply(server, 400, typeError(`Method '${resolved.name}' is not a stream`));
    }
    const opening = await call.open(admission.method, admission.params);
    if (!opening.ok) {
      return (
        exhaustedReply(call.error, opening.answer) ?? answerBatches(opening.answer.schema, opening.answer.batches, true)
      );
    }
    const { stream } = opening;
    const callId = randomBytes(16);
    const tokens = sealTokens(route, call.streamId, callId, stream);
    if (!tokens.ok) {
      const refused = call.fail(EMPTY_SCHEMA, tokens.error);
      return answerBatches(refused.schema, refused.batches, true);
    }
    const { callToken, cursor } = tokens;
    const parts: Uint8Array[] = [];
    if (opening.header !== null) parts.push(...encodeStream(opening.header.schema, opening.header.batches));
    const out: RecordBatch[] = [...opening.initLogs];
    let failed = false;
    if (stream.inputSchema.fields.length === 0) {
      // A producer's first turn runs inside /init, ticked with the init request's metadata.
      const tickMd = new Map(request?.metadata ?? []);
      for (const k of [STREAM_STATE_KEY, CALL_STATE_KEY, CANCEL_KEY]) tickMd.delete(k);
      const turn = await call.turn(stream, emptyBatch(EMPTY_SCHEMA, tickMd));
      out.push(...turn.batches);
      failed = call.error !== null;
      if (turn.cancelled) call.cancelled();
      if (!turn.done) {
        const next = sealCursor(route, callId, stream);
        if (!next.ok) {
          failed = true;
          out.push(call.fail(stream.outputSchema, RpcError.from(next.error)).batches[0]!);
        } else {
          const sentinel = new Map([
            [STREAM_STATE_KEY, next.token],
            [CALL_STATE_KEY, callToken],
          ]);
          out.push(emptyBatch(stream.outputSchema, sentinel));
        }
      }
    } else {
      const sentinel = emptyBatch(
        stream.outputSchema,
        new Map([
          [STREAM_STATE_KEY, cursor],
          [CALL_STATE_KEY, callToken],
        ]),
      );
      call.wrote([sentinel]);
      out.push(sentinel);
    }
    parts.push(...encodeStream(stream.outputSchema, out));
    return budgetedAnswer(call, parts, failed, route.budget, EMPTY_SCHEMA);
  });
}

/** The stream's state and call data from the turn's two tokens; 400 when either is missing or does not open. */
async function openTokens(
  route: StreamRoute,
  md: ReadonlyMap<string, string>,
  auth: AuthContext,
): Promise<Result<{ readonly state: Record<string, unknown>; readonly call: CallTokenData }>> {
  const refuse = (err: unknown) => answer(errorStreamReply(route.server, 400, RpcError.from(err)));
  const cursorText = md.get(STREAM_STATE_KEY);
  if (cursorText === undefined) {
    return refuse(new RpcError("Missing state token in exchange request", { type: "RuntimeError" }));
  }
  let cursor: Awaited<ReturnType<typeof openCursorToken>>;
  let callData: CallTokenData;
  try {
    cursor = await openCursorToken(cursorText, route.method, auth, route.keys);
    const callText = md.get(CALL_STATE_KEY);
    if (callText === undefined) {
      return refuse(new RpcError("Missing call token in exchange request", { type: "RuntimeError" }));
    }
    callData = await openCallToken(callText, route.method, auth, route.keys);
  } catch (err) {
    return refuse(err);
  }
  if (!equalBytes(cursor.callId, callData.callId)) {
    return refuse(new RpcError("State token does not belong to the supplied call token", { type: "RuntimeError" }));
  }
  return ok({ state: cursor.state, call: callData });
}

/** Runs one more turn of a stream (or its cancel) from an exchange request. */
export async function serveExchange(route: StreamRoute, body: Uint8Array): Promise<Reply> {
  const { server, method: resolved } = route;
  const decoded = await decodeRequest(server, body, "input");
  if (!decoded.ok) return decoded.reply;
  const input = decoded.value;
  if (input === null) {
    return errorStreamReply(server, 400, typeError("Exchange request carries no batch; expected one input batch."));
  }
  const opened = await openTokens(route, input.metadata, route.env.auth);
  if (!opened.ok) return opened.reply;
  const { state, call: callData } = opened.value;
  const limit = tighter(route.budget, callData.responseLimit);
  return route.run(route.env, async (call) => {
    const refusal = call.resume(resolved, callData.streamId, input);
    if (refusal !== null) {
      return refusalReply(server, refusal, call.origin) ?? errorStreamReply(server, 403, refusal, call.origin);
    }
    const stream: OpenStream = {
      method: resolved,
      state,
      outputSchema: callData.outputSchema,
      inputSchema: callData.inputSchema,
    };
    const producer = stream.inputSchema.fields.length === 0;
    // A stream whose input schema is empty continues as a producer, as the reference's HTTP server
    // runs it: its turn processes a tick carrying this request's metadata, whatever columns came.
    // An exchange's cursor rides inside its data batch, so the turn is externalized after it is added.
    const turn = await call.turn(stream, producer ? emptyBatch(EMPTY_SCHEMA, input.metadata) : input, producer);
    if (turn.cancelled) {
      call.cancelled();
      return answerBatches(stream.outputSchema, [], false);
    }
    let failed = call.error !== null;
    // A turn its interceptors refused (a quota) is its error batch alone: 429. A turn that crossed
    // a limit after producing its batches is answered with them, as any failed turn is.
    if (failed && turn.batches.length === 1) {
      const exhausted = exhaustedReply(call.error, { schema: stream.outputSchema, batches: turn.batches });
      if (exhausted !== null) return exhausted;
    }
    let batches: RecordBatch[] = [...turn.batches];
    if (!failed && (!producer || !turn.done)) {
      // The next cursor rides on an exchange's data batch, or on a zero-row batch after a producer's.
      const idx = producer ? -1 : batches.findIndex((b) => classifyBatch(b) === "data");
      const next: Sealed =
        !producer && idx < 0
          ? { ok: false, error: new RpcError("No data batch was emitted", { type: "RuntimeError" }) }
          : sealCursor(route, callData.callId, stream);
      if (!next.ok) {
        batches = call.fail(stream.outputSchema, RpcError.from(next.error)).batches.slice();
        failed = true;
      } else if (producer) {
        const tokenBatch = emptyBatch(stream.outputSchema, new Map([[STREAM_STATE_KEY, next.token]]));
        call.wrote([tokenBatch]);
        batches.push(tokenBatch);
      } else {
        const data = batches[idx]!;
        const merged = new Map(data.metadata);
        merged.set(STREAM_STATE_KEY, next.token);
        batches[idx] = withMetadata(data, merged);
      }
    }
    const policy = coreOf(server).external;
    if (!producer && policy !== null && !failed) {
      try {
        const budget = route.env.http?.externalBudget ?? null;
        // Raced with the call's deadline and aborts: a store that stops answering must not hold the turn.
        const uploaded = externalizeTurn(
          stream.outputSchema,
          batches,
          policy,
          budget,
          resolved.name,
          () => call.signal,
        );
        const out = await call.unlessAborted<readonly RecordBatch[] | RpcError>(uploaded, (reason) => reason);
        if (out instanceof RpcError) throw out;
        batches = [...out];
      } catch (err) {
        batches = call.fail(stream.outputSchema, err).batches.slice();
        failed = true;
      }
    }
    return budgetedAnswer(call, encodeStream(stream.outputSchema, batches), failed, limit, EMPTY_SCHEMA);
  });
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
