/**
 * Client interceptors wrap every call a client makes, over a session transport (here the in-memory
 * pipe) and over HTTP alike: they add request metadata (and HTTP headers) the server sees, observe
 * answers and errors, refuse calls locally, retry them, and nest in order, the first outermost.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { authenticated } from "../../src/auth/types.js";
import type { ClientInterceptor } from "../../src/client/interceptors.js";
import type { CallChannel } from "../../src/client/transport.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { ANONYMOUS } from "../../src/protocol/context.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";
import { memoryClient } from "./helpers.js";

const P = defineProtocol(
  "test.ClientIntercepted.v1",
  { version: "1.0.0" },
  {
    meta: unary({ key: t.utf8() }, t.utf8()),
    whoami: unary({}, t.utf8()),
    flaky: unary({ id: t.utf8() }, t.int64()),
    fail: unary({}, t.utf8()),
    count: producer(
      { n: t.int64() },
      { output: { i: t.int64() }, header: { tag: t.utf8() }, state: { i: t.int64(), n: t.int64() } },
    ),
    echo: exchange({}, { input: { v: t.int64() }, output: { v: t.int64() }, state: {} }),
  },
);

/** Calls each `flaky` id has received (the first fails as `UNAVAILABLE`, later ones succeed). */
const flakyCalls = new Map<string, number>();
/** Calls `whoami` has run. */
let whoamiCalls = 0;

const server = createServer({
  protocols: [
    bind(P, {
      meta: ({ key }, ctx) => ctx.requestMetadata.get(key) ?? "-",
      whoami: (_p, ctx) => {
        whoamiCalls++;
        return ctx.auth.principal || "anonymous";
      },
      flaky: ({ id }) => {
        const n = (flakyCalls.get(id) ?? 0) + 1;
        flakyCalls.set(id, n);
        if (n === 1) throw new RpcError("try again", { type: "Unavailable", code: "UNAVAILABLE" });
        return BigInt(n);
      },
      fail: () => {
        throw new ValueError("nope");
      },
      count: {
        init: ({ n }, ctx) => ({ state: { i: 0n, n }, header: { tag: ctx.requestMetadata.get("tag") ?? "-" } }),
        produce(state, out) {
          if (state.i >= state.n) return out.finish();
          out.emit([{ i: state.i }]);
          state.i += 1n;
        },
      },
      echo: {
        init: () => ({ state: {} }),
        process: (_s, input, out) => out.emit(input.rows().map((r) => ({ v: r.v }))),
      },
    }),
  ],
});

/** Each HTTP request the server authenticated: its path and `x-user` header. */
const httpRequests: Array<{ path: string; user: string | null }> = [];
const http = await listenHttp(server, {
  authenticate: (req) => {
    const user = req.headers.get("x-user");
    httpRequests.push({ path: req.path, user });
    return user === null ? ANONYMOUS : authenticated("test", user);
  },
});
after(() => http.close());

interface Harness {
  readonly name: "memory" | "http";
  connect(interceptors: readonly ClientInterceptor[], headers?: Record<string, string>): CallChannel;
}

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const c of opened) await c.close();
});

const harnesses: Harness[] = [
  {
    name: "memory",
    connect(interceptors) {
      const { client } = memoryClient(server, { interceptors });
      opened.push(client);
      return client;
    },
  },
  {
    name: "http",
    connect(interceptors, headers) {
      const client = connectHttp(http.url, { interceptors, ...(headers ? { headers } : {}) });
      opened.push(client);
      return client;
    },
  },
];

/** An interceptor that sets request metadata key `k` to `v`. */
const setMetadata =
  (k: string, v: string): ClientInterceptor =>
  (next) =>
  (call) => {
    call.metadata.set(k, v);
    return next(call);
  };

for (const h of harnesses) {
  describe(`client interceptors over ${h.name}`, () => {
    it("add request metadata the server's handler sees, next to the call options' own", async () => {
      const svc = proxy(h.connect([setMetadata("tenant", "acme")]), P);
      assert.equal(await svc.meta({ key: "tenant" }), "acme");
      // The call's options are in the map the interceptor gets, and reach the server too.
      assert.equal(await svc.meta({ key: "idempotency-key" }, { idempotencyKey: "k-1" }), "k-1");
      assert.equal(await svc.meta({ key: "tenant" }, { metadata: new Map([["other", "x"]]) }), "acme");
      // Framework keys win over an interceptor's.
      const svc2 = proxy(h.connect([setMetadata("vgi_rpc.method", "whoami")]), P);
      assert.equal(await svc2.meta({ key: "tenant" }), "-");
    });

    it("see the call, then its answer or its error", async () => {
      const seen: string[] = [];
      const observe: ClientInterceptor = (next) => async (call) => {
        seen.push(
          `${call.method}:${call.methodType}:${call.attempts}:${call.headers === null ? "no-headers" : "headers"}`,
        );
        try {
          const answer = await next(call);
          seen.push(answer.methodType === "unary" ? `rows=${answer.result.numRows}` : "stream");
          return answer;
        } catch (err) {
          seen.push(`error=${(err as RpcError).type}:${call.attempts}`);
          throw err;
        }
      };
      const svc = proxy(h.connect([observe]), P);
      assert.equal(await svc.whoami(), "anonymous");
      await assert.rejects(svc.fail(), (err: RpcError) => err.type === "ValueError" && err.message.includes("nope"));
      const headers = h.name === "http" ? "headers" : "no-headers";
      assert.deepEqual(seen, [`whoami:unary:0:${headers}`, "rows=1", `fail:unary:0:${headers}`, "error=ValueError:1"]);
    });

    it("refuse a call by throwing before next: nothing is sent", async () => {
      const refuse: ClientInterceptor = (next) => (call) => {
        if (call.method === "whoami")
          throw new RpcError("not from here", { type: "Refused", code: "PERMISSION_DENIED" });
        return next(call);
      };
      const before = whoamiCalls;
      const svc = proxy(h.connect([refuse]), P);
      await assert.rejects(svc.whoami(), (err: RpcError) => err.type === "Refused" && err.code === "PERMISSION_DENIED");
      assert.equal(whoamiCalls, before);
      assert.equal(await svc.meta({ key: "x" }), "-"); // other calls go through, on the same connection
    });

    it("retry a call that failed with a transient error by calling next again", async () => {
      const tries: number[] = [];
      const retry: ClientInterceptor = (next) => async (call) => {
        for (;;) {
          try {
            return await next(call);
          } catch (err) {
            tries.push(call.attempts);
            if (call.attempts < 3 && err instanceof RpcError && err.code === "UNAVAILABLE") continue;
            throw err;
          }
        }
      };
      const svc = proxy(h.connect([retry]), P);
      const id = `${h.name}-${Math.random()}`;
      assert.equal(await svc.flaky({ id }), 2n); // the second attempt's answer
      assert.equal(flakyCalls.get(id), 2);
      assert.deepEqual(tries, [1]);
      // Not transient: thrown after one attempt.
      await assert.rejects(svc.fail(), (err: RpcError) => err.type === "ValueError");
      assert.deepEqual(tries, [1, 1]);
    });

    it("nest in order, the first outermost", async () => {
      const events: string[] = [];
      const tag =
        (name: string): ClientInterceptor =>
        (next) =>
        async (call) => {
          events.push(`${name}>`);
          call.metadata.set("tag", `${call.metadata.get("tag") ?? ""}${name}`);
          const answer = await next(call);
          events.push(`${name}<`);
          return answer;
        };
      const svc = proxy(h.connect([tag("a"), tag("b"), tag("c")]), P);
      assert.equal(await svc.meta({ key: "tag" }), "abc");
      assert.deepEqual(events, ["a>", "b>", "c>", "c<", "b<", "a<"]);
    });

    it("wrap a stream's opening: producer and exchange", async () => {
      const seen: string[] = [];
      const observe: ClientInterceptor = (next) => async (call) => {
        call.metadata.set("tag", "from-interceptor");
        const answer = await next(call);
        assert.equal(answer.methodType, "stream");
        if (answer.methodType === "stream")
          seen.push(`${call.method}:${answer.stream.header === null ? "-" : "header"}`);
        return answer;
      };
      const svc = proxy(h.connect([observe]), P);
      const stream = await svc.count({ n: 3n });
      assert.deepEqual(stream.header, { tag: "from-interceptor" });
      assert.deepEqual(
        (await stream.toArray()).map((r) => r.i),
        [0n, 1n, 2n],
      );
      const session = await svc.echo();
      assert.deepEqual(await session.exchange([{ v: 7n }]), [{ v: 7n }]);
      await session.close();
      assert.deepEqual(seen, ["count:header", "echo:-"]);
    });
  });
}

describe("client interceptors over HTTP: headers", () => {
  it("send the headers an interceptor sets with the call's request, over the client's own", async () => {
    const auth: ClientInterceptor = (next) => (call) => {
      call.headers?.set("x-user", "alice");
      call.headers?.set("content-type", "text/plain"); // the client's own: ignored
      return next(call);
    };
    const client = connectHttp(http.url, { headers: { "x-user": "base" }, interceptors: [auth] });
    opened.push(client);
    const svc = proxy(client, P);
    assert.equal(await svc.whoami(), "alice");
    // Without the interceptor, the client's header.
    const plain = connectHttp(http.url, { headers: { "x-user": "base" } });
    opened.push(plain);
    assert.equal(await proxy(plain, P).whoami(), "base");
  });

  it("send a stream call's headers with its /init and with each of its turns", async () => {
    const auth: ClientInterceptor = (next) => (call) => {
      call.headers?.set("x-user", `bob-${call.method}`);
      return next(call);
    };
    const client = connectHttp(http.url, { interceptors: [auth] });
    opened.push(client);
    const svc = proxy(client, P);
    const from = httpRequests.length;
    const stream = await svc.count({ n: 2n });
    assert.equal((await stream.toArray()).length, 2);
    const session = await svc.echo();
    await session.exchange([{ v: 1n }]);
    await session.exchange([{ v: 2n }]);
    await session.cancel();
    const requests = httpRequests.slice(from);
    const base = `/${P.name}`;
    assert.deepEqual(
      requests.map((r) => `${r.path.slice(base.length)} ${r.user}`),
      [
        "/count/init bob-count",
        "/count/exchange bob-count",
        "/count/exchange bob-count",
        "/echo/init bob-echo",
        "/echo/exchange bob-echo",
        "/echo/exchange bob-echo",
        "/echo/exchange bob-echo", // the cancel
      ],
    );
  });
});
