/**
 * The lockstep session protocol over one duplex byte stream (pipes, sockets, WebSocket): call
 * after call, each a request IPC stream answered by response streams, with streams continuing
 * batch by batch. Mirrors the reference server's `serve_one` ordering, including which failures
 * are answered on the empty schema and when a pending input stream is drained.
 */
import { randomBytes } from "node:crypto";
import type { RecordBatch, Schema } from "apache-arrow";
import { frameworkError, RpcError } from "../errors.js";
import { batchFromRows, rowsFromBatch } from "../protocol/batch.js";
import { ANONYMOUS, type CallContext, type LogExtra, type LogLevel } from "../protocol/context.js";
import type { ExchangeStream, InputBatch, OutputSpec, ProducerStream } from "../protocol/methods.js";
import type { FieldSpecs, RowOf } from "../protocol/types.js";
import { EMPTY_SCHEMA, emptyBatch } from "../wire/batches.js";
import { MessageFramer } from "../wire/framer.js";
import { EOS, IpcStreamDecoder, IpcStreamEncoder } from "../wire/ipc.js";
import {
  CALL_STATE_KEY,
  CANCEL_KEY,
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
  SERVER_ID_KEY,
  STREAM_STATE_KEY,
  TRANSPORT_OPTIONS_METHOD,
} from "../wire/keys.js";
import { errorBatch, isCancelBatch, type Origin } from "../wire/messages.js";
import { LogBuffer, TurnCollector } from "./collector.js";
import type { Connection } from "./connection.js";
import type { ResolvedMethod, RpcServer } from "./server.js";
import { type CallStatistics, newStatistics, recordInput, recordOutput } from "./stats.js";
import { checkParamsContract, coerceInput } from "./validate.js";

/** An error that leaves the byte stream unframed: answer it, then end the session. */
class FramingLost extends Error {
  constructor(readonly error: RpcError) {
    super(error.message);
  }
}

/** Reads one IPC stream message by message from the shared framer. */
class StreamReader {
  private readonly decoder = new IpcStreamDecoder();
  private ended = false;

  constructor(private readonly framer: MessageFramer) {}

  /** Reads up to the schema. Null when the peer closed before sending anything. */
  async open(): Promise<Schema | null> {
    const schema = await this.nextMessage(true);
    if (schema === "end") return null;
    if (schema === "eos") throw new FramingLost(frameworkError("protocol_error", "IPC stream ended before its schema"));
    return this.decoder.schema;
  }

  /** The next record batch, or null at EOS. */
  async next(): Promise<RecordBatch | null> {
    for (;;) {
      if (this.ended) return null;
      const r = await this.nextMessage(false);
      if (r === "eos") return null;
      if (r === "end")
        throw new FramingLost(frameworkError("transport_error", "peer closed the connection mid-stream"));
      if (r !== null) return r;
    }
  }

  /** Consumes the rest of the stream through EOS. */
  async drain(): Promise<void> {
    while (!this.ended) {
      try {
        await this.next();
      } catch (err) {
        if (err instanceof FramingLost) throw err;
        // A malformed batch inside a stream we are discarding: keep draining.
      }
    }
  }

  private async nextMessage(first: boolean): Promise<RecordBatch | "eos" | "end" | null> {
    let frame: Awaited<ReturnType<MessageFramer["next"]>>;
    try {
      frame = await this.framer.next();
    } catch (err) {
      const e = RpcError.from(err);
      if (e.kind === "message_too_large") throw e; // body skipped: still framed
      throw new FramingLost(e);
    }
    if (frame === "end") {
      if (first) return "end";
      throw new FramingLost(frameworkError("protocol_error", "byte stream ended inside an IPC stream"));
    }
    if (frame === "eos") {
      this.ended = true;
      return "eos";
    }
    const out = this.decoder.accept(frame);
    if (first && this.decoder.schema === null) {
      throw new FramingLost(frameworkError("protocol_error", "IPC stream does not start with a schema message"));
    }
    return out === null || !("numRows" in out) ? null : out;
  }
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/** Writes response streams to the connection. */
class ResponseWriter {
  constructor(
    private readonly conn: Connection,
    private readonly stats: CallStatistics,
  ) {}

  /** Writes a complete stream of `batches` on `schema`. */
  async stream(schema: Schema, batches: readonly RecordBatch[]): Promise<void> {
    const enc = new IpcStreamEncoder(schema);
    const chunks = enc.begin();
    for (const b of batches) {
      recordOutput(this.stats, b);
      chunks.push(...enc.batch(b));
    }
    chunks.push(EOS);
    await this.conn.write(chunks);
  }

  async send(chunks: readonly Uint8Array[]): Promise<void> {
    await this.conn.write(chunks);
  }

  encode(enc: IpcStreamEncoder, batches: readonly RecordBatch[]): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    for (const b of batches) {
      recordOutput(this.stats, b);
      chunks.push(...enc.batch(b));
    }
    return chunks;
  }
}

interface CallState {
  readonly server: RpcServer;
  readonly conn: Connection;
  readonly framer: MessageFramer;
  readonly origin: Origin;
  readonly stats: CallStatistics;
  readonly out: ResponseWriter;
  readonly metadata: ReadonlyMap<string, string>;
}

function makeContext(
  call: CallState,
  method: ResolvedMethod,
  clientLog: (level: LogLevel, message: string, extra?: LogExtra) => void,
): CallContext {
  return {
    auth: call.conn.auth ?? ANONYMOUS,
    requestId: call.origin.requestId,
    serverId: call.origin.serverId,
    protocol: method.protocol.name,
    method: method.name,
    transport: call.conn.transport,
    transportMetadata: call.conn.transportMetadata ?? {},
    requestMetadata: call.metadata,
    clientLog,
  };
}

/** Serves one connection until the peer closes it or the byte stream becomes unreadable. */
export async function serveSession(server: RpcServer, conn: Connection): Promise<void> {
  const framer = new MessageFramer(conn.input[Symbol.asyncIterator](), { maxMessageBytes: server.maxMessageBytes });
  for (;;) {
    if (server.draining) return;
    const stats = newStatistics();
    const origin: Origin = { serverId: server.serverId, requestId: hex(8) };
    const out = new ResponseWriter(conn, stats);
    const reader = new StreamReader(framer);
    let request: RecordBatch | null;
    try {
      const schema = await reader.open();
      if (schema === null) return; // clean close between calls
      request = await reader.next();
      if (request !== null) await reader.drain();
    } catch (err) {
      if (err instanceof FramingLost) {
        await out
          .stream(EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, err.error, origin, server.includeTracebacks)])
          .catch(() => {});
        return;
      }
      await reader.drain().catch(() => {});
      await out.stream(EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, err, origin, server.includeTracebacks)]);
      continue;
    }
    const call: CallState = { server, conn, framer, origin, stats, out, metadata: request?.metadata ?? new Map() };
    try {
      await server.track(dispatch(call, request, reader));
    } catch (err) {
      if (err instanceof FramingLost) {
        await out
          .stream(EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, err.error, origin, server.includeTracebacks)])
          .catch(() => {});
        return;
      }
      throw err;
    }
  }
}

function protocolError(message: string): RpcError {
  return frameworkError("protocol_error", message, { type: "ProtocolError" });
}

async function dispatch(call: CallState, request: RecordBatch | null, _reader: StreamReader): Promise<void> {
  const { out, origin, server } = call;
  const fail = (schema: Schema, err: unknown) =>
    out.stream(schema, [errorBatch(schema, err, origin, server.includeTracebacks)]);
  if (request === null) {
    return fail(
      EMPTY_SCHEMA,
      protocolError("Request IPC stream carries no batch; a request is one batch of parameters."),
    );
  }
  recordInput(call.stats, request);
  const md = request.metadata;
  const methodName = md.get(METHOD_KEY);
  if (methodName === undefined) {
    return fail(
      EMPTY_SCHEMA,
      protocolError(
        "Missing 'vgi_rpc.method' in request batch custom_metadata. Each request batch must carry a 'vgi_rpc.method' key in its Arrow IPC custom_metadata with the method name as a UTF-8 string.",
      ),
    );
  }
  const version = md.get(REQUEST_VERSION_KEY);
  if (version !== REQUEST_VERSION) {
    const what =
      version === undefined
        ? "Missing 'vgi_rpc.request_version' in request batch custom_metadata."
        : `Unsupported request version '${version}', expected '${REQUEST_VERSION}'.`;
    return fail(
      EMPTY_SCHEMA,
      new RpcError(`${what} Set the 'vgi_rpc.request_version' custom_metadata value to '${REQUEST_VERSION}'.`, {
        type: "VersionError",
        code: "INVALID_ARGUMENT",
        kind: "protocol_error",
      }),
    );
  }
  if (request.schema.fields.length > 0 && request.numRows !== 1) {
    return fail(
      EMPTY_SCHEMA,
      protocolError(
        `Expected 1 row in request batch, got ${request.numRows}. Each parameter is a column (not a row). The batch should have exactly 1 row.`,
      ),
    );
  }
  if (methodName === TRANSPORT_OPTIONS_METHOD) {
    const caps = new Map([
      ["vgi_rpc.transport.shm", "false"],
      [REQUEST_VERSION_KEY, REQUEST_VERSION],
      [SERVER_ID_KEY, server.serverId],
    ]);
    return out.stream(EMPTY_SCHEMA, [emptyBatch(EMPTY_SCHEMA, caps)]);
  }
  if (server.draining) {
    return fail(EMPTY_SCHEMA, frameworkError("server_draining", "The server is draining and accepts no new calls."));
  }
  let method: ResolvedMethod;
  try {
    method = server.resolve(md.get(PROTOCOL_KEY), methodName);
  } catch (err) {
    return fail(EMPTY_SCHEMA, err);
  }
  const errSchema = method.decl.kind === "unary" ? method.schemas.result : EMPTY_SCHEMA;
  let params: Record<string, unknown>;
  try {
    server.gateVersion(method, md.get(PROTOCOL_VERSION_KEY));
    checkParamsContract(method.name, request.schema, method.schemas.params);
    params = decodeParams(method, request);
  } catch (err) {
    return fail(errSchema, err);
  }
  if (method.decl.kind === "unary") return serveUnary(call, method, params);
  return serveStream(call, method, params);
}

function decodeParams(method: ResolvedMethod, request: RecordBatch): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  const specs = method.decl.params;
  Object.entries(specs).forEach(([name, spec], i) => {
    const data = request.data.children[i]!;
    if (!data.getValid(0)) {
      if (!spec.nullable) throw new TypeError(`${method.name}() parameter '${name}' is not optional but got None`);
      params[name] = null;
    } else params[name] = spec.codec.get(data, 0);
  });
  return params;
}

async function serveUnary(call: CallState, method: ResolvedMethod, params: Record<string, unknown>): Promise<void> {
  const decl = method.decl;
  if (decl.kind !== "unary") throw new Error("unreachable");
  const schema = method.schemas.result;
  const logs = new LogBuffer(call.origin);
  const ctx = makeContext(call, method, (level, message, extra) => logs.add(level, message, extra));
  let result: RecordBatch;
  try {
    const handler = method.handler as (p: Record<string, unknown>, c: CallContext) => unknown;
    const value = await handler(params, ctx);
    if (decl.result === null) result = emptyBatch(EMPTY_SCHEMA);
    else {
      if ((value === null || value === undefined) && !decl.result.nullable) {
        throw new TypeError(`${method.name}() expected a non-None return value but got None`);
      }
      result = batchFromRows({ result: decl.result }, [{ result: value ?? null }], undefined, schema);
    }
  } catch (err) {
    result = errorBatch(schema, err, call.origin, call.server.includeTracebacks);
  }
  await call.out.stream(schema, [...logs.drain(schema), result]);
}

type AnyStream =
  | ProducerStream<OutputSpec, FieldSpecs | null>
  | ExchangeStream<FieldSpecs, OutputSpec, FieldSpecs | null>;

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
    column: (name: string) => rowsFromBatch(fields, batch).map((r) => r[name]) as never[],
  };
}

async function serveStream(call: CallState, method: ResolvedMethod, params: Record<string, unknown>): Promise<void> {
  const decl = method.decl;
  if (decl.kind === "unary") throw new Error("unreachable");
  const { out, origin, server } = call;
  const logs = new LogBuffer(origin);
  const initCtx = makeContext(call, method, (level, message, extra) => logs.add(level, message, extra));
  let stream: AnyStream;
  let outputSchema: Schema;
  try {
    const handler = method.handler as (p: Record<string, unknown>, c: CallContext) => unknown;
    stream = (await handler(params, initCtx)) as AnyStream;
    if (stream === null || typeof stream !== "object") {
      throw new TypeError(
        `${method.name}() expected a stream object but got ${stream === null ? "null" : typeof stream}`,
      );
    }
    if (decl.output === "dynamic") {
      if (!stream.outputSchema)
        throw new TypeError(`${method.name}() declares a dynamic output and returned no outputSchema`);
      outputSchema = stream.outputSchema;
    } else outputSchema = method.schemas.output!;
    if (decl.header !== null) {
      if (stream.header === undefined || stream.header === null) {
        throw new TypeError(`Method '${method.name}' declares header type but returned header=None`);
      }
      const headerSchema = method.schemas.header!;
      const headerBatch = batchFromRows(decl.header, [stream.header as RowOf<FieldSpecs>], undefined, headerSchema);
      await out.stream(headerSchema, [...logs.drain(headerSchema), headerBatch]);
    }
  } catch (err) {
    await out.stream(EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, err, origin, server.includeTracebacks)]);
    // The client still sends one input stream; consume it so the next request is framed.
    const input = new StreamReader(call.framer);
    if ((await input.open()) !== null) await input.drain();
    return;
  }

  const inputSchema = method.schemas.input ?? EMPTY_SCHEMA;
  const isProducer = inputSchema.fields.length === 0;
  const inputFields: FieldSpecs = decl.kind === "exchange" ? decl.input : {};
  const outputFields = decl.output === "dynamic" ? null : decl.output;
  const input = new StreamReader(call.framer);
  if ((await input.open()) === null) return; // peer gone before its input stream

  const enc = new IpcStreamEncoder(outputSchema);
  await out.send([...enc.begin(), ...out.encode(enc, logs.drain(outputSchema))]);
  let inputDone = false;
  try {
    for (;;) {
      const batch = await input.next();
      if (batch === null) {
        inputDone = true;
        break;
      }
      if (isCancelBatch(batch)) {
        try {
          stream.onCancel?.(makeContext(call, method, () => {}));
        } catch {
          // on_cancel errors are swallowed, as in the reference.
        }
        break;
      }
      if (!isProducer) recordInput(call.stats, batch);
      const coerced = coerceInput(batch, inputSchema);
      const turnMetadata = withoutTransportKeys(batch.metadata);
      const collector = new TurnCollector(outputSchema, outputFields, origin, isProducer, turnMetadata);
      const ctx = makeContext(call, method, (level, message, extra) => collector.clientLog(level, message, extra));
      if ("produce" in stream) await stream.produce(collector, ctx);
      else await stream.process(inputView(inputFields, coerced, turnMetadata), collector, ctx);
      collector.validate();
      await out.send(out.encode(enc, collector.batches));
      if (collector.finished) break;
    }
  } catch (err) {
    if (err instanceof FramingLost) throw err;
    await out.send(out.encode(enc, [errorBatch(outputSchema, err, origin, server.includeTracebacks)]));
  }
  await out.send([EOS]);
  if (!inputDone) await input.drain();
}
