/**
 * `quiver-rpc/stdio`: a worker serving on its stdin and stdout (`serveStdio`), and the client that
 * starts a worker as a subprocess (`connectSubprocess`) or speaks over a pair of streams (`pipeConnect`).
 *
 * @module quiver-rpc/stdio
 */
export { workerTakesSharedMemory } from "../shm/negotiate.js";
export {
  connectSubprocess,
  PipeClient,
  type PipeClientOptions,
  pipeConnect,
  pipeTransport,
  type SubprocessClient,
  type SubprocessOptions,
} from "./client.js";
export { type StdioServeOptions, type StdioWorker, serveStdio } from "./server.js";
