// WebSocket: HTTP and WebSocket on one port; a Node client calls a unary method and a producer
// over one WebSocket connection. page.ts is the same client in a browser.
import { bind, createServer, proxy } from "quiver-rpc";
import { listenHttp } from "quiver-rpc/http";
import { attachWebSocket, connectWebSocketClient } from "quiver-rpc/ws";
import { Squares } from "./protocol.js";

const server = createServer({
  protocols: [
    bind(Squares, {
      add: ({ a, b }) => a + b,
      squares: {
        init: ({ n }) => ({ state: { i: 0n, n } }),
        produce: (s, out) => {
          if (s.i === s.n) return out.finish();
          out.emit([{ square: s.i * s.i }]);
          s.i++;
        },
      },
    }),
  ],
});

const http = await listenHttp(server, { port: 0 });
const ws = attachWebSocket(http.server, server, { path: "/ws" });
const url = `ws://127.0.0.1:${http.port}/ws`;

const client = await connectWebSocketClient(url);
const squares = proxy(client, Squares);
console.log(`add: ${await squares.add({ a: 2, b: 3 })}`);
const rows: bigint[] = [];
for await (const row of await squares.squares({ n: 5n })) rows.push(row.square);
console.log(`squares: ${rows.join(" ")}`);

await client.close();
await ws.close();
await http.close();
