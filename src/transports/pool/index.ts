/**
 * `quiver-rpc/pool`: a pool of subprocess workers spoken to over pipes (`createWorkerPool`):
 * borrow a warm worker or spawn one, call it through a typed proxy, return it.
 *
 * @module quiver-rpc/pool
 */
export {
  createWorkerPool,
  type PooledWorker,
  type PoolMetrics,
  type WorkerPool,
  type WorkerPoolOptions,
  type WorkerStderr,
} from "./pool.js";
