/**
 * Client interceptors: functions that wrap every call a client makes (`RpcClient` on any session
 * transport, `HttpClient`), the counterpart of the server's `CallInterceptor`. `next(call)` runs
 * the rest of the chain and sends the call, and resolves with its answer: a unary call's result
 * batch, or a stream call's opened stream (its header read). An interceptor may add request
 * metadata (and, over HTTP, headers) before `next`, observe the answer or the error after it,
 * refuse the call by throwing before it, or retry by calling `next` again.
 *
 * No `node:` imports: the browser entry's client runs it.
 */
import type { RecordBatch } from "apache-arrow";
import type { CallTarget, RequestMetadata, StreamChannel } from "./transport.js";

/** What a client interceptor sees of a call. */
export interface ClientCall {
  /** `vgi_rpc.protocol`: the protocol the method belongs to. */
  readonly protocol: string;
  readonly method: string;
  /** A unary call, or a stream call (producer or exchange) being opened. */
  readonly methodType: "unary" | "stream";
  /** The request's parameter batch (one row; no columns for a parameterless method). */
  readonly params: RecordBatch;
  /**
   * The request's custom metadata, as the call's options made it (`metadata`, `idempotencyKey`,
   * `requestId`, `timeoutMs`); keys set before `next` go with the request (the server's
   * `ctx.requestMetadata`). The framework's own keys (`vgi_rpc.method`, `vgi_rpc.protocol`, …) win.
   */
  readonly metadata: Map<string, string>;
  /**
   * Over HTTP: headers sent with the call's requests (a stream's `/init` and each of its turns),
   * over the client's `headers` option; `Content-Type` and `VGI-Accept-Max-Response-Bytes` are
   * the client's. Null over session transports (pipe, subprocess, Unix, TCP, WebSocket, memory),
   * whose requests have no headers of their own.
   */
  readonly headers: Headers | null;
  /** How many times the call has been sent so far: 0 before its first attempt, then 1, 2, … */
  readonly attempts: number;
}

/** A call's answer: a unary call's result batch, or a stream call's opened stream. */
export type ClientAnswer =
  | { readonly methodType: "unary"; readonly result: RecordBatch }
  | { readonly methodType: "stream"; readonly stream: StreamChannel };

/** Runs the rest of the chain and sends the call. */
export type ClientCallHandler = (call: ClientCall) => Promise<ClientAnswer>;

/** Wraps the calls of a client: `(next) => async (call) => { …; const answer = await next(call); …; return answer }`. */
export type ClientInterceptor = (next: ClientCallHandler) => ClientCallHandler;

/** A client's interceptors, or null when it has none (its calls then skip all of this). */
export function interceptorList(list: readonly ClientInterceptor[] | undefined): readonly ClientInterceptor[] | null {
  return list === undefined || list.length === 0 ? null : [...list];
}

/** The call as the chain carries it: the transport's end counts the attempts. */
interface CountedCall extends ClientCall {
  attempts: number;
}

/** What a call starts from. */
export interface CallStart {
  readonly target: CallTarget;
  /** The parameter batch. */
  readonly params: RecordBatch;
  /** The request metadata the call's options asked for. */
  readonly extra: RequestMetadata | undefined;
  /** A fresh `Headers` over HTTP, null over session transports. */
  readonly headers: Headers | null;
}

/** Runs a new call through `interceptors` to `send`, which makes one attempt on the transport. */
function run(
  interceptors: readonly ClientInterceptor[],
  start: CallStart,
  methodType: ClientCall["methodType"],
  send: (call: ClientCall) => Promise<ClientAnswer>,
): Promise<ClientAnswer> {
  const call: CountedCall = {
    protocol: start.target.protocol,
    method: start.target.method,
    methodType,
    params: start.params,
    metadata: new Map(start.extra ?? []),
    headers: start.headers,
    attempts: 0,
  };
  let next: ClientCallHandler = (c) => {
    (c as CountedCall).attempts++;
    return send(c);
  };
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  return next(call);
}

function wrongAnswer(target: CallTarget, expected: ClientCall["methodType"]): TypeError {
  return new TypeError(
    `a client interceptor answered ${target.method}() with a ${expected === "unary" ? "stream" : "unary"} answer`,
  );
}

/** A unary call through `interceptors`; `send` makes one attempt with the call's metadata and headers. */
export async function interceptUnary(
  interceptors: readonly ClientInterceptor[],
  start: CallStart,
  send: (call: ClientCall) => Promise<RecordBatch>,
): Promise<RecordBatch> {
  const answer = await run(interceptors, start, "unary", async (call) => ({
    methodType: "unary",
    result: await send(call),
  }));
  if (answer.methodType !== "unary") throw wrongAnswer(start.target, "unary");
  return answer.result;
}

/**
 * A stream call's opening through `interceptors`; `send` opens it once with the call's metadata
 * and headers. The stream the chain answers with is the caller's: an interceptor that wraps it
 * keeps the transport's stream type (`RawStream`, `HttpStream`), which `openStream` promises.
 */
export async function interceptStream<S extends StreamChannel>(
  interceptors: readonly ClientInterceptor[],
  start: CallStart,
  send: (call: ClientCall) => Promise<S>,
): Promise<S> {
  const answer = await run(interceptors, start, "stream", async (call) => ({
    methodType: "stream",
    stream: await send(call),
  }));
  if (answer.methodType !== "stream") throw wrongAnswer(start.target, "stream");
  return answer.stream as S;
}
