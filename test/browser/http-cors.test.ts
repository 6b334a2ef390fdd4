/**
 * CORS in a real browser: headless Chromium loads a page from one origin whose script calls a
 * quiver HTTP service on another origin (another port) with the fetch-based HTTP client. The
 * service allows one page origin and not the other: the allowed page gets its answers; the other
 * page's calls are stopped by the browser at the preflight, so the service never runs them.
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { bind, createServer } from "../../src/server/server.js";
import { listenHttp } from "../../src/transports/http/listen.js";
import { bundleForBrowser, launchBrowser, serveText } from "./harness.js";
import { Calc } from "./protocol.js";

/** Serves the page (its HTML names the RPC service, once known) and its script on a port of its own: an origin. */
async function pageServer(rpcUrl: () => string, script: string): Promise<{ server: Server; origin: string }> {
  const html = () => `<!doctype html><html><body data-rpc="${rpcUrl()}">
<p>status: <span id="status">running</span></p><p>add: <span id="add"></span></p>
<p>whoami: <span id="whoami"></span></p><script type="module" src="/page.js"></script></body></html>`;
  const server = createHttpServer((req, res) => {
    if (req.url === "/") serveText(res, 200, "text/html", html());
    else if (req.url === "/page.js") serveText(res, 200, "text/javascript", script);
    else serveText(res, 404, "text/plain", "not found");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test("a page on an allowed origin calls a quiver HTTP service cross-origin; a page on another origin cannot", {
  timeout: 120_000,
}, async () => {
  const script = await bundleForBrowser(undefined, "http-cors-page.ts");
  let calls = 0;
  const rpc = createServer({
    protocols: [
      bind(Calc, {
        add: ({ a, b }) => {
          calls++;
          return a + b;
        },
        divide: ({ a, b }) => a / b,
        whoami: (_p, ctx) => {
          calls++;
          return `${ctx.transport} ${ctx.requestId.length}`;
        },
        squares: {
          init: () => ({ header: { total: 0n }, state: { next: 0n, n: 0n, batch_size: 1n } }),
          produce: (_s, out) => out.finish(),
        },
        running_sum: { init: () => ({ state: { sum: 0, count: 0n } }), process: (_s, _i, out) => out.finish() },
      }),
    ],
  });
  // The allowed page's origin is known once its server listens: the pages listen first.
  let rpcUrl = "";
  const pages: { server: Server; origin: string }[] = [];
  let http: Awaited<ReturnType<typeof listenHttp>> | undefined;
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    pages.push(await pageServer(() => rpcUrl, script), await pageServer(() => rpcUrl, script));
    const [allowed, refused] = pages as [(typeof pages)[0], (typeof pages)[0]];
    http = await listenHttp(rpc, { host: "127.0.0.1", port: 0, cors: { origins: [allowed.origin] } });
    rpcUrl = http.url;

    browser = await launchBrowser();
    const page = browser.page;
    const run = async (origin: string): Promise<{ add: string; whoami: string }> => {
      await page.goto(`${origin}/`, { timeout: 15_000 });
      await page.waitForFunction(() => document.getElementById("status")?.textContent !== "running", null, {
        timeout: 30_000,
      });
      const text = async (id: string) => (await page.textContent(`#${id}`, { timeout: 1000 })) ?? "";
      assert.equal(await text("status"), "done");
      return { add: await text("add"), whoami: await text("whoami") };
    };

    const ok = await run(allowed.origin);
    assert.deepEqual(ok, { add: "5", whoami: "http 16" });
    assert.equal(calls, 2);

    const blocked = await run(refused.origin);
    assert.match(blocked.add, /^failed: /);
    assert.match(blocked.whoami, /^failed: /);
    assert.equal(calls, 2, "the service ran a call the browser should have stopped at its preflight");
  } finally {
    await browser?.close();
    await http?.close();
    for (const p of pages) await new Promise((resolve) => p.server.close(resolve));
  }
});
