/**
 * Cross-site protection: the verdict on a request's headers, the HTTP core's 403 and the call's
 * `ctx.csrfVerified`, `requireCsrf`, and the WebSocket upgrade refused for a cookie-carrying page
 * of an untrusted origin. The browser's side is test/browser/cross-origin.test.ts.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { describe, it } from "node:test";
import { crossSitePolicy, crossSiteVerdict, requireCsrf } from "../../src/auth/cross-site.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createHttpHandler, type UniversalRequest } from "../../src/transports/http/index.js";
import { decodeIpcBody } from "../../src/transports/http/ipc-body.js";
import { connectWebSocketClient } from "../../src/transports/ws/client.js";
import { listenWebSocket } from "../../src/transports/ws/server.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { errorFromMetadata } from "../../src/wire/messages.js";
import { requestBytes } from "../helpers/raw-peer.js";

const APP = "https://app.example";
const HOST = "rpc.example:8443";

describe("crossSiteVerdict", () => {
  const policy = crossSitePolicy({ trustedOrigins: [APP] });
  const cases: readonly [string, Record<string, string>, { refused: boolean; csrfVerified: boolean }][] = [
    ["no cookie, any origin", { origin: "https://evil.example" }, { refused: false, csrfVerified: true }],
    [
      "cookie from the server's own origin",
      { cookie: "s=1", origin: `https://${HOST}` },
      { refused: false, csrfVerified: true },
    ],
    ["cookie from a trusted origin", { cookie: "s=1", origin: APP }, { refused: false, csrfVerified: true }],
    [
      "cookie from an untrusted origin",
      { cookie: "s=1", origin: "https://evil.example" },
      { refused: true, csrfVerified: false },
    ],
    ["cookie from an opaque origin", { cookie: "s=1", origin: "null" }, { refused: true, csrfVerified: false }],
    [
      "cookie, cross-site fetch metadata",
      { cookie: "s=1", "sec-fetch-site": "cross-site" },
      { refused: true, csrfVerified: false },
    ],
    [
      "cookie, same-origin fetch metadata",
      { cookie: "s=1", "sec-fetch-site": "same-origin" },
      { refused: false, csrfVerified: true },
    ],
    ["cookie, nothing said, no token", { cookie: "s=1" }, { refused: false, csrfVerified: false }],
    [
      "cookie, matching double-submit token",
      { cookie: "s=1; vgi_csrf=tok-42", "x-vgi-csrf-token": "tok-42" },
      { refused: false, csrfVerified: true },
    ],
    [
      "cookie, wrong double-submit token",
      { cookie: "s=1; vgi_csrf=tok-42", "x-vgi-csrf-token": "tok-43" },
      { refused: false, csrfVerified: false },
    ],
    [
      "cookie, empty double-submit token",
      { cookie: "s=1; vgi_csrf=", "x-vgi-csrf-token": "" },
      { refused: false, csrfVerified: false },
    ],
  ];
  for (const [name, headers, expected] of cases) {
    it(name, () => {
      const verdict = crossSiteVerdict(policy, new Headers({ host: HOST, ...headers }));
      assert.deepEqual({ refused: verdict.refused !== null, csrfVerified: verdict.csrfVerified }, expected);
    });
  }

  it("takes other token names, and refuses a trusted origin that is not an origin", () => {
    const named = crossSitePolicy({ csrfCookie: "xsrf", csrfHeader: "X-XSRF" });
    assert.equal(crossSiteVerdict(named, new Headers({ cookie: "xsrf=a", "x-xsrf": "a" })).csrfVerified, true);
    assert.throws(() => crossSitePolicy({ trustedOrigins: ["https://app.example/"] }), /is not an origin/);
  });
});

describe("requireCsrf", () => {
  it("passes a verified call and refuses another with permission_denied", () => {
    requireCsrf({ csrfVerified: true, method: "transfer" });
    assert.throws(
      () => requireCsrf({ csrfVerified: false, method: "transfer" }),
      (err: unknown) => err instanceof RpcError && err.kind === "permission_denied" && /'transfer'/.test(err.message),
    );
  });
});

const Bank = defineProtocol("quiver.CrossSite.v1", {}, { transfer: unary({}, t.utf8()) });

function bankServer() {
  return createServer({
    protocols: [
      bind(Bank, {
        transfer: (_p, ctx) => {
          requireCsrf(ctx);
          return `moved for ${ctx.auth.principal}`;
        },
      }),
    ],
  });
}

function post(headers: Record<string, string>): UniversalRequest {
  const body = concatBytes(requestBytes("transfer", {}, {}, {}, Bank.name, null));
  return {
    method: "POST",
    path: `/${Bank.name}/transfer`,
    headers: new Headers({ "content-type": "application/vnd.apache.arrow.stream", host: HOST, ...headers }),
    remoteAddr: "127.0.0.1",
    peerCertificate: null,
    readBody: async () => body,
  };
}

describe("cross-site requests over HTTP", () => {
  const handler = createHttpHandler(bankServer(), { trustedOrigins: [APP] });

  it("refuses cookies from an untrusted page's origin with 403, before the handler runs", async () => {
    const res = await handler.handle(post({ cookie: "s=1", origin: "https://evil.example" }));
    assert.equal(res.status, 403);
    const [batch] = (await decodeIpcBody(concatBytes(res.body))).batches;
    const err = errorFromMetadata(batch!.metadata);
    assert.equal(err?.kind, "permission_denied");
    assert.match(err?.message ?? "", /Cross-site request refused: .*"https:\/\/evil\.example"/);
  });

  it("serves a trusted page, and lets the handler refuse a cookie request that proves nothing", async () => {
    const trusted = await handler.handle(post({ cookie: "s=1", origin: APP }));
    assert.equal(trusted.status, 200);
    assert.equal(
      trusted.headers.find(([k]) => k === "X-VGI-RPC-Error"),
      undefined,
    );
    const unproven = await handler.handle(post({ cookie: "s=1" }));
    assert.equal(unproven.status, 200);
    const [batch] = (await decodeIpcBody(concatBytes(unproven.body))).batches;
    assert.equal(errorFromMetadata(batch!.metadata)?.kind, "permission_denied");
    const token = await handler.handle(post({ cookie: "s=1; vgi_csrf=t1", "x-vgi-csrf-token": "t1" }));
    assert.equal(
      token.headers.find(([k]) => k === "X-VGI-RPC-Error"),
      undefined,
    );
  });
});

/** The status of a WebSocket upgrade request with `headers`. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("cross-site WebSocket upgrades", () => {
  it("refuses a cookie-carrying upgrade from an untrusted page 403, and opens the others", async () => {
    const listener = await listenWebSocket(bankServer(), { host: "127.0.0.1", port: 0, trustedOrigins: [APP] });
    try {
      const url = `http://127.0.0.1:${listener.port}/ws`;
      assert.equal(await upgradeStatus(url, { cookie: "s=1", origin: "https://evil.example" }), 403);
      assert.equal(await upgradeStatus(url, { cookie: "s=1", origin: APP }), 101);
      assert.equal(await upgradeStatus(url, { cookie: "s=1", origin: `http://127.0.0.1:${listener.port}` }), 101);
      assert.equal(await upgradeStatus(url, { origin: "https://evil.example" }), 101);
      // A connection opened with cookies and nothing proving its page: its calls see csrfVerified false.
      const unproven = await connectWebSocketClient(`ws://127.0.0.1:${listener.port}/ws`, {
        headers: { cookie: "s=1" },
      });
      await assert.rejects(
        proxy(unproven, Bank).transfer({}),
        (err: unknown) => err instanceof RpcError && err.kind === "permission_denied",
      );
      await unproven.close();
      const plain = await connectWebSocketClient(`ws://127.0.0.1:${listener.port}/ws`, { headers: {} });
      assert.equal(await proxy(plain, Bank).transfer({}), "moved for ");
      await plain.close();
    } finally {
      await listener.close();
    }
  });
});
