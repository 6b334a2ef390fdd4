/**
 * Discovery through `vgi_rpc.Reflection.v1`: `list_protocols()` then `describe(protocol)`, each a
 * unary call whose `result` is a one-row Arrow IPC stream (the reference's `ProtocolList` and
 * `ServiceDescription` dataclasses). Written against schemas only, as the reference's
 * `introspect._reflection_call` is: a caller uses it before it has a declaration.
 */
import { Field, type RecordBatch, Schema, Utf8 } from "apache-arrow";
import { frameworkError, RpcError } from "../errors.js";
import { batchFromData, EMPTY_SCHEMA } from "../wire/batches.js";
import { MessageFramer } from "../wire/framer.js";
import { IpcStreamDecoder } from "../wire/ipc.js";
import type { CallChannel } from "./transport.js";
import { columnFromJson, plainRows } from "./values.js";

/** The reflection protocol's routing key. */
export const REFLECTION_PROTOCOL = "vgi_rpc.Reflection.v1";
/** The reference's `introspect.DESCRIBE_VERSION`. */
export const DESCRIBE_VERSION = "5";

/** One protocol a server hosts, as `list_protocols` reports it. */
export interface HostedProtocolInfo {
  readonly name: string;
  /** Declared semver, or `""`. */
  readonly version: string;
  readonly hash: string;
  readonly deprecated: boolean;
  readonly deprecationMessage: string;
  readonly features: readonly string[];
}

export interface ProtocolListing {
  readonly serverId: string;
  readonly serverVersion: string;
  readonly requestVersion: string;
  readonly protocols: readonly HostedProtocolInfo[];
}

export interface MethodDescription {
  readonly name: string;
  readonly methodType: "unary" | "stream";
  readonly hasReturn: boolean;
  readonly paramsSchema: Schema;
  /** `{result}` for a unary method with a return; the empty schema otherwise. */
  readonly resultSchema: Schema;
  readonly hasHeader: boolean;
  readonly headerSchema: Schema | null;
  /**
   * A stream's input schema (the empty schema for a producer); null for unary methods and when
   * the server does not describe it (quiver's extension column: the reference's description
   * carries no stream input or output schema).
   */
  readonly inputSchema: Schema | null;
  /** A stream's output schema; null for unary methods, when not described, or when the stream picks it at init. */
  readonly outputSchema: Schema | null;
  /** For streams: true (exchange), false (producer), null (unknown). Null for unary. */
  readonly isExchange: boolean | null;
  /**
   * Who may call it: scheme name → required scopes, any one entry sufficing (quiver's `security`
   * extension column); null for an open method or a server that does not report it.
   */
  readonly security: Readonly<Record<string, readonly string[]>> | null;
}

/** A security scheme as a server describes it (`type`, `description`, and scheme-specific fields). */
export type DescribedSecurityScheme = Readonly<Record<string, unknown>> & { readonly type: string };

export interface ServiceDescription {
  readonly protocolName: string;
  readonly protocolVersion: string;
  readonly protocolHash: string;
  readonly serverId: string;
  readonly requestVersion: string;
  readonly describeVersion: string;
  /** By method name, sorted. */
  readonly methods: ReadonlyMap<string, MethodDescription>;
  /** The security schemes the methods' requirements name; empty when none are reported. */
  readonly securitySchemes: Readonly<Record<string, DescribedSecurityScheme>>;
}

/** Parses a JSON-object extension column; a missing, empty or malformed one reads as null. */
function jsonObject(value: unknown): Record<string, unknown> | null {
  if (typeof value !== "string" || value === "") return null;
  try {
    const v: unknown = JSON.parse(value);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function securityOf(value: unknown): Readonly<Record<string, readonly string[]>> | null {
  const o = jsonObject(value);
  if (o === null) return null;
  const out: Record<string, readonly string[]> = {};
  for (const [scheme, scopes] of Object.entries(o)) {
    out[scheme] = Array.isArray(scopes) ? scopes.filter((x): x is string => typeof x === "string") : [];
  }
  return out;
}

function schemesOf(value: unknown): Readonly<Record<string, DescribedSecurityScheme>> {
  const o = jsonObject(value) ?? {};
  const out: Record<string, DescribedSecurityScheme> = {};
  for (const [name, scheme] of Object.entries(o)) {
    if (scheme !== null && typeof scheme === "object" && typeof (scheme as { type?: unknown }).type === "string") {
      out[name] = scheme as DescribedSecurityScheme;
    }
  }
  return out;
}

const DESCRIBE_PARAMS = new Schema([new Field("protocol", new Utf8(), false)]);

/** Decodes every message of an IPC stream held in memory. */
export async function decodeIpc(bytes: Uint8Array): Promise<{ schema: Schema | null; batches: RecordBatch[] }> {
  const framer = new MessageFramer(
    (async function* () {
      yield bytes;
    })(),
  );
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  for (;;) {
    const f = await framer.next();
    if (f === "eos" || f === "end") break;
    const r = decoder.accept(f);
    if (r !== null && "numRows" in r) batches.push(r);
  }
  return { schema: decoder.schema, batches };
}

/** Reads a schema from `Schema.serialize()` bytes (empty bytes: the empty schema). */
export async function schemaFromIpc(bytes: Uint8Array | null | undefined): Promise<Schema> {
  if (!bytes || bytes.byteLength === 0) return EMPTY_SCHEMA;
  const { schema } = await decodeIpc(bytes);
  if (schema === null) throw frameworkError("protocol_error", "reflection schema bytes hold no schema");
  return schema;
}

/** An extension schema column: null when absent or empty (not described), else the schema it holds. */
async function describedSchema(bytes: unknown): Promise<Schema | null> {
  return bytes instanceof Uint8Array && bytes.byteLength > 0 ? schemaFromIpc(bytes) : null;
}

async function payloadRow(bytes: unknown): Promise<Record<string, unknown>> {
  if (!(bytes instanceof Uint8Array)) throw frameworkError("protocol_error", "reflection result is not binary");
  const { batches } = await decodeIpc(bytes);
  const row = batches[0] ? plainRows(batches[0])[0] : undefined;
  if (row === undefined) throw frameworkError("protocol_error", "reflection payload holds no row");
  return row;
}

async function reflectionCall(client: CallChannel, method: string, params: RecordBatch): Promise<unknown> {
  const batch = await client.unaryBatch({ protocol: REFLECTION_PROTOCOL, method }, params);
  const rows = plainRows(batch);
  return rows[0]?.result;
}

/** True when an error means "this server does not host reflection" (the reference's rule). */
export function reflectionNotHosted(err: unknown): boolean {
  if (!(err instanceof RpcError)) return false;
  return (
    err.kind === "protocol_not_supported" ||
    err.kind === "method_not_implemented" ||
    err.code === "UNIMPLEMENTED" ||
    err.type === "ProtocolNotSupportedError" ||
    err.type === "MethodNotImplementedError"
  );
}

/** `list_protocols()`: what the server hosts, application protocols first. */
export async function listProtocols(client: CallChannel): Promise<ProtocolListing> {
  const row = await payloadRow(await reflectionCall(client, "list_protocols", batchFromData(EMPTY_SCHEMA, [], 0)));
  const protocols = ((row.protocols as Record<string, unknown>[] | null) ?? []).map(
    (p): HostedProtocolInfo => ({
      name: String(p.protocol ?? ""),
      version: String(p.protocol_version ?? ""),
      hash: String(p.protocol_hash ?? ""),
      deprecated: p.deprecated === true,
      deprecationMessage: String(p.deprecation_message ?? ""),
      features: ((p.features as unknown[] | null) ?? []).map(String),
    }),
  );
  return {
    serverId: String(row.server_id ?? ""),
    serverVersion: String(row.server_version ?? ""),
    requestVersion: String(row.request_version ?? ""),
    protocols,
  };
}

/** The first hosted protocol outside the `vgi_rpc.` namespace (the server's primary). */
export function primaryProtocol(listing: ProtocolListing): string {
  const app = listing.protocols.find((p) => !p.name.startsWith("vgi_rpc."));
  if (app === undefined) throw new Error(`Server ${listing.serverId} hosts no application protocol.`);
  return app.name;
}

/**
 * Describes one hosted protocol (default: the primary), as the reference's `introspect()`:
 * `list_protocols` then `describe(protocol)`.
 */
export async function describeProtocol(client: CallChannel, protocol?: string): Promise<ServiceDescription> {
  const listing = await listProtocols(client);
  const name = protocol ?? primaryProtocol(listing);
  const params = batchFromData(DESCRIBE_PARAMS, [columnFromJson(new Utf8(), [name])], 1);
  const row = await payloadRow(await reflectionCall(client, "describe", params));
  const methods = new Map<string, MethodDescription>();
  const rawMethods = (row.methods as Record<string, unknown>[] | null) ?? [];
  const described: MethodDescription[] = [];
  for (const m of rawMethods) {
    const hasHeader = m.has_header === true;
    const kind = String(m.stream_kind ?? "");
    described.push({
      name: String(m.name),
      methodType: m.method_type === "stream" ? "stream" : "unary",
      hasReturn: m.has_return === true,
      paramsSchema: await schemaFromIpc(m.params_schema_ipc as Uint8Array),
      resultSchema: await schemaFromIpc(m.result_schema_ipc as Uint8Array),
      hasHeader,
      headerSchema: hasHeader ? await schemaFromIpc(m.header_schema_ipc as Uint8Array) : null,
      inputSchema: await describedSchema(m.input_schema_ipc),
      outputSchema: await describedSchema(m.output_schema_ipc),
      isExchange: kind === "exchange" ? true : kind === "producer" ? false : null,
      security: securityOf(m.security),
    });
  }
  described.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const d of described) methods.set(d.name, d);
  return {
    protocolName: String(row.protocol ?? name),
    protocolVersion: String(row.protocol_version ?? ""),
    protocolHash: String(row.protocol_hash ?? ""),
    serverId: listing.serverId,
    requestVersion: listing.requestVersion,
    describeVersion: DESCRIBE_VERSION,
    methods,
    securitySchemes: schemesOf(row.security_schemes),
  };
}
