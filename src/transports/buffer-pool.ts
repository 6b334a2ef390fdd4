/**
 * Compatibility shim: the large-body buffer pool moved to `node/buffer-pool.ts`. Only
 * `src/transports/http` still imports this path (it is being split into modules in parallel);
 * delete this file once it imports `../node/buffer-pool.js`.
 */
export { bodyBuffer, joinBuffers, POOLED_MIN_BYTES } from "./node/buffer-pool.js";
