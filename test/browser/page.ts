/**
 * The browser test's page script, bundled by esbuild for the browser: it calls the test's server
 * over WebSocket with the browser entry (what `quiver-rpc/ws/client` resolves to) and writes each
 * result into the page, where the test reads it.
 */
import { connectWebSocketClient, proxy, RpcError } from "../../src/transports/ws/browser.js";
import { Calc } from "./protocol.js";

function show(id: string, text: string): void {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  el.textContent = text;
}

async function main(): Promise<void> {
  const client = await connectWebSocketClient(`ws://${location.host}/ws`);
  const calc = proxy(client, Calc);

  show("add", String(await calc.add({ a: 2, b: 3 })));

  const squares = await calc.squares({ n: 1000n, batch_size: 100n });
  let rows = 0;
  let sum = 0n;
  for await (const row of squares) {
    rows++;
    sum += row.square;
  }
  show("squares", `total ${squares.header.total}, ${rows} rows, sum ${sum}`);

  const session = await calc.running_sum();
  const sums: string[] = [];
  for (const xs of [[1, 2], [3], [4, 5, 6]]) {
    for (const out of await session.exchange(xs.map((x) => ({ x })))) sums.push(`${out.sum}/${out.count}`);
  }
  await session.close();
  show("running", sums.join(" "));

  try {
    show("error", `no error: ${await calc.divide({ a: 1, b: 0 })}`);
  } catch (err) {
    show(
      "error",
      err instanceof RpcError
        ? `RpcError ${err.type} ${err.code} ${err.kind}: ${err.message}`
        : `not an RpcError: ${String(err)}`,
    );
  }

  show("whoami", await calc.whoami());
  await client.close();
  show("status", "done");
}

main().catch((err: unknown) => {
  show("status", `failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
