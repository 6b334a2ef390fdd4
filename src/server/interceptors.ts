/**
 * Server interceptors: functions that wrap every call on every transport, from the moment its
 * method is known to the moment it ends (for a stream: its last turn; over HTTP: each request's
 * share of the stream). `next(call)` runs the rest of the chain and the call, and resolves with its
 * outcome. An interceptor may refuse the call by throwing before `next` (the caller gets that
 * error), observe or time it, run it inside a context (`call.otelContext`), or count it. The
 * access log (`onCallEnd` observers) and OpenTelemetry spans are interceptors too, outermost.
 */
import {
  type Context,
  isSpanContextValid,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { RpcError } from "../errors.js";
import type { AuthContext } from "../protocol/context.js";
import { TRACEPARENT_KEY, TRACESTATE_KEY } from "../wire/keys.js";
import type { CallStatistics } from "./stats.js";

/** What an interceptor sees of a call. */
export interface ServerCall {
  readonly serverId: string;
  readonly requestId: string;
  /** `pipe`, `unix`, `tcp`, `http`, `ws`, `memory`. */
  readonly transport: string;
  /** The protocol that owns the method (resolved). */
  readonly protocol: string;
  readonly method: string;
  readonly methodType: "unary" | "stream";
  /** 32 hex chars for streams, `""` for unary calls. */
  readonly streamId: string;
  readonly auth: AuthContext;
  readonly transportMetadata: Readonly<Record<string, string>>;
  /** The request's custom metadata. */
  readonly requestMetadata: ReadonlyMap<string, string>;
  /** The call's abort signal, as handlers see it (`ctx.signal`). */
  readonly signal: AbortSignal;
  readonly startedAt: Date;
  /** Statistics so far; final once `next` has resolved. */
  readonly stats: Readonly<CallStatistics>;
  /**
   * The OpenTelemetry context the call's handlers run in (`context.with`). An interceptor may set
   * it before `next`, e.g. to a span's context; the built-in tracing does.
   */
  otelContext: Context;
  /**
   * Runs `check` after each turn of the call's stream (a producer's batch, an exchange's answer
   * to one input), its batches counted in `stats`: an error it returns ends the stream with that
   * error right after the turn's batches, unless the turn finished the stream anyway. One check
   * per call (a later one replaces it); unary calls have no turns. The quota interceptor uses it.
   */
  onTurn(check: TurnCheck): void;
}

/** What `ServerCall.onTurn` runs after each turn: the error to end the stream with, or null. */
export type TurnCheck = (stats: Readonly<CallStatistics>) => RpcError | null | Promise<RpcError | null>;

/** How a call ended. */
export interface CallOutcome {
  readonly status: "ok" | "error";
  /** The error the call failed with (what the caller received), or null. */
  readonly error: RpcError | null;
  readonly cancelled: boolean;
  readonly durationMs: number;
}

/** Runs the rest of the chain and the call. */
export type CallHandler = (call: ServerCall) => Promise<CallOutcome>;

/** Wraps the calls of a server: `(next) => async (call) => { …; const outcome = await next(call); …; return outcome }`. */
export type CallInterceptor = (next: CallHandler) => CallHandler;

/** `interceptors` around `handler`, the first outermost. */
export function chain(interceptors: readonly CallInterceptor[], handler: CallHandler): CallHandler {
  let next = handler;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  return next;
}

/** True while no tracer provider is registered (the global one is the API's empty proxy). */
function noTracer(): boolean {
  const provider = trace.getTracerProvider();
  return provider instanceof ProxyTracerProvider && provider.getDelegateTracer("quiver-rpc") === undefined;
}

/** W3C trace context a transport received outside the request (HTTP headers). */
export type TraceCarrier = Readonly<Record<string, string>>;

function isEmpty(record: TraceCarrier | undefined): boolean {
  if (record === undefined) return true;
  for (const _ in record) return false;
  return true;
}

/**
 * Whether a call needs a span: a tracer provider is registered, or the request carries trace
 * context (then a non-recording span still propagates it). Otherwise the span would be an
 * invalid one nothing sees, and tracing is skipped for the call.
 */
export function needsSpan(requestMetadata: ReadonlyMap<string, string>, carrier: TraceCarrier | undefined): boolean {
  return (
    requestMetadata.has(TRACEPARENT_KEY) || requestMetadata.has(TRACESTATE_KEY) || !isEmpty(carrier) || !noTracer()
  );
}

/**
 * The built-in tracing: a SERVER span per call, parented on the request's trace context (the
 * request metadata's `traceparent`/`tracestate`, else the transport's `carrier`), with the RPC
 * semantic-convention attributes and the call's statistics and outcome.
 */
export function tracingInterceptor(carrierOf: (call: ServerCall) => TraceCarrier | undefined): CallInterceptor {
  return (next) => async (call) => {
    const carrier: Record<string, string> = { ...carrierOf(call) };
    const tp = call.requestMetadata.get(TRACEPARENT_KEY);
    const ts = call.requestMetadata.get(TRACESTATE_KEY);
    if (tp !== undefined) carrier.traceparent = tp;
    if (ts !== undefined) carrier.tracestate = ts;
    const parent = propagation.extract(ROOT_CONTEXT, carrier);
    const span = trace.getTracer("quiver-rpc").startSpan(
      `vgi_rpc/${call.method}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": "vgi_rpc",
          "rpc.service": call.protocol,
          "rpc.method": call.method,
          "rpc.vgi_rpc.server_id": call.serverId,
          "rpc.vgi_rpc.request_id": call.requestId,
          "rpc.vgi_rpc.transport": call.transport,
        },
      },
      parent,
    );
    call.otelContext = trace.setSpan(parent, span);
    let error: RpcError | null = null;
    let cancelled = false;
    try {
      const outcome = await next(call);
      error = outcome.error;
      cancelled = outcome.cancelled;
      return outcome;
    } catch (err) {
      error = RpcError.from(err);
      throw err;
    } finally {
      const st = call.stats;
      span.setAttributes({
        "rpc.vgi_rpc.method_type": call.methodType,
        "rpc.vgi_rpc.input_batches": st.inputBatches,
        "rpc.vgi_rpc.input_rows": st.inputRows,
        "rpc.vgi_rpc.input_bytes": st.inputBytes,
        "rpc.vgi_rpc.output_batches": st.outputBatches,
        "rpc.vgi_rpc.output_rows": st.outputRows,
        "rpc.vgi_rpc.output_bytes": st.outputBytes,
        "rpc.vgi_rpc.auth.principal": call.auth.principal,
      });
      if (cancelled) span.setAttribute("rpc.vgi_rpc.cancelled", true);
      if (error !== null) {
        span.setAttributes({
          "rpc.vgi_rpc.error_type": error.type,
          "rpc.vgi_rpc.error_kind": error.kind,
          "rpc.vgi_rpc.error_code": error.code,
        });
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.type}: ${error.message}` });
      }
      span.end();
    }
  };
}

/** The W3C ids of the span `call.otelContext` holds, when it is a valid one. */
export function spanIds(call: ServerCall): { readonly traceId: string; readonly spanId: string } {
  const ctx = trace.getSpanContext(call.otelContext);
  return ctx !== undefined && isSpanContextValid(ctx)
    ? { traceId: ctx.traceId, spanId: ctx.spanId }
    : { traceId: "", spanId: "" };
}

/**
 * An interceptor that hands `record(call, outcome)` to `notify` once the call ended, whether it
 * ended normally or an inner interceptor refused it.
 */
export function observingInterceptor<R>(
  record: (call: ServerCall, outcome: CallOutcome) => R,
  notify: (record: R) => void,
  started: (call: ServerCall) => number,
): CallInterceptor {
  return (next) => async (call) => {
    let outcome: CallOutcome;
    try {
      outcome = await next(call);
    } catch (err) {
      notify(
        record(call, {
          status: "error",
          error: RpcError.from(err),
          cancelled: false,
          durationMs: performance.now() - started(call),
        }),
      );
      throw err;
    }
    notify(record(call, outcome));
    return outcome;
  };
}
