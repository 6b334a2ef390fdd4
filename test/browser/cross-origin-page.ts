/**
 * The page of the cross-origin browser test: calls the quiver service named in the page's
 * `data-http` and `data-ws` attributes, over HTTP with the fetch-based client (sending the user's
 * cookies) and over WebSocket with the browser client, and writes what happened.
 */
import { proxy } from "../../src/client/typed.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { connectWebSocketClient } from "../../src/transports/ws/browser.js";
import { Calc } from "./protocol.js";

const out = (id: string, text: string): void => {
  const el = document.getElementById(id);
  if (el !== null) el.textContent = text;
};

const failure = (err: unknown): string => `failed: ${(err as Error).name}: ${(err as Error).message}`;

async function main(): Promise<void> {
  const http = connectHttp(document.body.dataset.http ?? "", {
    fetch: (input, init) => fetch(input, { ...init, credentials: "include" }),
  });
  const calc = proxy(http, Calc);
  out("add", await calc.add({ a: 2, b: 3 }).then(String, failure));
  out("http-whoami", await calc.whoami({}).then(String, failure));
  try {
    const ws = await connectWebSocketClient(document.body.dataset.ws ?? "");
    out("ws-whoami", await proxy(ws, Calc).whoami({}).then(String, failure));
  } catch (err) {
    out("ws-whoami", failure(err));
  }
  out("status", "done");
}

main().catch((err: unknown) => out("status", `error: ${String(err)}`));
