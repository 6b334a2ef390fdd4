/**
 * The typed client layer, driven by the same method declarations the server binds: parameters
 * are built through the specs' codecs (defaults filled in client-side), results and rows are
 * decoded through them, and `proxy()` turns a protocol declaration into an object of typed
 * methods.
 *
 * ```ts
 * const calc = proxy(client, Calc);
 * await calc.add({ a: 1, b: 2 });                       // number
 * for await (const row of await calc.count({ n: 3n })) { row.i }   // bigint
 * const s = await calc.scale({ factor: 2 }); await s.exchange([{ x: 1 }]); await s.close();
 * ```
 */
import { type Data, DataType, type RecordBatch, type Schema } from "apache-arrow";
import { frameworkError, RpcError } from "../errors.js";
import { batchFromRows, oneValue, rowsFromBatch, schemaOf } from "../protocol/batch.js";
import type {
  ExchangeDecl,
  MethodDecl,
  OutputSpec,
  OutRow,
  ProducerDecl,
  ProtocolDecl,
  UnaryDecl,
} from "../protocol/methods.js";
import { methodSchemas } from "../protocol/methods.js";
import { typeText } from "../protocol/type-tokens.js";
import type { FieldSpecs, RowOf, TypeSpec, ValueOf } from "../protocol/types.js";
import { batchFromData, EMPTY_SCHEMA } from "../wire/batches.js";
import { IDEMPOTENCY_KEY_METADATA, TIMEOUT_MS_KEY } from "../wire/keys.js";
import {
  type CallChannel,
  type CallTarget,
  checkInFlight,
  type RequestMetadata,
  type StreamChannel,
} from "./transport.js";
import { plainRows } from "./values.js";

// ---------------------------------------------------------------------------------------------
// Types

/**
 * True when a spec carries a parameter default at the type level (`{ hasDefault: true }`).
 * `t.x().default(v)` returns `TypeSpec<V>` today, whose `hasDefault` is `boolean`, so such a
 * parameter is still required at compile time until the spec's type records the default.
 */
type Defaulted<S> = S extends { readonly hasDefault: true } ? true : false;

type RequiredKeys<P extends FieldSpecs> = { [K in keyof P]: Defaulted<P[K]> extends true ? never : K }[keyof P];
type OptionalKeys<P extends FieldSpecs> = { [K in keyof P]: Defaulted<P[K]> extends true ? K : never }[keyof P];

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** Parameters as a caller passes them: required unless the spec has a default. */
export type ParamsIn<P extends FieldSpecs> = Simplify<
  { [K in RequiredKeys<P>]: ValueOf<P[K]> } & { [K in OptionalKeys<P>]?: ValueOf<P[K]> }
>;

/** The argument list of a call: params optional when none is required. */
export type ParamsArgs<P extends FieldSpecs, O> = [RequiredKeys<P>] extends [never]
  ? [params?: ParamsIn<P>, opts?: O]
  : [params: ParamsIn<P>, opts?: O];

/** A unary method's decoded result (`undefined` for a void method). */
export type ResultOf<D> =
  D extends UnaryDecl<FieldSpecs, infer R> ? (R extends TypeSpec<infer V> ? V : undefined) : never;

/** A stream's decoded header (`null` when none is declared). */
export type HeaderOf<H> = H extends FieldSpecs ? RowOf<H> : null;

/** Method names of one kind. */
export type MethodsOfKind<P extends ProtocolDecl, Kind extends MethodDecl["kind"]> = {
  [K in keyof P["methods"]]: P["methods"][K] extends { readonly kind: Kind } ? K : never;
}[keyof P["methods"]] &
  string;

export interface CallOptions {
  /** Extra request metadata (application keys; framework keys always win). */
  readonly metadata?: RequestMetadata;
  /**
   * An idempotency key for a mutating call, sent as the `idempotency-key` request metadata key
   * (the server's `ctx.idempotencyKey`). Default: none.
   */
  readonly idempotencyKey?: string;
  /** A request id to correlate logs with (`vgi_rpc.request_id`; the server's `ctx.requestId`). Default: the server mints one. */
  readonly requestId?: string;
  /**
   * How long the call may take, in ms: sent with the request (`quiver.timeout_ms`), so a quiver
   * server aborts the call when it passes and answers `deadline_exceeded` (a server that does not
   * know the key ignores it; the client's own `timeoutMs` still bounds each wait). Default: none.
   */
  readonly timeoutMs?: number;
}

/** The request metadata a call's options ask for, or undefined when they ask for none. */
function extraMetadata(opts: CallOptions): RequestMetadata | undefined {
  if (opts.idempotencyKey === undefined && opts.requestId === undefined && opts.timeoutMs === undefined) {
    return opts.metadata;
  }
  const md = new Map(opts.metadata ?? []);
  if (opts.idempotencyKey !== undefined) md.set(IDEMPOTENCY_KEY_METADATA, opts.idempotencyKey);
  if (opts.requestId !== undefined) md.set("vgi_rpc.request_id", opts.requestId);
  if (opts.timeoutMs !== undefined) {
    if (!Number.isSafeInteger(opts.timeoutMs) || opts.timeoutMs <= 0) {
      throw new RangeError(`timeoutMs must be a positive integer (ms), got ${opts.timeoutMs}`);
    }
    md.set(TIMEOUT_MS_KEY, String(opts.timeoutMs));
  }
  return md;
}

export interface StreamOptions extends CallOptions {
  /** Aborting cancels the stream with the protocol's cancel batch. */
  readonly signal?: AbortSignal;
  /**
   * Lets the client read large answer batches into one reused buffer instead of memory of their
   * own (pipe, Unix, TCP and WebSocket clients do; HTTP answers are owned anyway). Each batch
   * from `batches()` or `exchangeBatch`, and everything viewing its buffers (column data, binary
   * values), is then valid only until the next batch is asked for: copy what you keep. Rows from
   * the row iterators and `exchange` are decoded first, except binary values, which are views.
   * Saves a page-faulted allocation and the garbage collection it triggers per large batch.
   */
  readonly borrowBatches?: boolean;
}

/** Inputs an exchange pipeline keeps in flight unless told otherwise (`PipelineOptions.window`). */
export const DEFAULT_PIPELINE_WINDOW = 8;

/** Options of `ExchangeSession.pipeline` / `pipelineBatches`. */
export interface PipelineOptions {
  /**
   * Inputs sent ahead of the answers read: an integer from 1 to 64 (`MAX_IN_FLIGHT`). Each one
   * is held in memory until written. Default 8 (`DEFAULT_PIPELINE_WINDOW`).
   */
  readonly window?: number;
}

/** Options of a producer stream. */
export interface ProducerOptions extends StreamOptions {
  /**
   * How many batches the server may be asked for ahead of the consumer: the client keeps up to
   * this many ticks in flight, so the server produces the next batches while the current one is
   * consumed, instead of one round trip per batch. The wire stays the protocol's lockstep (one
   * batch per tick, in order), so any vgi-rpc server serves it. The cost: a consumer that stops
   * early (break, `cancel()`, abort) may have had up to `prefetch - 1` more batches produced, and
   * read and discarded. Session transports (pipe, subprocess, Unix, TCP, WebSocket, shared
   * memory) honour it; over HTTP each turn chains on the previous one's token, so it is ignored.
   * An integer from 1 to 64 (`MAX_IN_FLIGHT`). Default 1 (lockstep, as the reference client).
   */
  readonly prefetch?: number;
}

// ---------------------------------------------------------------------------------------------
// Requests

/** The routing target for a method of a declared protocol. */
export function targetOf(protocol: ProtocolDecl, method: string): CallTarget {
  return protocol.version === ""
    ? { protocol: protocol.name, method }
    : { protocol: protocol.name, protocolVersion: protocol.version, method };
}

/** Builds the one-row parameter batch, filling defaults; rejects a missing non-nullable value. */
export function paramsBatch(method: string, specs: FieldSpecs, params: Readonly<Record<string, unknown>>): RecordBatch {
  const names = Object.keys(specs);
  if (names.length === 0) return batchFromData(EMPTY_SCHEMA, [], 0);
  for (const k of Object.keys(params)) {
    if (!(k in specs)) throw new TypeError(`${method}() got an unexpected parameter '${k}'`);
  }
  const row: Record<string, unknown> = {};
  for (const name of names) {
    const spec = specs[name]!;
    let v = Object.hasOwn(params, name) ? params[name] : undefined;
    if (v === undefined && spec.hasDefault) v = spec.defaultValue;
    if ((v === undefined || v === null) && !spec.nullable) {
      throw new TypeError(`${method}() parameter '${name}' is not optional but got None`);
    }
    row[name] = v ?? null;
  }
  return batchFromRows(specs, [row as RowOf<FieldSpecs>], undefined, schemaOf(specs), { method, role: "parameter" });
}

function declOf<K extends MethodDecl["kind"]>(
  protocol: ProtocolDecl,
  method: string,
  kind: K,
): Extract<MethodDecl, { kind: K }> {
  const decl = protocol.methods[method];
  if (decl === undefined) throw new TypeError(`${protocol.name} has no method '${method}'`);
  if (decl.kind !== kind) throw new TypeError(`${protocol.name}.${method} is a ${decl.kind} method, not ${kind}`);
  return decl as Extract<MethodDecl, { kind: K }>;
}

// ---------------------------------------------------------------------------------------------
// Answers

/** The answer schema each declared schema last accepted (schemas are never mutated, so it holds). */
const accepted = new WeakMap<Schema, Schema>();

/**
 * Why `actual` cannot be read as `declared`, or null when it can: every declared field must be
 * present by name with the same Arrow type (canonical type tokens, so list and map child names do
 * not matter). Extra fields, field order and the nullability flag are not checked; a null where
 * the declaration allows none is (see `checkAnswer`).
 */
function schemaMismatch(actual: Schema, declared: Schema): string | null {
  for (const want of declared.fields) {
    const got = actual.fields.find((f) => f.name === want.name);
    if (got === undefined) return `has no field '${want.name}'`;
    const wantType = typeText(want.type);
    const gotType = typeText(got.type);
    if (wantType !== gotType) return `field '${want.name}' is ${gotType}, declared ${wantType}`;
  }
  return null;
}

/**
 * Refuses an answer batch the declaration cannot read, with a ProtocolError naming the method,
 * the part of the answer (`what`) and the mismatch, instead of reading another type's values as
 * the declared one or failing somewhere inside the decoder. Null values in a field declared
 * non-nullable are refused too.
 */
function checkAnswer(method: string, what: string, batch: RecordBatch, declared: Schema): void {
  const actual = batch.schema;
  if (accepted.get(declared) !== actual) {
    const mismatch = schemaMismatch(actual, declared);
    if (mismatch !== null) throw frameworkError("protocol_error", `${method}() answered a ${what} that ${mismatch}`);
    accepted.set(declared, actual);
  }
  const fields = actual.fields;
  for (const want of declared.fields) {
    if (want.nullable) continue;
    const index = fields.length === 1 ? 0 : fields.findIndex((f) => f.name === want.name);
    if (holdsNull(batch.data.children[index]!)) {
      throw frameworkError("protocol_error", `${method}() answered a null '${want.name}', which is declared not null`);
    }
  }
}

/**
 * Whether a column holds a null. A union has no validity of its own and arrow-js counts every
 * member's nulls as its own, the unselected slots of a sparse union's members included, so a union
 * with any is asked row by row.
 */
function holdsNull(data: Data): boolean {
  if (data.nullCount === 0) return false;
  if (!DataType.isUnion(data.type)) return true;
  for (let i = 0; i < data.length; i++) if (!data.getValid(i)) return true;
  return false;
}

/** Each unary declaration's result schema (built once). */
const resultSchemas = new WeakMap<UnaryDecl, Schema>();

function resultSchema(decl: UnaryDecl): Schema {
  let schema = resultSchemas.get(decl);
  if (schema === undefined) {
    schema = schemaOf({ result: decl.result! });
    resultSchemas.set(decl, schema);
  }
  return schema;
}

function decodeRows<O extends OutputSpec>(method: string, output: O, batch: RecordBatch): OutRow<O>[] {
  if (output === "dynamic") return plainRows(batch) as OutRow<O>[];
  checkAnswer(method, "batch", batch, schemaOf(output));
  return rowsFromBatch(output, batch) as OutRow<O>[];
}

function decodeHeader(method: string, header: FieldSpecs | null, batch: RecordBatch | null): unknown {
  if (header === null || batch === null) return null;
  checkAnswer(method, "header", batch, schemaOf(header));
  const rows = rowsFromBatch(header, batch);
  return rows[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Unary

export async function callUnary(
  client: CallChannel,
  protocol: ProtocolDecl,
  method: string,
  params: Readonly<Record<string, unknown>> = {},
  opts: CallOptions = {},
): Promise<unknown> {
  const decl = declOf(protocol, method, "unary");
  const request = paramsBatch(method, decl.params, params);
  const batch = await client.unaryBatch(targetOf(protocol, method), request, extraMetadata(opts));
  if (decl.result === null) return undefined;
  if (batch.numRows < 1) {
    throw new RpcError(`${method}() returned a result batch with no rows`, {
      type: "ProtocolError",
      kind: "protocol_error",
      code: "INVALID_ARGUMENT",
    });
  }
  checkAnswer(method, "result", batch, resultSchema(decl));
  return oneValue(decl.result, batch);
}

// ---------------------------------------------------------------------------------------------
// Streams

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new RpcError("the stream was cancelled", { type: "AbortError", code: "CANCELLED" });
}

/** Wires an AbortSignal to a stream's cancel; returns the detach function. */
function watchAbort(raw: StreamChannel, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {};
  const onAbort = () => {
    void raw.cancel();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** A producer stream: iterate rows (or `batches()`), `header` when declared. */
export interface ProducerStream<Row, H> extends AsyncIterable<Row> {
  /** The batch-level stream underneath. */
  readonly raw: StreamChannel;
  /** The decoded header, or null when the method declares none. */
  readonly header: H;
  /** Every output batch, in order (one per producer turn; zero-row data batches included). */
  batches(): AsyncGenerator<RecordBatch, void, undefined>;
  /** Collects every row. */
  toArray(): Promise<Row[]>;
  /** Cancels the stream (the protocol's cancel batch). */
  cancel(): Promise<void>;
  /** Ends the stream without reading the rest (sends input EOS, drains). */
  close(): Promise<void>;
}

/** `ProducerStream` over a batch-level stream, its rows decoded with the method's output specs. */
class TypedProducerStream<Row, H> implements ProducerStream<Row, H> {
  private started = false;
  private readonly detach: () => void;

  constructor(
    readonly raw: StreamChannel,
    readonly header: H,
    private readonly decode: (batch: RecordBatch) => Row[],
    private readonly signal: AbortSignal | undefined,
    /** Ticks kept in flight (`ProducerOptions.prefetch`). */
    private readonly prefetch = 1,
  ) {
    this.detach = watchAbort(raw, signal);
  }

  /** Every output batch, in order (one per producer turn; zero-row data batches included). */
  async *batches(): AsyncGenerator<RecordBatch, void, undefined> {
    if (this.started) throw new TypeError("a producer stream can be iterated only once");
    this.started = true;
    let done = false;
    try {
      for (;;) {
        if (this.signal?.aborted) throw abortReason(this.signal);
        const b = this.prefetch > 1 && this.raw.pull ? await this.raw.pull(this.prefetch) : await this.raw.tick();
        if (this.signal?.aborted) throw abortReason(this.signal);
        if (b === null) {
          done = true;
          return;
        }
        yield b;
      }
    } finally {
      if (!done) await this.raw.cancel();
      this.detach();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Row> {
    for await (const b of this.batches()) yield* this.decode(b);
  }

  /** Collects every row. */
  async toArray(): Promise<Row[]> {
    const out: Row[] = [];
    for await (const r of this) out.push(r);
    return out;
  }

  /** Cancels the stream (the protocol's cancel batch). */
  async cancel(): Promise<void> {
    await this.raw.cancel();
    this.detach();
  }

  /** Ends the stream without reading the rest (sends input EOS, drains). */
  async close(): Promise<void> {
    await this.raw.close();
    this.detach();
  }
}

/** An exchange session: lockstep, one output batch per input batch. */
export interface ExchangeSession<In, Out, H> {
  /** The batch-level stream underneath. */
  readonly raw: StreamChannel;
  /** The decoded header, or null when the method declares none. */
  readonly header: H;
  /** Sends one input batch and returns the server's answer batch. */
  exchangeBatch(input: RecordBatch): Promise<RecordBatch>;
  /**
   * Sends rows (built with the declared input specs, with optional custom metadata on the input
   * batch) and returns the answer's rows. A prebuilt batch is sent as is.
   */
  exchange(rows: readonly In[] | RecordBatch, metadata?: ReadonlyMap<string, string>): Promise<Out[]>;
  /**
   * Many turns with the inputs sent ahead: each input of `inputs` (rows, built with the declared
   * input specs, or a prebuilt batch) is sent while fewer than `window` answers are owed, and the
   * answer batches are yielded in order, one per input. Where `exchange()` waits a round trip per
   * turn, the server here works on the next inputs while you read this answer. The wire stays
   * the protocol's lockstep (one answer per input, in order), so any vgi-rpc server serves it.
   * The session stays open when `inputs` ends. Leaving early (break, abort, an error from
   * `inputs`) cancels the exchange, whose inputs already sent may have been processed; a server
   * error closes it, as in `exchange()`. An input batch's buffers may be held until it is written:
   * do not change one after `inputs` yields it. Over HTTP (no pipelining) the inputs are sent one
   * at a time.
   */
  pipelineBatches(
    inputs: Iterable<readonly In[] | RecordBatch> | AsyncIterable<readonly In[] | RecordBatch>,
    opts?: PipelineOptions,
  ): AsyncGenerator<RecordBatch, void, undefined>;
  /** `pipelineBatches`, each answer decoded to rows. */
  pipeline(
    inputs: Iterable<readonly In[] | RecordBatch> | AsyncIterable<readonly In[] | RecordBatch>,
    opts?: PipelineOptions,
  ): AsyncGenerator<Out[], void, undefined>;
  /** Ends the input stream and drains the output. */
  close(): Promise<void>;
  /** Cancels with the protocol's cancel batch. */
  cancel(): Promise<void>;
}

/** `ExchangeSession` over a batch-level stream, rows encoded and decoded with the method's specs. */
class TypedExchangeSession<In, Out, H> implements ExchangeSession<In, Out, H> {
  private readonly detach: () => void;

  constructor(
    readonly raw: StreamChannel,
    readonly header: H,
    private readonly encode: (rows: readonly In[], metadata?: ReadonlyMap<string, string>) => RecordBatch,
    private readonly decode: (batch: RecordBatch) => Out[],
    private readonly signal: AbortSignal | undefined,
  ) {
    this.detach = watchAbort(raw, signal);
  }

  /** Sends one input batch and returns the server's answer batch. */
  async exchangeBatch(input: RecordBatch): Promise<RecordBatch> {
    if (this.signal?.aborted) throw abortReason(this.signal);
    try {
      const out = await this.raw.send(input);
      if (this.signal?.aborted) throw abortReason(this.signal);
      if (out === null) {
        throw new RpcError("the exchange stream ended", {
          type: "ProtocolError",
          kind: "protocol_error",
          code: "INVALID_ARGUMENT",
        });
      }
      return out;
    } finally {
      if (this.raw.ended) this.detach();
    }
  }

  /**
   * Sends rows (built with the declared input specs, with optional custom metadata on the input
   * batch) and returns the answer's rows. A prebuilt batch is sent as is.
   */
  async exchange(rows: readonly In[] | RecordBatch, metadata?: ReadonlyMap<string, string>): Promise<Out[]> {
    const batch = Array.isArray(rows) ? this.encode(rows as readonly In[], metadata) : (rows as RecordBatch);
    return this.decode(await this.exchangeBatch(batch));
  }

  /** See `ExchangeSession.pipelineBatches`. */
  async *pipelineBatches(
    inputs: Iterable<readonly In[] | RecordBatch> | AsyncIterable<readonly In[] | RecordBatch>,
    opts: PipelineOptions = {},
  ): AsyncGenerator<RecordBatch, void, undefined> {
    const window = opts.window ?? DEFAULT_PIPELINE_WINDOW;
    checkInFlight("window", window);
    const batches = this.inputBatches(inputs);
    try {
      if (this.raw.pipeline === undefined) {
        let done = false;
        try {
          for await (const batch of batches) yield await this.exchangeBatch(batch);
          done = true;
        } finally {
          if (!done && !this.raw.ended) await this.raw.cancel();
        }
        return;
      }
      for await (const out of this.raw.pipeline(batches, window)) {
        if (this.signal?.aborted) throw abortReason(this.signal);
        yield out;
      }
    } finally {
      if (this.raw.ended) this.detach();
    }
  }

  /** `pipelineBatches`, each answer decoded to rows. */
  async *pipeline(
    inputs: Iterable<readonly In[] | RecordBatch> | AsyncIterable<readonly In[] | RecordBatch>,
    opts: PipelineOptions = {},
  ): AsyncGenerator<Out[], void, undefined> {
    for await (const b of this.pipelineBatches(inputs, opts)) yield this.decode(b);
  }

  /** Inputs as batches: rows are built with the declared input specs, batches pass as they are. */
  private async *inputBatches(
    inputs: Iterable<readonly In[] | RecordBatch> | AsyncIterable<readonly In[] | RecordBatch>,
  ): AsyncGenerator<RecordBatch, void, undefined> {
    for await (const input of inputs) {
      if (this.signal?.aborted) throw abortReason(this.signal);
      yield Array.isArray(input) ? this.encode(input as readonly In[]) : (input as RecordBatch);
    }
  }

  /** Ends the input stream and drains the output. */
  async close(): Promise<void> {
    await this.raw.close();
    this.detach();
  }

  /** Cancels with the protocol's cancel batch. */
  async cancel(): Promise<void> {
    await this.raw.cancel();
    this.detach();
  }
}

export async function openProducer(
  client: CallChannel,
  protocol: ProtocolDecl,
  method: string,
  params: Readonly<Record<string, unknown>> = {},
  opts: ProducerOptions = {},
): Promise<ProducerStream<unknown, unknown>> {
  const decl = declOf(protocol, method, "producer") as ProducerDecl;
  const prefetch = opts.prefetch ?? 1;
  checkInFlight(`${method}(): prefetch`, prefetch);
  if (opts.signal?.aborted) throw abortReason(opts.signal);
  const extra = extraMetadata(opts);
  const raw = await client.openStream(targetOf(protocol, method), paramsBatch(method, decl.params, params), {
    hasHeader: decl.header !== null,
    ...(extra ? { extra } : {}),
    ...(opts.borrowBatches ? { borrow: true } : {}),
  });
  return new TypedProducerStream(
    raw,
    await headerOf(method, decl.header, raw),
    (b) => decodeRows(method, decl.output, b),
    opts.signal,
    prefetch,
  );
}

export async function openExchange(
  client: CallChannel,
  protocol: ProtocolDecl,
  method: string,
  params: Readonly<Record<string, unknown>> = {},
  opts: StreamOptions = {},
): Promise<ExchangeSession<unknown, unknown, unknown>> {
  const decl = declOf(protocol, method, "exchange") as ExchangeDecl;
  if (opts.signal?.aborted) throw abortReason(opts.signal);
  const extra = extraMetadata(opts);
  const raw = await client.openStream(targetOf(protocol, method), paramsBatch(method, decl.params, params), {
    hasHeader: decl.header !== null,
    ...(extra ? { extra } : {}),
    ...(opts.borrowBatches ? { borrow: true } : {}),
  });
  const inputSchema = methodSchemas(decl).input!;
  return new TypedExchangeSession(
    raw,
    await headerOf(method, decl.header, raw),
    (rows, metadata) =>
      batchFromRows(decl.input, rows as RowOf<FieldSpecs>[], metadata, inputSchema, { method, role: "input field" }),
    (b) => decodeRows(method, decl.output, b),
    opts.signal,
  );
}

/** The stream's decoded header; a header that cannot be read cancels the stream before the error is thrown. */
async function headerOf(method: string, header: FieldSpecs | null, raw: StreamChannel): Promise<unknown> {
  try {
    return decodeHeader(method, header, raw.header);
  } catch (err) {
    // A cancel that fails has broken the connection, which the next call reports; the header's error is the one to throw.
    await raw.cancel().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Proxy

/** The typed caller for one declaration. */
export type ClientMethod<D> =
  D extends UnaryDecl<infer P, infer _R>
    ? (...args: ParamsArgs<P, CallOptions>) => Promise<ResultOf<D>>
    : D extends ProducerDecl<infer P, infer O, infer H, infer _S>
      ? (...args: ParamsArgs<P, ProducerOptions>) => Promise<ProducerStream<OutRow<O>, HeaderOf<H>>>
      : D extends ExchangeDecl<infer P, infer I, infer O, infer H, infer _S>
        ? (...args: ParamsArgs<P, StreamOptions>) => Promise<ExchangeSession<RowOf<I>, OutRow<O>, HeaderOf<H>>>
        : never;

/**
 * A typed producer stream over a batch-level stream already open, e.g. one resumed from its
 * checkpoint (`HttpClient.resumeStream`): rows decoded by `method`'s declaration. No header (it
 * came with the stream's opening).
 */
export function producerStream<P extends ProtocolDecl, K extends MethodsOfKind<P, "producer">>(
  raw: StreamChannel,
  protocol: P,
  method: K,
  opts: Pick<ProducerOptions, "signal" | "prefetch"> = {},
): P["methods"][K] extends ProducerDecl<infer _P, infer O, infer _H, infer _S>
  ? ProducerStream<OutRow<O>, null>
  : never {
  const decl = declOf(protocol, method, "producer") as ProducerDecl;
  const prefetch = opts.prefetch ?? 1;
  checkInFlight(`${method}(): prefetch`, prefetch);
  return new TypedProducerStream(raw, null, (b) => decodeRows(method, decl.output, b), opts.signal, prefetch) as never;
}

/** A typed exchange session over a batch-level stream already open (see `producerStream`). */
export function exchangeSession<P extends ProtocolDecl, K extends MethodsOfKind<P, "exchange">>(
  raw: StreamChannel,
  protocol: P,
  method: K,
  opts: Pick<StreamOptions, "signal"> = {},
): P["methods"][K] extends ExchangeDecl<infer _P, infer I, infer O, infer _H, infer _S>
  ? ExchangeSession<RowOf<I>, OutRow<O>, null>
  : never {
  const decl = declOf(protocol, method, "exchange") as ExchangeDecl;
  const inputSchema = methodSchemas(decl).input!;
  return new TypedExchangeSession(
    raw,
    null,
    (rows, metadata) =>
      batchFromRows(decl.input, rows as RowOf<FieldSpecs>[], metadata, inputSchema, { method, role: "input field" }),
    (b) => decodeRows(method, decl.output, b),
    opts.signal,
  ) as never;
}

/** A typed client for a protocol: one method per declaration. */
export type ProtocolClient<P extends ProtocolDecl> = {
  readonly [K in keyof P["methods"]]: ClientMethod<P["methods"][K]>;
};

/** Makes a typed client for `protocol` over `client`'s connection. */
export function proxy<P extends ProtocolDecl>(client: CallChannel, protocol: P): ProtocolClient<P> {
  const out: Record<string, unknown> = {};
  for (const [name, decl] of Object.entries(protocol.methods)) {
    if (decl.kind === "unary") {
      out[name] = (params?: Readonly<Record<string, unknown>>, opts?: CallOptions) =>
        callUnary(client, protocol, name, params, opts);
    } else if (decl.kind === "producer") {
      out[name] = (params?: Readonly<Record<string, unknown>>, opts?: ProducerOptions) =>
        openProducer(client, protocol, name, params, opts);
    } else {
      out[name] = (params?: Readonly<Record<string, unknown>>, opts?: StreamOptions) =>
        openExchange(client, protocol, name, params, opts);
    }
  }
  return Object.freeze(out) as ProtocolClient<P>;
}
