/**
 * The HTTP transport without an HTTP server: the pure route parser, and the core through
 * `handler.handle` on `UniversalRequest` values (what an adapter to another runtime would call).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createHttpHandler, type UniversalRequest, type UniversalResponse } from "../../src/transports/http/index.js";
import { decodeIpcBody } from "../../src/transports/http/ipc-body.js";
import { parseRoute, type Route } from "../../src/transports/http/routes.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { errorFromMetadata } from "../../src/wire/messages.js";
import { requestBytes } from "../helpers/raw-peer.js";

describe("parseRoute", () => {
  const cases: readonly (readonly [string, string, string, Route])[] = [
    ["GET", "/vgi/health", "/vgi", { kind: "health", head: false }],
    ["HEAD", "/vgi/health", "/vgi", { kind: "health", head: true }],
    ["OPTIONS", "/vgi/health", "/vgi", { kind: "options", allow: "GET, HEAD, OPTIONS" }],
    ["POST", "/vgi/health", "/vgi", { kind: "method-not-allowed", allow: "GET, HEAD, OPTIONS" }],
    ["POST", "/vgi/p.V1/add", "/vgi", { kind: "unary", protocol: "p.V1", method: "add" }],
    ["POST", "/p.V1/count/init", "", { kind: "init", protocol: "p.V1", method: "count" }],
    ["POST", "/p.V1/count/exchange", "", { kind: "exchange", protocol: "p.V1", method: "count" }],
    ["POST", "/__describe__", "", { kind: "reserved", method: "__describe__" }],
    ["POST", "/describe", "", { kind: "not-found" }],
    ["OPTIONS", "/describe", "", { kind: "options", allow: "POST, OPTIONS" }],
    ["GET", "/describe", "", { kind: "method-not-allowed", allow: "POST, OPTIONS" }],
    ["GET", "/p.V1/add", "", { kind: "method-not-allowed", allow: "POST", ifHosted: "p.V1" }],
    ["PUT", "/p.V1/add", "", { kind: "method-not-allowed", allow: "GET, POST, OPTIONS" }],
    ["GET", "/p.V1/add/init", "", { kind: "method-not-allowed", allow: "POST, OPTIONS" }],
    ["POST", "/p.V1/add/other", "", { kind: "not-found" }],
    ["POST", "//add", "", { kind: "not-found" }],
    ["POST", "/p.V1/", "", { kind: "not-found" }],
    ["POST", "/", "", { kind: "not-found" }],
    ["POST", "/vgi", "/vgi", { kind: "not-found" }],
    ["POST", "/vgix/p.V1/add", "/vgi", { kind: "not-found" }],
    ["POST", "/other/p.V1/add", "/vgi", { kind: "not-found" }],
  ];
  for (const [method, path, prefix, route] of cases) {
    it(`reads ${method} ${path} under '${prefix}' as ${route.kind}`, () => {
      assert.deepEqual(parseRoute(method, path, prefix), route);
    });
  }
});

const Calc = defineProtocol(
  "quiver.HttpCore.v1",
  {},
  { add: unary({ a: t.float64(), b: t.float64() }, t.float64()), fail: unary({}, t.float64()) },
);

function handler() {
  return createHttpHandler(
    createServer({
      protocols: [
        bind(Calc, {
          add: ({ a, b }) => a + b,
          fail: () => {
            throw new RangeError("no");
          },
        }),
      ],
    }),
    { compressResponses: false, maxRequestBytes: 1024 },
  );
}

function request(path: string, body: Uint8Array | { tooLarge: number } | Error, headers = {}): UniversalRequest {
  return {
    method: "POST",
    path,
    headers: new Headers({ "content-type": "application/vnd.apache.arrow.stream", ...headers }),
    remoteAddr: "10.0.0.1",
    peerCertificate: null,
    readBody: async () => {
      if (body instanceof Error) throw body;
      return body;
    },
  };
}

function header(res: UniversalResponse, name: string): string[] {
  return res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

async function batchesOf(res: UniversalResponse) {
  return (await decodeIpcBody(concatBytes(res.body))).batches;
}

describe("the core on universal requests", () => {
  it("answers a unary call with its result, the request id echoed and the capability headers", async () => {
    const body = concatBytes(requestBytes("add", Calc.methods.add.params, { a: [1], b: [2] }, {}, Calc.name, null));
    const res = await handler().handle(request(`/${Calc.name}/add`, body, { "x-request-id": "req-1" }));
    assert.equal(res.status, 200);
    assert.deepEqual(header(res, "content-type"), ["application/vnd.apache.arrow.stream"]);
    assert.deepEqual(header(res, "x-request-id"), ["req-1"]);
    assert.deepEqual(header(res, "vgi-max-request-bytes"), ["1024"]);
    assert.deepEqual(header(res, "x-vgi-rpc-error"), []);
    const [result] = await batchesOf(res);
    assert.equal(result!.getChildAt(0)!.get(0), 3);
  });

  it("answers a method error 200 with X-VGI-RPC-Error and the error batch", async () => {
    const body = concatBytes(requestBytes("fail", {}, {}, {}, Calc.name, null));
    const res = await handler().handle(request(`/${Calc.name}/fail`, body));
    assert.equal(res.status, 200);
    assert.deepEqual(header(res, "x-vgi-rpc-error"), ["true"]);
    const batches = await batchesOf(res);
    const err = errorFromMetadata(batches.at(-1)!.metadata);
    assert.equal(err.type, "RangeError");
    assert.equal(err.message, "no");
  });

  it("answers a body its reader refused for its size 413, and one it could not read 400, in JSON", async () => {
    const big = await handler().handle(request(`/${Calc.name}/add`, { tooLarge: 5000 }));
    assert.equal(big.status, 413);
    assert.deepEqual(header(big, "content-type"), ["application/json"]);
    assert.match(new TextDecoder().decode(concatBytes(big.body)), /at least 5000 bytes/);
    const broken = await handler().handle(request(`/${Calc.name}/add`, new Error("connection reset")));
    assert.equal(broken.status, 400);
    assert.match(new TextDecoder().decode(concatBytes(broken.body)), /connection reset/);
  });

  it("answers routes that run no call without reading the body", async () => {
    const h = handler();
    const unread = { ...request("/health", new Uint8Array(0)), method: "GET" };
    unread.readBody = () => Promise.reject(new Error("read"));
    const health = await h.handle(unread);
    assert.equal(health.status, 200);
    assert.match(new TextDecoder().decode(concatBytes(health.body)), /"status":"ok"/);
    const missing = await h.handle({ ...unread, path: "/nowhere/at/all/here" });
    assert.equal(missing.status, 404);
  });
});
