/**
 * The server: protocol bindings, routing on (protocol, method), the version gate, built-ins and
 * reflection. Transport-agnostic: session transports hand it a `Connection`.
 */

import { randomBytes } from "node:crypto";
import { type Logger, pino } from "pino";
import { frameworkError } from "../errors.js";
import { checkPolicy, type ExternalizePolicy } from "../external/externalize.js";
import {
  type Implementation,
  type MethodDecl,
  type MethodSchemas,
  methodSchemas,
  type ProtocolDecl,
  unary,
  validateProtocolName,
} from "../protocol/methods.js";
import { t } from "../protocol/types.js";
import { ConnectionSet, graceOf } from "./connections.js";
import type { CallObserver } from "./records.js";
import {
  type Closable,
  type HostedProtocol,
  type ResolvedMethod,
  type RpcServer,
  SERVER_CORE,
  type ServerCore,
} from "./types.js";

export type { HostedProtocol, ResolvedMethod, RpcServer } from "./types.js";

import { hostIdentity, IDENTITY_PROTOCOL, type IdentityOptions } from "./identity.js";
import type { CallInterceptor } from "./interceptors.js";
import { computeProtocolHash, type MethodShape } from "./protocol-hash.js";
import {
  type DescribedMethod,
  type DescribedProtocol,
  encodeProtocolList,
  encodeServiceDescription,
  REFLECTION_PROTOCOL,
} from "./reflection.js";
import { checkSchemeNames, type SecuritySchemes } from "./security.js";
import { serveSession } from "./session.js";

/** A protocol paired with its implementation. */
export interface Binding {
  readonly protocol: ProtocolDecl;
  /** Handlers by method name: functions for unary methods, handler objects for streams. */
  readonly implementation: Readonly<Record<string, unknown>>;
  /** Reflection is exempt from the version gate. */
  readonly versionExempt?: boolean;
}

function hasFunction(value: unknown, key: string): boolean {
  return typeof value === "object" && value !== null && typeof (value as Record<string, unknown>)[key] === "function";
}

/** Throws when `handler` does not have the shape `decl` needs (a guard for untyped callers). */
function checkHandler(protocol: string, name: string, decl: MethodDecl, handler: unknown): void {
  const where = `protocol '${protocol}' method '${name}'`;
  if (decl.kind === "unary") {
    if (typeof handler !== "function") throw new TypeError(`${where} needs a handler function`);
    return;
  }
  const turn = decl.kind === "producer" ? "produce" : "process";
  if (!hasFunction(handler, "init") || !hasFunction(handler, turn)) {
    throw new TypeError(`${where} needs a handler object with init() and ${turn}()`);
  }
  const borrow = (handler as { borrowInput?: unknown }).borrowInput;
  if (borrow !== undefined && typeof borrow !== "boolean")
    throw new TypeError(`${where}: borrowInput must be a boolean`);
}

/** Pairs a protocol with handlers for every one of its methods (checked at compile time). */
export function bind<P extends ProtocolDecl>(protocol: P, implementation: Implementation<P>): Binding {
  const handlers = implementation as Readonly<Record<string, unknown>>;
  for (const [name, decl] of Object.entries(protocol.methods)) checkHandler(protocol.name, name, decl, handlers[name]);
  return { protocol, implementation: handlers };
}

export interface ServerOptions {
  /** The protocols to host; the first is the primary. */
  readonly protocols: readonly Binding[];
  /** Host `vgi_rpc.Reflection.v1` (list_protocols, describe). Default: true. */
  readonly reflection?: boolean;
  /** 12 hex chars identifying this server in logs and error batches. Default: random. */
  readonly serverId?: string;
  /** Reported by reflection. Default: the package version. */
  readonly serverVersion?: string;
  /**
   * Send the stack trace (with the server's file paths) and its frames in every error batch, to
   * any caller. Default: false. The reference sends them by default; turn this on for trusted
   * callers only (its conformance suite expects them, so the conformance worker does).
   */
  readonly includeTracebacks?: boolean;
  /**
   * Largest IPC message (header and body) a request may send, in bytes, on every transport (HTTP
   * bodies also have `maxRequestBytes`). Default: 256 MiB (`DEFAULT_MAX_MESSAGE_BYTES`).
   */
  readonly maxMessageBytes?: number;
  /**
   * Longest a call may run, in ms, before it is aborted with `deadline_exceeded` (its handler's
   * `ctx.signal` fires; a unary call is answered with the error at once, a stream ends with it).
   * A client's own shorter timeout, sent with the request, wins. Default: none.
   */
  readonly callTimeoutMs?: number;
  /**
   * Wrap every call on every transport, the first outermost (see `CallInterceptor`): refuse a
   * call by throwing before `next`, observe its outcome after. Default: none.
   */
  readonly interceptors?: readonly CallInterceptor[];
  /**
   * Called once per call when it ends, with its statistics, outcome and identity — the one hook
   * that access logs, metrics and spans are fed from. Default: none. Errors it throws are ignored.
   */
  readonly onCallEnd?: CallObserver;
  /** The logger handlers' `ctx.logger` is a child of. Default: a silent pino logger. */
  readonly logger?: Logger;
  /**
   * The security schemes methods' `security` requirements may name (`{ jwt: { type: "jwt", ... } }`),
   * matched against `AuthContext.scheme`; reported by `describe`. A method naming a scheme not
   * declared here makes `createServer` throw. Default: none.
   */
  readonly securitySchemes?: SecuritySchemes;
  /**
   * Externalize large output batches (see docs/external-storage.md): a unary result, stream
   * header or stream turn whose data batch holds at least `thresholdBytes` is uploaded to
   * `storage` as an Arrow IPC stream and replaced on the wire by the reference's pointer batch,
   * on every transport. Default: none (everything inline). A unary handler may return an
   * `ExternalRef` whether or not this is set.
   */
  readonly external?: ExternalizePolicy;
  /**
   * Startup work run once per transport kind (`pipe`, `unix`, `tcp`, `http`, `ws`, ...), before that
   * transport's first call is served (the reference's `on_serve_start`): open pools, warm caches.
   * Calls that arrive meanwhile wait for it. If it throws, the call that fired it fails (HTTP: 500;
   * a session transport: the connection is closed) and the next call runs it again, so a transient
   * failure leaves the server usable. Default: none.
   */
  readonly onServeStart?: (info: { readonly transport: string }) => void | Promise<void>;
  /**
   * Host `vgi_rpc.Identity.v2` (see docs/identity.md): `introspect_token` when `resolveToken` is
   * given, `issue_grant` when `mintGrant` or `grantKeys` is; over HTTP, sealed grants and resolved
   * tokens are then accepted as bearer credentials. Registered after reflection, with only the
   * methods whose hook exists. Default: none (the protocol is not hosted).
   */
  readonly identity?: IdentityOptions;
}

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

function parseVersion(v: string): readonly [number, number] | null {
  const m = VERSION_RE.exec(v);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function shapeOf(name: string, decl: MethodDecl, schemas: MethodSchemas): DescribedMethod {
  return {
    name,
    methodType: decl.kind === "unary" ? "unary" : "stream",
    hasReturn: schemas.hasReturn,
    paramsSchema: schemas.params,
    resultSchema: schemas.hasReturn ? schemas.result : null,
    headerSchema: schemas.header,
    streamKind: decl.kind === "unary" ? "" : decl.kind,
    security: decl.security,
    ...(schemas.input !== null ? { streamSchemas: { input: schemas.input, output: schemas.output } } : {}),
  };
}

function host(binding: Binding): HostedProtocol {
  const { protocol } = binding;
  const methods = new Map<string, ResolvedMethod>();
  const shapes: MethodShape[] = [];
  const hosted: { -readonly [K in keyof HostedProtocol]: HostedProtocol[K] } = {
    name: protocol.name,
    version: protocol.version,
    versionParts: protocol.version ? parseVersion(protocol.version) : null,
    hash: "",
    versionExempt: binding.versionExempt ?? false,
    methods,
  };
  for (const [name, decl] of Object.entries(protocol.methods)) {
    const schemas = methodSchemas(decl);
    const handler = binding.implementation[name];
    if (handler === undefined) throw new TypeError(`method '${name}' has no handler`);
    methods.set(name, { protocol: hosted, name, decl, schemas, handler });
    shapes.push(shapeOf(name, decl, schemas));
  }
  hosted.hash = computeProtocolHash(protocol.name, shapes);
  return hosted;
}

/** The package version, reported as `server_version`. */
export const QUIVER_VERSION = "0.1.0";

/** A positive whole number of ms, or null when absent; anything else is refused. */
function positiveMs(name: string, ms: number | undefined): number | null {
  if (ms === undefined) return null;
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new RangeError(`${name} must be a positive integer (ms), got ${ms}`);
  return ms;
}

/** Default `maxMessageBytes`: 256 MiB, as the HTTP transport's default `maxRequestBytes`. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** Creates a server hosting `opts.protocols` (and reflection). */
export function createServer(opts: ServerOptions): RpcServer {
  if (opts.protocols.length === 0) throw new TypeError("a server hosts at least one protocol");
  const serverId = opts.serverId ?? randomBytes(6).toString("hex");
  const serverVersion = opts.serverVersion ?? QUIVER_VERSION;
  const protocols = new Map<string, HostedProtocol>();
  const securitySchemes: SecuritySchemes = Object.freeze({ ...opts.securitySchemes });
  for (const b of opts.protocols) {
    validateProtocolName(b.protocol.name, b.versionExempt ?? false);
    for (const [name, decl] of Object.entries(b.protocol.methods)) {
      checkSchemeNames(b.protocol.name, name, decl.security ?? null, securitySchemes);
    }
    if (protocols.has(b.protocol.name)) throw new TypeError(`protocol '${b.protocol.name}' is hosted twice`);
    protocols.set(b.protocol.name, host(b));
  }
  if (opts.reflection ?? true) {
    const described = (): DescribedProtocol[] =>
      [...protocols.values()].map((p) => ({
        name: p.name,
        version: p.version,
        hash: p.hash,
        methods: [...p.methods.values()].map((m) => shapeOf(m.name, m.decl, m.schemas)),
        securitySchemes,
      }));
    const cache = new Map<string, Uint8Array>();
    const reflectionDecl: ProtocolDecl = {
      name: REFLECTION_PROTOCOL,
      version: "",
      methods: {
        describe: unary({ protocol: t.utf8() }, t.binary()),
        list_protocols: unary({}, t.binary()),
      },
    };
    const reflection: Binding = {
      protocol: reflectionDecl,
      versionExempt: true,
      implementation: {
        list_protocols: () => encodeProtocolList(serverId, serverVersion, described()),
        describe: (params: { readonly protocol: string }) => {
          const hit = cache.get(params.protocol);
          if (hit) return hit;
          const p = described().find((d) => d.name === params.protocol);
          if (p === undefined) {
            throw frameworkError(
              "protocol_not_supported",
              `This server does not host protocol '${params.protocol}'. Hosted: [${[...protocols.keys()].sort().join(", ")}].`,
            );
          }
          const bytes = encodeServiceDescription(p);
          cache.set(params.protocol, bytes);
          return bytes;
        },
      },
    };
    protocols.set(REFLECTION_PROTOCOL, host(reflection));
  }
  // Identity after reflection, so it appears in reflection's answers, narrowed to its configured methods.
  const identity = opts.identity === undefined ? null : hostIdentity(opts.identity);
  if (identity?.protocol) {
    if (protocols.has(IDENTITY_PROTOCOL)) throw new TypeError(`protocol '${IDENTITY_PROTOCOL}' is hosted twice`);
    protocols.set(IDENTITY_PROTOCOL, host({ protocol: identity.protocol, implementation: identity.implementation }));
  }

  let draining = false;
  const listeners = new Set<Closable>();
  const own = new ConnectionSet();
  const active = new Set<Promise<unknown>>();
  const observers = new Set<CallObserver>();
  if (opts.onCallEnd) observers.add(opts.onCallEnd);
  const onServeStart = opts.onServeStart;
  /** Transports whose start hook has run; the runs in progress. */
  const started = new Set<string>();
  const starting = new Map<string, Promise<void>>();

  const server: ServerCore = {
    [SERVER_CORE]: true,
    serverId,
    serverVersion,
    includeTracebacks: opts.includeTracebacks ?? false,
    maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    callTimeoutMs: positiveMs("callTimeoutMs", opts.callTimeoutMs),
    interceptors: [...(opts.interceptors ?? [])],
    logger: opts.logger ?? pino({ level: "silent" }),
    protocols,
    securitySchemes,
    external: opts.external === undefined ? null : checkPolicy(opts.external),
    identityBearer: identity === null ? null : identity.bearer,
    get draining() {
      return draining;
    },
    serveStart(transport) {
      if (onServeStart === undefined || started.has(transport)) return null;
      let run = starting.get(transport);
      if (run === undefined) {
        // The hook runs a microtask later, so the run is registered before it can settle.
        run = Promise.resolve()
          .then(() => onServeStart({ transport }))
          .then(
            () => {
              started.add(transport);
              starting.delete(transport);
            },
            (err: unknown) => {
              starting.delete(transport);
              server.logger.error({ err, transport }, "onServeStart failed; the next call runs it again");
              throw err;
            },
          );
        starting.set(transport, run);
      }
      return run;
    },
    serveConnection(conn) {
      if (conn.closing !== undefined) return serveSession(server, conn);
      // A connection no listener manages: the server's own set closes it.
      const tracked = own.track(() => {});
      const session = serveSession(server, {
        ...conn,
        closing: tracked.closing,
        signal: conn.signal === undefined ? tracked.signal : AbortSignal.any([conn.signal, tracked.signal]),
      });
      tracked.served(session);
      return session;
    },
    async close(closeOpts) {
      graceOf(closeOpts); // checked before anything closes
      await Promise.all([...listeners].map((l) => l.close(closeOpts)));
      await own.close(closeOpts);
    },
    addListener(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async drain() {
      draining = true;
      while (active.size > 0) await Promise.allSettled([...active]);
    },
    get observed() {
      return observers.size > 0;
    },
    observe(observer) {
      observers.add(observer);
      return () => observers.delete(observer);
    },
    notify(record) {
      for (const o of observers) {
        try {
          o(record);
        } catch {
          // An observer's failure must never fail or stall a call.
        }
      }
    },
    track<T>(work: Promise<T>): Promise<T> {
      active.add(work);
      const done = () => active.delete(work);
      work.then(done, done);
      return work;
    },
    resolve(protocolName, method) {
      if (method.startsWith("__") && method.endsWith("__")) {
        if (method === "__describe__") {
          throw frameworkError(
            "method_not_implemented",
            `'__describe__' was retired. Introspection is now the '${REFLECTION_PROTOCOL}' protocol: call 'list_protocols' for what this server hosts, then 'describe' for one protocol's methods.`,
          );
        }
        throw frameworkError(
          "method_not_implemented",
          `This server does not implement the reserved method '${method}'.`,
        );
      }
      // Hosted names passed the grammar at registration: only an unknown name needs checking,
      // and the hosted list is spelled out only for an error.
      const hostedNames = () =>
        `[${[...protocols.keys()]
          .sort()
          .map((n) => `'${n}'`)
          .join(", ")}]`;
      if (!protocolName) {
        throw frameworkError(
          "protocol_not_specified",
          `Request carries no 'vgi_rpc.protocol' routing key. Every request must name the protocol it addresses. This server hosts: ${hostedNames()}.`,
        );
      }
      const p = protocols.get(protocolName);
      if (p === undefined) {
        try {
          validateProtocolName(protocolName, true);
        } catch (err) {
          throw frameworkError(
            "protocol_not_supported",
            `'vgi_rpc.protocol' is not a protocol name: ${(err as Error).message}`,
          );
        }
        throw frameworkError(
          "protocol_not_supported",
          `This server does not host protocol '${protocolName}'. Hosted: ${hostedNames()}.`,
        );
      }
      const m = p.methods.get(method);
      if (m === undefined) {
        throw frameworkError(
          "method_not_implemented",
          `Protocol '${protocolName}' has no method '${method}'. Available: [${[...p.methods.keys()]
            .sort()
            .map((n) => `'${n}'`)
            .join(", ")}].`,
        );
      }
      return m;
    },
    gateVersion(method, clientVersion) {
      const p = method.protocol;
      if (p.versionExempt || p.versionParts === null) return;
      const mismatch = (client: string, direction: string) =>
        frameworkError(
          "protocol_version_mismatch",
          `VGI client/worker protocol_version mismatch for protocol '${p.name}'.\n  Client: ${client}\n  Server: ${p.version}\n  Direction: ${direction}`,
          {
            details: [
              {
                "@type": "vgi_rpc.PreconditionFailure",
                violations: [
                  {
                    type: "protocol_version",
                    subject: p.name,
                    description: `client declares ${clientVersion || "<none>"}, server requires ${p.version}; major and minor must match`,
                  },
                ],
              },
            ],
          },
        );
      if (clientVersion === undefined) {
        throw mismatch(
          "<not declared>",
          "the client did not send a vgi_rpc.protocol_version metadata key. This is either a vgi-rpc framework bug or a non-VGI client connecting to a VGI worker.",
        );
      }
      const parts = parseVersion(clientVersion);
      if (parts === null) {
        throw mismatch(
          clientVersion,
          "client sent a malformed protocol_version. Expected canonical semver MAJOR.MINOR.PATCH.",
        );
      }
      const [cMaj, cMin] = parts;
      const [sMaj, sMin] = p.versionParts;
      if (cMaj === sMaj && cMin === sMin) return;
      const older = cMaj < sMaj || (cMaj === sMaj && cMin < sMin);
      throw mismatch(
        clientVersion,
        older
          ? `client is too old; upgrade the VGI extension/client to a version supporting protocol_version ${p.version}.`
          : `server is too old; upgrade the VGI worker to a version supporting protocol_version ${clientVersion}.`,
      );
    },
  };
  return server;
}
