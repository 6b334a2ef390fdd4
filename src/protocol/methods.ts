/**
 * Method declarations — declared once with Arrow specs, used by server and client — and the
 * handler types inferred from them.
 *
 * ```ts
 * const Calc = defineProtocol("Calc", { version: "1.0.0" }, {
 *   add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
 *   count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
 *   scale: exchange({ factor: t.float64() }, { input: { x: t.float64() }, output: { x: t.float64() } }),
 * });
 * ```
 */
import type { RecordBatch, Schema } from "apache-arrow";
import { EMPTY_SCHEMA, schemaOf } from "./batch.js";
import type { CallContext, LogExtra, LogLevel } from "./context.js";
import type { FieldSpecs, RowOf, TypeSpec, ValueOf } from "./types.js";

/** Output or header fields, or `"dynamic"` when the handler chooses the schema at init. */
export type OutputSpec = FieldSpecs | "dynamic";

/**
 * Who may call a method: security scheme name → the scopes a credential of that scheme must all
 * carry. Any one entry satisfied admits the call (`{ apikey: [], jwt: ["issues.write"] }`: an API
 * key, or a JWT with `issues.write`). Scheme names refer to the server's `securitySchemes` and
 * match `AuthContext.scheme`.
 */
export type SecurityRequirement = Readonly<Record<string, readonly string[]>>;

/** A value derived from the call's context, resolved once before the handler runs. */
export type Resolver = (ctx: CallContext) => unknown;

/** Named resolvers a method declares with `inject`. */
export type InjectSpec = Readonly<Record<string, Resolver>>;

/** What `inject` resolvers produce, as the handler reads them from `ctx.injected`. */
export type InjectedOf<J extends InjectSpec> = { readonly [K in keyof J]: Awaited<ReturnType<J[K]>> };

/** The handler's context for a method declaring `J`. */
export type ContextOf<J extends InjectSpec> = CallContext<InjectedOf<J>>;

/** Options every method declaration accepts. */
export interface MethodOptions<J extends InjectSpec = Record<never, never>> {
  /**
   * Security requirements, checked by dispatch before parameters are decoded and before the
   * handler runs, on every transport. Default: none (the method is open to anyone).
   */
  readonly security?: SecurityRequirement;
  /**
   * Values derived from the context (`{ user: loadUser }`), each a sync or async function of it,
   * resolved once per call after the security check and handed to the handler as `ctx.injected`
   * (a unary handler, or a stream's `init`). A resolver that throws fails the call with its error
   * and the handler never runs. Default: none.
   */
  readonly inject?: J;
}

/** What every declaration carries besides its shape. */
interface DeclBase<J extends InjectSpec> {
  /** Security requirements, or null for an open method. */
  readonly security: SecurityRequirement | null;
  readonly inject: J;
}

function declBase<J extends InjectSpec>(opts: MethodOptions<J> | undefined): DeclBase<J> {
  const security = opts?.security;
  if (security !== undefined) {
    if (Object.keys(security).length === 0) {
      throw new TypeError("security: {} admits nobody; omit `security` for an open method");
    }
    for (const [scheme, scopes] of Object.entries(security)) {
      if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== "string")) {
        throw new TypeError(`security requirement '${scheme}' must list scopes as strings`);
      }
    }
  }
  const inject = (opts?.inject ?? {}) as J;
  for (const [name, resolver] of Object.entries(inject)) {
    if (typeof resolver !== "function") throw new TypeError(`inject '${name}' must be a function of the context`);
  }
  return {
    security:
      security === undefined
        ? null
        : Object.freeze(Object.fromEntries(Object.entries(security).map(([k, v]) => [k, Object.freeze([...v])]))),
    inject,
  };
}

export interface UnaryDecl<
  P extends FieldSpecs = FieldSpecs,
  R extends TypeSpec<unknown> | null = TypeSpec<unknown> | null,
  J extends InjectSpec = InjectSpec,
> extends DeclBase<J> {
  readonly kind: "unary";
  readonly params: P;
  /** The result spec, or `null` for a void method. */
  readonly result: R;
}

export interface ProducerDecl<
  P extends FieldSpecs = FieldSpecs,
  O extends OutputSpec = OutputSpec,
  H extends FieldSpecs | null = FieldSpecs | null,
  S extends FieldSpecs = FieldSpecs,
  J extends InjectSpec = InjectSpec,
> extends DeclBase<J> {
  readonly kind: "producer";
  readonly params: P;
  readonly output: O;
  readonly header: H;
  /**
   * The stream's state between turns, declared with specs so that it can travel as Arrow (HTTP
   * continues a stream from a signed token carrying it). `{}` for a stateless stream.
   */
  readonly state: S;
}

export interface ExchangeDecl<
  P extends FieldSpecs = FieldSpecs,
  I extends FieldSpecs = FieldSpecs,
  O extends OutputSpec = OutputSpec,
  H extends FieldSpecs | null = FieldSpecs | null,
  S extends FieldSpecs = FieldSpecs,
  J extends InjectSpec = InjectSpec,
> extends DeclBase<J> {
  readonly kind: "exchange";
  readonly params: P;
  readonly input: I;
  readonly output: O;
  readonly header: H;
  /** The stream's state between turns (see `ProducerDecl.state`). */
  readonly state: S;
}

export type MethodDecl = UnaryDecl | ProducerDecl | ExchangeDecl;

/** A unary method; `result: null` declares a void method. */
export function unary<
  const P extends FieldSpecs,
  R extends TypeSpec<unknown> | null,
  const J extends InjectSpec = Record<never, never>,
>(params: P, result: R, opts?: MethodOptions<J>): UnaryDecl<P, R, NoInfer<J>> {
  return { kind: "unary", params, result, ...declBase(opts) };
}

/** A producer stream: the server emits batches until it calls `finish()`. */
export function producer<
  const P extends FieldSpecs,
  const O extends OutputSpec,
  const H extends FieldSpecs | null = null,
  const S extends FieldSpecs = Record<never, never>,
  const J extends InjectSpec = Record<never, never>,
>(
  params: P,
  opts: { readonly output: O; readonly header?: H; readonly state?: S } & MethodOptions<J>,
): ProducerDecl<P, O, NoInfer<H>, NoInfer<S>, NoInfer<J>> {
  return {
    ...declBase(opts),
    kind: "producer",
    params,
    output: opts.output,
    header: (opts.header ?? null) as H,
    state: (opts.state ?? {}) as S,
  };
}

/** An exchange stream: for each input batch the client sends, the server answers one batch. */
export function exchange<
  const P extends FieldSpecs,
  const I extends FieldSpecs,
  const O extends OutputSpec,
  const H extends FieldSpecs | null = null,
  const S extends FieldSpecs = Record<never, never>,
  const J extends InjectSpec = Record<never, never>,
>(
  params: P,
  opts: { readonly input: I; readonly output: O; readonly header?: H; readonly state?: S } & MethodOptions<J>,
): ExchangeDecl<P, I, O, NoInfer<H>, NoInfer<S>, NoInfer<J>> {
  return {
    ...declBase(opts),
    kind: "exchange",
    params,
    input: opts.input,
    output: opts.output,
    header: (opts.header ?? null) as H,
    state: (opts.state ?? {}) as S,
  };
}

/** A named, versioned set of methods. */
export interface ProtocolDecl<M extends Readonly<Record<string, MethodDecl>> = Readonly<Record<string, MethodDecl>>> {
  /** Wire name; the routing key `vgi_rpc.protocol`. */
  readonly name: string;
  /** `MAJOR.MINOR.PATCH`, gated on major.minor; `""` declares none. */
  readonly version: string;
  readonly methods: M;
}

const PROTOCOL_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** Declares a protocol. Names follow the reference grammar; `vgi_rpc.` is reserved. */
export function defineProtocol<const M extends Readonly<Record<string, MethodDecl>>>(
  name: string,
  opts: { readonly version?: string },
  methods: M,
): ProtocolDecl<M> {
  validateProtocolName(name, false);
  const version = opts.version ?? "";
  if (version !== "" && !/^\d+\.\d+\.\d+$/.test(version)) {
    throw new TypeError(`protocol version must be MAJOR.MINOR.PATCH, got '${version}'`);
  }
  return { name, version, methods };
}

/** Throws a TypeError for a name outside the protocol grammar. */
export function validateProtocolName(name: string, allowReserved: boolean): void {
  if (!PROTOCOL_NAME.test(name) || new TextEncoder().encode(name).byteLength > 255) {
    throw new TypeError("protocol names are [A-Za-z_][A-Za-z0-9_.]*, at most 255 bytes");
  }
  if (!allowReserved && name.startsWith("vgi_rpc.")) {
    throw new TypeError("the 'vgi_rpc.' protocol prefix is reserved for the framework");
  }
}

// ---------------------------------------------------------------------------------------------
// Handler types

/** Parameters as the handler receives them (defaults applied). */
export type ParamsOf<P extends FieldSpecs> = RowOf<P>;

/** The rows a stream emits: typed for declared outputs, loose for dynamic ones. */
export type OutRow<O extends OutputSpec> = O extends FieldSpecs ? RowOf<O> : Readonly<Record<string, unknown>>;

/** Collects what one turn of a stream writes: log records and exactly one data batch. */
export interface OutputCollector<O extends OutputSpec = OutputSpec> {
  /** The output schema in force for this stream. */
  readonly schema: Schema;
  /** Emits one batch built from rows. */
  emit(rows: readonly OutRow<O>[], metadata?: ReadonlyMap<string, string>): void;
  /** Emits one batch built from whole columns. */
  emitColumns(columns: Readonly<Record<string, readonly unknown[]>>, metadata?: ReadonlyMap<string, string>): void;
  /** Emits a prebuilt batch (its schema must match the output schema). */
  emitBatch(batch: RecordBatch, metadata?: ReadonlyMap<string, string>): void;
  /** Producer streams only: ends the stream after this turn (with or without data). */
  finish(): void;
  /** Sends a log record to the caller before this turn's data. */
  clientLog(level: LogLevel, message: string, extra?: LogExtra): void;
  readonly finished: boolean;
  /** Custom metadata of the input batch or producer tick that started this turn. */
  readonly inputMetadata: ReadonlyMap<string, string>;
}

/** One input batch of an exchange, coerced to the declared input schema. */
export interface InputBatch<I extends FieldSpecs = FieldSpecs> {
  readonly batch: RecordBatch;
  readonly numRows: number;
  /** The batch's custom metadata (framework keys included). */
  readonly metadata: ReadonlyMap<string, string>;
  /** Decodes every row. */
  rows(): RowOf<I>[];
  /** Decodes one column. */
  column<K extends keyof I & string>(name: K): ValueOf<I[K]>[];
}

type Awaitable<T> = T | Promise<T>;

/** What a stream's `init` returns: its state, its header (when declared), its schema (when dynamic). */
export type StreamInit<O extends OutputSpec, H extends FieldSpecs | null, S extends FieldSpecs> = (keyof S extends never
  ? { readonly state?: RowOf<S> }
  : { readonly state: RowOf<S> }) &
  (H extends FieldSpecs ? { readonly header: RowOf<H> } : { readonly header?: undefined }) &
  (O extends "dynamic" ? { readonly outputSchema: Schema } : { readonly outputSchema?: undefined });

/**
 * A producer's handlers. Turns receive the state object and may mutate it; the server keeps it
 * between turns (in memory on a connection, serialized into the continuation token over HTTP),
 * so every turn function must depend only on its arguments.
 */
export interface ProducerHandler<
  P extends FieldSpecs,
  O extends OutputSpec,
  H extends FieldSpecs | null,
  S extends FieldSpecs,
  J extends InjectSpec = Record<never, never>,
> {
  /**
   * Starts the stream: validates parameters, builds the first state. Errors here end the call.
   * Injected values are read here (`ctx.injected`); keep what later turns need in the state.
   */
  init(params: ParamsOf<P>, ctx: ContextOf<J>): Awaitable<StreamInit<O, H, S>>;
  /** One turn: emit one batch, or call `out.finish()` (optionally after emitting). */
  produce(state: RowOf<S>, out: OutputCollector<O>, ctx: CallContext): Awaitable<void>;
  /** Called once if the client cancels; errors it throws are logged and swallowed. */
  onCancel?(state: RowOf<S>, ctx: CallContext): void;
}

/** An exchange's handlers (see `ProducerHandler` for the state rules). */
export interface ExchangeHandler<
  P extends FieldSpecs,
  I extends FieldSpecs,
  O extends OutputSpec,
  H extends FieldSpecs | null,
  S extends FieldSpecs,
  J extends InjectSpec = Record<never, never>,
> {
  init(params: ParamsOf<P>, ctx: ContextOf<J>): Awaitable<StreamInit<O, H, S>>;
  /** One turn: answer `input` with exactly one emitted batch. */
  process(state: RowOf<S>, input: InputBatch<I>, out: OutputCollector<O>, ctx: CallContext): Awaitable<void>;
  onCancel?(state: RowOf<S>, ctx: CallContext): void;
  /**
   * Lets the server read each large input batch (64 KiB of body or more) into one buffer it
   * reuses for the next, instead of memory of its own, over a pipe, Unix socket, TCP or WebSocket
   * (elsewhere it has no effect). Set it only when nothing keeps the input batch, or any view of
   * its buffers (its column data, binary values from `rows()` or `column()`), past the turn: copy
   * what you keep. The batch the turn emits may view the input; it is handed to the OS before the
   * next input is read. Saves an allocation per large input and the garbage collection that
   * follows it. Default false.
   */
  readonly borrowInput?: boolean;
}

/** The handler type for one declaration. */
export type HandlerOf<D> =
  D extends UnaryDecl<infer P, infer R, infer J>
    ? (params: ParamsOf<P>, ctx: ContextOf<J>) => R extends TypeSpec<infer V> ? Awaitable<V> : Awaitable<void>
    : D extends ProducerDecl<infer P, infer O, infer H, infer S, infer J>
      ? ProducerHandler<P, O, H, S, J>
      : D extends ExchangeDecl<infer P, infer I, infer O, infer H, infer S, infer J>
        ? ExchangeHandler<P, I, O, H, S, J>
        : never;

/** Handlers for every method of a protocol. */
export type Implementation<P extends ProtocolDecl> = {
  readonly [K in keyof P["methods"]]: HandlerOf<P["methods"][K]>;
};

// ---------------------------------------------------------------------------------------------
// Schemas derived from a declaration (what reflection and the hash describe)

/** The Arrow schemas a declaration puts on the wire. */
export interface MethodSchemas {
  readonly params: Schema;
  /** Unary: `{result}` or the empty schema for void. Streams: the empty schema. */
  readonly result: Schema;
  readonly hasReturn: boolean;
  readonly header: Schema | null;
  /** Exchange input schema; the empty schema for producers; null for unary. */
  readonly input: Schema | null;
  /** Declared output schema; null when dynamic or unary. */
  readonly output: Schema | null;
  /** The stream state's schema (empty when stateless); null for unary. */
  readonly state: Schema | null;
}

/** Computes the wire schemas of a declaration. */
export function methodSchemas(decl: MethodDecl): MethodSchemas {
  const params = schemaOf(decl.params);
  if (decl.kind === "unary") {
    const result = decl.result === null ? EMPTY_SCHEMA : schemaOf({ result: decl.result });
    return { params, result, hasReturn: decl.result !== null, header: null, input: null, output: null, state: null };
  }
  const header = decl.header === null ? null : schemaOf(decl.header);
  const output = decl.output === "dynamic" ? null : schemaOf(decl.output);
  const input = decl.kind === "exchange" ? schemaOf(decl.input) : EMPTY_SCHEMA;
  return { params, result: EMPTY_SCHEMA, hasReturn: false, header, input, output, state: schemaOf(decl.state) };
}
