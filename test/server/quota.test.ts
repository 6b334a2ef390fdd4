/**
 * Quotas on every transport: a caller over its calls-per-second limit is refused at admission with
 * `resource_exhausted` (retry delay and the limit hit in the details; HTTP 429 with `Retry-After`);
 * a stream whose turn crosses its row limit ends with that error right after the turn's batch, and
 * the next call is refused; concurrent streams are bounded per caller; rules select callers by
 * principal, role and scheme; callers no rule names are untouched.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { type ErrorDetail, RpcError } from "../../src/errors.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { type QuotaRule, quotaInterceptor } from "../../src/server/quota.js";
import {
  boundedQuotaStore,
  createMemoryQuotaStore,
  type QuotaStore,
  QuotaStoreTimeoutError,
  type WindowCount,
} from "../../src/server/quota-store.js";
import { bind, createServer } from "../../src/server/server.js";
import { listenHttp } from "../../src/transports/http/index.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { ALL_TRANSPORTS, allHarnesses } from "../helpers/all-transports.js";
import { requestBytes } from "../helpers/raw-peer.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const P = defineProtocol(
  "test.Quota.v1",
  { version: "1.0.0" },
  {
    ping: unary({}, t.utf8()),
    /** `n` batches of 10 rows each. */
    tens: producer({ n: t.int64() }, { output: { v: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
    echo: exchange({}, { input: { v: t.int64() }, output: { v: t.int64() } }),
  },
);

const impl = bind(P, {
  ping: () => "pong",
  tens: {
    init: ({ n }) => ({ state: { i: 0n, n } }),
    produce(state, out) {
      if (state.i >= state.n) return out.finish();
      out.emit(Array.from({ length: 10 }, (_, k) => ({ v: state.i * 10n + BigInt(k) })));
      state.i += 1n;
    },
  },
  echo: {
    init: () => ({ state: {} }),
    process(_state, input, out) {
      out.emit(input.rows());
    },
  },
});

/** A clock fixed 250 ms into a second (and 10 s into a minute), so a window never turns mid-test. */
const NOW = 1_800_000_010_250;
const fixedStore = (): QuotaStore => createMemoryQuotaStore({ now: () => NOW });

const ALICE = authenticated("jwt", "alice", {}, { roles: ["analyst"] });
const BOB = authenticated("apikey", "bob");

function serverWith(rules: readonly QuotaRule[], store: QuotaStore = fixedStore()) {
  return createServer({ interceptors: [quotaInterceptor({ rules, store })], protocols: [impl] });
}

function exhausted(err: unknown): RpcError {
  assert.ok(err instanceof RpcError, String(err));
  assert.equal(err.kind, "resource_exhausted", err.message);
  assert.equal(err.code, "RESOURCE_EXHAUSTED");
  return err;
}

function detail(err: RpcError, type: string): ErrorDetail {
  const d = err.details.find((x) => x["@type"] === type);
  assert.ok(d, `${type} in ${JSON.stringify(err.details)}`);
  return d;
}

describe("quotas on every transport", () => {
  for (const transport of ALL_TRANSPORTS) {
    it(`${transport}: the call past callsPerSecond is refused with a retry delay; another caller is not`, async () => {
      const server = serverWith([{ name: "rate", principal: "alice", callsPerSecond: 2 }]);
      const harness = await allHarnesses({ alice: ALICE, bob: BOB })[transport](server);
      const alice = await harness.connect("alice");
      const bob = await harness.connect("bob");
      try {
        const svc = proxy(alice, P);
        assert.equal(await svc.ping(), "pong");
        assert.equal(await svc.ping(), "pong");
        const err = exhausted(await svc.ping().catch((e: unknown) => e));
        assert.equal(detail(err, "vgi_rpc.RetryInfo").retry_delay_seconds, 0.75);
        assert.deepEqual(detail(err, "vgi_rpc.QuotaFailure").violations, [
          { subject: "rate:alice", description: "more than 2 calls per second" },
        ]);
        for (let i = 0; i < 3; i++) assert.equal(await proxy(bob, P).ping(), "pong");
      } finally {
        await alice.close();
        await bob.close();
        await harness.close();
      }
    });

    it(`${transport}: a stream crossing its row limit ends with resource_exhausted after the batch that crossed it`, async () => {
      // The request's one parameter row, then 10 rows a batch: 11, 21, 31 > 25 on the third batch.
      const server = serverWith([{ name: "volume", rowsPerWindow: 25 }]);
      const harness = await allHarnesses({ alice: ALICE })[transport](server);
      const alice = await harness.connect("alice");
      try {
        const svc = proxy(alice, P);
        const got: bigint[] = [];
        const err = await (async () => {
          for await (const row of await svc.tens({ n: 5n })) got.push(row.v);
        })().then(
          () => null,
          (e: unknown) => e,
        );
        assert.equal(got.length, 30, "the three batches up to and including the one that crossed arrive");
        const e = exhausted(err);
        assert.match(e.message, /31 rows of 25 per 60000 ms/);
        assert.equal(detail(e, "vgi_rpc.RetryInfo").retry_delay_seconds, 49.75);
        // The window is used up: the next call, or stream, is refused at admission (HTTP: 429).
        exhausted(await svc.ping().catch((x: unknown) => x));
        exhausted(await (async () => (await svc.tens({ n: 1n })).toArray())().catch((x: unknown) => x));
      } finally {
        await alice.close();
        await harness.close();
      }
    });
  }

  for (const transport of ALL_TRANSPORTS) {
    it(`${transport}: an exchange crossing its row limit answers the crossing input, then ends with the error`, async () => {
      const server = serverWith([{ rowsPerWindow: 8 }]);
      const harness = await allHarnesses({ alice: ALICE })[transport](server);
      const alice = await harness.connect("alice");
      try {
        const ex = await proxy(alice, P).echo({});
        // 3 in + 3 out per exchange (the parameterless request has no row): 6, then 12 > 8.
        assert.deepEqual(await ex.exchange([{ v: 1n }, { v: 2n }, { v: 3n }]), [{ v: 1n }, { v: 2n }, { v: 3n }]);
        assert.deepEqual(await ex.exchange([{ v: 4n }, { v: 5n }, { v: 6n }]), [{ v: 4n }, { v: 5n }, { v: 6n }]);
        const err = exhausted(await ex.exchange([{ v: 7n }]).catch((e: unknown) => e));
        assert.match(err.message, /rows of 8 per 60000 ms/);
      } finally {
        await alice.close();
        await harness.close();
      }
    });
  }
});

describe("quota rules", () => {
  for (const transport of ["memory", "tcp", "ws"] as const) {
    it(`${transport}: concurrentStreams bounds a caller's open streams; closing one frees its slot`, async () => {
      const server = serverWith([{ concurrentStreams: 1 }]);
      const harness = await allHarnesses({ alice: ALICE })[transport](server);
      const first = await harness.connect("alice");
      const second = await harness.connect("alice");
      try {
        const open = await proxy(first, P).echo({});
        assert.deepEqual(await open.exchange([{ v: 1n }]), [{ v: 1n }]);
        /** Opens a stream on `second` and makes one exchange: the stream, or the error. */
        const tryOpen = async () => {
          try {
            const s = await proxy(second, P).echo({});
            await s.exchange([{ v: 2n }]);
            return s;
          } catch (e) {
            return e;
          }
        };
        const err = exhausted(await tryOpen());
        assert.match(err.message, /1 concurrent streams already open/);
        assert.equal(detail(err, "vgi_rpc.RetryInfo").retry_delay_seconds, 1);
        // Unary calls hold no slot.
        assert.equal(await proxy(second, P).ping(), "pong");
        await open.close();
        // The slot is released when the first stream's call ends (just after its close).
        let again: unknown = null;
        for (let i = 0; i < 50; i++) {
          again = await tryOpen();
          if (!(again instanceof RpcError)) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.ok(!(again instanceof RpcError), String(again));
        await (again as { close(): Promise<void> }).close();
      } finally {
        await first.close();
        await second.close();
        await harness.close();
      }
    });
  }

  it("selects callers by principal, role and scheme, and leaves the unselected alone", async () => {
    const server = serverWith([
      { name: "analysts", role: "analyst", callsPerSecond: 1 },
      { name: "keys", scheme: "apikey", callsPerSecond: 2 },
      { name: "only-ping", methods: ["test.Quota.v1.tens"], callsPerSecond: 1 },
    ]);
    const carol = authenticated("jwt", "carol");
    const calls = async (who: ReturnType<typeof authenticated>, n: number): Promise<number> => {
      const client = memoryClientAs(server, who);
      let ok = 0;
      for (let i = 0; i < n; i++)
        if (
          await proxy(client, P)
            .ping()
            .then(
              () => true,
              () => false,
            )
        )
          ok++;
      await client.close();
      return ok;
    };
    assert.equal(await calls(ALICE, 4), 1, "the analyst role: 1 a second");
    assert.equal(await calls(BOB, 4), 2, "the apikey scheme: 2 a second");
    assert.equal(await calls(carol, 4), 4, "no rule names carol's calls (only-ping limits tens)");
  });

  it("lets calls through and reports when the store fails", async () => {
    const failures: unknown[] = [];
    const broken: QuotaStore = {
      add: () => Promise.reject(new Error("store down")),
      acquire: () => Promise.reject(new Error("store down")),
      release: () => Promise.reject(new Error("store down")),
    };
    const server = createServer({
      interceptors: [
        quotaInterceptor({
          rules: [{ callsPerSecond: 1, concurrentStreams: 1 }],
          store: broken,
          onStoreError: (e) => failures.push(e),
        }),
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    for (let i = 0; i < 3; i++) assert.equal(await proxy(client, P).ping(), "pong");
    assert.equal((await (await proxy(client, P).tens({ n: 1n })).toArray()).length, 10);
    await client.close();
    assert.ok(failures.length >= 4);
  });

  it("a store that stops answering fails in storeTimeoutMs: calls go through, and a slot taken late is given back", {
    timeout: 10_000,
  }, async () => {
    const failures: unknown[] = [];
    const late: Array<(token: string) => void> = [];
    const released: string[] = [];
    const silent: QuotaStore = {
      add: () => new Promise<WindowCount>(() => {}),
      acquire: () => new Promise<string | null>((resolve) => late.push(resolve)),
      release: (_key, token) => {
        released.push(token);
      },
    };
    const server = createServer({
      interceptors: [
        quotaInterceptor({
          rules: [{ callsPerSecond: 1, concurrentStreams: 1 }],
          store: silent,
          storeTimeoutMs: 50,
          onStoreError: (e) => failures.push(e),
        }),
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    // The stream's add times out; its acquire goes as the first probe and times out too.
    assert.equal((await (await proxy(client, P).tens({ n: 1n })).toArray()).length, 10);
    for (let i = 0; i < 2; i++) assert.equal(await proxy(client, P).ping(), "pong");
    await client.close();
    const timeouts = failures.filter((e): e is QuotaStoreTimeoutError => e instanceof QuotaStoreTimeoutError);
    assert.equal(timeouts.length, failures.length, "every failure is a timeout");
    assert.deepEqual(
      timeouts.slice(0, 2).map((e) => [e.operation, e.timeoutMs, e.skipped]),
      [
        ["add", 50, false],
        ["acquire", 50, false],
      ],
    );
    assert.equal(late.length, 1);
    late[0]!("slot-7");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(released, ["slot-7"], "the slot acquired after its timeout is released");
  });

  it("an answer that is a thenable but not a Promise is bounded by storeTimeoutMs too", {
    timeout: 10_000,
  }, async () => {
    const failures: unknown[] = [];
    // A thenable that never settles (what a hand-rolled or foreign promise library might hand back).
    // biome-ignore lint/suspicious/noThenProperty: the point is a thenable that is not a Promise
    const never = { then: () => {} } as unknown as Promise<never>;
    const thenable: QuotaStore = { add: () => never, acquire: () => never, release: () => {} };
    const server = createServer({
      interceptors: [
        quotaInterceptor({
          rules: [{ callsPerSecond: 1 }],
          store: thenable,
          storeTimeoutMs: 50,
          onStoreError: (e) => failures.push(e),
        }),
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    for (let i = 0; i < 2; i++) assert.equal(await proxy(client, P).ping(), "pong");
    await client.close();
    assert.deepEqual(
      failures.map((e) => (e instanceof QuotaStoreTimeoutError ? e.operation : String(e))),
      ["add", "add"],
    );
  });

  it("a store that timed out gets one probe at a time, at most one per storeTimeoutMs, the rest skipped, until it answers", async () => {
    const pending: Array<(count: WindowCount) => void> = [];
    let sent = 0;
    const slow: QuotaStore = {
      add: () => {
        sent++;
        return new Promise<WindowCount>((resolve) => pending.push(resolve));
      },
      acquire: () => null,
      release: () => {},
    };
    const store = boundedQuotaStore(slow, 50);
    // The store's timers do not hold the process open; this does, while the test waits on them.
    const alive = setInterval(() => {}, 1000);
    after(() => clearInterval(alive));
    const outcome = (p: WindowCount | Promise<WindowCount>) =>
      Promise.resolve(p).then(
        (c) => `total ${c.total}`,
        (e: unknown) => (e instanceof QuotaStoreTimeoutError ? (e.skipped ? "skipped" : "timeout") : String(e)),
      );
    assert.equal(await outcome(store.add("k", 1, 1000)), "timeout");
    // Unresponsive: one probe goes out; the 100 alongside it are not sent.
    const probe = outcome(store.add("k", 1, 1000));
    const others = await Promise.all(Array.from({ length: 100 }, () => outcome(store.add("k", 1, 1000))));
    assert.deepEqual(new Set(others), new Set(["skipped"]));
    assert.equal(await probe, "timeout");
    assert.equal(sent, 2);
    // Right after a probe ended, no other one yet.
    assert.equal(await outcome(store.add("k", 1, 1000)), "skipped");
    assert.equal(sent, 2);
    await new Promise((r) => setTimeout(r, 80));
    const third = outcome(store.add("k", 1, 1000));
    assert.equal(sent, 3);
    // The store answers (late): it is responsive again, and operations are sent as before.
    for (const answer of pending.splice(0)) answer({ total: 1, resetMs: 1000 });
    assert.equal(await third, "total 1");
    const next = outcome(store.add("k", 1, 1000));
    const alongside = outcome(store.add("k", 1, 1000));
    assert.equal(sent, 5);
    for (const answer of pending.splice(0)) answer({ total: 2, resetMs: 1000 });
    assert.deepEqual([await next, await alongside], ["total 2", "total 2"]);
  });

  it("refuses a storeTimeoutMs that is not a positive number", () => {
    for (const storeTimeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => quotaInterceptor({ rules: [{ callsPerSecond: 1 }], storeTimeoutMs }), RangeError);
    }
  });

  it("the memory store answers at once and keeps at most maxKeys counters, dropping the oldest", () => {
    const store = createMemoryQuotaStore({ maxKeys: 10, now: () => NOW });
    const add = (key: string) => store.add(key, 1, 60_000) as WindowCount;
    assert.equal(add("first").total, 1);
    assert.equal(add("first").total, 2);
    for (let i = 0; i < 100; i++) add(`flood${i}`);
    assert.equal(add("flood99").total, 2, "a recent counter is kept");
    assert.equal(add("first").total, 1, "the oldest was dropped and starts again");
  });

  it("refuses malformed rules when the interceptor is made", () => {
    assert.throws(() => quotaInterceptor({ rules: [{ callsPerSecond: 0 }] }), RangeError);
    assert.throws(() => quotaInterceptor({ rules: [{ name: "a" }, { name: "a" }] }), TypeError);
  });
});

describe("quotas over HTTP", () => {
  it("a refusal is 429 with Retry-After in whole seconds and the error stream", async () => {
    const server = serverWith([{ callsPerSecond: 1 }]);
    const http = await listenHttp(server, { port: 0 });
    try {
      const body = Buffer.from(concatBytes(requestBytes("ping", {}, {}, {}, P.name, "1.0.0")));
      const post = () =>
        fetch(`${http.url}/${P.name}/ping`, {
          method: "POST",
          headers: { "Content-Type": "application/vnd.apache.arrow.stream" },
          body,
        });
      assert.equal((await post()).status, 200);
      const refused = await post();
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.equal(refused.headers.get("content-type"), "application/vnd.apache.arrow.stream");
      assert.ok((await refused.arrayBuffer()).byteLength > 0);
    } finally {
      await http.close();
    }
  });
});
