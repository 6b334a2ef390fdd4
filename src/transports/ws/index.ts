/**
 * `quiver-rpc/ws`: the WebSocket server (`attachWebSocket` to an HTTP server, or `listenWebSocket`),
 * the client (`connectWebSocket`, `connectWebSocketClient`) and the pipe-to-WebSocket bridge.
 *
 * @module quiver-rpc/ws
 */
export { bridgeWebSocket } from "./bridge.js";
export { connectWebSocket, connectWebSocketClient, type WebSocketClientOptions } from "./client.js";
export {
  attachWebSocket,
  createWebSocketEndpoint,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_WS_PATH,
  listenWebSocket,
  type WebSocketEndpoint,
  type WebSocketListener,
  type WebSocketListenOptions,
  type WebSocketServerOptions,
} from "./server.js";
export { CloseCode, closeError } from "./shared.js";
