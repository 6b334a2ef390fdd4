#!/usr/bin/env node
/**
 * The client driver for the reference's native-client conformance harness
 * (`vgi_rpc.conformance.client_driver.ClientDriver`, control protocol `CLIENT_DRIVER_PROTOCOL.md`):
 * newline-delimited JSON requests on stdin, one JSON response per request on stdout. The Python
 * side encodes requests and decodes answers with the reference's own code; everything between —
 * transport I/O, framing, stream lockstep, log and error envelopes — is done by quiver's client.
 *
 * One process binds one connection (`connect`); transports: `stdio` and `shm` (target: the worker's
 * argv; `shm` adds a segment of `shm_size` bytes), `unix` (a socket path), `tcp` (`host:port`).
 * HTTP is refused.
 */
import { createInterface } from "node:readline";
import type { RecordBatch, Schema } from "apache-arrow";
import type { RawStream, RpcClient } from "../client/client.js";
import { decodeIpc } from "../client/describe.js";
import type { CallTarget } from "../client/transport.js";
import { RpcError } from "../errors.js";
import { loopbackOnly } from "../external/fetch.js";
import { ExternalResolver } from "../external/resolve.js";
import { connectTcp, connectUnix } from "../transports/socket/client.js";
import { connectSubprocess } from "../transports/stdio/client.js";
import { encodeStream } from "../wire/ipc.js";
import { METHOD_KEY, PROTOCOL_KEY, PROTOCOL_VERSION_KEY, REQUEST_VERSION_KEY } from "../wire/keys.js";
import type { LogRecord } from "../wire/messages.js";

type Json = Record<string, unknown>;

let client: RpcClient | null = null;
let protocol = "";
let stream: RawStream | null = null;
let logs: Json[] = [];

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");
const unb64 = (text: unknown): Uint8Array => new Uint8Array(Buffer.from(String(text ?? ""), "base64"));

function streamBytes(schema: Schema, batches: readonly RecordBatch[]): Uint8Array {
  return Buffer.concat(encodeStream(schema, batches));
}

function onLog(r: LogRecord): void {
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.extra)) extra[k] = typeof v === "string" ? v : JSON.stringify(v);
  if (r.serverId) extra.server_id = r.serverId;
  if (r.requestId) extra.request_id = r.requestId;
  logs.push({ level: r.level, message: r.message, extra });
}

function errorJson(e: unknown): Json {
  const err = RpcError.from(e);
  return {
    error_type: err.type,
    error_message: err.message,
    traceback: err.remoteTraceback,
    error_code: err.code,
    error_kind: err.kind,
    error_details: err.details,
  };
}

/** The single batch of a request/input IPC stream, with its custom metadata. */
async function oneBatch(bytes: Uint8Array): Promise<RecordBatch> {
  const { batches } = await decodeIpc(bytes);
  const b = batches[0];
  if (b === undefined) throw new RpcError("IPC stream holds no batch", { type: "ProtocolError" });
  return b;
}

/** Splits a request batch into its routing target and its application metadata. */
function targetOf(batch: RecordBatch): { target: CallTarget; extra: Map<string, string> } {
  const md = new Map(batch.metadata);
  const method = md.get(METHOD_KEY) ?? "";
  const version = md.get(PROTOCOL_VERSION_KEY);
  const target: CallTarget = {
    protocol: md.get(PROTOCOL_KEY) ?? protocol,
    method,
    ...(version ? { protocolVersion: version } : {}),
  };
  for (const k of [METHOD_KEY, PROTOCOL_KEY, PROTOCOL_VERSION_KEY, REQUEST_VERSION_KEY]) md.delete(k);
  return { target, extra: md };
}

function need(): RpcClient {
  if (client === null) throw new RpcError("not connected", { type: "ProtocolError" });
  return client;
}

async function handle(req: Json): Promise<Json> {
  switch (req.op) {
    case "connect": {
      protocol = String(req.protocol ?? "");
      const transport = String(req.transport);
      // `external`: the driver's client resolves external-location pointers (the reference's
      // fake storage is on loopback).
      const external = req.external === true ? { external: new ExternalResolver({ urlValidator: loopbackOnly }) } : {};
      const opts = { onLog, timeoutMs: 60_000, ...external };
      if (transport === "stdio" || transport === "pipe" || transport === "shm") {
        const argv = (Array.isArray(req.target) ? req.target : [req.target]).map(String);
        // shm: the pipe plus a segment of `shm_size` bytes, negotiated with the worker.
        const shm = transport === "shm" ? { shm: { size: Number(req.shm_size ?? 4 * 1024 * 1024) } } : {};
        const piped = await connectSubprocess(argv[0]!, argv.slice(1), { ...opts, ...shm, stderr: "inherit" });
        client = piped;
        if (transport === "shm" && piped.sharedMemory === null) {
          return { ok: false, error: { error_message: "the worker declined the shared-memory segment" } };
        }
      } else if (transport === "unix") {
        client = await connectUnix(String(req.target), opts);
      } else if (transport === "tcp") {
        const m = /^(.*):(\d+)$/.exec(String(req.target));
        if (!m) return { ok: false, error: { error_message: `bad tcp target ${String(req.target)}` } };
        client = await connectTcp(m[1]!, Number(m[2]), opts);
      } else {
        return { ok: false, error: { error_message: `transport '${transport}' is not supported by quiver's client` } };
      }
      return { ok: true };
    }
    case "unary": {
      const request = await oneBatch(unb64(req.request_b64));
      const { target, extra } = targetOf(request);
      try {
        const result = await need().unaryBatch(target, request, extra);
        return { ok: true, result_b64: b64(streamBytes(result.schema, [result])) };
      } catch (e) {
        return { ok: true, error: errorJson(e) };
      }
    }
    case "stream_open": {
      const request = await oneBatch(unb64(req.request_b64));
      const { target, extra } = targetOf(request);
      try {
        stream = await need().openStream(target, request, { hasHeader: req.has_header === true, extra });
        const header = stream.header;
        return header === null ? { ok: true } : { ok: true, header_b64: b64(streamBytes(header.schema, [header])) };
      } catch (e) {
        stream = null;
        return { ok: true, error: errorJson(e) };
      }
    }
    case "tick":
    case "exchange": {
      if (stream === null) return { ok: false, error: { error_message: "no open stream" } };
      try {
        const out =
          req.input_b64 !== undefined ? await stream.send(await oneBatch(unb64(req.input_b64))) : await stream.tick();
        if (out === null) {
          stream = null;
          return { ok: true, done: true };
        }
        return { ok: true, batch_b64: b64(streamBytes(out.schema, [out])) };
      } catch (e) {
        stream = null;
        return { ok: true, error: errorJson(e) };
      }
    }
    case "cancel": {
      await stream?.cancel();
      stream = null;
      return { ok: true };
    }
    case "close": {
      try {
        await stream?.close();
      } catch {
        // Closing is best effort.
      }
      stream = null;
      return { ok: true };
    }
    case "describe": {
      try {
        const d = await need().describe(protocol || undefined);
        const schemaB64 = (s: Schema | null) => (s === null ? null : b64(streamBytes(s, [])));
        return {
          ok: true,
          describe: {
            protocol_name: d.protocolName,
            request_version: d.requestVersion,
            describe_version: d.describeVersion,
            protocol_hash: d.protocolHash,
            server_id: d.serverId,
            protocol_version: d.protocolVersion,
            methods: [...d.methods.values()].map((m) => ({
              name: m.name,
              method_type: m.methodType,
              has_return: m.hasReturn,
              has_header: m.hasHeader,
              is_exchange: m.isExchange,
              params_schema_b64: schemaB64(m.paramsSchema),
              result_schema_b64: schemaB64(m.resultSchema),
              header_schema_b64: schemaB64(m.headerSchema),
            })),
          },
        };
      } catch (e) {
        return { ok: true, error: errorJson(e) };
      }
    }
    case "shutdown": {
      await client?.close().catch(() => {});
      client = null;
      return { ok: true };
    }
    default:
      return { ok: false, error: { error_message: `op '${String(req.op)}' is not supported by quiver's driver` } };
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
for await (const line of lines) {
  if (line.trim() === "") continue;
  logs = [];
  let resp: Json;
  try {
    resp = await handle(JSON.parse(line) as Json);
  } catch (e) {
    resp = { ok: false, error: errorJson(e) };
  }
  if (logs.length > 0) resp.logs = logs;
  process.stdout.write(`${JSON.stringify(resp)}\n`);
  if ((JSON.parse(line) as Json).op === "shutdown") break;
}
await (client as RpcClient | null)?.close().catch(() => {});
