/**
 * The browser entry (`quiver-rpc/ws/client`): everything a page needs to call a quiver service
 * over WebSocket, and nothing that needs Node (no `node:` imports, no `ws` on the browser path;
 * `test/browser` bundles this file for Chromium and fails on any `node:` module). The package root
 * also exports the server, so a page imports from here instead: the WebSocket client, the
 * protocol declarations shared with the server, the typed proxy and the error class.
 *
 * @module quiver-rpc/ws/client
 */

export { type ClientOptions, RpcClient } from "../../client/client.js";
export type { ServiceDescription } from "../../client/describe.js";
export type { ClientAnswer, ClientCall, ClientCallHandler, ClientInterceptor } from "../../client/interceptors.js";
export type { CallChannel, ClientTransport, StreamChannel } from "../../client/transport.js";
export {
  type CallOptions,
  type ExchangeSession,
  exchangeSession,
  type PipelineOptions,
  type ProducerOptions,
  type ProducerStream,
  type ProtocolClient,
  producerStream,
  proxy,
  type StreamOptions,
} from "../../client/typed.js";
export { type ErrorCode, type ErrorDetail, InvalidValueError, RpcError } from "../../errors.js";
export { batchFromRows, rowsFromBatch } from "../../protocol/batch.js";
export { defineProtocol, exchange, producer, unary } from "../../protocol/methods.js";
export { UnsupportedArrowTypeError } from "../../protocol/type-tokens.js";
export { type RowOf, t } from "../../protocol/types.js";
export { connectWebSocket, connectWebSocketClient, type WebSocketClientOptions } from "./client.js";
export { CloseCode, closeError } from "./shared.js";
