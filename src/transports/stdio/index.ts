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
