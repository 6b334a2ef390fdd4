/**
 * The typed calls every client channel offers (`call`, `stream`, `exchange`, `describe`,
 * `listProtocols`), written once over the two primitives a transport implements (`CallChannel`):
 * the session client (`RpcClient`) and the HTTP client (`HttpClient`) both extend it.
 */
import type { RecordBatch } from "apache-arrow";
import type { ProtocolDecl } from "../protocol/methods.js";
import { describeProtocol, listProtocols, type ProtocolListing, type ServiceDescription } from "./describe.js";
import type { CallChannel, CallTarget, RequestMetadata, StreamChannel, StreamOpenOptions } from "./transport.js";
import {
  type CallOptions,
  type ClientMethod,
  callUnary,
  type MethodsOfKind,
  openExchange,
  openProducer,
  type ProducerOptions,
  type StreamOptions,
} from "./typed.js";

/** A client channel's typed calls over its transport's `unaryBatch` and `openStream`. */
export abstract class TypedChannel implements CallChannel {
  abstract unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch>;
  abstract openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<StreamChannel>;

  /** Calls a unary method of a declared protocol: `client.call(Calc, "add", { a: 1, b: 2 })`. */
  call<P extends ProtocolDecl, K extends MethodsOfKind<P, "unary">>(
    protocol: P,
    method: K,
    ...args: Parameters<ClientMethod<P["methods"][K]>>
  ): ReturnType<ClientMethod<P["methods"][K]>> {
    const [params, opts] = args as [Readonly<Record<string, unknown>> | undefined, CallOptions | undefined];
    return callUnary(this, protocol, method, params, opts) as ReturnType<ClientMethod<P["methods"][K]>>;
  }

  /** Opens a producer stream: iterate its rows; `header` when declared; `signal` cancels. */
  stream<P extends ProtocolDecl, K extends MethodsOfKind<P, "producer">>(
    protocol: P,
    method: K,
    ...args: Parameters<ClientMethod<P["methods"][K]>>
  ): ReturnType<ClientMethod<P["methods"][K]>> {
    const [params, opts] = args as [Readonly<Record<string, unknown>> | undefined, ProducerOptions | undefined];
    return openProducer(this, protocol, method, params, opts) as ReturnType<ClientMethod<P["methods"][K]>>;
  }

  /** Opens an exchange session: `exchange(rows)` per turn, then `close()` (or `cancel()`). */
  exchange<P extends ProtocolDecl, K extends MethodsOfKind<P, "exchange">>(
    protocol: P,
    method: K,
    ...args: Parameters<ClientMethod<P["methods"][K]>>
  ): ReturnType<ClientMethod<P["methods"][K]>> {
    const [params, opts] = args as [Readonly<Record<string, unknown>> | undefined, StreamOptions | undefined];
    return openExchange(this, protocol, method, params, opts) as ReturnType<ClientMethod<P["methods"][K]>>;
  }

  /** Describes a hosted protocol via `vgi_rpc.Reflection.v1` (default: the primary one). */
  describe(protocol?: string): Promise<ServiceDescription> {
    return describeProtocol(this, protocol);
  }

  /** Lists the hosted protocols via `vgi_rpc.Reflection.v1`. */
  listProtocols(): Promise<ProtocolListing> {
    return listProtocols(this);
  }
}
