/** The record of a finished call that observers (`onCallEnd`, the access log) receive. */
import type { RpcError } from "../errors.js";
import type { AuthContext } from "../protocol/context.js";
import type { CallStatistics } from "./stats.js";

/** How a call ended, as the per-call hook sees it. */
export interface CallRecord {
  readonly serverId: string;
  readonly requestId: string;
  readonly transport: string;
  /** Owning protocol (the primary for built-ins and unroutable requests). */
  readonly protocol: string;
  readonly protocolHash: string;
  /** The method as requested (may be unknown to the server). */
  readonly method: string;
  /** `unary` or `stream`. */
  readonly methodType: "unary" | "stream";
  /** 32 hex chars for streams, `""` for unary calls. */
  readonly streamId: string;
  readonly status: "ok" | "error";
  readonly errorType: string;
  readonly errorMessage: string;
  readonly errorKind: string;
  readonly errorCode: string;
  /**
   * The error the call failed with, or null: what the handler threw, as an `RpcError` whose
   * `cause` is the original when it was not one. Log it (stack included) to keep stack traces on
   * the server while callers get none (see `ServerOptions.includeTracebacks`).
   */
  readonly error: RpcError | null;
  readonly cancelled: boolean;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly stats: Readonly<CallStatistics>;
  readonly auth: AuthContext;
  readonly transportMetadata: Readonly<Record<string, string>>;
  /** The request's custom metadata (routing keys, trace context). */
  readonly requestMetadata: ReadonlyMap<string, string>;
  /** The request batch's shape (names and types, never values); null if no request was read. */
  readonly requestFields: readonly { readonly name: string; readonly type: string }[] | null;
  readonly requestRows: number;
  /** W3C ids of the call's span when tracing is active, else `""`. */
  readonly traceId: string;
  readonly spanId: string;
  /** The HTTP sticky session the call was bound to, opened or closed (24 hex chars), else `""`. */
  readonly sessionId: string;
  /** What the call did with a sticky session, on a handler that keeps them; `""` elsewhere. */
  readonly sessionAction: "" | "none" | "resume" | "open" | "close";
}

/** Receives one record per call when it ends (never throws into dispatch). */
export type CallObserver = (record: CallRecord) => void;
