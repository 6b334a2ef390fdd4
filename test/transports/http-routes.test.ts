/**
 * HTTP routing of methods other than POST, status for status as the reference vgi-rpc==0.52.2
 * answers them (its Falcon routes: `{prefix}/{protocol}` for reserved methods,
 * `{prefix}/{protocol}/{method}` with a GET responder, `/init` and `/exchange` POST only). The
 * table was taken from the reference's app under Falcon's test client.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { type HttpListener, listenHttp } from "../../src/transports/http/index.js";

const P = "quiver.HttpRoutes.v1";
const Proto = defineProtocol(P, {}, { add: unary({ a: t.float64(), b: t.float64() }, t.float64()) });

/** [method, path under the prefix, status, Allow header or null]. */
const TABLE: readonly (readonly [string, string, number, string | null])[] = [
  ["GET", "/foo", 405, "POST, OPTIONS"],
  ["HEAD", "/foo", 405, "POST, OPTIONS"],
  ["PUT", "/foo", 405, "POST, OPTIONS"],
  ["DELETE", "/foo", 405, "POST, OPTIONS"],
  ["GET", "/__describe__", 405, "POST, OPTIONS"],
  ["PATCH", "/__describe__", 405, "POST, OPTIONS"],
  ["GET", "/no.such.Proto/add", 404, null],
  ["GET", `/${P}/add`, 405, "POST"],
  ["HEAD", "/no.such.Proto/add", 405, "GET, POST, OPTIONS"],
  ["PUT", `/${P}/add`, 405, "GET, POST, OPTIONS"],
  ["DELETE", "/no.such.Proto/add", 405, "GET, POST, OPTIONS"],
  ["GET", "/no.such.Proto/add/init", 405, "POST, OPTIONS"],
  ["GET", `/${P}/add/init`, 405, "POST, OPTIONS"],
  ["PUT", "/no.such.Proto/add/exchange", 405, "POST, OPTIONS"],
  ["GET", "/a/b/c", 404, null],
  ["GET", "/a/b/c/d", 404, null],
];

describe("HTTP routes answer other methods than POST as the reference does", () => {
  let l: HttpListener;
  before(async () => {
    l = await listenHttp(createServer({ protocols: [bind(Proto, { add: ({ a, b }) => a + b })] }), {
      prefix: "/vgi",
    });
  });
  after(async () => {
    await l.close();
  });

  for (const [method, path, status, allow] of TABLE) {
    it(`${method} ${path} answers ${status}${allow === null ? "" : ` (Allow: ${allow})`}`, async () => {
      const r = await fetch(`${l.url}/vgi${path}`, { method });
      await r.arrayBuffer();
      assert.equal(r.status, status);
      assert.equal(r.headers.get("allow"), allow);
      if (status === 405 && method !== "HEAD") assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    });
  }

  it("answers 404 to a POST on a one-segment path that is not a reserved method", async () => {
    const r = await fetch(`${l.url}/vgi/foo`, { method: "POST", body: new Uint8Array(0) });
    await r.arrayBuffer();
    assert.equal(r.status, 404);
  });

  it("answers OPTIONS on a one-segment path with 200 and what it allows", async () => {
    const r = await fetch(`${l.url}/vgi/foo`, { method: "OPTIONS" });
    await r.arrayBuffer();
    assert.equal(r.status, 200);
    assert.match(r.headers.get("allow") ?? "", /POST/);
  });
});
