/**
 * CORS on the HTTP transport, through the core (`handler.handle`): off by default, the allowed
 * origins' answers and preflights, wildcard and credentials, and the options refused at
 * construction. The browser's side of it is test/browser/http-cors.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import {
  type CorsOptions,
  createHttpHandler,
  type UniversalRequest,
  type UniversalResponse,
} from "../../src/transports/http/index.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { requestBytes } from "../helpers/raw-peer.js";

const Calc = defineProtocol("quiver.Cors.v1", {}, { add: unary({ a: t.float64(), b: t.float64() }, t.float64()) });
const APP = "https://app.example";

function handler(cors?: CorsOptions) {
  const server = createServer({ protocols: [bind(Calc, { add: ({ a, b }) => a + b })] });
  return createHttpHandler(server, { compressResponses: false, ...(cors === undefined ? {} : { cors }) });
}

function request(method: string, path: string, headers: Record<string, string>): UniversalRequest {
  const body = concatBytes(requestBytes("add", Calc.methods.add.params, { a: [1], b: [2] }, {}, Calc.name, null));
  return {
    method,
    path,
    headers: new Headers(headers),
    remoteAddr: "127.0.0.1",
    peerCertificate: null,
    readBody: async () => body,
  };
}

const call = (origin?: string) =>
  request("POST", `/${Calc.name}/add`, {
    "content-type": "application/vnd.apache.arrow.stream",
    ...(origin === undefined ? {} : { origin }),
  });

const preflight = (origin: string, headers = "content-type, vgi-session") =>
  request("OPTIONS", `/${Calc.name}/add`, {
    origin,
    "access-control-request-method": "POST",
    "access-control-request-headers": headers,
  });

function header(res: UniversalResponse, name: string): string | undefined {
  const found = res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  assert.ok(found.length <= 1, `${name} sent ${found.length} times`);
  return found[0];
}

const CORS_HEADERS = [
  "access-control-allow-origin",
  "access-control-allow-credentials",
  "access-control-expose-headers",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-max-age",
  "cross-origin-resource-policy",
];

describe("CORS on the HTTP transport", () => {
  it("is off by default: no CORS header on a call or a preflight from any origin", async () => {
    const h = handler();
    for (const res of [await h.handle(call(APP)), await h.handle(preflight(APP))]) {
      for (const name of CORS_HEADERS) assert.equal(header(res, name), undefined, name);
    }
  });

  it("answers an allowed origin's call with the origin, Vary and every capability header exposed", async () => {
    const res = await handler({ origins: [APP] }).handle(call(APP));
    assert.equal(res.status, 200);
    assert.equal(header(res, "access-control-allow-origin"), APP);
    assert.equal(header(res, "vary"), "Origin");
    assert.equal(header(res, "access-control-allow-credentials"), undefined);
    assert.equal(header(res, "cross-origin-resource-policy"), "cross-origin");
    const exposed = new Set(
      header(res, "access-control-expose-headers")!
        .split(",")
        .map((s) => s.trim().toLowerCase()),
    );
    for (const name of ["x-vgi-rpc-error", "vgi-auth-reason", "x-request-id", "www-authenticate"]) {
      assert.ok(exposed.has(name), name);
    }
    for (const [name] of res.headers) {
      if (/^(x-)?vgi-/i.test(name)) assert.ok(exposed.has(name.toLowerCase()), `${name} is sent but not exposed`);
    }
  });

  it("answers an allowed origin's preflight with the route's methods, the asked headers and the max age", async () => {
    const res = await handler({ origins: [APP], maxAgeSeconds: 600 }).handle(preflight(APP));
    assert.equal(res.status, 200);
    assert.equal(header(res, "access-control-allow-origin"), APP);
    assert.equal(header(res, "access-control-allow-methods"), "POST, OPTIONS");
    assert.equal(header(res, "access-control-allow-headers"), "content-type, vgi-session");
    assert.equal(header(res, "access-control-max-age"), "600");
    assert.equal(header(res, "allow"), undefined);
  });

  it("gives another origin nothing but the resource policy, and still answers its call", async () => {
    const h = handler({ origins: [APP] });
    for (const res of [
      await h.handle(call("https://evil.example")),
      await h.handle(preflight("https://evil.example")),
    ]) {
      for (const name of CORS_HEADERS.filter((n) => n !== "cross-origin-resource-policy")) {
        assert.equal(header(res, name), undefined, name);
      }
      assert.equal(header(res, "cross-origin-resource-policy"), "cross-origin");
    }
    // Without an Origin (not a browser's cross-origin request) the call is served as ever.
    const plain = await h.handle(call());
    assert.equal(plain.status, 200);
    assert.equal(header(plain, "access-control-allow-origin"), undefined);
  });

  it("answers * for a wildcard, and the origin itself with credentials when they are allowed", async () => {
    const any = await handler({ origins: "*" }).handle(call("https://any.example"));
    assert.equal(header(any, "access-control-allow-origin"), "*");
    assert.equal(header(any, "vary"), undefined);
    const creds = await handler({ origins: "*", credentials: [APP], resourcePolicy: null }).handle(call(APP));
    assert.equal(header(creds, "access-control-allow-origin"), APP);
    assert.equal(header(creds, "access-control-allow-credentials"), "true");
    assert.equal(header(creds, "cross-origin-resource-policy"), undefined);
  });

  it("refuses unusable options when the handler is made", () => {
    assert.throws(() => handler({ origins: [APP, "*"] }), /"\*" is allowed only as the whole value/);
    assert.throws(() => handler({ origins: ["https://app.example/path"] }), /is not an origin/);
    assert.throws(() => handler({ origins: "app.example" as unknown as "*" }), /must be "\*" or an array/);
    assert.throws(() => handler({ origins: [APP], maxAgeSeconds: -1 }), /maxAgeSeconds/);
  });
});
