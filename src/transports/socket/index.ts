export { listenSocket, type SocketServeOptions, type SocketServer } from "./server.js";
