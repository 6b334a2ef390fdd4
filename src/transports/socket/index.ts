/**
 * `quiver-rpc/socket`: Unix socket and TCP listeners (`listenSocket`) and clients
 * (`connectUnix`, `connectTcp`).
 *
 * @module quiver-rpc/socket
 */
export { connectTcp, connectUnix, type SocketClientOptions, socketTransport } from "./client.js";
export { listenSocket, type SocketPeer, type SocketServeOptions, type SocketServer } from "./server.js";
