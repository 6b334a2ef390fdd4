/**
 * The dispatcher: the one owner of a call's life. A transport hands it a request batch and what
 * it knows of the caller; it admits the request (routing, version gate, security, parameter
 * contract), runs the handler, and ends the call itself when the answer is complete: at once for
 * an answer, when a stream's last turn ends otherwise. Transports only move bytes and map these
 * outcomes to their framing; none of them touches a call's bookkeeping.
 *
 * A call can be aborted (`ActiveCall.abort`): the peer went away, its listener's shutdown grace
 * ran out, or its deadline passed. The handler then sees `ctx.signal` abort; a unary call is
 * answered with the reason at once (its handler's eventual result is dropped), and a stream ends
 * with it.
 */
import type { RecordBatch, Schema } from "apache-arrow";
import { frameworkError, type RpcError } from "../errors.js";
import { EMPTY_SCHEMA } from "../wire/batches.js";
import { TIMEOUT_MS_KEY } from "../wire/keys.js";
import {
  type Answer,
  admit,
  borrowsInput,
  Call,
  type CallEnv,
  type OpenStream,
  openStream,
  runTurn,
  runUnary,
  type TurnResult,
} from "./dispatch.js";

/** What dispatching a request led to. */
export type Dispatch =
  | {
      /** A complete answer (a unary result, a refusal, a failed init); the call has ended. */
      readonly kind: "answer";
      readonly answer: Answer;
      /**
       * The request opened (or tried to open) a stream, so the client still sends one input
       * stream: a session transport reads and drops it before the next request.
       */
      readonly drainInput: boolean;
    }
  | {
      /** An open stream: write the header (if any), open the output stream with `initLogs`, run turns. */
      readonly kind: "stream";
      readonly header: Answer | null;
      readonly initLogs: readonly RecordBatch[];
      readonly stream: ActiveStream;
    };

/** A call in progress, as a transport may act on it. */
export interface ActiveCall {
  /** Aborts the call (first reason wins): its handler's `ctx.signal` fires; see the module comment. */
  abort(reason: RpcError): void;
}

/** The error a call is aborted with when its peer goes away. */
export function peerGone(transport: string): RpcError {
  return frameworkError("cancelled", `the ${transport} peer closed the connection during the call`);
}

/**
 * A request that could not be read (malformed bytes, an unusable shared-memory pointer) answered
 * with `err` on the empty schema: a call of its own, recorded like any other.
 */
export function refuseUnread(env: CallEnv, err: unknown, request: RecordBatch | null = null): Answer {
  const call = new Call(env);
  if (request !== null) call.received(request);
  const answer = call.errorAnswer(EMPTY_SCHEMA, err);
  call.end();
  return answer;
}

/** Reads the client's `quiver.timeout_ms` request metadata: a whole number of ms, else null. */
function clientTimeout(request: RecordBatch | null): number | null {
  const raw = request?.metadata.get(TIMEOUT_MS_KEY);
  if (raw === undefined || !/^\d{1,12}$/.test(raw)) return null;
  const ms = Number(raw);
  return ms > 0 ? ms : null;
}

/** Arms the call's deadline: the server's `callTimeoutMs` or the client's, whichever is sooner. */
function armDeadline(call: Call, request: RecordBatch | null): void {
  const server = call.env.server.callTimeoutMs;
  const client = clientTimeout(request);
  const ms = server === null ? client : client === null ? server : Math.min(server, client);
  if (ms !== null) call.deadline(ms);
}

/**
 * Dispatches one request. `onCall` receives the call as soon as it exists, so the transport can
 * abort it (the peer went away) while it runs.
 */
export async function dispatch(
  env: CallEnv,
  request: RecordBatch | null,
  onCall?: (call: ActiveCall) => void,
): Promise<Dispatch> {
  const call = new Call(env);
  onCall?.(call);
  try {
    const admission = admit(call, request);
    armDeadline(call, request);
    if (admission.kind === "answer") {
      call.end();
      return { kind: "answer", answer: admission.answer, drainInput: admission.drainInput === true };
    }
    if (call.entered !== null) {
      // An interceptor may refuse the call before it runs.
      try {
        await call.entered;
      } catch (err) {
        const unary = admission.kind === "unary";
        const answer = call.errorAnswer(unary ? admission.method.schemas.result : EMPTY_SCHEMA, err);
        call.end();
        return { kind: "answer", answer, drainInput: !unary };
      }
    }
    if (admission.kind === "unary") {
      const schema = admission.method.schemas.result;
      const answer = await call.unlessAborted(runUnary(call, admission.method, admission.params), (reason) =>
        call.errorAnswer(schema, reason),
      );
      call.end();
      return { kind: "answer", answer, drainInput: false };
    }
    const opening = await call.unlessAborted(openStream(call, admission.method, admission.params), (reason) => ({
      ok: false as const,
      answer: call.errorAnswer(EMPTY_SCHEMA, reason),
    }));
    if (!opening.ok) {
      call.end();
      return { kind: "answer", answer: opening.answer, drainInput: true };
    }
    return {
      kind: "stream",
      header: opening.header,
      initLogs: opening.initLogs,
      stream: new ActiveStream(call, opening.stream),
    };
  } catch (err) {
    // Dispatch answers every failure of a handler; reaching here is a framework bug. The call
    // still ends, and the transport gets the error to answer.
    const answer = call.errorAnswer(EMPTY_SCHEMA, err);
    call.end();
    return { kind: "answer", answer, drainInput: false };
  }
}

/**
 * An open stream: the transport feeds it inputs (or ticks) and writes what each turn produced.
 * The call ends when a turn ends the stream, when `fail` or `end` is called, or when it is
 * aborted and the transport ends it.
 */
export class ActiveStream implements ActiveCall {
  /** True when inputs may be borrowed (`ExchangeHandler.borrowInput`). */
  readonly borrowInput: boolean;
  private ended = false;

  constructor(
    private readonly call: Call,
    private readonly open: OpenStream,
  ) {
    this.borrowInput = borrowsInput(open);
  }

  get outputSchema(): Schema {
    return this.open.outputSchema;
  }

  get inputSchema(): Schema {
    return this.open.inputSchema;
  }

  /** True for a producer (its inputs are ticks). */
  get producer(): boolean {
    return this.open.inputSchema.fields.length === 0;
  }

  /** Why the stream was aborted, or null. */
  get aborted(): RpcError | null {
    return this.call.abortedWith;
  }

  /** Resolves with the abort reason if the stream is aborted (never otherwise). */
  whenAborted(): Promise<RpcError> {
    return this.call.whenAborted();
  }

  abort(reason: RpcError): void {
    this.call.abort(reason);
  }

  /**
   * Runs one turn for `input` (a tick, an input batch, or a cancel batch). When the turn ends the
   * stream (finished, failed, cancelled) the call ends with it.
   */
  async turn(input: RecordBatch): Promise<TurnResult> {
    // A turn still running when the call is aborted is answered with the reason; what the
    // handler emits afterwards is dropped, as a unary call's late result is.
    const result = await this.call.unlessAborted(runTurn(this.call, this.open, input), (reason) => ({
      batches: this.call.errorAnswer(this.open.outputSchema, reason).batches,
      done: true,
      cancelled: false,
    }));
    if (result.done) this.end(result.cancelled);
    return result;
  }

  /**
   * Ends the stream with `err` (a malformed input, an abort): the error batch to write on the
   * output stream, before its end.
   */
  fail(err: unknown): readonly RecordBatch[] {
    const answer = this.call.errorAnswer(this.open.outputSchema, err);
    this.end(false);
    return answer.batches;
  }

  /** Ends the call (idempotent): the stream finished, was cancelled, or its peer is gone. */
  end(cancelled = false): void {
    if (this.ended) return;
    this.ended = true;
    this.call.end(cancelled);
  }
}
