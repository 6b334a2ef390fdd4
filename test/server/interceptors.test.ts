/**
 * Server interceptors wrap every call: they see the method and context before it runs and its
 * outcome after it ended (a stream's after its last turn), can refuse it by throwing, and nest
 * in order, the first outermost.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import type { CallInterceptor } from "../../src/server/interceptors.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";
import { memoryClient } from "../client/helpers.js";

const P = defineProtocol(
  "test.Intercepted.v1",
  { version: "1.0.0" },
  {
    hello: unary({ name: t.utf8() }, t.utf8()),
    fail: unary({}, t.utf8()),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
  },
);

function makeServer(interceptors: readonly CallInterceptor[]) {
  return createServer({
    interceptors,
    protocols: [
      bind(P, {
        hello: ({ name }) => `hi ${name}`,
        fail: () => {
          throw new ValueError("nope");
        },
        count: {
          init: ({ n }) => ({ state: { i: 0n, n } }),
          produce(state, out) {
            if (state.i >= state.n) return out.finish();
            out.emit([{ i: state.i }]);
            state.i += 1n;
          },
        },
      }),
    ],
  });
}

function serve(interceptors: readonly CallInterceptor[]) {
  return memoryClient(makeServer(interceptors)).client;
}

/** The same server over HTTP: each request (a unary call, a stream's init, each turn) is a call of its own. */
async function serveHttp(interceptors: readonly CallInterceptor[]) {
  const http = await listenHttp(makeServer(interceptors));
  const client = connectHttp(http.url);
  return {
    client,
    close: async () => {
      await client.close();
      await http.close();
    },
  };
}

describe("server interceptors", () => {
  it("see each call's method before it runs and its outcome and statistics after, in nesting order", async () => {
    const events: string[] = [];
    const tag =
      (name: string): CallInterceptor =>
      (next) =>
      async (call) => {
        events.push(`${name}>${call.method}:${call.methodType}`);
        const outcome = await next(call);
        events.push(`${name}<${call.method}:${outcome.status}:${outcome.error?.type ?? "-"}:${call.stats.outputRows}`);
        return outcome;
      };
    const client = serve([tag("a"), tag("b")]);
    const svc = proxy(client, P);
    assert.equal(await svc.hello({ name: "x" }), "hi x");
    await assert.rejects(svc.fail(), (err: unknown) => err instanceof RpcError && err.type === "ValueError");
    const rows: bigint[] = [];
    for await (const r of await svc.count({ n: 3n })) rows.push(r.i);
    assert.deepEqual(rows, [0n, 1n, 2n]);
    assert.deepEqual(events, [
      "a>hello:unary",
      "b>hello:unary",
      "b<hello:ok:-:1",
      "a<hello:ok:-:1",
      "a>fail:unary",
      "b>fail:unary",
      "b<fail:error:ValueError:0",
      "a<fail:error:ValueError:0",
      // A stream's chain ends with its last turn: every row is counted by then.
      "a>count:stream",
      "b>count:stream",
      "b<count:ok:-:3",
      "a<count:ok:-:3",
    ]);
    await client.close();
  });

  it("an interceptor that throws before next refuses the call with its error; the handler never runs", async () => {
    const ran: string[] = [];
    const limiter: CallInterceptor = (next) => async (call) => {
      if (call.requestMetadata.get("tenant") === "blocked") {
        throw new RpcError("tenant over quota", { type: "QuotaError", code: "RESOURCE_EXHAUSTED" });
      }
      ran.push(call.method);
      return next(call);
    };
    const client = serve([limiter]);
    const svc = proxy(client, P);
    const blocked = { metadata: new Map([["tenant", "blocked"]]) };
    const isQuota = (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      assert.equal(err.type, "QuotaError");
      assert.equal(err.code, "RESOURCE_EXHAUSTED");
      return true;
    };
    await assert.rejects(svc.hello({ name: "x" }, blocked), isQuota);
    await assert.rejects(async () => {
      for await (const _ of await svc.count({ n: 2n }, blocked)) assert.fail("a refused stream produced a row");
    }, isQuota);
    // The connection keeps serving, and calls the interceptor lets through run.
    assert.equal(await svc.hello({ name: "y" }), "hi y");
    assert.deepEqual(ran, ["hello"]);
    await client.close();
  });

  it("over HTTP, an interceptor's refusal answers the unary call, the stream's init and a stream's turn", async () => {
    let turnsAllowed = 1;
    const gate: CallInterceptor = (next) => async (call) => {
      if (call.requestMetadata.get("tenant") === "blocked") {
        throw new RpcError("tenant over quota", { type: "QuotaError", code: "RESOURCE_EXHAUSTED" });
      }
      // Each /exchange turn is a call of its own (its stream id carried by the token).
      if (call.method === "count" && call.streamId !== "" && call.requestMetadata.has("vgi_rpc.stream_state#b64")) {
        if (turnsAllowed-- <= 0)
          throw new RpcError("no more turns", { type: "QuotaError", code: "RESOURCE_EXHAUSTED" });
      }
      return next(call);
    };
    const { client, close } = await serveHttp([gate]);
    const svc = proxy(client, P);
    const blocked = { metadata: new Map([["tenant", "blocked"]]) };
    const isQuota = (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      assert.equal(err.type, "QuotaError");
      return true;
    };
    await assert.rejects(svc.hello({ name: "x" }, blocked), isQuota);
    await assert.rejects(async () => {
      for await (const _ of await svc.count({ n: 2n }, blocked)) assert.fail("a refused stream produced a row");
    }, isQuota);
    // The init's first batch and one turn are let through; the next turn is refused.
    const rows: bigint[] = [];
    await assert.rejects(
      async () => {
        for await (const r of await svc.count({ n: 5n })) rows.push(r.i);
      },
      (err: unknown) => isQuota(err) && (err as RpcError).message === "no more turns",
    );
    assert.deepEqual(rows, [0n, 1n]);
    assert.equal(await svc.hello({ name: "y" }), "hi y");
    await close();
  });
});
