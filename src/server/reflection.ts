/**
 * `vgi_rpc.Reflection.v1` payloads: the `ProtocolList` answered by `list_protocols()` and the
 * `ServiceDescription` answered by `describe(protocol)`.
 *
 * A port of the reference's `vgi_rpc/rpc/_reflection.py`. Each payload is a one-row Arrow IPC
 * stream whose schema is exactly the reference dataclass's generated `ARROW_SCHEMA` (field
 * order, types, nullability and nested field names), so the reference's own
 * `deserialize_from_bytes` decodes it. Schemas inside a description travel as IPC schema
 * messages (what pyarrow's `Schema.serialize()` produces); an absent schema is empty bytes.
 */
import {
  Binary,
  Bool,
  type Data,
  type DataType,
  Field,
  List,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
  Utf8,
  vectorFromArray,
} from "apache-arrow";
import type { SecurityRequirement } from "../protocol/methods.js";
import { encodeSchemaMessage } from "../wire/ipc.js";
import { compareCodePoints, computeProtocolHash, type MethodShape } from "./protocol-hash.js";
import type { SecurityScheme } from "./security.js";

/** The reflection protocol's wire name (its major version is in the name). */
export const REFLECTION_PROTOCOL = "vgi_rpc.Reflection.v1";

/** The framework's wire envelope version, as `ProtocolList.request_version` carries it. */
export const REQUEST_VERSION = "1";

/** A method as reflection describes it. */
export interface DescribedMethod extends MethodShape {
  /** `""` for unary methods; for streams `"producer"`, `"exchange"`, or `"unknown"`. */
  readonly streamKind: "" | "unknown" | "producer" | "exchange";
  /** Security requirements; null or absent for an open method. */
  readonly security?: SecurityRequirement | null;
  /**
   * A stream's declared schemas, for the stream-schema extension columns: its input (the empty
   * schema for a producer) and its output (null when the handler picks it at init). Absent for
   * unary methods, and for streams whose schemas are not known ahead of a call.
   */
  readonly streamSchemas?: { readonly input: Schema; readonly output: Schema | null };
}

/** A hosted protocol as reflection describes it. */
export interface DescribedProtocol {
  readonly name: string;
  /** Declared semver, or `""`. */
  readonly version: string;
  readonly hash: string;
  readonly methods: readonly DescribedMethod[];
  /** The server's security schemes; those the methods name are described. */
  readonly securitySchemes?: Readonly<Record<string, SecurityScheme>>;
}

const utf8 = (name: string): Field => new Field(name, new Utf8(), false);
const bool = (name: string): Field => new Field(name, new Bool(), false);
const binary = (name: string): Field => new Field(name, new Binary(), false);
const listOf = (name: string, item: DataType): Field => new Field(name, new List(new Field("item", item, true)), false);

const FEATURES = (): Field => listOf("features", new Utf8());

/** `MethodInfo.ARROW_SCHEMA` as a struct type. */
const METHOD_INFO_TYPE = new Struct([
  utf8("name"),
  utf8("method_type"),
  bool("has_return"),
  bool("has_header"),
  utf8("stream_kind"),
  binary("params_schema_ipc"),
  binary("result_schema_ipc"),
  binary("header_schema_ipc"),
  utf8("idempotency"),
  bool("deprecated"),
  utf8("deprecation_message"),
]);

/**
 * Security extension columns, present only when a protocol has secured methods (so an open
 * protocol's description stays byte-for-byte the reference's). The reference's decoder reads
 * columns by name and ignores unknown ones, so these travel to it harmlessly.
 * - `MethodInfo.security`: JSON object scheme → required scopes; `""` for an open method.
 * - `ServiceDescription.security_schemes`: JSON object name → scheme description.
 */
export const SECURITY_COLUMN = "security";
export const SECURITY_SCHEMES_COLUMN = "security_schemes";

/**
 * Stream-schema extension columns, present only when a protocol has stream methods with declared
 * schemas (so a protocol of unary methods is described exactly as the reference describes it;
 * the reference's description carries no stream input or output schema, its streams choosing
 * them at init). Like the security columns, the reference's decoder ignores them.
 * - `MethodInfo.input_schema_ipc`: a stream's input schema as an IPC schema message (the empty
 *   schema's for a producer); empty bytes for unary methods.
 * - `MethodInfo.output_schema_ipc`: a stream's output schema; empty bytes for unary methods and
 *   for a stream whose handler picks its output schema at init.
 */
export const INPUT_SCHEMA_COLUMN = "input_schema_ipc";
export const OUTPUT_SCHEMA_COLUMN = "output_schema_ipc";

/** `MethodInfo` with the extension columns the description carries. */
function methodInfoType(secured: boolean, streams: boolean): Struct {
  return new Struct([
    ...METHOD_INFO_TYPE.children,
    ...(secured ? [utf8(SECURITY_COLUMN)] : []),
    ...(streams ? [binary(INPUT_SCHEMA_COLUMN), binary(OUTPUT_SCHEMA_COLUMN)] : []),
  ]);
}

/** `ProtocolSummary.ARROW_SCHEMA` as a struct type. */
const PROTOCOL_SUMMARY_TYPE = new Struct([
  utf8("protocol"),
  utf8("protocol_version"),
  utf8("protocol_hash"),
  bool("deprecated"),
  utf8("deprecation_message"),
  FEATURES(),
]);

/** The reference's `ServiceDescription.ARROW_SCHEMA`. */
export const SERVICE_DESCRIPTION_SCHEMA: Schema = new Schema([
  utf8("protocol"),
  utf8("protocol_version"),
  utf8("protocol_hash"),
  bool("deprecated"),
  utf8("deprecation_message"),
  FEATURES(),
  listOf("methods", METHOD_INFO_TYPE),
]);

/** `SERVICE_DESCRIPTION_SCHEMA` with the extension columns a description carries (security, stream schemas). */
export function serviceDescriptionSchema(secured: boolean, streams: boolean): Schema {
  if (!secured && !streams) return SERVICE_DESCRIPTION_SCHEMA;
  return new Schema([
    ...SERVICE_DESCRIPTION_SCHEMA.fields.slice(0, -1),
    listOf("methods", methodInfoType(secured, streams)),
    ...(secured ? [utf8(SECURITY_SCHEMES_COLUMN)] : []),
  ]);
}

/** `SERVICE_DESCRIPTION_SCHEMA` with the security extension columns. */
export const SECURED_SERVICE_DESCRIPTION_SCHEMA: Schema = serviceDescriptionSchema(true, false);

/** The reference's `ProtocolList.ARROW_SCHEMA`. */
export const PROTOCOL_LIST_SCHEMA: Schema = new Schema([
  utf8("server_id"),
  utf8("server_version"),
  utf8("request_version"),
  listOf("protocols", PROTOCOL_SUMMARY_TYPE),
]);

const EMPTY = new Uint8Array(0);

function optionalSchema(schema: Schema | null): Uint8Array {
  return schema === null ? EMPTY : encodeSchemaMessage(schema);
}

function checkStreamKind(m: DescribedMethod): void {
  const ok = m.methodType === "unary" ? m.streamKind === "" : m.streamKind !== "";
  if (!ok) {
    throw new TypeError(
      `Method ${m.name}: stream kind ${JSON.stringify(m.streamKind)} is invalid for a ${m.methodType} method.`,
    );
  }
}

function methodRow(m: DescribedMethod): Record<string, unknown> {
  checkStreamKind(m);
  if (m.hasReturn && m.resultSchema === null) {
    throw new TypeError(`Method ${m.name} has a return value but no result schema.`);
  }
  return {
    name: m.name,
    method_type: m.methodType,
    has_return: m.hasReturn,
    has_header: m.headerSchema !== null,
    stream_kind: m.streamKind,
    params_schema_ipc: encodeSchemaMessage(m.paramsSchema),
    result_schema_ipc: m.hasReturn ? optionalSchema(m.resultSchema) : EMPTY,
    header_schema_ipc: optionalSchema(m.headerSchema),
    idempotency: "unknown",
    deprecated: false,
    deprecation_message: "",
  };
}

/** A one-row IPC stream (schema, one batch, EOS) of `schema` with the given column values. */
function oneRowStream(schema: Schema, row: Readonly<Record<string, unknown>>): Uint8Array {
  const children: Data[] = schema.fields.map((f) => {
    const vector = vectorFromArray([row[f.name]], f.type);
    const data = vector.data[0];
    if (data === undefined || vector.data.length !== 1) throw new Error(`Could not build column ${f.name}.`);
    return data;
  });
  const struct = makeData({ type: new Struct(schema.fields), length: 1, nullCount: 0, children });
  return tableToIPC(new Table(new RecordBatch(schema, struct)), "stream");
}

/**
 * `ServiceDescription` for one protocol (the answer to `describe(protocol)`): methods sorted by
 * name, no deprecation, no features, idempotency `"unknown"`.
 */
export function encodeServiceDescription(p: DescribedProtocol): Uint8Array {
  const methods = [...p.methods].sort((a, b) => compareCodePoints(a.name, b.name));
  const secured = methods.filter((m) => m.security);
  const streams = methods.some((m) => m.streamSchemas !== undefined);
  const row: Record<string, unknown> = {
    protocol: p.name,
    protocol_version: p.version,
    protocol_hash: p.hash,
    deprecated: false,
    deprecation_message: "",
    features: [],
    methods: methods.map((m) => ({
      ...methodRow(m),
      ...(secured.length > 0 ? { [SECURITY_COLUMN]: m.security ? JSON.stringify(m.security) : "" } : {}),
      ...(streams
        ? {
            [INPUT_SCHEMA_COLUMN]: optionalSchema(m.streamSchemas?.input ?? null),
            [OUTPUT_SCHEMA_COLUMN]: optionalSchema(m.streamSchemas?.output ?? null),
          }
        : {}),
    })),
  };
  if (secured.length > 0) {
    const named = new Set(secured.flatMap((m) => Object.keys(m.security ?? {})));
    row[SECURITY_SCHEMES_COLUMN] = JSON.stringify(
      Object.fromEntries(
        Object.entries(p.securitySchemes ?? {})
          .filter(([name]) => named.has(name))
          .sort(([a], [b]) => compareCodePoints(a, b)),
      ),
    );
  }
  return oneRowStream(serviceDescriptionSchema(secured.length > 0, streams), row);
}

/** `ProtocolList` (the answer to `list_protocols()`), protocols in the order given. */
export function encodeProtocolList(
  serverId: string,
  serverVersion: string,
  protocols: readonly DescribedProtocol[],
): Uint8Array {
  return oneRowStream(PROTOCOL_LIST_SCHEMA, {
    server_id: serverId,
    server_version: serverVersion,
    request_version: REQUEST_VERSION,
    protocols: protocols.map((p) => ({
      protocol: p.name,
      protocol_version: p.version,
      protocol_hash: p.hash,
      deprecated: false,
      deprecation_message: "",
      features: [],
    })),
  });
}

/** A {@link DescribedProtocol} with its hash computed from `methods`. */
export function describeProtocol(
  name: string,
  version: string,
  methods: readonly DescribedMethod[],
): DescribedProtocol {
  return { name, version, hash: computeProtocolHash(name, methods), methods };
}

const resultSchema = (): Schema => new Schema([binary("result")]);

/** `vgi_rpc.Reflection.v1`'s own two methods, as the reference declares them. */
export function reflectionMethodShapes(): readonly DescribedMethod[] {
  return [
    {
      name: "describe",
      methodType: "unary",
      hasReturn: true,
      paramsSchema: new Schema([utf8("protocol")]),
      resultSchema: resultSchema(),
      headerSchema: null,
      streamKind: "",
    },
    {
      name: "list_protocols",
      methodType: "unary",
      hasReturn: true,
      paramsSchema: new Schema([]),
      resultSchema: resultSchema(),
      headerSchema: null,
      streamKind: "",
    },
  ];
}
