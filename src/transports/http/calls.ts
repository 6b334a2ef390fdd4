/**
 * The HTTP transport's one seam onto the dispatch core: the only module here that imports
 * `src/server/dispatch.ts`. The steps (unary.ts, streams.ts) drive a call through `HttpCall`,
 * whose life `withCall` owns: it starts there and ends, once, when the step's work settles.
 */
import type { RecordBatch, Schema } from "apache-arrow";
import type { RpcError } from "../../errors.js";
import {
  type Admission,
  type Answer,
  admit,
  Call,
  type CallEnv,
  type OpenStream,
  openStream,
  runTurn,
  runUnary,
  type StreamOpening,
  type TurnResult,
} from "../../server/dispatch.js";
import { securityRefusal } from "../../server/security.js";
import type { ResolvedMethod } from "../../server/server.js";
import type { Origin } from "../../wire/messages.js";

export type {
  Admission,
  Answer,
  CallEnv,
  CookieJar,
  OpenStream,
  StreamOpening,
  TurnResult,
} from "../../server/dispatch.js";
export { newRequestId } from "../../server/dispatch.js";

/** One call, as an HTTP request drives it. */
export interface HttpCall {
  /** Server and request id stamped on the call's batches. */
  readonly origin: Origin;
  /** The error the call failed with, if it did. */
  readonly error: RpcError | null;
  readonly methodName: string;
  readonly streamId: string;
  /** Admits a request batch: the method and its parameters, or the answer that refuses it. */
  admit(request: RecordBatch | null): Admission;
  /** Runs a unary method; a handler that throws is answered with its error. */
  unary(method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer>;
  /** Runs a stream's init. */
  open(method: ResolvedMethod, params: Record<string, unknown>): Promise<StreamOpening>;
  /** Runs one turn of an open stream. */
  turn(stream: OpenStream, input: RecordBatch): Promise<TurnResult>;
  /**
   * Takes up a stream between turns (`input` is this turn's request): the caller's credentials
   * are checked against the method's requirement afresh, so a credential that lost its scope
   * mid-stream stops here. Returns the refusal, recorded as the call's failure, or null.
   */
  resume(method: ResolvedMethod, streamId: string, input: RecordBatch): RpcError | null;
  /** An answer of one error batch on `schema`, recorded as the call's failure. */
  fail(schema: Schema, err: unknown): Answer;
  /** Counts batches the transport writes besides the handler's (token batches). */
  wrote(batches: readonly RecordBatch[]): void;
  /** Ends the call as cancelled. */
  cancelled(): void;
}

class CallHandle implements HttpCall {
  isCancelled = false;

  constructor(readonly call: Call) {}

  get origin(): Origin {
    return this.call.origin;
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
    return admit(this.call, request);
  }

  unary(method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer> {
    return runUnary(this.call, method, params).catch((err: unknown) =>
      this.call.errorAnswer(method.schemas.result, err),
    );
  }

  open(method: ResolvedMethod, params: Record<string, unknown>): Promise<StreamOpening> {
    return openStream(this.call, method, params);
  }

  turn(stream: OpenStream, input: RecordBatch): Promise<TurnResult> {
    return runTurn(this.call, stream, input);
  }

  resume(method: ResolvedMethod, streamId: string, input: RecordBatch): RpcError | null {
    const call = this.call;
    call.method = method;
    call.methodName = method.name;
    call.streamId = streamId;
    call.received(input);
    call.startSpan();
    const refusal = securityRefusal(method.name, method.decl.security ?? null, call.env.auth);
    if (refusal !== null) call.failed(refusal);
    return refusal;
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
}

/**
 * Runs `work` as one call's life: the call starts here and ends (its record, statistics and span
 * out) when `work` settles, a failure of `work` itself recorded as the call's.
 */
export function withCall<T>(env: CallEnv, requestId: string, work: (call: HttpCall) => Promise<T>): Promise<T> {
  const handle = new CallHandle(new Call(env, requestId));
  const failed = (err: unknown): Promise<never> => {
    handle.call.failed(err);
    handle.call.end(handle.isCancelled);
    return Promise.reject(err);
  };
  let running: Promise<T>;
  try {
    running = work(handle);
  } catch (err) {
    return failed(err);
  }
  // Settled by hand rather than in an async frame with a finally: one promise less per call.
  return running.then((value) => {
    handle.call.end(handle.isCancelled);
    return value;
  }, failed);
}
