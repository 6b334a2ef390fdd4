#!/usr/bin/env node
/**
 * The conformance worker: the reference's ConformanceService (plus conformance.Secondary.v1 and
 * reflection) behind the reference worker's command-line contract.
 *
 *   quiver-conformance                 serve stdin/stdout (stdout carries IPC only)
 *   quiver-conformance --http          serve HTTP, print PORT:<n>      (not yet supported)
 *   quiver-conformance --unix PATH     serve a Unix socket, print UNIX:<path>
 *   quiver-conformance --tcp [H:]P     serve TCP (loopback by default), print TCP:<host>:<port>
 *   --access-log PATH / --access-log-debug                             (not yet supported)
 */
import { parseArgs } from "node:util";
import { createSecondaryImplementation, SecondaryProtocol } from "../conformance/secondary.js";
import { ConformanceService, createConformanceImplementation } from "../conformance/service.js";
import { bind, createServer } from "../server/server.js";
import { listenSocket } from "../transports/socket/server.js";
import { serveStdio } from "../transports/stdio/server.js";

function fail(message: string): never {
  process.stderr.write(`quiver-conformance: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        pipe: { type: "boolean" },
        http: { type: "boolean" },
        host: { type: "string" },
        port: { type: "string" },
        unix: { type: "string" },
        tcp: { type: "string" },
        "access-log": { type: "string" },
        "access-log-debug": { type: "boolean" },
        describe: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(
      "usage: quiver-conformance [--pipe | --http [--host H] [--port P] | --unix PATH | --tcp [HOST:]PORT] [--access-log PATH] [--access-log-debug]\n",
    );
    return;
  }
  for (const flag of ["http", "access-log", "access-log-debug"] as const) {
    if (values[flag] !== undefined) fail(`--${flag} is not yet supported by this build (stdio only)`);
  }
  const server = createServer({
    protocols: [
      bind(ConformanceService, createConformanceImplementation()),
      bind(SecondaryProtocol, createSecondaryImplementation()),
    ],
  });
  const stop = () => {
    void server.drain().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  if (typeof values.unix === "string") {
    await listenSocket(server, { path: values.unix });
    process.stdout.write(`UNIX:${values.unix}\n`);
    return;
  }
  if (typeof values.tcp === "string") {
    const spec = values.tcp;
    const colon = spec.lastIndexOf(":");
    const host = colon >= 0 ? spec.slice(0, colon) || "127.0.0.1" : "127.0.0.1";
    const port = Number(colon >= 0 ? spec.slice(colon + 1) : spec);
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--tcp wants [HOST:]PORT, got '${spec}'`);
    const sock = await listenSocket(server, { host, port });
    const addr = sock.address as { host: string; port: number };
    process.stdout.write(`TCP:${addr.host}:${addr.port}\n`);
    return;
  }
  await serveStdio(server);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`quiver-conformance: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
