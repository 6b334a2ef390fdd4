export { connectTcp, connectUnix, type SocketClientOptions, socketTransport } from "./client.js";
export { listenSocket, type SocketPeer, type SocketServeOptions, type SocketServer } from "./server.js";
