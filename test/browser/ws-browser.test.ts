/**
 * A real browser calls quiver: headless Chromium (Debian's `chromium`, driven by `playwright-core`)
 * loads a page whose script, bundled for the browser by esbuild from the browser entry
 * (`quiver-rpc/ws/client`), calls the server over WebSocket and writes the results into the page.
 *
 * Chromium is required, never skipped: without it this test fails with how to install it
 * (`.ci/run` installs it on a fresh machine). `QUIVER_CHROMIUM` overrides its path.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { AuthFailure, authenticated } from "../../src/auth/types.js";
import { RpcError } from "../../src/errors.js";
import { bind, createServer } from "../../src/server/server.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { bundleForBrowser, launchBrowser, serveText } from "./harness.js";
import { Calc } from "./protocol.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
/** Where the screenshot of the finished page goes (git-ignored). */
const screenshotPath = join(root, ".browser-test", "ws-browser.png");

test("the browser bundle fails on any Node built-in module it reaches", async () => {
  for (const name of ["node:fs", "fs", "stream/web"]) {
    await assert.rejects(
      bundleForBrowser(`import * as m from "${name}";\nconsole.log(m);\n`),
      new RegExp(`reaches the Node module '${name}' \\(imported by test/browser/inline\\.ts\\)`),
    );
  }
});

test("a page in headless Chromium calls a quiver service over WebSocket with the browser client", {
  timeout: 90_000,
}, async () => {
  const pageJs = await bundleForBrowser();
  const html = readFileSync(join(here, "index.html"), "utf8");

  const rpc = createServer({
    protocols: [
      bind(Calc, {
        add: ({ a, b }) => a + b,
        divide: ({ a, b }) => {
          if (b === 0) {
            throw new RpcError("cannot divide by zero", {
              type: "ZeroDivisionError",
              code: "INVALID_ARGUMENT",
              kind: "division_by_zero",
            });
          }
          return a / b;
        },
        whoami: (_p, ctx) =>
          `${ctx.transport} ${ctx.auth.principal} ${ctx.transportMetadata.user_agent ?? "(no user agent)"}`,
        squares: {
          init: ({ n, batch_size }) => ({ header: { total: n }, state: { next: 0n, n, batch_size } }),
          produce: (s, out) => {
            if (s.next >= s.n) return out.finish();
            const rows: { i: bigint; square: bigint }[] = [];
            for (; s.next < s.n && BigInt(rows.length) < s.batch_size; s.next++) {
              rows.push({ i: s.next, square: s.next * s.next });
            }
            out.emit(rows);
          },
        },
        running_sum: {
          init: () => ({ state: { sum: 0, count: 0n } }),
          process: (s, input, out) => {
            for (const x of input.column("x")) {
              s.sum += x;
              s.count++;
            }
            out.emit([{ sum: s.sum, count: s.count }]);
          },
        },
      }),
    ],
  });
  const listener = await listenWebSocket(rpc, {
    host: "127.0.0.1",
    port: 0,
    path: "/ws",
    // A browser cannot set upgrade headers; it sends the page's cookie with the upgrade.
    authenticate: (req) => {
      const session = /(?:^|;\s*)quiver_session=([^;]+)/.exec(req.headers.get("cookie") ?? "")?.[1];
      if (session === undefined) throw new AuthFailure("missing_credential", "no quiver_session cookie");
      return authenticated("cookie", session);
    },
    onRequest: (req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path === "/") {
        res.setHeader("set-cookie", "quiver_session=page-visitor; Path=/; SameSite=Strict; HttpOnly");
        serveText(res, 200, "text/html", html);
      } else if (path === "/page.js") serveText(res, 200, "text/javascript", pageJs);
      else serveText(res, 404, "text/plain", "not found");
    },
  });
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    browser = await launchBrowser();
    const page = browser.page;
    const problems: string[] = [];
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
    });

    await page.goto(`http://127.0.0.1:${listener.port}/`, { timeout: 15_000 });
    await page
      .waitForFunction(() => document.getElementById("status")?.textContent !== "running", null, {
        timeout: 30_000,
      })
      .catch((err: unknown) => {
        // A page that never finishes usually threw at load: say what it reported.
        throw new Error(`the page did not finish: ${String(err)}\n${problems.join("\n")}`);
      });
    const text = async (id: string): Promise<string> => (await page.textContent(`#${id}`, { timeout: 1000 })) ?? "";
    mkdirSync(dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });

    assert.equal(await text("status"), "done", problems.join("\n"));
    assert.equal(await text("add"), "5");
    // 0² + 1² + … + 999² = 999·1000·1999/6
    assert.equal(await text("squares"), "total 1000, 1000 rows, sum 332833500");
    assert.equal(await text("running"), "3/2 6/3 21/6");
    assert.equal(
      await text("error"),
      "RpcError ZeroDivisionError INVALID_ARGUMENT division_by_zero: cannot divide by zero",
    );
    assert.match(await text("whoami"), /^ws page-visitor Mozilla\/5\.0 .*HeadlessChrome\//);
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close();
    await listener.close();
  }
});
