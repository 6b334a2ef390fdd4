/**
 * The workers section's service: a no-op call and a CPU-bound one (`spin` busy-waits `ms`), served
 * over a pipe (run as a script: `--pipe`) or by a cluster of `--cluster N` HTTP processes, which
 * prints `PORT:<port>` once every process listens.
 */
import { serveCluster } from "../src/cluster/index.js";
import { defineProtocol, unary } from "../src/protocol/methods.js";
import { t } from "../src/protocol/types.js";
import { bind, createServer } from "../src/server/server.js";
import { listenHttp } from "../src/transports/http/index.js";
import { serveStdio } from "../src/transports/stdio/server.js";

export const Workers = defineProtocol(
  "bench.Workers.v1",
  {},
  {
    noop: unary({}, null),
    spin: unary({ ms: t.int64() }, t.int64()),
  },
);

function workersServer() {
  return createServer({
    protocols: [
      bind(Workers, {
        noop: () => undefined,
        spin: ({ ms }) => {
          const end = performance.now() + Number(ms);
          let n = 0n;
          while (performance.now() < end) n++;
          return n;
        },
      }),
    ],
  });
}

const mode = process.argv[2];
if (mode === "--pipe") {
  await serveStdio(workersServer());
} else if (mode === "--cluster") {
  const workers = Number(process.argv[3]);
  const c = await serveCluster(
    ({ tokenKey }) => listenHttp(workersServer(), { host: "127.0.0.1", port: 0, tokenKey }),
    { workers, graceMs: 1_000 },
  );
  if (c.role === "primary") {
    process.stdout.write(`PORT:${c.port}\n`);
    // The bench ends the cluster by closing its stdin (or killing it).
    process.stdin.resume();
    process.stdin.once("end", () => void c.close().then(() => process.exit(0)));
  }
}
