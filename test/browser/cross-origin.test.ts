/**
 * Pages of other origins in a real browser: headless Chromium signs in to a quiver service (a
 * cookie set by the service's origin), then loads pages from two other origins (other ports of
 * the same host, so the browser sends that cookie with their requests) whose script calls the
 * service over HTTP (fetch, credentials included) and WebSocket. The service allows and trusts
 * one page origin: its page gets its answers as the signed-in user. The other page gets nothing:
 * its HTTP calls stop at the CORS preflight, and its cookie-carrying WebSocket upgrade is refused
 * for its origin (cross-site WebSocket hijacking) before anything authenticates it.
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { AuthFailure, type AuthRequest, authenticated } from "../../src/auth/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createHttpHandler } from "../../src/transports/http/handler.js";
import { attachWebSocket } from "../../src/transports/ws/server.js";
import { bundleForBrowser, launchBrowser, serveText } from "./harness.js";
import { Calc } from "./protocol.js";

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Serves the page (its HTML names the service, once known) and its script: one origin. */
async function pageServer(service: () => string, script: string): Promise<{ server: Server; origin: string }> {
  const server = createHttpServer((req, res) => {
    if (req.url === "/") {
      serveText(
        res,
        200,
        "text/html",
        `<!doctype html><html><body data-http="http://${service()}" data-ws="ws://${service()}/ws">
<p>status: <span id="status">running</span></p><p>add: <span id="add"></span></p>
<p>http: <span id="http-whoami"></span></p><p>ws: <span id="ws-whoami"></span></p>
<script type="module" src="/page.js"></script></body></html>`,
      );
    } else if (req.url === "/page.js") serveText(res, 200, "text/javascript", script);
    else serveText(res, 404, "text/plain", "not found");
  });
  return { server, origin: `http://${await listen(server)}` };
}

test("a page on an allowed origin calls a cookie-authenticated service over HTTP and WebSocket; a page on another origin gets nothing", {
  timeout: 120_000,
}, async () => {
  const script = await bundleForBrowser(undefined, "cross-origin-page.ts");
  let calls = 0;
  let wsAuthentications = 0;
  const cookieAuth = (req: AuthRequest) => {
    const session = /(?:^|;\s*)quiver_session=([^;]+)/.exec(req.headers.get("cookie") ?? "")?.[1];
    if (session === undefined) throw new AuthFailure("missing_credential", "no quiver_session cookie");
    return authenticated("cookie", session);
  };
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
          return `${ctx.transport} ${ctx.auth.principal} csrf=${ctx.csrfVerified}`;
        },
        squares: {
          init: () => ({ header: { total: 0n }, state: { next: 0n, n: 0n, batch_size: 1n } }),
          produce: (_s, out) => out.finish(),
        },
        running_sum: { init: () => ({ state: { sum: 0, count: 0n } }), process: (_s, _i, out) => out.finish() },
      }),
    ],
  });
  let service = "";
  const pages = [await pageServer(() => service, script), await pageServer(() => service, script)];
  const [allowed, refused] = pages as [(typeof pages)[0], (typeof pages)[0]];
  const handler = createHttpHandler(rpc, {
    authenticate: cookieAuth,
    cors: { origins: [allowed.origin], credentials: [allowed.origin] },
  });
  const httpServer = createHttpServer((req, res) => {
    // Signing in: the service's own origin sets the session cookie.
    if (req.url === "/login") {
      res.setHeader("set-cookie", "quiver_session=visitor; Path=/; SameSite=Lax; HttpOnly");
      serveText(res, 200, "text/plain", "signed in");
    } else handler(req, res);
  });
  const ws = attachWebSocket(httpServer, rpc, {
    authenticate: (req) => {
      wsAuthentications++;
      return cookieAuth(req);
    },
    trustedOrigins: [allowed.origin],
  });
  service = await listen(httpServer);
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    browser = await launchBrowser();
    const page = browser.page;
    await page.goto(`http://${service}/login`, { timeout: 15_000 });
    const run = async (origin: string) => {
      await page.goto(`${origin}/`, { timeout: 15_000 });
      await page.waitForFunction(() => document.getElementById("status")?.textContent !== "running", null, {
        timeout: 30_000,
      });
      const text = async (id: string) => (await page.textContent(`#${id}`, { timeout: 1000 })) ?? "";
      assert.equal(await text("status"), "done");
      return { add: await text("add"), http: await text("http-whoami"), ws: await text("ws-whoami") };
    };

    const ok = await run(allowed.origin);
    assert.deepEqual(ok, { add: "5", http: "http visitor csrf=true", ws: "ws visitor csrf=true" });
    assert.equal(calls, 3);
    assert.equal(wsAuthentications, 1);

    const blocked = await run(refused.origin);
    for (const result of Object.values(blocked)) assert.match(result, /^failed: /);
    assert.equal(calls, 3, "the service ran a call from the untrusted page");
    assert.equal(wsAuthentications, 1, "the untrusted page's upgrade reached authentication");
  } finally {
    await browser?.close();
    await ws.close();
    await handler.close();
    await new Promise((resolve) => httpServer.close(resolve));
    for (const p of pages) await new Promise((resolve) => p.server.close(resolve));
  }
});
