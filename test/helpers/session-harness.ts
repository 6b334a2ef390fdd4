/**
 * Our server over each session transport (an in-memory pipe, a stdio pipe pair, a Unix socket,
 * TCP), with the caller named per connection as those transports name it: for suites that run the
 * same calls as several callers on every transport.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { RpcClient } from "../../src/client/client.js";
import type { CallChannel } from "../../src/client/transport.js";
import type { AuthContext } from "../../src/protocol/context.js";
import type { RpcServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { connectTcp, connectUnix, listenSocket } from "../../src/transports/socket/index.js";
import { pipeConnect, serveStdio } from "../../src/transports/stdio/index.js";
import { socketPath } from "../client/helpers.js";

/** Our client on `server` over an in-memory pipe whose caller is `auth` (anonymous when omitted). */
export function memoryClientAs(server: RpcServer, auth?: AuthContext): RpcClient {
  const pipe = memoryPipe("memory", auth);
  void server.serveConnection(pipe.server).finally(() => pipe.server.close());
  return new RpcClient({
    name: "memory",
    input: pipe.client.input,
    write: pipe.client.write,
    close: () => pipe.client.close(),
  });
}

/** Connections to one server, each as one of the suite's callers. */
export interface Harness<Who extends string> {
  connect(who: Who): Promise<CallChannel & { close(): Promise<void> }>;
  close(): Promise<void>;
}

/** Makes a harness for a server. */
export type HarnessFactory<Who extends string> = (server: RpcServer) => Promise<Harness<Who>>;

/**
 * A harness factory per session transport (`memory`, `pipe`, `unix`, `tcp`) for the callers in
 * `identity`: the memory and stdio pipes carry the caller's context, the socket listeners (one per
 * caller) name it from `authenticate`.
 */
export function sessionHarnesses<Who extends string>(
  identity: Readonly<Record<Who, AuthContext>>,
): Record<"memory" | "pipe" | "unix" | "tcp", HarnessFactory<Who>> {
  const callers = Object.keys(identity) as Who[];
  const perCaller = async (
    listen: (who: Who) => ReturnType<typeof listenSocket>,
    dial: (address: Awaited<ReturnType<typeof listenSocket>>["address"]) => Promise<RpcClient>,
  ): Promise<Harness<Who>> => {
    const listeners = await Promise.all(callers.map(listen));
    return {
      connect: (who) => dial(listeners[callers.indexOf(who)]!.address),
      close: async () => {
        await Promise.all(listeners.map((l) => l.close()));
      },
    };
  };
  return {
    memory: async (server) => ({
      connect: async (who) => memoryClientAs(server, identity[who]),
      close: async () => {},
    }),
    pipe: async (server) => ({
      async connect(who) {
        const toServer = new PassThrough();
        const toClient = new PassThrough();
        void serveStdio(server, { input: toServer, output: toClient, auth: identity[who] });
        return pipeConnect(toClient, toServer);
      },
      close: async () => {},
    }),
    unix: (server) =>
      perCaller(
        (who) => listenSocket(server, { path: socketPath(`${who}.sock`), authenticate: () => identity[who] }),
        (address) => {
          assert.ok("path" in address);
          return connectUnix(address.path);
        },
      ),
    tcp: (server) =>
      perCaller(
        (who) => listenSocket(server, { port: 0, authenticate: () => identity[who] }),
        (address) => {
          assert.ok("port" in address);
          return connectTcp(address.host, address.port);
        },
      ),
  };
}
