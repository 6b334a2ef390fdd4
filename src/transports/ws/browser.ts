/**
 * The browser-safe part of the WebSocket transport (no `node:` imports, no `ws` on the browser
 * path): the client and the close-code table.
 */
export { connectWebSocket, connectWebSocketClient, type WebSocketClientOptions } from "./client.js";
export { CloseCode, closeError } from "./shared.js";
