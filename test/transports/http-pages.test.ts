/**
 * The HTTP transport's HTML pages: the landing page and the API page (methods, kinds, fields and
 * security from the declarations), escaped, behind authentication, and off on request.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AuthFailure, authenticated } from "../../src/auth/types.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createHttpHandler, type HttpServerOptions, type UniversalRequest } from "../../src/transports/http/index.js";
import { escapeHtml } from "../../src/transports/http/pages.js";
import { concatBytes } from "../../src/wire/ipc.js";

const Shop = defineProtocol(
  "acme.Shop.v2",
  { version: "2.1.0" },
  {
    price: unary({ sku: t.utf8(), "qty<n>": t.int32() }, t.float64(), { security: { bearer: ["shop:read"] } }),
    feed: producer({ n: t.int64() }, { output: { sku: t.utf8() }, header: { total: t.int64() } }),
    adjust: exchange({}, { input: { delta: t.float64() }, output: { total: t.float64() } }),
  },
);

function handler(options: HttpServerOptions = {}, reflection = true) {
  const server = createServer({
    serverId: "abc123",
    reflection,
    securitySchemes: { bearer: { type: "bearer" } },
    protocols: [
      bind(Shop, {
        price: () => 1,
        feed: { init: () => ({ header: { total: 0n } }), produce: (_s, out) => out.finish() },
        adjust: { init: () => ({}), process: (_s, _i, out) => out.finish() },
      }),
    ],
  });
  return createHttpHandler(server, options);
}

const get = (path: string, headers: Record<string, string> = {}): UniversalRequest => ({
  method: "GET",
  path,
  headers: new Headers(headers),
  remoteAddr: "127.0.0.1",
  peerCertificate: null,
  readBody: async () => new Uint8Array(0),
});

const text = (body: readonly Uint8Array[]) => new TextDecoder().decode(concatBytes(body));

describe("HTTP pages", () => {
  it("serves the landing page at the prefix, linking the API page and health", async () => {
    const h = handler({ prefix: "/vgi" });
    for (const path of ["/vgi", "/vgi/"]) {
      const res = await h.handle(get(path));
      assert.equal(res.status, 200);
      assert.ok(res.headers.some(([k, v]) => k === "Content-Type" && v === "text/html; charset=utf-8"));
      const html = text(res.body);
      assert.match(html, /<h1>acme\.Shop\.v2<\/h1>/);
      assert.match(html, /server <code>abc123<\/code>/);
      assert.match(html, /href="\/vgi\/describe"/);
      assert.match(html, /href="\/vgi\/health"/);
    }
  });

  it("describes every method: kind, fields with their types, stream schemas, security; names escaped", async () => {
    const res = await handler().handle(get("/describe"));
    assert.equal(res.status, 200);
    const html = text(res.body);
    assert.match(html, /<code>acme\.Shop\.v2<\/code>/);
    assert.match(html, /version 2\.1\.0/);
    assert.match(html, /<b>price<\/b><\/code><span class="kind">unary<\/span>/);
    assert.match(html, /<code>sku<\/code><\/td><td><code>string not null<\/code>/);
    assert.match(html, /<code>qty&#60;n&#62;<\/code>/);
    assert.doesNotMatch(html, /qty<n>/);
    assert.match(html, /<th>security<\/th><td>bearer \(shop:read\)<\/td>/);
    assert.match(html, /<b>feed<\/b><\/code><span class="kind">producer<\/span>.*<th>header<\/th>/s);
    assert.match(html, /<b>adjust<\/b><\/code><span class="kind">exchange<\/span>.*<th>input<\/th>.*delta/s);
    assert.doesNotMatch(html, /Reflection/);
  });

  it("asks for credentials as every route does but /health, and is off with pages: false or without reflection", async () => {
    const secured = handler({
      authenticate: (req) => {
        if (req.headers.get("authorization") !== "Bearer ok") throw new AuthFailure("missing_credential", "no token");
        return authenticated("bearer", "alice");
      },
    });
    assert.equal((await secured.handle(get("/"))).status, 401);
    assert.equal((await secured.handle(get("/describe"))).status, 401);
    assert.equal((await secured.handle(get("/", { authorization: "Bearer ok" }))).status, 200);
    assert.equal((await handler({ pages: false }).handle(get("/"))).status, 404);
    assert.notEqual((await handler({ pages: false }).handle(get("/describe"))).status, 200);
    const noReflection = handler({}, false);
    assert.equal((await noReflection.handle(get("/"))).status, 200);
    assert.doesNotMatch(text((await noReflection.handle(get("/"))).body), /describe/);
    assert.notEqual((await noReflection.handle(get("/describe"))).status, 200);
  });

  it("escapes every character HTML gives a meaning", () => {
    assert.equal(escapeHtml(`<a href="x">&'`), "&#60;a href=&#34;x&#34;&#62;&#38;&#39;");
  });
});
