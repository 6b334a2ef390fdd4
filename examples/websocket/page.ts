// The browser side (type-checked, not run by the smoke test). Bundle it for a page with e.g.
//   npx esbuild examples/websocket/page.ts --bundle --format=esm --platform=browser --outfile=page.js
// and serve it from the same origin as the WebSocket endpoint. A browser cannot set upgrade
// headers: authenticate it with a cookie, which the server's `authenticate` reads.
import { connectWebSocketClient, proxy, RpcError } from "quiver-rpc/ws/client";
import { Squares } from "./protocol.js";

const client = await connectWebSocketClient(`ws://${location.host}/ws`);
const squares = proxy(client, Squares);
try {
  document.body.textContent = String(await squares.add({ a: 2, b: 3 }));
  for await (const row of await squares.squares({ n: 10n })) console.log(row.square);
} catch (err) {
  if (err instanceof RpcError) console.log(err.type, err.code, err.kind, err.message);
} finally {
  await client.close();
}
