/**
 * The server's types that its core (dispatch, sessions) and transports need without importing the
 * server's factory (which imports the core): what a hosted protocol and a resolved method are, and
 * the `RpcServer` interface.
 */
import type { Logger } from "pino";
import type { IdentityBearerSources } from "../auth/identity-bearer.js";
import type { CheckedPolicy } from "../external/externalize.js";
import type { MethodDecl, MethodSchemas } from "../protocol/methods.js";
import type { Connection } from "./connection.js";
import type { CloseOptions } from "./connections.js";
import type { CallInterceptor } from "./interceptors.js";
import type { CallObserver, CallRecord } from "./records.js";
import type { SecuritySchemes } from "./security.js";

/** Something `RpcServer.close()` closes: a listener. */
export interface Closable {
  close(opts?: CloseOptions): Promise<void>;
}

/** A method resolved for dispatch. */
export interface ResolvedMethod {
  readonly protocol: HostedProtocol;
  readonly name: string;
  readonly decl: MethodDecl;
  readonly schemas: MethodSchemas;
  /** The handler as bound: a function (unary) or a handler object (streams). */
  readonly handler: unknown;
}

export interface HostedProtocol {
  readonly name: string;
  readonly version: string;
  /** [major, minor], or null when the protocol declares no version. */
  readonly versionParts: readonly [number, number] | null;
  readonly hash: string;
  readonly versionExempt: boolean;
  readonly methods: ReadonlyMap<string, ResolvedMethod>;
}

export interface RpcServer {
  readonly serverId: string;
  readonly serverVersion: string;
  /** Whether error batches carry stack traces (see `ServerOptions.includeTracebacks`). */
  readonly includeTracebacks: boolean;
  readonly maxMessageBytes: number;
  /** The server's interceptors (`ServerOptions.interceptors`). */
  readonly interceptors: readonly CallInterceptor[];
  /** The server's call deadline in ms (`ServerOptions.callTimeoutMs`), or null for none. */
  readonly callTimeoutMs: number | null;
  /** The server's logger (silent unless one was given). */
  readonly logger: Logger;
  /** Hosted protocols in registration order (reflection last). */
  readonly protocols: ReadonlyMap<string, HostedProtocol>;
  /** True once `drain()` was called: new calls are refused with `server_draining`. */
  readonly draining: boolean;
  /** The declared security schemes (see `ServerOptions.securitySchemes`). */
  readonly securitySchemes: SecuritySchemes;
  /** Serves call after call on one connection until the peer closes it. */
  serveConnection(conn: Connection): Promise<void>;
  /** Refuses new calls and resolves when every call in progress has ended. */
  drain(): Promise<void>;
  /**
   * Closes every listener serving this server (`listenHttp`, `listenSocket`, `listenWebSocket`,
   * `serveStdio`) and every connection handed to `serveConnection`, each gracefully (see
   * `ConnectionSet`): no new call starts, calls in flight get `graceMs` to finish, then are
   * aborted. Resolves when all are closed.
   */
  close(opts?: CloseOptions): Promise<void>;
  /** Registers a listener for `close()`; returns a function removing it (the listener closed itself). */
  addListener(listener: Closable): () => void;
  /** Adds a per-call observer (see `ServerOptions.onCallEnd`); returns a function removing it. */
  observe(observer: CallObserver): () => void;
}

/** Marks a server made by `createServer` (see `coreOf`). */
export const SERVER_CORE: unique symbol = Symbol("quiver.serverCore");

/**
 * The server as its dispatch core and transports see it: `RpcServer` and what only they use.
 * Not exported from the package.
 */
export interface ServerCore extends RpcServer {
  readonly [SERVER_CORE]: true;
  /** Resolves (protocol, method) from request metadata; throws the reference's routing errors. */
  resolve(protocol: string | undefined, method: string): ResolvedMethod;
  /** Enforces the owning protocol's version gate. */
  gateVersion(method: ResolvedMethod, clientVersion: string | undefined): void;
  /** Tracks a call so `drain()` can wait for it. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Feeds a finished call's record to every observer. */
  notify(record: CallRecord): void;
  /** The externalization policy (`ServerOptions.external`), checked; null for none. */
  readonly external: CheckedPolicy | null;
  /** Where identity bearer credentials come from (`ServerOptions.identity`); null without identity. */
  readonly identityBearer: IdentityBearerSources | null;
  /** True while at least one observer is registered (calls skip building records otherwise). */
  readonly observed: boolean;
  /**
   * Runs `ServerOptions.onServeStart` for `transport` unless it already succeeded (then null, at
   * no cost): settles when it has run, rejecting with its failure.
   */
  serveStart(transport: string): Promise<void> | null;
}

/** The core of a server made by `createServer`; throws for any other object. */
export function coreOf(server: RpcServer): ServerCore {
  if ((server as Partial<ServerCore>)[SERVER_CORE] !== true) {
    throw new TypeError("expected a server made by createServer()");
  }
  return server as ServerCore;
}
