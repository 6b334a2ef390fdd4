/**
 * The HTTP client's retries and resumable streams: stream turns are re-sent after transient
 * failures (a proxy answering 503 with Retry-After, an instance gone), unary calls only when they
 * carry an idempotency key, and a stream whose retries ran out resumes later from its checkpoint
 * on another instance sharing the token key.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { producerStream, proxy } from "../../src/client/typed.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { parseRetryAfter } from "../../src/transports/http/client-errors.js";
import { retryPolicy } from "../../src/transports/http/client-retry.js";
import { connectHttp, HttpError, type HttpStream, listenHttp } from "../../src/transports/http/index.js";
import { flakyProxy } from "../helpers/flaky-proxy.js";

const Counter = defineProtocol(
  "test.HttpRetry.v1",
  {},
  {
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { next: t.int64(), n: t.int64() } }),
    bump: unary({}, t.int64()),
  },
);

function counterServer(calls = { bump: 0 }) {
  return createServer({
    protocols: [
      bind(Counter, {
        count: {
          init: ({ n }) => ({ state: { next: 0n, n } }),
          produce(state, out) {
            if (state.next >= state.n) return out.finish();
            out.emit([{ i: state.next }]);
            state.next++;
          },
        },
        bump: () => BigInt(++calls.bump),
      }),
    ],
  });
}

const FAST = { backoffBaseMs: 1, backoffMaxMs: 5 };

describe("HTTP client retries", () => {
  it("parses Retry-After and checks its options", () => {
    assert.equal(parseRetryAfter("7"), 7000);
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("Wed, 21 Oct 2015 07:27:58 GMT")), 2000);
    assert.equal(parseRetryAfter("soon"), null);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("9".repeat(400)), null, "a delay no timer can wait is unreadable, not Infinity");
    // Whatever a server sends, the answer is null or a whole number of ms a timer can wait.
    const rng = (n: number) => Math.floor(Math.random() * n);
    const alphabet = "0123456789 ,:-+GMTWedOct\t\u00e9\u0000x";
    for (let i = 0; i < 2000; i++) {
      const s = Array.from({ length: rng(40) }, () => alphabet[rng(alphabet.length)]).join("");
      const ms = parseRetryAfter(s);
      assert.ok(ms === null || (Number.isSafeInteger(ms) && ms >= 0), `${JSON.stringify(s)} -> ${ms}`);
    }
    assert.equal(retryPolicy(false).maxRetries, 0);
    assert.equal(retryPolicy(undefined).maxRetries, 3);
    assert.throws(() => retryPolicy({ maxRetries: -1 }), /maxRetries/);
    assert.throws(() => retryPolicy({ maxRetries: 1.5 }), /integer/);
    assert.throws(() => retryPolicy({ backoffBaseMs: Number.NaN }), /backoffBaseMs/);
  });

  it("re-sends stream turns a proxy answered 503, and the stream's values are all there, once", async () => {
    const listener = await listenHttp(counterServer());
    let turns = 0;
    // Every other /exchange is refused once.
    const proxyServer = await flakyProxy(listener.url, (path) =>
      path.endsWith("/exchange") && turns++ % 2 === 0 ? 503 : null,
    );
    const client = connectHttp(proxyServer.url, { retry: FAST });
    try {
      const rows = await (await proxy(client, Counter).count({ n: 6n })).toArray();
      assert.deepEqual(
        rows.map((r) => r.i),
        [0n, 1n, 2n, 3n, 4n, 5n],
      );
      assert.ok(proxyServer.refused.length >= 3, `refused ${proxyServer.refused.length}`);
    } finally {
      await client.close();
      await proxyServer.close();
      await listener.close();
    }
  });

  it("retries a unary call only when it carries an idempotency key", async () => {
    const calls = { bump: 0 };
    const listener = await listenHttp(counterServer(calls));
    let failNext = 0;
    const proxyServer = await flakyProxy(listener.url, (path) =>
      path.endsWith("/bump") && failNext-- > 0 ? 503 : null,
    );
    const client = connectHttp(proxyServer.url, { retry: FAST });
    const counter = proxy(client, Counter);
    try {
      failNext = 1;
      await assert.rejects(counter.bump({}), (err: unknown) => err instanceof HttpError && err.status === 503);
      assert.equal(calls.bump, 0);
      failNext = 2;
      assert.equal(await counter.bump({}, { idempotencyKey: "bump-1" }), 1n);
      assert.equal(proxyServer.refused.length, 3);
      const none = connectHttp(proxyServer.url, { retry: false });
      failNext = 1;
      await assert.rejects(proxy(none, Counter).bump({}, { idempotencyKey: "bump-2" }), HttpError);
      await none.close();
    } finally {
      await client.close();
      await proxyServer.close();
      await listener.close();
    }
  });

  it("keeps a stream whose instance went away resumable: its checkpoint continues on another instance", async () => {
    const tokenKey = new Uint8Array(32).fill(7);
    const first = await listenHttp(counterServer(), { tokenKey });
    const client = connectHttp(first.url, { retry: { maxRetries: 1, backoffBaseMs: 1, backoffMaxMs: 2 } });
    const stream = await proxy(client, Counter).count({ n: 5n });
    const seen: bigint[] = [];
    const it = stream[Symbol.asyncIterator]();
    for (let k = 0; k < 2; k++) {
      const r = await it.next();
      assert.equal(r.done, false);
      seen.push((r.value as { i: bigint }).i);
    }
    await first.close();
    // The next turn finds no server, after its retry too.
    await assert.rejects(it.next(), (err: unknown) => err instanceof HttpError && err.status === 0);
    const checkpoint = (stream.raw as HttpStream).checkpoint();
    assert.ok(checkpoint !== null, "no checkpoint after a turn that got no answer");
    const saved = JSON.parse(JSON.stringify(checkpoint));
    await client.close();

    const second = await listenHttp(counterServer(), { tokenKey });
    const other = connectHttp(second.url);
    try {
      const resumed = producerStream(other.resumeStream(saved), Counter, "count");
      for await (const row of resumed) seen.push(row.i);
      assert.deepEqual(seen, [0n, 1n, 2n, 3n, 4n]);
      assert.equal(resumed.header, null);
    } finally {
      await other.close();
      await second.close();
    }
  });

  it("refuses a checkpoint that is not one", () => {
    const client = connectHttp("http://127.0.0.1:9");
    assert.throws(
      () => client.resumeStream({ protocol: "p", method: "m", cursor: "", callToken: null }),
      /checkpoint\.cursor must be a non-empty string/,
    );
  });
});
