#!/usr/bin/env node
/**
 * The demo data service behind `npm start`: a small protocol with one method of each kind,
 * served over HTTP (127.0.0.1, port 8765 or `--port`), WebSocket (`/ws` on the HTTP port), a Unix
 * socket and TCP; `--stdio` serves one caller over stdin/stdout instead.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ValueError } from "../errors.js";
import { metricsInterceptor } from "../server/metrics.js";
import { bind, createServer } from "../server/server.js";
import { listenHttp } from "../transports/http/server.js";
import { listenSocket } from "../transports/socket/server.js";
import { serveStdio } from "../transports/stdio/server.js";
import { attachWebSocket } from "../transports/ws/server.js";
import { Demo } from "./demo-protocol.js";
import { consoleToStderr, startTelemetry } from "./telemetry.js";

const server = createServer({
  // No-op until OTEL_METRICS_EXPORTER starts the SDK (see telemetry.ts).
  interceptors: [metricsInterceptor()],
  protocols: [
    bind(Demo, {
      add: ({ a, b }) => a + b,
      greet: ({ name, greeting }, ctx) => {
        ctx.clientLog("INFO", `greeting ${name}`);
        return `${greeting}, ${name}`;
      },
      range: {
        init: ({ start, stop, batch_size }) => {
          if (batch_size <= 0n) throw new ValueError("batch_size must be positive");
          return { header: { total: stop > start ? stop - start : 0n }, state: { next: start, stop, batch_size } };
        },
        produce: (state, out) => {
          if (state.next >= state.stop) return out.finish();
          const n: bigint[] = [];
          for (; state.next < state.stop && BigInt(n.length) < state.batch_size; state.next++) n.push(state.next);
          out.emitColumns({ n, square: n.map((v) => v * v) });
        },
      },
      running_mean: {
        init: () => ({ state: { sum: 0, count: 0n } }),
        process: (state, input, out) => {
          for (const x of input.column("x")) {
            state.sum += x;
            state.count += 1n;
          }
          out.emit([{ mean: state.count === 0n ? 0 : state.sum / Number(state.count), count: state.count }]);
        },
      },
    }),
  ],
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stdio: { type: "boolean" },
      unix: { type: "string" },
      port: { type: "string" },
    },
  });
  if (values.stdio) consoleToStderr();
  const stopTelemetry = await startTelemetry("quiver-demo");
  if (values.stdio) {
    await serveStdio(server);
    await stopTelemetry();
    return;
  }
  const path = values.unix ?? join(tmpdir(), "quiver-demo.sock");
  await listenSocket(server, { path });
  const http = await listenHttp(server, { host: "127.0.0.1", port: Number(values.port ?? 8765) });
  const ws = attachWebSocket(http.server, server, { path: "/ws" });
  const wsUrl = `ws://127.0.0.1:${http.port}${ws.path}`;
  const tcp = await listenSocket(server, { host: "127.0.0.1", port: 0 });
  const tcpAddr = tcp.address as { host: string; port: number };
  process.stdout.write(
    [
      `quiver demo service (${Demo.name}) — server id ${server.serverId}`,
      `  http:        ${http.url}   (health: ${http.url}/health)`,
      `  websocket:   ${wsUrl}`,
      `  unix socket: ${path}`,
      `  tcp:         ${tcpAddr.host}:${tcpAddr.port}`,
      "",
      "Call it with the quiver CLI:",
      `  node dist/bin/quiver.js --url ${http.url} call add a=1 b=2`,
      `  node dist/bin/quiver.js --unix ${path} describe`,
      `  node dist/bin/quiver.js --unix ${path} call add a=1 b=2`,
      `  node dist/bin/quiver.js --tcp ${tcpAddr.host}:${tcpAddr.port} call range start=0 stop=5 batch_size=2`,
      `  node dist/bin/quiver.js --cmd "node dist/bin/quiver.js bridge --ws ${wsUrl}" call add a=1 b=2`,
      "or with the reference CLI from the test environment (created by `npm test`):",
      `  .venv-conformance/bin/vgi-rpc --url ${http.url} describe`,
      `  .venv-conformance/bin/vgi-rpc --url ${http.url} call greet name=ada greeting=hello`,
      "Ctrl-C stops the service.",
      "",
    ].join("\n"),
  );
  // Closes every listener; calls in progress get 5 s to finish.
  const stop = async () => {
    await server.close({ graceMs: 5_000 }); // the HTTP and WebSocket listeners with it
    await stopTelemetry();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
