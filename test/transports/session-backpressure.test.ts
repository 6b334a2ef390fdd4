/**
 * Backpressure on the session transports (TCP, WebSocket, a pipe): a peer that sends request after
 * request and never reads gets one or two answers produced, because the session writes an answer
 * and waits for the transport to take it (socket 'drain', WebSocket `bufferedAmount`) before it
 * reads the next request, and reading pauses at the transport's read high-water mark. No timings
 * are asserted: the tests count handler invocations after a call on another connection completed.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection } from "node:net";
import { PassThrough, Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { connectTcp } from "../../src/transports/socket/client.js";
import { listenSocket, type SocketServer } from "../../src/transports/socket/server.js";
import { serveStdio } from "../../src/transports/stdio/server.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket, type WebSocketListener } from "../../src/transports/ws/server.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { requestBytes } from "../helpers/raw-peer.js";

const P = "quiver.SessionBackpressureTest.v1";
/** Far more than loopback socket buffers and the transports' high-water marks take. */
const BIG = 16 * 1024 * 1024;
const REQUESTS = 20;

const Proto = defineProtocol(
  P,
  { version: "1.0.0" },
  {
    blob: unary({ n: t.int64() }, t.binary()),
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
  },
);

/** Twenty `blob` requests of 16 MiB answers, back to back. */
const pipelined = concatBytes(
  Array.from({ length: REQUESTS }, () =>
    concatBytes(requestBytes("blob", Proto.methods.blob.params, { n: [BigInt(BIG)] }, {}, P, "1.0.0")),
  ),
);

/** Waits (yielding to the event loop) until `ready` holds; the test's timeout bounds it. */
async function until(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("session transports under a peer that never reads", { timeout: 60_000 }, () => {
  let produced = 0;
  let server: RpcServer;
  let tcp: SocketServer;
  let ws: WebSocketListener;
  let other: RpcClient;

  before(async () => {
    server = createServer({
      protocols: [
        bind(Proto, {
          blob: ({ n }) => {
            produced++;
            return new Uint8Array(Number(n));
          },
          add: ({ a, b }) => a + b,
        }),
      ],
    });
    tcp = await listenSocket(server, { port: 0 });
    ws = await listenWebSocket(server, { port: 0 });
    const { host, port } = tcp.address as { host: string; port: number };
    other = await connectTcp(host, port);
  });
  after(async () => {
    await other.close();
    await Promise.all([tcp.close(), ws.close()]);
  });

  /** After the first answer, another connection's call completes; then the count is checked. */
  const assertHeldBack = async (leave: () => void) => {
    await until(() => produced >= 1);
    assert.equal(await proxy(other, Proto).add({ a: 1, b: 2 }), 3);
    assert.ok(produced <= 2, `${produced} answers produced for a peer that reads none`);
    leave();
    assert.equal(await proxy(other, Proto).add({ a: 2, b: 2 }), 4);
    assert.ok(produced <= 2, `${produced} answers produced after the peer left`);
  };

  it("over TCP, produces one or two answers and reads no further requests", async () => {
    produced = 0;
    const { host, port } = tcp.address as { host: string; port: number };
    const peer = createConnection({ host, port });
    peer.on("error", () => {});
    await once(peer, "connect");
    peer.pause();
    peer.write(pipelined);
    await assertHeldBack(() => peer.destroy());
  });

  it("over a WebSocket, produces one or two answers and reads no further requests", async () => {
    produced = 0;
    const peer = new WebSocket(ws.url);
    peer.on("error", () => {});
    await once(peer, "open");
    peer.pause();
    for (let at = 0; at < pipelined.byteLength; at += 64 * 1024) peer.send(pipelined.subarray(at, at + 64 * 1024));
    await assertHeldBack(() => peer.terminate());
    const client = await connectWebSocketClient(ws.url);
    assert.equal(await proxy(client, Proto).add({ a: 3, b: 4 }), 7);
    await client.close();
  });

  it("over a pipe whose reader stopped, produces one or two answers and reads no further requests", async () => {
    produced = 0;
    const input = new PassThrough();
    // A pipe nobody drains: it takes its high-water mark and then never calls back.
    const output = new Writable({ highWaterMark: 64 * 1024, write: () => {} });
    // Its last write fails once the pipe is destroyed: the session ends with that error.
    const served = serveStdio(server, { input, output, sharedMemory: false }).catch(() => {});
    input.write(pipelined);
    await assertHeldBack(() => {
      input.end();
      output.destroy();
    });
    await served;
  });
});
