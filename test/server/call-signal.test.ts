/**
 * A call's `ctx.signal` and deadline: the server's `callTimeoutMs` and the client's `timeoutMs`
 * abort a call that runs too long, answering `deadline_exceeded` at once, and the connection keeps
 * serving; a handler that finishes in time never sees its signal fire.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import type { CallInterceptor } from "../../src/server/interceptors.js";
import { bind, createServer, type ServerOptions } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";
import { memoryClient } from "../client/helpers.js";

const Slow = defineProtocol(
  "test.Slow.v1",
  { version: "1.0.0" },
  {
    wait: unary({ ms: t.int64() }, t.utf8()),
    ticks: producer({}, { output: { n: t.int64() }, state: { n: t.int64() } }),
  },
);

/** A server whose `wait` reports how its signal ended, and whose producer slows down after 2 ticks. */
function serve(opts: Partial<ServerOptions> = {}) {
  const seen: string[] = [];
  const server = createServer({
    ...opts,
    protocols: [
      bind(Slow, {
        wait: async ({ ms }, ctx) => {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Number(ms));
            ctx.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              const reason = ctx.signal.reason;
              seen.push(reason instanceof RpcError ? reason.kind : String(reason));
              resolve();
            });
          });
          return ctx.signal.aborted ? "aborted" : "done";
        },
        ticks: {
          init: () => ({ state: { n: 0n } }),
          async produce(state, out, ctx) {
            if (state.n >= 2n) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
            out.emit([{ n: state.n }]);
            state.n += 1n;
          },
        },
      }),
    ],
  });
  return { server, seen };
}

function isDeadline(err: unknown): boolean {
  assert.ok(err instanceof RpcError, String(err));
  assert.equal(err.kind, "deadline_exceeded");
  assert.equal(err.code, "DEADLINE_EXCEEDED");
  return true;
}

describe("call deadlines and ctx.signal", () => {
  it("the server's callTimeoutMs answers deadline_exceeded at once, aborts the handler, and the connection serves on", async () => {
    const { server, seen } = serve({ callTimeoutMs: 50 });
    const { client } = memoryClient(server);
    const svc = proxy(client, Slow);
    await assert.rejects(svc.wait({ ms: 60_000n }), isDeadline);
    assert.deepEqual(seen, ["deadline_exceeded"]);
    assert.equal(await svc.wait({ ms: 1n }), "done");
    assert.deepEqual(seen, ["deadline_exceeded"], "a call that finished in time was not aborted");
    await client.close();
  });

  it("the client's timeoutMs travels with the request and wins when sooner than the server's", async () => {
    const { server, seen } = serve({ callTimeoutMs: 60_000 });
    const { client } = memoryClient(server);
    const svc = proxy(client, Slow);
    await assert.rejects(svc.wait({ ms: 60_000n }, { timeoutMs: 40 }), isDeadline);
    assert.deepEqual(seen, ["deadline_exceeded"]);
    assert.equal(await svc.wait({ ms: 1n }, { timeoutMs: 10_000 }), "done");
    await assert.rejects(svc.wait({ ms: 1n }, { timeoutMs: 0 }), RangeError);
    await client.close();
  });

  it("a stream past its deadline ends with deadline_exceeded; the turn it interrupted emits nothing", async () => {
    const { server } = serve({ callTimeoutMs: 100 });
    const { client } = memoryClient(server);
    const got: bigint[] = [];
    await assert.rejects(async () => {
      for await (const row of await proxy(client, Slow).ticks()) got.push(row.n);
    }, isDeadline);
    assert.deepEqual(got, [0n, 1n]);
    assert.equal(await proxy(client, Slow).wait({ ms: 1n }), "done");
    await client.close();
  });

  it("over HTTP, the server's and the client's deadlines abort a unary call and a stream's turn alike", async () => {
    const { server, seen } = serve({ callTimeoutMs: 60_000 });
    const http = await listenHttp(server);
    const client = connectHttp(http.url);
    const svc = proxy(client, Slow);
    await assert.rejects(svc.wait({ ms: 60_000n }, { timeoutMs: 40 }), isDeadline);
    assert.deepEqual(seen, ["deadline_exceeded"]);
    assert.equal(await svc.wait({ ms: 1n }), "done");
    await http.close();
    // Each HTTP request is a call of its own: the server's deadline bounds every turn.
    const short = serve({ callTimeoutMs: 100 });
    const http2 = await listenHttp(short.server);
    const client2 = connectHttp(http2.url);
    const got: bigint[] = [];
    await assert.rejects(async () => {
      for await (const row of await proxy(client2, Slow).ticks()) got.push(row.n);
    }, isDeadline);
    assert.deepEqual(got, [0n, 1n]);
    await client.close();
    await client2.close();
    await http2.close();
  });

  it("an interceptor waiting before next is bounded by the deadline too; a next it calls late runs nothing", {
    timeout: 10_000,
  }, async () => {
    const ran: string[] = [];
    const held: Array<() => void> = [];
    // Holds the first call of each method at the door until released; lets the others in at once.
    const seenMethods = new Set<string>();
    const door: CallInterceptor = (next) => async (call) => {
      if (!seenMethods.has(call.method)) {
        seenMethods.add(call.method);
        await new Promise<void>((resolve) => held.push(resolve));
      }
      return next(call);
    };
    const server = createServer({
      callTimeoutMs: 100,
      interceptors: [door],
      protocols: [
        bind(Slow, {
          wait: ({ ms }) => {
            ran.push(`wait ${ms}`);
            return "done";
          },
          ticks: {
            init: () => {
              ran.push("ticks");
              return { state: { n: 0n } };
            },
            produce: (_state, out) => out.finish(),
          },
        }),
      ],
    });
    const { client } = memoryClient(server);
    const svc = proxy(client, Slow);
    await assert.rejects(svc.wait({ ms: 1n }), isDeadline);
    await assert.rejects(async () => (await svc.ticks()).toArray(), isDeadline);
    // The interceptor lets the timed-out calls in after their answers: neither runs.
    for (const release of held) release();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ran, []);
    // The connection serves on.
    assert.equal(await svc.wait({ ms: 2n }), "done");
    assert.deepEqual(await (await svc.ticks()).toArray(), []);
    assert.deepEqual(ran, ["wait 2", "ticks"]);
    await client.close();
  });
});
