/**
 * Our server over every transport — the session ones (`memory`, `pipe`, `unix`, `tcp`, from
 * session-harness.ts), a WebSocket and HTTP — with each caller named per connection: the session
 * transports carry the caller's context, the WebSocket upgrade and HTTP requests name it in an
 * `x-caller` header their `authenticate` reads.
 */
import type { CallChannel } from "../../src/client/transport.js";
import type { AuthContext } from "../../src/protocol/context.js";
import type { RpcServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";
import { connectWebSocketClient, listenWebSocket } from "../../src/transports/ws/index.js";
import { type Harness, type HarnessFactory, sessionHarnesses } from "./session-harness.js";

export const ALL_TRANSPORTS = ["memory", "pipe", "unix", "tcp", "ws", "http"] as const;
export type TransportName = (typeof ALL_TRANSPORTS)[number];

/** A harness factory per transport for the callers in `identity`. */
export function allHarnesses<Who extends string>(
  identity: Readonly<Record<Who, AuthContext>>,
): Record<TransportName, HarnessFactory<Who>> {
  const byHeader = (request: { readonly headers: Headers }): AuthContext => {
    const who = request.headers.get("x-caller");
    if (who === null || !Object.hasOwn(identity, who)) throw new Error("unknown caller");
    return identity[who as Who];
  };
  return {
    ...sessionHarnesses(identity),
    ws: async (server: RpcServer): Promise<Harness<Who>> => {
      const listener = await listenWebSocket(server, { port: 0, authenticate: byHeader });
      return {
        connect: (who) => connectWebSocketClient(listener.url, { headers: { "x-caller": who } }),
        close: () => listener.close(),
      };
    },
    http: async (server: RpcServer): Promise<Harness<Who>> => {
      const listener = await listenHttp(server, { port: 0, authenticate: byHeader });
      return {
        connect: async (who): Promise<CallChannel & { close(): Promise<void> }> =>
          // No retries: a refusal (429) surfaces at once instead of being retried after its delay.
          connectHttp(listener.url, { headers: { "x-caller": who }, retry: false }),
        close: () => listener.close(),
      };
    },
  };
}
