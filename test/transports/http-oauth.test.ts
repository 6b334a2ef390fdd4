/**
 * OAuth discovery (RFC 9728) on the HTTP transport: the protected-resource metadata served without
 * credentials, every 401's `WWW-Authenticate` naming it, the issuers and resource taken from the
 * JWT authenticator, and the options refused at construction.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chainAuthenticate, jwtAuthenticate } from "../../src/auth/factories.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import {
  createHttpHandler,
  type HttpServerOptions,
  type UniversalRequest,
  type UniversalResponse,
} from "../../src/transports/http/index.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { requestBytes } from "../helpers/raw-peer.js";

const Echo = defineProtocol("quiver.OAuth.v1", {}, { ping: unary({}, t.utf8()) });
const jwt = () =>
  jwtAuthenticate({ issuer: "https://login.example", audience: "https://api.example/vgi", jwks: { keys: [] } });

function handler(options: HttpServerOptions) {
  return createHttpHandler(createServer({ protocols: [bind(Echo, { ping: () => "pong" })] }), options);
}

function request(method: string, path: string, headers: Record<string, string> = {}): UniversalRequest {
  const body = concatBytes(requestBytes("ping", {}, {}, {}, Echo.name, null));
  return {
    method,
    path,
    headers: new Headers({ "content-type": "application/vnd.apache.arrow.stream", ...headers }),
    remoteAddr: "127.0.0.1",
    peerCertificate: null,
    readBody: async () => body,
  };
}

const header = (res: UniversalResponse, name: string) =>
  res.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const json = (res: UniversalResponse) => JSON.parse(new TextDecoder().decode(concatBytes(res.body)));

describe("OAuth discovery", () => {
  it("serves the metadata from the JWT authenticator's issuer and audience, without credentials", async () => {
    const h = handler({ prefix: "/vgi", authenticate: jwt(), oauthResource: true });
    const res = await h.handle(request("GET", "/.well-known/oauth-protected-resource/vgi"));
    assert.equal(res.status, 200);
    assert.deepEqual(header(res, "content-type"), ["application/json"]);
    assert.deepEqual(header(res, "cache-control"), ["public, max-age=60"]);
    assert.deepEqual(json(res), {
      resource: "https://api.example/vgi",
      authorization_servers: ["https://login.example"],
    });
    assert.equal((await h.handle(request("POST", "/.well-known/oauth-protected-resource/vgi"))).status, 405);
  });

  it("names the metadata in every 401's WWW-Authenticate", async () => {
    const h = handler({ prefix: "/vgi", authenticate: jwt(), oauthResource: { clientId: "quiver-cli" } });
    const res = await h.handle(request("POST", `/vgi/${Echo.name}/ping`));
    assert.equal(res.status, 401);
    assert.deepEqual(header(res, "www-authenticate"), [
      'Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource/vgi", client_id="quiver-cli"',
    ]);
    const bad = await h.handle(request("POST", `/vgi/${Echo.name}/ping`, { authorization: "Bearer not-a-jwt" }));
    assert.equal(bad.status, 401);
    assert.match(header(bad, "www-authenticate")[0] ?? "", /resource_metadata=/);
  });

  it("takes the issuers from a chain's JWT member, and explicit fields over them", async () => {
    const h = handler({
      authenticate: chainAuthenticate(jwt()),
      oauthResource: { resource: "https://other.example", scopesSupported: ["read"], resourceName: "Calc" },
    });
    const res = await h.handle(request("GET", "/.well-known/oauth-protected-resource"));
    assert.deepEqual(json(res), {
      resource: "https://other.example",
      authorization_servers: ["https://login.example"],
      scopes_supported: ["read"],
      resource_name: "Calc",
    });
  });

  it("is off by default, and refuses what it cannot advertise", async () => {
    const off = await handler({ authenticate: jwt() }).handle(request("POST", `/${Echo.name}/ping`));
    assert.deepEqual(header(off, "www-authenticate"), ["Bearer"]);
    assert.throws(() => handler({ oauthResource: true }), /needs `resource`/);
    assert.throws(
      () => handler({ oauthResource: { resource: "https://api.example" } }),
      /needs `authorizationServers`/,
    );
    assert.throws(() => handler({ authenticate: jwt(), oauthResource: { resource: "api.example" } }), /absolute/);
    assert.throws(() => handler({ authenticate: jwt(), oauthResource: { clientId: "a b" } }), /URL-safe/);
  });
});
