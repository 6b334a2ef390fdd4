/**
 * Transport-agnostic call execution: admitting a request batch (metadata, routing, version gate,
 * parameter contract), running a unary call, opening a stream, running one stream turn, and the
 * per-call record that statistics, access logs and spans are fed from. Session transports
 * (pipes, sockets, WebSocket) and request transports (HTTP) both drive calls through here; only
 * how bytes arrive and leave differs.
 */
import { randomFillSync } from "node:crypto";
import { type Context, context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { RecordBatch, Schema } from "apache-arrow";
import type { Logger } from "pino";
import { frameworkError, RpcError, RuntimeError } from "../errors.js";
import { type ExternalBudget, ExternalRef, externalizeBatch, externalizeTurn } from "../external/externalize.js";
import { batchFromRows, columnFromBatch, oneValueBatch, rowsFromBatch } from "../protocol/batch.js";
import type {
  AuthContext,
  CallContext,
  CookieOptions,
  Injected,
  LogExtra,
  LogLevel,
  SessionOptions,
} from "../protocol/context.js";
import type { InputBatch, MethodDecl, OutputSpec } from "../protocol/methods.js";
import { typeText } from "../protocol/type-tokens.js";
import type { FieldSpecs, RowOf, TypeSpec } from "../protocol/types.js";
import { EMPTY_SCHEMA, emptyBatch } from "../wire/batches.js";
import {
  CALL_STATE_KEY,
  CANCEL_KEY,
  IDEMPOTENCY_KEY_METADATA,
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_ID_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
  SERVER_ID_KEY,
  STREAM_STATE_KEY,
  TRANSPORT_OPTIONS_METHOD,
  TRANSPORT_SHM_KEY,
} from "../wire/keys.js";
import { errorBatch, isCancelBatch, type Origin } from "../wire/messages.js";
import { LogBuffer, TurnCollector } from "./collector.js";
import {
  type CallHandler,
  type CallInterceptor,
  type CallOutcome,
  chain,
  needsSpan,
  observingInterceptor,
  type ServerCall,
  spanIds,
  type TraceCarrier,
  type TurnCheck,
  tracingInterceptor,
} from "./interceptors.js";
import type { CallRecord } from "./records.js";
import { resolveInjected, securityRefusal } from "./security.js";
import { type CallStatistics, newStatistics, recordInput, recordOutput } from "./stats.js";
import type { ResolvedMethod, ServerCore } from "./types.js";
import { checkParamsContract, coerceInput } from "./validate.js";

/** What a transport knows about the caller of one call. */
export interface CallEnv {
  readonly server: ServerCore;
  /** `pipe`, `unix`, `tcp`, `http`, `ws`, `memory`. */
  readonly transport: string;
  readonly transportMetadata: Readonly<Record<string, string>>;
  readonly auth: AuthContext;
  /**
   * Whether this connection offers a side channel (`__transport_options__` answers `shm=true`).
   * Default: false.
   */
  readonly sideChannel?: boolean;
  /** What only an HTTP request carries into its call (headers outside the request batch). */
  readonly http?: HttpCallExtra;
  /**
   * False when the request (or WebSocket upgrade) carried cookies and nothing shows which page
   * sent it (`ctx.csrfVerified`, see auth/cross-site.ts). Default: true.
   */
  readonly csrfVerified?: boolean;
}

/** The HTTP transport's part of a call's environment: what its headers say beyond the request batch. */
export interface HttpCallExtra {
  /** Request cookies (`ctx.cookies`). */
  readonly cookies: ReadonlyMap<string, string>;
  /**
   * Where `ctx.setCookie` writes: supplied for unary calls only; without it setting a cookie
   * throws `cookie_not_allowed`.
   */
  readonly cookieJar?: CookieJar;
  /**
   * W3C trace context from the `traceparent`/`tracestate` headers; the request batch's own
   * metadata takes precedence.
   */
  readonly traceContext: Readonly<Record<string, string>>;
  /** The `Idempotency-Key` header. */
  readonly idempotencyKey?: string;
  /** This response's cap on externalized bytes (`maxExternalizedResponseBytes`), if any. */
  readonly externalBudget?: ExternalBudget;
  /**
   * The request's sticky session (`ctx.session`, `openSession`, `closeSession`): supplied when the
   * handler keeps sticky sessions; without it opening one throws the reference's `RuntimeError`.
   */
  readonly session?: SessionSink;
}

/** What a sticky session touched by a call did, for its record (`session_action` in the access log). */
export type SessionAction = "none" | "resume" | "open" | "close";

/** One request's view of the HTTP transport's sticky sessions. */
export interface SessionSink {
  /** The bound session's state, or null. */
  readonly state: unknown;
  /** The bound session's id (24 hex chars), or null. */
  readonly id: string | null;
  /** Opens a session for `state` (see `CallContext.openSession` for what it throws). */
  open(state: unknown, options: SessionOptions): void;
  /** Closes the bound session, if any, and has the answer tell the client so. */
  close(): void;
  /** What the request did with a session so far. */
  readonly action: SessionAction;
  /** The id of the session the request touched, kept after it is closed; `""` for none. */
  readonly touchedId: string;
}

/** Client-chosen request ids and idempotency keys: printable, bounded, safe in logs and headers. */
const CLIENT_ID = /^[\x21-\x7e]{1,255}$/;

/** A client-supplied id if it is well formed, else undefined. */
export function clientId(value: string | null | undefined): string | undefined {
  return value !== null && value !== undefined && CLIENT_ID.test(value) ? value : undefined;
}

const NOTHING_INJECTED: Injected = Object.freeze({});

/** Collects `Set-Cookie` requests for the transport to apply after dispatch. */
export interface CookieJar {
  set(name: string, value: string, options: CookieOptions): void;
  delete(name: string, options: CookieOptions): void;
}

const NO_COOKIES: ReadonlyMap<string, string> = new Map();
const NO_METADATA: ReadonlyMap<string, string> = new Map();

/** Random bytes drawn from a pool: one `randomBytes` call per 512 ids instead of one per call. */
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;
function hex(bytes: number): string {
  if (poolAt + bytes > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  poolAt += bytes;
  return POOL.toString("hex", poolAt - bytes, poolAt);
}

/** Request shapes by schema: calls repeat a few schemas, and the type text is built per field. */
const shapes = new WeakMap<Schema, NonNullable<CallRecord["requestFields"]>>();

function requestShape(schema: Schema): NonNullable<CallRecord["requestFields"]> {
  let shape = shapes.get(schema);
  if (shape === undefined) {
    shape = Object.freeze(schema.fields.map((f) => Object.freeze({ name: f.name, type: typeText(f.type) })));
    shapes.set(schema, shape);
  }
  return shape;
}

/** A fresh 16-hex-digit request id (from the same pool as the calls' own ids). */
export function newRequestId(): string {
  return hex(8);
}

const TRACING = tracingInterceptor((call) => (call as CallView).call.env.http?.traceContext);

/** Each server's built-in interceptors (observers, tracing) before its own, by which apply. */
const chains = new WeakMap<ServerCore, Map<number, readonly CallInterceptor[]>>();

/**
 * The interceptors a call runs through: the observers' when the server has any, tracing when the
 * call needs a span, then the server's own. Usually the same few lists, made once per server.
 */
function callInterceptors(
  server: ServerCore,
  requestMetadata: ReadonlyMap<string, string>,
  carrier: TraceCarrier | undefined,
): readonly CallInterceptor[] {
  const key = (server.observed ? 1 : 0) | (needsSpan(requestMetadata, carrier) ? 2 : 0);
  if (key === 0) return server.interceptors;
  let memo = chains.get(server);
  if (memo === undefined) {
    memo = new Map();
    chains.set(server, memo);
  }
  let list = memo.get(key);
  if (list === undefined) {
    const made: CallInterceptor[] = [];
    if (key & 1) {
      made.push(
        observingInterceptor(
          (view, outcome) => (view as CallView).call.record(outcome, view),
          (record) => server.notify(record),
          (view) => (view as CallView).call.t0,
        ),
      );
    }
    if (key & 2) made.push(TRACING);
    made.push(...server.interceptors);
    list = made;
    memo.set(key, list);
  }
  return list;
}

/** A call as its interceptors see it. */
class CallView implements ServerCall {
  constructor(readonly call: Call) {}

  get serverId(): string {
    return this.call.origin.serverId;
  }
  get requestId(): string {
    return this.call.origin.requestId;
  }
  get transport(): string {
    return this.call.env.transport;
  }
  get protocol(): string {
    return this.call.method?.protocol.name ?? "";
  }
  get method(): string {
    return this.call.methodName;
  }
  get methodType(): "unary" | "stream" {
    const m = this.call.method;
    return m === null || m.decl.kind === "unary" ? "unary" : "stream";
  }
  get streamId(): string {
    return this.call.streamId;
  }
  get auth(): AuthContext {
    return this.call.env.auth;
  }
  get transportMetadata(): Readonly<Record<string, string>> {
    return this.call.env.transportMetadata;
  }
  get requestMetadata(): ReadonlyMap<string, string> {
    return this.call.requestMetadata;
  }
  get signal(): AbortSignal {
    return this.call.signal;
  }
  get startedAt(): Date {
    return this.call.startedAt;
  }
  get stats(): Readonly<CallStatistics> {
    return this.call.stats;
  }
  get otelContext(): Context {
    return this.call.otelContext;
  }
  set otelContext(value: Context) {
    this.call.otelContext = value;
  }
  onTurn(check: TurnCheck): void {
    this.call.turnCheck = check;
  }
}

/** A call's interceptor chain, once started. */
interface Chained {
  readonly view: CallView;
  /** Settles when the chain reaches the call; null when it did so as it started. */
  entered: Promise<void> | null;
  /** Resolves the innermost link of the chain with the call's outcome. */
  finish: ((outcome: CallOutcome) => void) | null;
  outcome: CallOutcome | null;
}

/** The parts of a call few calls use. */
interface Rare {
  /** Made when a handler first reads `ctx.signal` (most never do). */
  controller: AbortController | null;
  deadlineTimer: NodeJS.Timeout | null;
  logger: Logger | null;
}

/**
 * The `CallContext` handlers receive: one small object per handler invocation (a stream makes one
 * per turn), its members read from the call when asked. `clientLog` is an own field, so a handler
 * may pass it on detached; the other methods are the class's.
 */
class HandlerContext implements CallContext<Injected> {
  constructor(
    private readonly call: Call,
    private readonly target: ResolvedMethod,
    readonly clientLog: (level: LogLevel, message: string, extra?: LogExtra) => void,
    readonly injected: Injected,
  ) {}

  get signal(): AbortSignal {
    return this.call.signal;
  }
  get auth(): AuthContext {
    return this.call.env.auth;
  }
  get requestId(): string {
    return this.call.origin.requestId;
  }
  get serverId(): string {
    return this.call.origin.serverId;
  }
  get protocol(): string {
    return this.target.protocol.name;
  }
  get method(): string {
    return this.target.name;
  }
  get transport(): string {
    return this.call.env.transport;
  }
  get transportMetadata(): Readonly<Record<string, string>> {
    return this.call.env.transportMetadata;
  }
  get requestMetadata(): ReadonlyMap<string, string> {
    return this.call.requestMetadata;
  }
  get logger(): Logger {
    return this.call.logger;
  }
  get idempotencyKey(): string | null {
    return this.call.idempotencyKey;
  }
  requireIdempotencyKey(): string {
    const key = this.call.idempotencyKey;
    if (key !== null) return key;
    throw frameworkError(
      "idempotency_key_required",
      `'${this.target.name}' requires an idempotency key: send the 'Idempotency-Key' HTTP header or the '${IDEMPOTENCY_KEY_METADATA}' request metadata key.`,
    );
  }
  get cookies(): ReadonlyMap<string, string> {
    return this.call.env.http?.cookies ?? NO_COOKIES;
  }
  get csrfVerified(): boolean {
    return this.call.env.csrfVerified ?? true;
  }
  /** Where cookies go: only a unary call served over HTTP has a jar. */
  private jar(): CookieJar {
    const jar = this.target.decl.kind === "unary" ? this.call.env.http?.cookieJar : undefined;
    if (jar !== undefined) return jar;
    const where = this.target.decl.kind === "unary" ? "a unary call" : "a stream";
    throw frameworkError(
      "cookie_not_allowed",
      `cookies can only be set by a unary call served over HTTP; '${this.target.name}' is ${where} on the '${this.call.env.transport}' transport`,
    );
  }
  setCookie(name: string, value: string, options: CookieOptions = {}): void {
    this.jar().set(name, value, options);
  }
  deleteCookie(name: string, options: CookieOptions = {}): void {
    this.jar().delete(name, options);
  }
  /** The request's sticky session, or a refusal word for word as the reference's (no kind, code UNKNOWN). */
  private sticky(): SessionSink {
    const session = this.call.env.http?.session;
    if (session !== undefined) return session;
    throw new RuntimeError("sticky sessions not available on this transport");
  }
  get session(): unknown {
    return this.call.env.http?.session?.state ?? null;
  }
  get sessionId(): string | null {
    return this.call.env.http?.session?.id ?? null;
  }
  openSession(state: unknown, options: SessionOptions = {}): void {
    this.sticky().open(state, options);
  }
  closeSession(): void {
    this.sticky().close();
  }
}

/** One call's bookkeeping, from request to the end of its last turn. */
export class Call {
  /** The request id: the transport's, the client's (see `received`), or drawn when first read. */
  private requestIdValue: string | null;
  private originValue: Origin | null = null;
  private readonly fixedRequestId: boolean;
  readonly stats: CallStatistics = newStatistics();
  /** Wall-clock start in ms (the Date is made only for a call record). */
  private readonly startedMs = Date.now();
  readonly t0 = performance.now();
  method: ResolvedMethod | null = null;
  methodName = "";
  streamId = "";
  requestMetadata: ReadonlyMap<string, string> = NO_METADATA;
  private requestSchema: Schema | null = null;
  requestRows = 0;
  private failure: RpcError | null = null;
  private ended = false;
  /** Whether `begin` ran (with or without a chain to start). */
  private begun = false;
  /** The interceptor chain's state, when the call has one (most calls on a plain server do not). */
  private chained: Chained | null = null;
  /** The OpenTelemetry context handlers run in (the call's span active). */
  otelContext: Context = ROOT_CONTEXT;
  /** An interceptor's check after each stream turn (`ServerCall.onTurn`), or null. */
  turnCheck: TurnCheck | null = null;
  /** What few calls use (a logger, `ctx.signal`, a deadline), made on first use. */
  private rare: Rare | null = null;
  private abortReason: RpcError | null = null;
  /** The work `unlessAborted` is racing, answered with the reason on abort. */
  private race: ((reason: RpcError) => void) | null = null;

  constructor(
    readonly env: CallEnv,
    requestId?: string,
  ) {
    this.requestIdValue = requestId ?? null;
    this.fixedRequestId = requestId !== undefined;
  }

  /**
   * Server and request id stamped on log and error batches. A call nothing asks about (no log,
   * error, logger or observer) never draws a random id.
   */
  get origin(): Origin {
    if (this.originValue === null) {
      this.requestIdValue ??= hex(8);
      this.originValue = { serverId: this.env.server.serverId, requestId: this.requestIdValue };
    }
    return this.originValue;
  }

  /** When the call started. */
  get startedAt(): Date {
    return new Date(this.startedMs);
  }

  /** The error the call failed with, if it failed. */
  get error(): RpcError | null {
    return this.failure;
  }

  private get extras(): Rare {
    if (this.rare === null) this.rare = { controller: null, deadlineTimer: null, logger: null };
    return this.rare;
  }

  /** Settles when the interceptor chain reaches the call (see `begin`); null without a chain or once reached. */
  get entered(): Promise<void> | null {
    return this.chained?.entered ?? null;
  }

  /** The signal handlers see as `ctx.signal` (see `abort`). */
  get signal(): AbortSignal {
    const extras = this.extras;
    if (extras.controller === null) {
      extras.controller = new AbortController();
      if (this.abortReason !== null) extras.controller.abort(this.abortReason);
    }
    return extras.controller.signal;
  }

  /** Why the call was aborted, or null. */
  get abortedWith(): RpcError | null {
    return this.abortReason;
  }

  /** Aborts the call (the first reason wins; nothing happens once it ended): `ctx.signal` fires. */
  abort(reason: RpcError): void {
    if (this.abortReason !== null || this.ended) return;
    this.abortReason = reason;
    this.rare?.controller?.abort(reason);
    const race = this.race;
    this.race = null;
    race?.(reason);
  }

  /**
   * `work`'s result, unless the call is aborted first: then `onAbort(reason)`'s (and `work`'s
   * eventual result is dropped); a rejection of `work` rejects it. A call races one piece of work at a time
   * (its handler, then each turn), so one slot holds the race.
   */
  unlessAborted<T>(work: Promise<T>, onAbort: (reason: RpcError) => T): Promise<T> {
    if (this.abortReason !== null) return Promise.resolve(onAbort(this.abortReason));
    return new Promise<T>((resolve, reject) => {
      const race = (reason: RpcError) => resolve(onAbort(reason));
      this.race = race;
      work.then(
        (value) => {
          if (this.race !== race) return; // aborted first: already answered
          this.race = null;
          resolve(value);
        },
        (err: unknown) => {
          if (this.race !== race) return;
          this.race = null;
          reject(err);
        },
      );
    });
  }

  /** Aborts the call with `deadline_exceeded` after `ms` unless it ended first. */
  deadline(ms: number): void {
    const extras = this.extras;
    if (extras.deadlineTimer !== null || this.ended) return;
    extras.deadlineTimer = setTimeout(
      () => this.abort(frameworkError("deadline_exceeded", `the call did not finish within its deadline of ${ms} ms`)),
      ms,
    );
    extras.deadlineTimer.unref();
  }

  /** Records output batches as they are written. */
  wrote(batches: readonly RecordBatch[]): void {
    for (const b of batches) recordOutput(this.stats, b);
  }

  /** Marks the call failed (the first error wins). */
  failed(err: unknown): void {
    this.failure ??= RpcError.from(err);
  }

  /** Records the request's metadata and shape, and starts the call's span. */
  received(request: RecordBatch): void {
    this.requestMetadata = request.metadata;
    // A client-chosen request id correlates its logs with ours, unless the transport fixed one
    // (HTTP's X-Request-ID, already echoed in the response headers).
    const fromClient = this.fixedRequestId ? undefined : clientId(request.metadata.get(REQUEST_ID_KEY));
    if (fromClient !== undefined) {
      this.requestIdValue = fromClient;
      this.originValue = null;
    }
    this.requestSchema = request.schema;
    this.requestRows = request.numRows;
  }

  /** The request batch's shape for the call record (computed once per schema). */
  get requestFields(): CallRecord["requestFields"] {
    return this.requestSchema === null ? null : requestShape(this.requestSchema);
  }

  /**
   * Starts the interceptor chain once the method is known (the built-in observers and tracing
   * first, then `ServerOptions.interceptors`); nothing when none applies to the call. When an
   * interceptor has not reached `next` by the time the chain returns (it awaits something first),
   * `entered` settles once the chain reaches the call, rejecting if an interceptor refused it;
   * the usual chain, which calls `next` at once, leaves nothing to wait for.
   */
  begin(): void {
    if (this.begun) return;
    this.begun = true;
    const interceptors = callInterceptors(this.env.server, this.requestMetadata, this.env.http?.traceContext);
    if (interceptors.length === 0) return;
    const chained: Chained = { view: new CallView(this), entered: null, finish: null, outcome: null };
    this.chained = chained;
    let inside = false;
    let enter: (() => void) | null = null;
    let refuse: ((err: unknown) => void) | null = null;
    const body: CallHandler = () => {
      inside = true;
      enter?.();
      return new Promise<CallOutcome>((resolve) => {
        if (chained.outcome !== null) resolve(chained.outcome);
        else chained.finish = resolve;
      });
    };
    chain(
      interceptors,
      body,
    )(chained.view).catch((err: unknown) => {
      if (!inside) refuse!(err);
      else this.env.server.logger.warn({ err }, "an interceptor failed after the call");
    });
    if (inside) return;
    // The catch above runs in a later microtask, after this promise exists.
    const entered = new Promise<void>((resolve, reject) => {
      enter = resolve;
      refuse = reject;
    });
    entered.catch(() => {}); // the dispatcher reads the refusal; nobody else need
    chained.entered = entered;
  }

  /** The request-bound logger: a child of the server's with the call's identity. */
  get logger(): Logger {
    const extras = this.extras;
    if (extras.logger === null) {
      const bindings: Record<string, string> = {
        server_id: this.origin.serverId,
        method: this.methodName,
        request_id: this.origin.requestId,
        transport: this.env.transport,
      };
      if (this.env.auth.principal) bindings.principal = this.env.auth.principal;
      if (this.env.auth.domain) bindings.auth_domain = this.env.auth.domain;
      const remote = this.env.transportMetadata.remote_addr;
      if (remote) bindings.remote_addr = remote;
      extras.logger = this.env.server.logger.child(bindings);
    }
    return extras.logger;
  }

  /** Ends the call once: its interceptors (observers and tracing included) see the outcome. */
  end(cancelled = false): void {
    if (this.ended) return;
    this.ended = true;
    const rare = this.rare;
    if (rare !== null && rare.deadlineTimer !== null) clearTimeout(rare.deadlineTimer);
    this.race = null;
    // A call that ended before its method was known (unroutable, unreadable) still passes its
    // interceptors, so observers record it.
    if (!this.begun) this.begin();
    const chained = this.chained;
    if (chained === null) return; // nothing reads the outcome
    const e = this.failure;
    const outcome: CallOutcome = {
      status: e === null ? "ok" : "error",
      error: e,
      cancelled,
      durationMs: performance.now() - this.t0,
    };
    chained.outcome = outcome;
    const finish = chained.finish;
    chained.finish = null;
    if (finish !== null) finish(outcome);
  }

  /** The record observers receive for this call's `outcome`. */
  record(outcome: CallOutcome, view: ServerCall): CallRecord {
    const server = this.env.server;
    const owner = this.method?.protocol ?? server.protocols.values().next().value!;
    const e = outcome.error;
    const ids = spanIds(view);
    return {
      serverId: server.serverId,
      requestId: this.origin.requestId,
      transport: this.env.transport,
      protocol: owner.name,
      protocolHash: owner.hash,
      method: this.methodName,
      methodType: this.method === null || this.method.decl.kind === "unary" ? "unary" : "stream",
      streamId: this.streamId,
      status: outcome.status,
      errorType: e?.type ?? "",
      errorMessage: e?.message ?? "",
      errorKind: e?.kind ?? "",
      errorCode: e === null ? "" : e.code,
      error: e,
      cancelled: outcome.cancelled,
      startedAt: this.startedAt,
      durationMs: outcome.durationMs,
      stats: { ...this.stats },
      auth: this.env.auth,
      transportMetadata: this.env.transportMetadata,
      requestMetadata: this.requestMetadata,
      requestFields: this.requestFields,
      requestRows: this.requestRows,
      traceId: ids.traceId,
      spanId: ids.spanId,
      sessionId: this.env.http?.session?.touchedId ?? "",
      sessionAction: this.env.http?.session?.action ?? "",
    };
  }

  /** The client's idempotency key: the transport's (HTTP header) first, then request metadata. */
  get idempotencyKey(): string | null {
    return (
      clientId(this.env.http?.idempotencyKey) ?? clientId(this.requestMetadata.get(IDEMPOTENCY_KEY_METADATA)) ?? null
    );
  }

  /** A `CallContext` whose client logs go to `clientLog`. */
  context(
    method: ResolvedMethod,
    clientLog: (level: LogLevel, message: string, extra?: LogExtra) => void,
    injected: Injected = NOTHING_INJECTED,
  ): CallContext<Injected> {
    return new HandlerContext(this, method, clientLog, injected);
  }

  /** A complete answer carrying one error batch on `schema` (recorded as the call's failure). */
  errorAnswer(schema: Schema, err: unknown): Answer {
    this.failed(err);
    const batch = errorBatch(schema, err, this.origin, this.env.server.includeTracebacks);
    this.wrote([batch]);
    return { schema, batches: [batch] };
  }
}

/** A complete response stream: its schema and batches. */
export interface Answer {
  readonly schema: Schema;
  readonly batches: readonly RecordBatch[];
}

/** What admitting a request led to. */
export type Admission =
  | {
      readonly kind: "answer";
      readonly answer: Answer;
      /**
       * A refused stream call: the client still sends its input stream (as after a failed init),
       * so a session transport consumes it before the next request.
       */
      readonly drainInput?: boolean;
    }
  | { readonly kind: "unary"; readonly method: ResolvedMethod; readonly params: Record<string, unknown> }
  | { readonly kind: "stream"; readonly method: ResolvedMethod; readonly params: Record<string, unknown> };

function protocolError(message: string): RpcError {
  return frameworkError("protocol_error", message, { type: "ProtocolError" });
}

/** Each declared parameter list as entries, listed once (declarations live as long as the server). */
const paramEntries = new WeakMap<FieldSpecs, ReadonlyArray<readonly [string, TypeSpec]>>();

function decodeParams(method: ResolvedMethod, request: RecordBatch): Record<string, unknown> {
  const declared = method.decl.params;
  let entries = paramEntries.get(declared);
  if (entries === undefined) {
    entries = Object.entries(declared);
    paramEntries.set(declared, entries);
  }
  const params: Record<string, unknown> = {};
  for (let i = 0; i < entries.length; i++) {
    const [name, spec] = entries[i]!;
    const data = request.data.children[i]!;
    if (!data.getValid(0)) {
      if (!spec.nullable) throw new TypeError(`${method.name}() parameter '${name}' is not optional but got None`);
      params[name] = null;
    } else params[name] = spec.codec.get(data, 0);
  }
  return params;
}

/**
 * Checks a request batch in the reference's order: envelope metadata, row count, built-ins,
 * routing, version gate, parameter contract. Failures before routing answer on the empty schema;
 * later ones on the method's error schema (its result schema for unary calls).
 */
export function admit(call: Call, request: RecordBatch | null): Admission {
  const server = call.env.server;
  const answer = (schema: Schema, err: unknown): Admission => ({
    kind: "answer",
    answer: call.errorAnswer(schema, err),
  });
  if (request === null) {
    return answer(
      EMPTY_SCHEMA,
      protocolError("Request IPC stream carries no batch; a request is one batch of parameters."),
    );
  }
  recordInput(call.stats, request);
  call.received(request);
  const md = request.metadata;
  const methodName = md.get(METHOD_KEY);
  if (methodName === undefined) {
    return answer(
      EMPTY_SCHEMA,
      protocolError(
        "Missing 'vgi_rpc.method' in request batch custom_metadata. Each request batch must carry a 'vgi_rpc.method' key in its Arrow IPC custom_metadata with the method name as a UTF-8 string.",
      ),
    );
  }
  call.methodName = methodName;
  const version = md.get(REQUEST_VERSION_KEY);
  if (version !== REQUEST_VERSION) {
    const what =
      version === undefined
        ? "Missing 'vgi_rpc.request_version' in request batch custom_metadata."
        : `Unsupported request version '${version}', expected '${REQUEST_VERSION}'.`;
    return answer(
      EMPTY_SCHEMA,
      new RpcError(`${what} Set the 'vgi_rpc.request_version' custom_metadata value to '${REQUEST_VERSION}'.`, {
        type: "VersionError",
        code: "INVALID_ARGUMENT",
        kind: "protocol_error",
      }),
    );
  }
  if (request.schema.fields.length > 0 && request.numRows !== 1) {
    return answer(
      EMPTY_SCHEMA,
      protocolError(
        `Expected 1 row in request batch, got ${request.numRows}. Each parameter is a column (not a row). The batch should have exactly 1 row.`,
      ),
    );
  }
  if (methodName === TRANSPORT_OPTIONS_METHOD) {
    const caps = new Map([
      [TRANSPORT_SHM_KEY, call.env.sideChannel === true ? "true" : "false"],
      [REQUEST_VERSION_KEY, REQUEST_VERSION],
      [SERVER_ID_KEY, server.serverId],
    ]);
    const batch = emptyBatch(EMPTY_SCHEMA, caps);
    call.wrote([batch]);
    return { kind: "answer", answer: { schema: EMPTY_SCHEMA, batches: [batch] } };
  }
  if (server.draining) {
    return answer(EMPTY_SCHEMA, frameworkError("server_draining", "The server is draining and accepts no new calls."));
  }
  let method: ResolvedMethod;
  try {
    method = server.resolve(md.get(PROTOCOL_KEY), methodName);
  } catch (err) {
    return answer(EMPTY_SCHEMA, err);
  }
  call.method = method;
  call.begin();
  const errSchema = method.decl.kind === "unary" ? method.schemas.result : EMPTY_SCHEMA;
  // Authorization precedes everything about the request's content: a refused caller learns
  // nothing from parameter or version errors, and no parameter is decoded for it.
  const refusal = securityRefusal(method.name, method.decl.security ?? null, call.env.auth);
  if (refusal !== null) {
    return { kind: "answer", answer: call.errorAnswer(errSchema, refusal), drainInput: method.decl.kind !== "unary" };
  }
  try {
    server.gateVersion(method, md.get(PROTOCOL_VERSION_KEY));
    checkParamsContract(method.name, request.schema, method.schemas.params);
    const params = decodeParams(method, request);
    return { kind: method.decl.kind === "unary" ? "unary" : "stream", method, params };
  } catch (err) {
    return answer(errSchema, err);
  }
}

/**
 * Takes up an open stream for one more turn on a stateless transport (HTTP `/exchange`: the
 * stream's method and id come from its token, `input` is this turn's request). The call is
 * admitted as a fresh one would be: its span and interceptors start, and the caller's credentials
 * are checked against the method's requirement afresh, so a credential that lost its scope
 * mid-stream stops here. Returns the refusal, recorded as the call's failure, or null.
 */
export function resume(call: Call, method: ResolvedMethod, streamId: string, input: RecordBatch): RpcError | null {
  call.method = method;
  call.methodName = method.name;
  call.streamId = streamId;
  call.received(input); // its rows are counted by the turn (runTurn), as a session's are
  call.begin();
  const refusal = securityRefusal(method.name, method.decl.security ?? null, call.env.auth);
  if (refusal !== null) call.failed(refusal);
  return refusal;
}

/**
 * The context a unary handler or a stream's init receives: the method's injected values resolved
 * (in the call's span) against a context without them.
 */
async function handlerContext(
  call: Call,
  method: ResolvedMethod,
  clientLog: (level: LogLevel, message: string, extra?: LogExtra) => void,
): Promise<CallContext<Injected>> {
  const inject = method.decl.inject ?? {};
  const base = call.context(method, clientLog);
  if (Object.keys(inject).length === 0) return base;
  const injected = await context.with(call.otelContext, () => resolveInjected(inject, base));
  return call.context(method, clientLog, injected);
}

/** Runs a unary call: buffered client logs, then the result or the error, on the result schema. */
export async function runUnary(call: Call, method: ResolvedMethod, params: Record<string, unknown>): Promise<Answer> {
  const decl = method.decl;
  if (decl.kind !== "unary") throw new Error("runUnary needs a unary method");
  const schema = method.schemas.result;
  const logs = new LogBuffer(call);
  const clientLog = (level: LogLevel, message: string, extra?: LogExtra) => logs.add(level, message, extra);
  let result: RecordBatch;
  try {
    const ctx = await handlerContext(call, method, clientLog);
    const handler = method.handler as (p: Record<string, unknown>, c: CallContext<Injected>) => unknown;
    const value = await context.with(call.otelContext, () => handler(params, ctx));
    if (value instanceof ExternalRef) result = value.pointerBatch(schema);
    else if (decl.result === null) result = emptyBatch(EMPTY_SCHEMA);
    else {
      if ((value === null || value === undefined) && !decl.result.nullable) {
        throw new TypeError(`${method.name}() expected a non-None return value but got None`);
      }
      result = oneValueBatch(decl.result, value ?? null, schema, "result", { method: method.name, role: "result" });
      const policy = call.env.server.external;
      if (policy !== null) {
        result = await externalizeBatch(
          result,
          policy,
          call.env.http?.externalBudget ?? null,
          method.name,
          () => call.signal,
        );
      }
    }
  } catch (err) {
    call.failed(err);
    result = errorBatch(schema, err, call.origin, call.env.server.includeTracebacks);
  }
  const batches = [...logs.drain(schema), result];
  call.wrote(batches);
  return { schema, batches };
}

/** A stream handler with its types erased (`bind` checked its shape). */
interface ErasedStreamHandler {
  init(params: Record<string, unknown>, ctx: CallContext<Injected>): unknown;
  produce?(state: Record<string, unknown>, out: TurnCollector<OutputSpec>, ctx: CallContext): unknown;
  process?(
    state: Record<string, unknown>,
    input: InputBatch<FieldSpecs>,
    out: TurnCollector<OutputSpec>,
    ctx: CallContext,
  ): unknown;
  onCancel?(state: Record<string, unknown>, ctx: CallContext): void;
  readonly borrowInput?: boolean;
}

/** True when the stream's handler lets its input batches be borrowed (`ExchangeHandler.borrowInput`). */
export function borrowsInput(stream: OpenStream): boolean {
  return (stream.method.handler as ErasedStreamHandler).borrowInput === true;
}

interface ErasedInit {
  readonly state?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
  readonly outputSchema?: Schema;
}

/** A stream between turns: everything a turn needs, and all of it serializable. */
export interface OpenStream {
  readonly method: ResolvedMethod;
  /** The handler's state; turns mutate it. */
  readonly state: Record<string, unknown>;
  readonly outputSchema: Schema;
  /** The declared input schema (the empty schema for producers). */
  readonly inputSchema: Schema;
}

/** What opening a stream produced: its header stream (if declared), init logs and the stream. */
export type StreamOpening =
  | {
      readonly ok: true;
      readonly stream: OpenStream;
      /** The header stream, when the method declares a header (init logs ride in it). */
      readonly header: Answer | null;
      /** Init logs to lead the output stream with (when there is no header). */
      readonly initLogs: readonly RecordBatch[];
    }
  | { readonly ok: false; readonly answer: Answer };

/** Runs a stream's init. A failure answers on the empty schema in place of header/output. */
export async function openStream(
  call: Call,
  method: ResolvedMethod,
  params: Record<string, unknown>,
): Promise<StreamOpening> {
  const decl = method.decl;
  if (decl.kind === "unary") throw new Error("openStream needs a stream method");
  call.streamId ||= hex(16);
  const logs = new LogBuffer(call);
  try {
    const ctx = await handlerContext(call, method, (level, message, extra) => logs.add(level, message, extra));
    const handler = method.handler as ErasedStreamHandler;
    const init = ((await context.with(call.otelContext, () => handler.init(params, ctx))) ?? {}) as ErasedInit;
    if (typeof init !== "object")
      throw new TypeError(`${method.name}() init must return an object, got ${typeof init}`);
    let outputSchema: Schema;
    if (decl.output === "dynamic") {
      if (!init.outputSchema)
        throw new TypeError(`${method.name}() declares a dynamic output and returned no outputSchema`);
      outputSchema = init.outputSchema;
    } else outputSchema = method.schemas.output!;
    let header: Answer | null = null;
    if (decl.header !== null) {
      if (init.header === undefined || init.header === null) {
        throw new TypeError(`Method '${method.name}' declares header type but returned header=None`);
      }
      const headerSchema = method.schemas.header!;
      const headerBatch = batchFromRows(decl.header, [init.header as RowOf<FieldSpecs>], undefined, headerSchema, {
        method: method.name,
        role: "header field",
      });
      const policy = call.env.server.external;
      const budget = call.env.http?.externalBudget ?? null;
      const headerOut =
        policy === null
          ? headerBatch
          : await externalizeBatch(headerBatch, policy, budget, method.name, () => call.signal);
      const batches = [...logs.drain(headerSchema), headerOut];
      call.wrote(batches);
      header = { schema: headerSchema, batches };
    }
    const initLogs = logs.drain(outputSchema);
    call.wrote(initLogs);
    const stream: OpenStream = {
      method,
      state: init.state ?? {},
      outputSchema,
      inputSchema: method.schemas.input ?? EMPTY_SCHEMA,
    };
    return { ok: true, stream, header, initLogs };
  } catch (err) {
    return { ok: false, answer: call.errorAnswer(EMPTY_SCHEMA, err) };
  }
}

/** Keys a transport adds to input batches; handlers see only the application's. */
const TRANSPORT_KEYS = [CANCEL_KEY, STREAM_STATE_KEY, CALL_STATE_KEY];

function withoutTransportKeys(md: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
  if (!TRANSPORT_KEYS.some((k) => md.has(k))) return md;
  const out = new Map(md);
  for (const k of TRANSPORT_KEYS) out.delete(k);
  return out;
}

function inputView(
  fields: FieldSpecs,
  batch: RecordBatch,
  metadata: ReadonlyMap<string, string>,
): InputBatch<FieldSpecs> {
  return {
    batch,
    numRows: batch.numRows,
    metadata,
    rows: () => rowsFromBatch(fields, batch),
    column: (name: string) => columnFromBatch(fields, batch, name) as never[],
  };
}

/** What one turn produced. */
export interface TurnResult {
  /** Batches to write on the output stream (logs, data, or a trailing error batch). */
  readonly batches: readonly RecordBatch[];
  /** True when the output stream must end now (finished, failed or cancelled). */
  readonly done: boolean;
  readonly cancelled: boolean;
}

function isProducerStream(stream: OpenStream): boolean {
  return stream.inputSchema.fields.length === 0;
}

/**
 * Runs one turn for `input` (a producer tick, an exchange batch, or a cancel). Errors become a
 * trailing EXCEPTION batch on the output schema and end the stream. The turn's batches are
 * externalized under the server's policy unless `externalize` is false (the HTTP exchange, which
 * first adds its cursor to the data batch, externalizes them itself).
 */
export async function runTurn(
  call: Call,
  stream: OpenStream,
  input: RecordBatch,
  externalize = true,
): Promise<TurnResult> {
  const { method } = stream;
  const decl: MethodDecl = method.decl;
  const handler = method.handler as ErasedStreamHandler;
  if (isCancelBatch(input)) {
    try {
      handler.onCancel?.(
        stream.state,
        call.context(method, () => {}),
      );
    } catch {
      // on_cancel errors are swallowed, as in the reference.
    }
    return { batches: [], done: true, cancelled: true };
  }
  const producer = isProducerStream(stream);
  try {
    if (!producer) recordInput(call.stats, input);
    const coerced = coerceInput(input, stream.inputSchema);
    const metadata = withoutTransportKeys(input.metadata);
    const outputFields = decl.kind !== "unary" && decl.output !== "dynamic" ? decl.output : null;
    // Logs a turn emits carry the server id only, as the reference's OutputCollector writes them
    // (init and unary logs also carry the request id).
    const logOrigin = { serverId: call.origin.serverId, requestId: "" };
    const out = new TurnCollector(stream.outputSchema, outputFields, logOrigin, producer, metadata, method.name);
    const ctx = call.context(method, (level, message, extra) => out.clientLog(level, message, extra));
    await context.with(call.otelContext, () => {
      if (decl.kind === "producer") return handler.produce?.(stream.state, out, ctx);
      const inputFields = decl.kind === "exchange" ? decl.input : {};
      return handler.process?.(stream.state, inputView(inputFields, coerced, metadata), out, ctx);
    });
    out.validate();
    const policy = call.env.server.external;
    const budget = call.env.http?.externalBudget ?? null;
    const batches =
      policy === null || !externalize
        ? out.batches
        : await externalizeTurn(stream.outputSchema, out.batches, policy, budget, method.name, () => call.signal);
    call.wrote(batches);
    if (call.turnCheck !== null) {
      const refusal = await call.turnCheck(call.stats);
      if (refusal !== null && !out.finished) {
        // The turn's batches go out, then the error ends the stream (a quota crossed by this turn).
        return {
          batches: [...batches, ...call.errorAnswer(stream.outputSchema, refusal).batches],
          done: true,
          cancelled: false,
        };
      }
    }
    return { batches, done: out.finished, cancelled: false };
  } catch (err) {
    const answer = call.errorAnswer(stream.outputSchema, err);
    return { batches: answer.batches, done: true, cancelled: false };
  }
}
