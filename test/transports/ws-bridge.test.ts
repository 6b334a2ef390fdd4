/** `quiver bridge --ws URL`: a pipe client reaches a WebSocket server through the bridge process. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";

const Svc = defineProtocol(
  "test.Bridge.v1",
  {},
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    transport: unary({}, t.utf8()),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
  },
);

const quiver = new URL("../../src/bin/quiver.ts", import.meta.url).pathname;

function bridge(url: string, stderr: "inherit" | "ignore" = "inherit") {
  return connectSubprocess(process.execPath, ["--import", "tsx", quiver, "bridge", "--ws", url], {
    timeoutMs: 10_000,
    exitTimeoutMs: 3000,
    stderr,
  });
}

test("a pipe client runs calls and a stream through the bridge, and the bridge exits when stdin closes", async () => {
  const server = createServer({
    protocols: [
      bind(Svc, {
        add: ({ a, b }) => a + b,
        transport: (_p, ctx) => ctx.transport,
        count: {
          init: ({ n }) => ({ state: { i: 0n, n } }),
          produce: (s, out) => {
            if (s.i < s.n) out.emit([{ i: s.i++ }]);
            else out.finish();
          },
        },
      }),
    ],
  });
  const listener = await listenWebSocket(server);
  try {
    const client = await bridge(listener.url);
    const exited = new Promise<number | null>((resolve) => client.process.once("exit", (code) => resolve(code)));
    const api = proxy(client, Svc);
    assert.equal(await api.add({ a: 40, b: 2 }), 42);
    assert.equal(await api.transport(), "ws");
    assert.equal((await (await api.count({ n: 5n })).toArray()).length, 5);
    await client.close();
    assert.equal(await exited, 0);
  } finally {
    await listener.close();
  }
});

test("a bridge that cannot reach its WebSocket fails the pipe client's call with transport_error", async () => {
  const client = await bridge("ws://127.0.0.1:1/ws", "ignore");
  await assert.rejects(
    proxy(client, Svc).add({ a: 1, b: 1 }),
    (e: unknown) => e instanceof RpcError && e.kind === "transport_error",
  );
  await client.close().catch(() => {});
});
