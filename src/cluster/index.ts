/**
 * `quiver-rpc/cluster`: one HTTP or WebSocket service served by several Node processes
 * (`serveCluster`, over `node:cluster`), sharing one listening socket and one state-token key.
 *
 * @module quiver-rpc/cluster
 */
export {
  type ClusterListener,
  type ClusterOptions,
  type ClusterPrimary,
  type ClusterWorker,
  type ClusterWorkerContext,
  serveCluster,
} from "./cluster.js";
