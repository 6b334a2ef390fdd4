/**
 * The cross-origin page of the CORS browser test: calls the quiver HTTP service named in the
 * page's `data-rpc` attribute with the fetch-based HTTP client, and writes what happened.
 */

import { proxy } from "../../src/client/typed.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { Calc } from "./protocol.js";

const out = (id: string, text: string): void => {
  const el = document.getElementById(id);
  if (el !== null) el.textContent = text;
};

async function main(): Promise<void> {
  const url = document.body.dataset.rpc ?? "";
  const client = connectHttp(url, { fetch: (input, init) => fetch(input, init) });
  const calc = proxy(client, Calc);
  try {
    out("add", String(await calc.add({ a: 2, b: 3 })));
  } catch (err) {
    out("add", `failed: ${(err as Error).name}: ${(err as Error).message}`);
  }
  try {
    out("whoami", await calc.whoami({}));
  } catch (err) {
    out("whoami", `failed: ${(err as Error).name}`);
  }
  out("status", "done");
}

main().catch((err: unknown) => out("status", `error: ${String(err)}`));
