/**
 * The typed request view handlers get: request ids, idempotency keys, call identity, injected
 * values (and their compile-time checks), definition-time checks of security declarations, and
 * how `describe` reports security.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { tableFromIPC } from "apache-arrow";
import { authenticated } from "../../src/auth/index.js";
import { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { frameworkError, RpcError } from "../../src/errors.js";
import type { CallContext } from "../../src/protocol/context.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import type { CallRecord } from "../../src/server/records.js";
import {
  encodeServiceDescription,
  SECURED_SERVICE_DESCRIPTION_SCHEMA,
  SERVICE_DESCRIPTION_SCHEMA,
} from "../../src/server/reflection.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { memoryClient } from "../client/helpers.js";
import { PYTHON } from "../helpers/reference.js";

interface Org {
  readonly slug: string;
}

let resolved = 0;
const P = defineProtocol(
  "test.Context.v1",
  { version: "1.0.0" },
  {
    whoami: unary({}, t.utf8()),
    log_then_id: unary({}, t.utf8()),
    close_issue: unary({ id: t.int64() }, t.utf8()),
    with_org: unary({}, t.utf8(), {
      inject: {
        org: (ctx: CallContext): Org => {
          resolved += 1;
          return { slug: `org-of-${ctx.auth.principal || "nobody"}` };
        },
        // Resolvers run in declaration order and may be async.
        tier: async (): Promise<number> => 3,
      },
    }),
    broken: unary({}, t.utf8(), {
      inject: {
        org: (): Org => {
          throw frameworkError("permission_denied", "not a member of any organisation");
        },
      },
    }),
    feed: producer(
      {},
      {
        output: { org: t.utf8() },
        state: { org: t.utf8() },
        inject: { org: async (ctx: CallContext): Promise<Org> => ({ slug: `feed-${ctx.method}` }) },
      },
    ),
  },
);

let handlerRuns = 0;
const records: CallRecord[] = [];

function makeServer(): RpcServer {
  const server = createServer({
    protocols: [
      bind(P, {
        whoami: (_p, ctx) =>
          JSON.stringify([ctx.requestId, ctx.method, ctx.protocol, ctx.transport, ctx.idempotencyKey]),
        log_then_id: (_p, ctx) => {
          // The log is written before anything reads the id: both must carry the same one.
          ctx.clientLog("INFO", "before the id");
          return ctx.requestId;
        },
        close_issue: ({ id }, ctx) => `closed ${id} once as ${ctx.requireIdempotencyKey()}`,
        with_org: (_p, ctx) => `${ctx.injected.org.slug}/${ctx.injected.tier}`,
        broken: (_p, ctx) => {
          handlerRuns += 1;
          return ctx.injected.org.slug;
        },
        feed: {
          init: (_p, ctx) => ({ state: { org: ctx.injected.org.slug } }),
          produce: (state, out) => {
            out.emit([{ org: state.org }]);
            out.finish();
          },
        },
      }),
    ],
  });
  server.observe((r) => records.push(r));
  return server;
}

async function rejects(p: Promise<unknown>, kind: string): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail(`expected a ${kind} error`);
}

describe("request context", () => {
  test("requestId is the client's when it sends one and minted otherwise; method, protocol and transport are set", async () => {
    const { client } = memoryClient(makeServer());
    const p = proxy(client, P);
    const [minted, method, protocol, transport, key] = JSON.parse(await p.whoami()) as string[];
    assert.match(minted!, /^[0-9a-f]{16}$/);
    assert.deepEqual([method, protocol, transport, key], ["whoami", "test.Context.v1", "memory", null]);
    const [chosen] = JSON.parse(await p.whoami({}, { requestId: "req-42" })) as string[];
    assert.equal(chosen, "req-42");
    assert.equal(records.at(-1)!.requestId, "req-42");
    // A malformed id (spaces, control characters) is replaced, not trusted.
    const [replaced] = JSON.parse(await p.whoami({}, { requestId: "not ok\n" })) as string[];
    assert.match(replaced!, /^[0-9a-f]{16}$/);
    await client.close();
  });

  test("one request id for the call: its log batches, ctx.requestId and its record, minted or the client's", async () => {
    const logs: string[] = [];
    const { client } = memoryClient(makeServer(), { onLog: (r) => logs.push(r.requestId) });
    const p = proxy(client, P);
    const minted = await p.log_then_id();
    assert.match(minted, /^[0-9a-f]{16}$/);
    assert.deepEqual(logs, [minted]);
    assert.equal(records.at(-1)!.requestId, minted);
    const again = await p.log_then_id();
    assert.notEqual(again, minted, "a fresh id per call");
    assert.equal(await p.log_then_id({}, { requestId: "req-7" }), "req-7");
    assert.deepEqual(logs, [minted, again, "req-7"]);
    assert.equal(records.at(-1)!.requestId, "req-7");
    await client.close();
  });

  test("requireIdempotencyKey refuses a call without a key and returns the key from metadata", async () => {
    const { client } = memoryClient(makeServer());
    const p = proxy(client, P);
    const e = await rejects(p.close_issue({ id: 7n }), "idempotency_key_required");
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.equal(await p.close_issue({ id: 7n }, { idempotencyKey: "k-1" }), "closed 7 once as k-1");
    const [, , , , key] = JSON.parse(
      await p.whoami({}, { metadata: new Map([["idempotency-key", "k-2"]]) }),
    ) as string[];
    assert.equal(key, "k-2");
    await client.close();
  });

  test("over HTTP, X-Request-ID and Idempotency-Key headers feed the context", async () => {
    const listener = await listenHttp(makeServer());
    try {
      const client = connectHttp(listener.url, {
        headers: { "X-Request-ID": "http-req-1", "Idempotency-Key": "hk-9" },
      });
      const [requestId, , , transport, key] = JSON.parse(await proxy(client, P).whoami()) as string[];
      assert.deepEqual([requestId, transport, key], ["http-req-1", "http", "hk-9"]);
      assert.equal(await proxy(client, P).close_issue({ id: 1n }), "closed 1 once as hk-9");
      // The header wins over metadata, so the id the response echoes is the one the logs carry.
      const [again] = JSON.parse(await proxy(client, P).whoami({}, { requestId: "md-1" })) as string[];
      assert.equal(again, "http-req-1");
      const bare = connectHttp(listener.url);
      await rejects(proxy(bare, P).close_issue({ id: 1n }), "idempotency_key_required");
    } finally {
      await listener.close();
    }
  });
});

describe("injected values", () => {
  test("are resolved once per call, sync or async, and handed to the handler", async () => {
    const pipe = memoryPipe("memory", authenticated("jwt", "dana"));
    const server = makeServer();
    void server.serveConnection(pipe.server);
    const client = new RpcClient({
      name: "memory",
      input: pipe.client.input,
      write: pipe.client.write,
      close: () => pipe.client.close(),
    });
    const before = resolved;
    assert.equal(await proxy(client, P).with_org(), "org-of-dana/3");
    assert.equal(await proxy(client, P).with_org(), "org-of-dana/3");
    assert.equal(resolved - before, 2);
    await client.close();
  });

  test("a resolver that throws fails the call with its error, and the handler never runs", async () => {
    const { client } = memoryClient(makeServer());
    const before = handlerRuns;
    const e = await rejects(proxy(client, P).broken(), "permission_denied");
    assert.match(e.message, /not a member/);
    assert.equal(handlerRuns, before);
    assert.equal(records.at(-1)!.errorKind, "permission_denied");
    // The connection is still usable.
    assert.equal(await proxy(client, P).with_org(), "org-of-nobody/3");
    await client.close();
  });

  test("a stream's init reads them", async () => {
    const { client } = memoryClient(makeServer());
    const rows = await (await proxy(client, P).feed()).toArray();
    assert.deepEqual(rows, [{ org: "feed-feed" }]);
    await client.close();
  });
});

describe("security declarations", () => {
  const Secured = defineProtocol(
    "test.Secured.v1",
    {},
    {
      write: unary({}, t.utf8(), { security: { jwt: ["a.write"], apikey: [] } }),
      read: unary({}, t.utf8(), { security: { jwt: [] } }),
      open: unary({}, t.utf8()),
    },
  );
  const impl = { write: () => "w", read: () => "r", open: () => "o" };
  const schemes = {
    jwt: { type: "jwt", description: "User tokens", issuer: "https://issuer.test", scopes: { "a.write": "Write" } },
    apikey: { type: "apikey", description: "Worker keys", header: "X-API-Key" },
    unused: { type: "mtls", description: "Not named by any method of this protocol" },
  };

  test("a method naming an undeclared scheme fails at createServer; an empty requirement at declaration", () => {
    assert.throws(
      () => createServer({ protocols: [bind(Secured, impl)], securitySchemes: { jwt: schemes.jwt } }),
      /requires security scheme 'apikey', which the server does not declare/,
    );
    assert.throws(() => unary({}, t.utf8(), { security: {} }), /admits nobody/);
    assert.throws(
      () => exchange({}, { input: {}, output: {}, inject: { x: 1 as unknown as () => number } }),
      /inject 'x' must be a function/,
    );
  });

  test("describe() reports each method's requirements and the schemes they name", async () => {
    const server = createServer({ protocols: [bind(Secured, impl)], securitySchemes: schemes });
    const { client } = memoryClient(server);
    const d = await client.describe("test.Secured.v1");
    assert.deepEqual(d.methods.get("write")!.security, { jwt: ["a.write"], apikey: [] });
    assert.deepEqual(d.methods.get("read")!.security, { jwt: [] });
    assert.equal(d.methods.get("open")!.security, null);
    assert.deepEqual(Object.keys(d.securitySchemes), ["apikey", "jwt"]);
    assert.equal(d.securitySchemes.jwt!.description, "User tokens");
    assert.equal(d.securitySchemes.apikey!.header, "X-API-Key");
    // Security does not change what the protocol hash covers.
    const open = createServer({ protocols: [bind(Secured, impl)], securitySchemes: schemes });
    assert.equal(open.protocols.get("test.Secured.v1")!.hash, d.protocolHash);
    await client.close();
  });

  test("an open protocol's description keeps the reference's exact schema", () => {
    const plain = tableFromIPC(
      encodeServiceDescription({ name: "x", version: "", hash: "h", methods: [], securitySchemes: schemes }),
    );
    assert.deepEqual(
      plain.schema.fields.map((f) => f.name),
      SERVICE_DESCRIPTION_SCHEMA.fields.map((f) => f.name),
    );
  });

  test("the reference's decoder reads a secured description, ignoring the extension columns", (t) => {
    if (!existsSync(PYTHON)) {
      t.skip(`no python at ${PYTHON}`);
      return;
    }
    const server = createServer({ protocols: [bind(Secured, impl)], securitySchemes: schemes });
    const hosted = server.protocols.get("test.Secured.v1")!;
    const bytes = encodeServiceDescription({
      name: hosted.name,
      version: hosted.version,
      hash: hosted.hash,
      methods: [...hosted.methods.values()].map((m) => ({
        name: m.name,
        methodType: "unary",
        hasReturn: true,
        paramsSchema: m.schemas.params,
        resultSchema: m.schemas.result,
        headerSchema: null,
        streamKind: "",
        security: m.decl.security,
      })),
      securitySchemes: schemes,
    });
    assert.deepEqual(
      tableFromIPC(bytes).schema.fields.map((f) => f.name),
      SECURED_SERVICE_DESCRIPTION_SCHEMA.fields.map((f) => f.name),
    );
    const script = `
import base64, sys, json
from vgi_rpc.rpc._reflection import ServiceDescription
d = ServiceDescription.deserialize_from_bytes(base64.b64decode(sys.stdin.read()))
print(json.dumps([d.protocol, d.protocol_hash, [m.name for m in d.methods]]))
`;
    const run = spawnSync(PYTHON, ["-c", script], {
      input: Buffer.from(bytes).toString("base64"),
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), ["test.Secured.v1", hosted.hash, ["open", "read", "write"]]);
  });
});

// Compile-time checks (never called): `tsc --noEmit` fails if an @ts-expect-error is not an error.
export function injectedTypeChecks(): void {
  const Q = defineProtocol(
    "test.InjectTypes.v1",
    {},
    {
      one: unary({}, t.utf8(), { inject: { user: async (ctx: CallContext) => ({ id: ctx.auth.principal }) } }),
      none: unary({}, t.utf8()),
      gen: producer({}, { output: { x: t.utf8() }, inject: { n: () => 1 } }),
    },
  );
  const gen = { init: () => ({}), produce: (_s: unknown, out: { finish(): void }) => out.finish() };
  bind(Q, {
    // The declared value is typed: `user.id` is a string.
    one: (_p, ctx) => ctx.injected.user.id.toUpperCase(),
    none: () => "",
    gen: { init: (_p, ctx) => ({ state: {}, ...(ctx.injected.n > 0 ? {} : {}) }), produce: gen.produce },
  });
  bind(Q, {
    // @ts-expect-error `org` was not declared in `one`'s inject
    one: (_p, ctx) => ctx.injected.org,
    none: () => "",
    gen,
  });
  bind(Q, {
    one: () => "",
    // @ts-expect-error `none` declares no injected values at all
    none: (_p, ctx) => ctx.injected.user.id,
    gen,
  });
  bind(Q, {
    one: () => "",
    none: () => "",
    gen: {
      // @ts-expect-error the injected `n` is a number, not a string
      init: (_p, ctx) => ({ state: {}, ...(ctx.injected.n.startsWith("x") ? {} : {}) }),
      produce: gen.produce,
    },
  });
}
