/**
 * A stdio worker for the npm-peer interop tests: `quiver` serves our server, `peer` serves the
 * npm peer's `VgiRpcServer`, both hosting `interop.Peer.v1` on stdin/stdout.
 */
import { VgiRpcServer } from "@query-farm/vgi-rpc";
import { serveStdio } from "../../src/transports/stdio/server.js";
import { peerProtocol, quiverServer } from "./npm-peer-protocols.js";

const which = process.argv[2];
if (which === "quiver") {
  await serveStdio(quiverServer());
} else if (which === "peer") {
  await new VgiRpcServer(peerProtocol()).run();
} else {
  process.stderr.write("usage: npm-peer-worker.ts quiver|peer\n");
  process.exit(2);
}
