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
import type { Origin } from "../wire/messages.js";
import {
  type Admission,
  type Answer,
  admit,
  borrowsInput,
  Call,
  type CallEnv,
  type OpenStream,
  openStream,
  resume,
  runTurn,
  runUnary,
  type StreamOpening,
  type TurnResult,
} from "./dispatch.js";
import type { ResolvedMethod } from "./types.js";

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
    // The common path (no interceptor to wait for) runs without the helpers' extra promises.
    if (admission.kind === "unary") {
      const schema = admission.method.schemas.result;
      const answer =
        (call.entered === null ? null : await refusedByInterceptors(call, schema)) ??
        (await call.unlessAborted(runUnary(call, admission.method, admission.params), (reason) =>
          call.errorAnswer(schema, reason),
        ));
      call.end();
      return { kind: "answer", answer, drainInput: false };
    }
    const opening = await openOrAnswer(call, admission.method, admission.params);
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
 * The interceptors' refusal of an admitted call, answered on `schema`; null once they let it in.
 * An interceptor may wait on something of its own before it calls `next` (a store, a lookup): the
 * call's deadline and aborts bound that wait as they bound the handler, answering with their
 * reason. A `next` called after that finds the call ended and does not run it.
 */
async function refusedByInterceptors(call: Call, schema: Schema): Promise<Answer | null> {
  const entered = call.entered;
  if (entered === null) return null;
  // The failure is answered once the race is decided: a refusal after the abort is not recorded.
  const refused = await call.unlessAborted(
    entered.then(
      () => null,
      (err: unknown) => ({ err }),
    ),
    (reason) => ({ err: reason }),
  );
  return refused === null ? null : call.errorAnswer(schema, refused.err);
}

/** A unary call's answer: refused, the handler's, or the abort reason if the call is aborted first. */
async function answerUnary(call: Call, method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer> {
  const schema = method.schemas.result;
  const refused = call.entered === null ? null : await refusedByInterceptors(call, schema);
  if (refused !== null) return refused;
  const running = runUnary(call, method, params).catch((err: unknown) => call.errorAnswer(schema, err));
  return call.unlessAborted(running, (reason) => call.errorAnswer(schema, reason));
}

/** A stream's init: refused, failed, aborted, or the open stream. */
async function openOrAnswer(
  call: Call,
  method: ResolvedMethod,
  params: Record<string, unknown>,
): Promise<StreamOpening> {
  const refused = call.entered === null ? null : await refusedByInterceptors(call, EMPTY_SCHEMA);
  if (refused !== null) return { ok: false, answer: refused };
  return call.unlessAborted(openStream(call, method, params), (reason) => ({
    ok: false as const,
    answer: call.errorAnswer(EMPTY_SCHEMA, reason),
  }));
}

/** One turn, answered with the abort reason if the call is aborted first (its late output dropped). */
function turnUnlessAborted(call: Call, open: OpenStream, input: RecordBatch, externalize = true): Promise<TurnResult> {
  return call.unlessAborted(runTurn(call, open, input, externalize), (reason) => ({
    batches: call.errorAnswer(open.outputSchema, reason).batches,
    done: true,
    cancelled: false,
  }));
}

/**
 * One call as a stateless transport (HTTP) serves it: the call lives for one request, whatever
 * the request does (a unary call, a stream's init, one turn of a stream resumed from its tokens).
 * The transport drives it through these steps and `withRequestCall` ends it.
 */
export interface RequestCall extends ActiveCall {
  /** Server and request id stamped on the call's batches. */
  readonly origin: Origin;
  /** The error the call failed with, if it did. */
  readonly error: RpcError | null;
  readonly methodName: string;
  readonly streamId: string;
  /** The call's `ctx.signal`: aborts when the call ends early. */
  readonly signal: AbortSignal;
  /**
   * `work`'s result, or `onAbort(reason)`'s if the call is aborted first (its deadline, its client
   * gone), `work`'s result then dropped; one wait at a time, after the step that ran the handler.
   */
  unlessAborted<T>(work: Promise<T>, onAbort: (reason: RpcError) => T): Promise<T>;
  /** Admits a request batch: the method and its parameters, or the answer that refuses it. */
  admit(request: RecordBatch | null): Admission;
  /** Runs an admitted unary call: its answer, its refusal by an interceptor, or its abort. */
  unary(method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer>;
  /** Runs an admitted stream's init. */
  open(method: ResolvedMethod, params: Record<string, unknown>): Promise<StreamOpening>;
  /**
   * Takes up an open stream for this request's turn (see `resume` in dispatch.ts): the security
   * refusal, recorded as the call's failure, or null.
   */
  resume(method: ResolvedMethod, streamId: string, input: RecordBatch): RpcError | null;
  /**
   * Runs one turn of an open stream (an interceptor's refusal answered as the turn's error); its
   * batches are externalized under the server's policy unless `externalize` is false.
   */
  turn(stream: OpenStream, input: RecordBatch, externalize?: boolean): Promise<TurnResult>;
  /** An answer of one error batch on `schema`, recorded as the call's failure. */
  fail(schema: Schema, err: unknown): Answer;
  /** Counts batches the transport writes besides the handler's (token batches). */
  wrote(batches: readonly RecordBatch[]): void;
  /** The call ends as cancelled (the client cancelled its stream). */
  cancelled(): void;
}

class RequestScope implements RequestCall {
  isCancelled = false;

  constructor(readonly call: Call) {}

  get origin(): Origin {
    return this.call.origin;
  }
  get signal(): AbortSignal {
    return this.call.signal;
  }
  unlessAborted<T>(work: Promise<T>, onAbort: (reason: RpcError) => T): Promise<T> {
    return this.call.unlessAborted(work, onAbort);
  }
  get error(): RpcError | null {
    return this.call.error;
  }
  get methodName(): string {
    return this.call.methodName;
  }
  get streamId(): string {
    return this.call.streamId;
  }

  admit(request: RecordBatch | null): Admission {
    const admission = admit(this.call, request);
    armDeadline(this.call, request);
    return admission;
  }

  unary(method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer> {
    return answerUnary(this.call, method, params);
  }

  open(method: ResolvedMethod, params: Record<string, unknown>): Promise<StreamOpening> {
    return openOrAnswer(this.call, method, params);
  }

  resume(method: ResolvedMethod, streamId: string, input: RecordBatch): RpcError | null {
    const refusal = resume(this.call, method, streamId, input);
    if (refusal === null) armDeadline(this.call, input);
    return refusal;
  }

  async turn(stream: OpenStream, input: RecordBatch, externalize = true): Promise<TurnResult> {
    // A resumed stream's turn is a call of its own: its interceptors may refuse it.
    const refused = this.call.entered === null ? null : await refusedByInterceptors(this.call, stream.outputSchema);
    if (refused !== null) return { batches: refused.batches, done: true, cancelled: false };
    return turnUnlessAborted(this.call, stream, input, externalize);
  }

  fail(schema: Schema, err: unknown): Answer {
    return this.call.errorAnswer(schema, err);
  }

  wrote(batches: readonly RecordBatch[]): void {
    this.call.wrote(batches);
  }

  cancelled(): void {
    this.isCancelled = true;
  }

  abort(reason: RpcError): void {
    this.call.abort(reason);
  }
}

/** What a stateless transport learns of each call's life (see `withRequestCall`). */
export interface RequestCallHooks {
  /** The call exists: the transport may abort it from now on (its client went away, its listener is closing). */
  readonly started: (call: ActiveCall) => void;
  /** The call ended (its record and interceptors out), just before `withRequestCall` settles. */
  readonly ended: (call: ActiveCall) => void;
}

/**
 * Runs `work` as one call's life on a stateless transport: the call starts here and ends (its
 * record, statistics, span and interceptors out) when `work` settles, a failure of `work` itself
 * recorded as the call's. `hooks` hear of the call's start and end.
 */
export function withRequestCall<T>(
  env: CallEnv,
  requestId: string,
  work: (call: RequestCall) => Promise<T>,
  hooks?: RequestCallHooks,
): Promise<T> {
  const scope = new RequestScope(new Call(env, requestId));
  hooks?.started(scope);
  const end = (): void => {
    scope.call.end(scope.isCancelled);
    hooks?.ended(scope);
  };
  const failed = (err: unknown): Promise<never> => {
    scope.call.failed(err);
    end();
    return Promise.reject(err);
  };
  let running: Promise<T>;
  try {
    running = work(scope);
  } catch (err) {
    return failed(err);
  }
  // Settled by hand rather than in an async frame with a finally: one promise less per call.
  return running.then((value) => {
    end();
    return value;
  }, failed);
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

  /**
   * `work`'s result, or `onAbort(reason)`'s if the stream is aborted first (`work`'s result then
   * dropped); one wait at a time (the call's one slot).
   */
  unlessAborted<T>(work: Promise<T>, onAbort: (reason: RpcError) => T): Promise<T> {
    return this.call.unlessAborted(work, onAbort);
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
    const result = await turnUnlessAborted(this.call, this.open, input);
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
