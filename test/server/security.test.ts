/**
 * Per-method security on every transport: the same matrix (allowed, missing scope, wrong scheme,
 * anonymous caller) over an in-memory pipe, a stdio pipe pair, a Unix socket, TCP, HTTP and
 * WebSocket. Session transports name their caller per connection; HTTP and WebSocket
 * authenticate real credentials (a JWKS-verified JWT, an API key, a static bearer token). Every
 * refusal must leave the handler and the method's resolvers unrun, and be recorded with its
 * error kind by the access log and the call's span.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import {
  type Authenticator,
  anonymous,
  apiKeyAuthenticate,
  authenticated,
  bearerAuthenticateStatic,
  chainAuthenticate,
  jwtAuthenticate,
} from "../../src/auth/index.js";
import type { CallChannel } from "../../src/client/transport.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import type { AuthContext, CallContext } from "../../src/protocol/context.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { createAccessLog } from "../../src/server/access-log.js";
import type { CallRecord } from "../../src/server/records.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { connectHttp, HttpError, listenHttp } from "../../src/transports/http/index.js";
import { connectTcp, listenSocket } from "../../src/transports/socket/index.js";
import { connectWebSocketClient, listenWebSocket } from "../../src/transports/ws/index.js";
import { type Harness as SessionHarness, sessionHarnesses } from "../helpers/session-harness.js";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

// ---------------------------------------------------------------------------------------------
// The service

interface User {
  readonly id: string;
  readonly via: string;
}

const runs = { open: 0, list: 0, annotate: 0, resolver: 0 };

async function loadUser(ctx: CallContext): Promise<User> {
  runs.resolver += 1;
  return { id: ctx.auth.principal, via: ctx.auth.scheme };
}

const Issues = defineProtocol(
  "test.Issues.v1",
  { version: "1.0.0" },
  {
    open_issue: unary({ title: t.utf8() }, t.utf8(), {
      security: { jwt: ["issues.write"], apikey: [] },
      inject: { user: loadUser },
    }),
    list_issues: producer(
      { n: t.int64() },
      { output: { id: t.int64() }, state: { i: t.int64(), n: t.int64() }, security: { jwt: ["issues.read"] } },
    ),
    annotate: exchange(
      {},
      { input: { note: t.utf8() }, output: { note: t.utf8() }, security: { jwt: ["issues.write"] } },
    ),
    ping: unary({}, t.utf8()),
  },
);

const records: CallRecord[] = [];
const logPath = join(mkdtempSync(join(tmpdir(), "quiver-security-")), "access.jsonl");
const accessLog = createAccessLog({ path: logPath });

/** A fresh server per transport (a socket listener's close drains its server for good). */
const makeServer = () => {
  const server = createServer({
    protocols: [
      bind(Issues, {
        open_issue: ({ title }, ctx) => {
          runs.open += 1;
          return `${ctx.injected.user.id}/${ctx.injected.user.via}:${title}`;
        },
        list_issues: {
          init: ({ n }) => {
            runs.list += 1;
            return { state: { i: 0n, n } };
          },
          produce: (state, out) => {
            if (state.i >= state.n) return out.finish();
            out.emit([{ id: state.i }]);
            state.i += 1n;
          },
        },
        annotate: {
          init: () => {
            runs.annotate += 1;
            return {};
          },
          process: (_state, input, out) => out.emit(input.rows().map((r) => ({ note: `${r.note}!` }))),
        },
        ping: (_p, ctx) => `pong ${ctx.auth.principal || "anonymous"}`,
      }),
    ],
    securitySchemes: {
      jwt: { type: "jwt", description: "User tokens from the test issuer", issuer: "https://issuer.test" },
      apikey: { type: "apikey", description: "Worker keys", header: "X-API-Key" },
    },
    onCallEnd: accessLog.observer,
  });
  server.observe((r) => records.push(r));
  return server;
};

// ---------------------------------------------------------------------------------------------
// Callers

type Who = "writer" | "reader" | "worker" | "other" | "anonymous";

/** Who each caller is on transports that name the caller per connection. */
const IDENTITY: Record<Who, AuthContext> = {
  writer: authenticated("jwt", "alice", {}, { scopes: ["issues.read", "issues.write"] }),
  reader: authenticated("jwt", "bob", {}, { scopes: ["issues.read"] }),
  worker: authenticated("apikey", "worker-1"),
  other: authenticated("bearer", "carol", {}, { scopes: ["issues.read", "issues.write"] }),
  anonymous: anonymous(),
};

let headers: Record<Who, Record<string, string>>;
let signToken: (sub: string, scope: string) => Promise<string>;
let httpAuth: Authenticator;

before(async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const token = (sub: string, scope: string) =>
    new SignJWT({ scope })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("https://issuer.test")
      .setAudience("issues")
      .setSubject(sub)
      .setExpirationTime("5m")
      .sign(privateKey);
  signToken = token;
  headers = {
    writer: { Authorization: `Bearer ${await token("alice", "issues.read issues.write")}` },
    reader: { Authorization: `Bearer ${await token("bob", "issues.read")}` },
    worker: { "X-API-Key": "k-worker-1" },
    other: { Authorization: "Bearer static-carol" },
    anonymous: {},
  };
  const chain = chainAuthenticate(
    jwtAuthenticate({ issuer: "https://issuer.test", audience: "issues", jwks: { keys: [jwk] } }),
    bearerAuthenticateStatic({
      tokens: { "static-carol": authenticated("bearer", "carol", {}, { scopes: ["issues.read", "issues.write"] }) },
    }),
    apiKeyAuthenticate({ keys: { "k-worker-1": "worker-1" } }),
  );
  // Anonymous callers are let through to dispatch, which refuses them per method.
  httpAuth = (req) => (req.headers.has("authorization") || req.headers.has("x-api-key") ? chain(req) : anonymous());
});

// ---------------------------------------------------------------------------------------------
// Transports

type Harness = SessionHarness<Who>;

const harnesses: Record<string, (server: RpcServer) => Promise<Harness>> = {
  ...sessionHarnesses(IDENTITY),
  http: async (server) => {
    const listener = await listenHttp(server, { authenticate: httpAuth });
    return {
      connect: async (who) =>
        connectHttp(listener.url, {
          headers: headers[who],
          fetch: async (input, init) => {
            const res = await fetch(input, init);
            httpStatuses.push({ path: new URL(String(input)).pathname, status: res.status });
            return res;
          },
        }),
      close: () => listener.close(),
    };
  },
  ws: async (server) => {
    const listener = await listenWebSocket(server, { authenticate: httpAuth });
    return {
      connect: (who) => connectWebSocketClient(listener.url, { headers: headers[who] }),
      close: () => listener.close(),
    };
  },
};

/** The HTTP status of every response the HTTP clients received, by path. */
const httpStatuses: { readonly path: string; readonly status: number }[] = [];

/** The status of the last HTTP response on a path ending in `suffix`. */
function lastStatus(suffix: string): number | undefined {
  return httpStatuses.filter((s) => s.path.endsWith(suffix)).at(-1)?.status;
}

/** Asserts `p` rejects with an `RpcError` of `kind`; returns it. */
async function refused(p: Promise<unknown>, kind: string): Promise<RpcError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RpcError, `expected an RpcError of kind ${kind}, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  return caught;
}

/** The last record of a call to `method` over `transport`. */
function lastRecord(transport: string, method: string): CallRecord {
  const r = records.filter((x) => x.transport === transport && x.method === method).at(-1);
  assert.ok(r, `no call record for ${method} over ${transport}`);
  return r;
}

for (const [transport, start] of Object.entries(harnesses)) {
  describe(`security over ${transport}`, { timeout: 30_000 }, () => {
    let h: Harness;
    before(async () => {
      h = await start(makeServer());
    });
    after(() => h.close());

    async function as<T>(who: Who, fn: (c: CallChannel) => Promise<T>): Promise<T> {
      const c = await h.connect(who);
      try {
        return await fn(c);
      } finally {
        await c.close();
      }
    }

    test("a JWT with the required scope and an API key are both admitted, with the injected user", async () => {
      const before = { ...runs };
      assert.equal(await as("writer", (c) => proxy(c, Issues).open_issue({ title: "bug" })), "alice/jwt:bug");
      assert.equal(await as("worker", (c) => proxy(c, Issues).open_issue({ title: "job" })), "worker-1/apikey:job");
      assert.equal(runs.open - before.open, 2);
      assert.equal(runs.resolver - before.resolver, 2);
      const rows = await as("reader", async (c) => (await proxy(c, Issues).list_issues({ n: 3n })).toArray());
      assert.deepEqual(
        rows.map((r) => r.id),
        [0n, 1n, 2n],
      );
      const notes = await as("writer", async (c) => {
        const s = await proxy(c, Issues).annotate({});
        const out = await s.exchange([{ note: "hi" }]);
        await s.close();
        return out;
      });
      assert.deepEqual(notes, [{ note: "hi!" }]);
      assert.equal(lastRecord(transport, "open_issue").status, "ok");
    });

    test("a JWT missing the scope is refused permission_denied; the handler and resolver never run", async () => {
      const before = { ...runs };
      await as("reader", async (c) => {
        const e = await refused(proxy(c, Issues).open_issue({ title: "bug" }), "permission_denied");
        assert.equal(e.code, "PERMISSION_DENIED");
        assert.match(e.message, /lacks scope \[issues\.write\]/);
        if (transport === "http") assert.equal(lastStatus("/open_issue"), 403);
        await refused(
          (async () => {
            const s = await proxy(c, Issues).annotate({});
            await s.exchange([{ note: "x" }]);
          })(),
          "permission_denied",
        );
        // The connection is still in step after refusals.
        assert.equal(await proxy(c, Issues).ping(), "pong bob");
      });
      assert.deepEqual(runs, before);
      const r = lastRecord(transport, "open_issue");
      assert.equal(r.status, "error");
      assert.equal(r.errorKind, "permission_denied");
      assert.equal(r.auth.principal, "bob");
      assert.equal(lastRecord(transport, "annotate").errorKind, "permission_denied");
    });

    test("a credential of the wrong scheme is refused permission_denied, on a stream too", async () => {
      const before = { ...runs };
      await as("other", async (c) => {
        await refused(proxy(c, Issues).open_issue({ title: "bug" }), "permission_denied");
        const e = await refused(
          (async () => (await proxy(c, Issues).list_issues({ n: 2n })).toArray())(),
          "permission_denied",
        );
        assert.match(e.message, /authenticated with 'bearer'/);
        if (transport === "http") assert.equal(lastStatus("/list_issues/init"), 403);
        assert.equal(await proxy(c, Issues).ping(), "pong carol");
      });
      assert.deepEqual(runs, before);
      assert.equal(lastRecord(transport, "list_issues").errorKind, "permission_denied");
      // An API key is a scheme of its own: it opens issues but may not list them.
      await as("worker", (c) =>
        refused((async () => (await proxy(c, Issues).list_issues({ n: 1n })).toArray())(), "permission_denied"),
      );
      assert.equal(runs.list, before.list);
    });

    test("an anonymous caller is refused unauthenticated on secured methods and served on open ones", async () => {
      const before = { ...runs };
      await as("anonymous", async (c) => {
        const e = await refused(proxy(c, Issues).open_issue({ title: "bug" }), "unauthenticated");
        assert.equal(e.code, "UNAUTHENTICATED");
        if (transport === "http") {
          assert.ok(e instanceof HttpError);
          assert.equal(e.status, 401);
          assert.equal(e.authReason, "missing_credential");
          assert.equal(lastStatus("/open_issue"), 401);
        }
        await refused((async () => (await proxy(c, Issues).list_issues({ n: 2n })).toArray())(), "unauthenticated");
        assert.equal(await proxy(c, Issues).ping(), "pong anonymous");
      });
      assert.deepEqual(runs, before);
      const r = lastRecord(transport, "open_issue");
      assert.equal(r.errorKind, "unauthenticated");
      assert.equal(r.errorCode, "UNAUTHENTICATED");
      assert.equal(r.auth.authenticated, false);
    });
  });
}

describe("connection-level and continuation checks", () => {
  test("a socket authenticate that throws closes the connection before any call is served", async () => {
    const server = makeServer();
    const listener = await listenSocket(server, {
      port: 0,
      authenticate: () => {
        throw new Error("unknown peer");
      },
    });
    try {
      assert.ok("port" in listener.address);
      const client = await connectTcp(listener.address.host, listener.address.port);
      await refused(proxy(client, Issues).ping(), "transport_error");
      await client.close();
    } finally {
      await listener.close();
    }
  });

  test("HTTP checks the requirement again on each stream continuation", async () => {
    const server = makeServer();
    const listener = await listenHttp(server, { authenticate: httpAuth });
    try {
      // Same principal, so the stream's tokens still open; the second credential lost the scope.
      const weaker = `Bearer ${await signToken("alice", "issues.read")}`;
      let turns = 0;
      const client = connectHttp(listener.url, {
        headers: headers.writer,
        fetch: (input, init) => {
          const path = new URL(String(input)).pathname;
          if (path.endsWith("/annotate/exchange") && ++turns === 2) {
            const h = new Headers(init?.headers);
            h.set("Authorization", weaker);
            return fetch(input, { ...init, headers: h });
          }
          return fetch(input, init);
        },
      });
      const before = records.length;
      const s = await proxy(client, Issues).annotate({});
      assert.deepEqual(await s.exchange([{ note: "a" }]), [{ note: "a!" }]);
      const e = await refused(s.exchange([{ note: "b" }]), "permission_denied");
      assert.match(e.message, /lacks scope \[issues\.write\]/);
      const last = records.slice(before).at(-1)!;
      assert.deepEqual([last.method, last.errorKind, last.transport], ["annotate", "permission_denied", "http"]);
    } finally {
      await listener.close();
    }
  });
});

describe("refusals in the access log and spans", () => {
  test("every transport logged and traced its refusals with their error kinds", async () => {
    await accessLog.close();
    const lines = readFileSync(logPath, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const spans = exporter.getFinishedSpans();
    for (const transport of Object.keys(harnesses)) {
      for (const kind of ["permission_denied", "unauthenticated"]) {
        const logged = lines.filter(
          (l) => l.transport === transport && l.method === "open_issue" && l.error_kind === kind,
        );
        assert.ok(logged.length > 0, `${transport}: no access-log record with error_kind ${kind}`);
        assert.equal(logged[0]!.status, "error");
        const traced = spans.filter(
          (s) =>
            s.name === "vgi_rpc/open_issue" &&
            s.attributes["rpc.vgi_rpc.transport"] === transport &&
            s.attributes["rpc.vgi_rpc.error_kind"] === kind,
        );
        assert.ok(traced.length > 0, `${transport}: no span with error_kind ${kind}`);
        assert.equal(traced[0]!.status.code, 2 /* ERROR */);
      }
    }
    await provider.shutdown();
  });
});
