/**
 * The Redis quota store against a real redis-server (started here on loopback): its windows and
 * slots behave as the memory store's, a store can be handed any client with `sendCommand`, and two
 * quiver servers sharing one Redis enforce one quota between them — a stream slot held on one is
 * refused on the other, and rows counted on one use up the window on the other.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createClient } from "redis";
import { authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, exchange, producer } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { createRedisQuotaStore, type RedisQuotaStore } from "../../src/quota/redis.js";
import { type QuotaRule, quotaInterceptor } from "../../src/server/quota.js";
import { createMemoryQuotaStore, type QuotaStore, QuotaStoreTimeoutError } from "../../src/server/quota-store.js";
import { bind, createServer } from "../../src/server/server.js";
import { freePort, silentEndpoint } from "../helpers/object-stores.js";
import { type RedisServer, startRedis } from "../helpers/redis-server.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const P = defineProtocol(
  "test.SharedQuota.v1",
  { version: "1.0.0" },
  {
    tens: producer({ n: t.int64() }, { output: { v: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
    echo: exchange({}, { input: { v: t.int64() }, output: { v: t.int64() } }),
  },
);

const impl = bind(P, {
  tens: {
    init: ({ n }) => ({ state: { i: 0n, n } }),
    produce(state, out) {
      if (state.i >= state.n) return out.finish();
      out.emit(Array.from({ length: 10 }, (_, k) => ({ v: BigInt(k) })));
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

const ALICE = authenticated("jwt", "alice");

let redis: RedisServer;
const stores: RedisQuotaStore[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await redis.stop();
});

async function redisStore(): Promise<RedisQuotaStore> {
  const store = await createRedisQuotaStore({ url: redis.url });
  stores.push(store);
  return store;
}

/** Keys unique to one test, so tests never share a window. */
const fresh = () => `test:${randomBytes(6).toString("hex")}:`;

/** The same behaviour from either store. */
for (const [name, make] of [
  ["memory", async (): Promise<QuotaStore> => createMemoryQuotaStore()],
  ["redis", redisStore],
] as const) {
  describe(`${name} quota store`, () => {
    it("adds within a window, reads with 0, and says when the window ends", async () => {
      const store = await make();
      const key = `${fresh()}w`;
      const a = await store.add(key, 5, 3_600_000);
      const b = await store.add(key, 7, 3_600_000);
      const c = await store.add(key, 0, 3_600_000);
      assert.deepEqual([a.total, b.total, c.total], [5, 12, 12]);
      assert.ok(c.resetMs > 0 && c.resetMs <= 3_600_000, String(c.resetMs));
      // Another key, another count.
      assert.equal((await store.add(`${key}x`, 1, 3_600_000)).total, 1);
    });

    it("starts a new window at 0 once the old one ends", async () => {
      const store = await make();
      const key = `${fresh()}short`;
      const first = await store.add(key, 3, 200);
      await new Promise((r) => setTimeout(r, first.resetMs + 20));
      assert.equal((await store.add(key, 1, 200)).total, 1);
    });

    it("hands out at most limit slots, takes released ones back, and frees expired ones", async () => {
      const store = await make();
      const key = `${fresh()}slots`;
      const one = await store.acquire(key, 2, 60_000);
      const two = await store.acquire(key, 2, 60_000);
      assert.ok(one !== null && two !== null && one !== two);
      assert.equal(await store.acquire(key, 2, 60_000), null);
      await store.release(key, one);
      const three = await store.acquire(key, 2, 60_000);
      assert.ok(three !== null);
      // A slot whose holder died frees itself after its ttl.
      const brief = `${fresh()}brief`;
      assert.ok((await store.acquire(brief, 1, 100)) !== null);
      assert.equal(await store.acquire(brief, 1, 100), null);
      await new Promise((r) => setTimeout(r, 150));
      assert.ok((await store.acquire(brief, 1, 100)) !== null);
    });
  });
}

describe("redis quota store", () => {
  it("works with a client passed in (node-redis's sendCommand), left open for its owner", async () => {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const store = await createRedisQuotaStore({ client: { sendCommand: (args) => client.sendCommand(args) } });
      const key = `${fresh()}c`;
      assert.equal((await store.add(key, 2, 60_000)).total, 2);
      // The script runs again after Redis forgot it (EVALSHA's NOSCRIPT, then EVAL).
      await client.sendCommand(["SCRIPT", "FLUSH"]);
      assert.equal((await store.add(key, 2, 60_000)).total, 4);
      await store.close();
      assert.equal(await client.ping(), "PONG");
    } finally {
      client.destroy();
    }
  });

  it("refuses options naming both or neither of url and client", async () => {
    await assert.rejects(createRedisQuotaStore({}), TypeError);
  });
});

describe("two quiver instances sharing one Redis", () => {
  async function twoInstances(rules: readonly QuotaRule[]) {
    const keyPrefix = fresh();
    const make = async () =>
      createServer({
        interceptors: [quotaInterceptor({ rules, store: await redisStore(), keyPrefix })],
        protocols: [impl],
      });
    const [a, b] = [await make(), await make()];
    return { a: memoryClientAs(a, ALICE), b: memoryClientAs(b, ALICE) };
  }

  it("a stream slot held on one instance is refused on the other until released", async () => {
    const { a, b } = await twoInstances([{ concurrentStreams: 1 }]);
    const onA = await proxy(a, P).echo({});
    assert.deepEqual(await onA.exchange([{ v: 1n }]), [{ v: 1n }]);
    const refused = await (async () => {
      const s = await proxy(b, P).echo({});
      return s.exchange([{ v: 2n }]);
    })().catch((e: unknown) => e);
    assert.ok(refused instanceof RpcError && refused.kind === "resource_exhausted", String(refused));
    await onA.close();
    let opened: unknown = null;
    for (let i = 0; i < 50; i++) {
      opened = await (async () => {
        const s = await proxy(b, P).echo({});
        await s.exchange([{ v: 3n }]);
        return s;
      })().catch((e: unknown) => e);
      if (!(opened instanceof RpcError)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(!(opened instanceof RpcError), String(opened));
    await a.close();
    await b.close();
  });

  it("rows counted on one instance use up the window on the other, whose stream then ends mid-way", async () => {
    // An hour's window, so no window turns during the test.
    const { a, b } = await twoInstances([{ rowsPerWindow: 25, windowMs: 3_600_000 }]);
    // On A: 1 request row + 2 x 10 = 21 rows.
    assert.equal((await (await proxy(a, P).tens({ n: 2n })).toArray()).length, 20);
    // On B: 21 + 1 + 10 = 32 > 25 on its first batch: that batch, then the error.
    const got: bigint[] = [];
    const err = await (async () => {
      for await (const row of await proxy(b, P).tens({ n: 5n })) got.push(row.v);
    })().catch((e: unknown) => e);
    assert.equal(got.length, 10);
    assert.ok(err instanceof RpcError && err.kind === "resource_exhausted", String(err));
    assert.match(err.message, /32 rows of 25/);
    // Both instances now refuse at admission.
    for (const c of [a, b]) {
      const refused = await (await proxy(c, P).tens({ n: 1n })).toArray().catch((e: unknown) => e);
      assert.ok(refused instanceof RpcError && refused.kind === "resource_exhausted", String(refused));
    }
    await a.close();
    await b.close();
  });
});

describe("a Redis that stops answering, or goes away", () => {
  /** A server limiting calls to `perSecond` a second in `store`, and a client; failures the quota reported. */
  function limited(store: RedisQuotaStore, storeTimeoutMs: number, perSecond = 2) {
    const failures: unknown[] = [];
    const server = createServer({
      interceptors: [
        quotaInterceptor({
          rules: [{ callsPerSecond: perSecond }],
          store,
          storeTimeoutMs,
          onStoreError: (e) => failures.push(e),
        }),
      ],
      protocols: [impl],
    });
    const client = memoryClientAs(server, ALICE);
    /** One call: its rows, or the error it failed with. */
    const call = (): Promise<unknown[] | unknown> =>
      (async () => (await proxy(client, P).tens({ n: 1n })).toArray())().catch((e: unknown) => e);
    const rows = async (): Promise<number> => {
      const got = await call();
      if (!Array.isArray(got)) throw got;
      return got.length;
    };
    return { failures, client, call, rows };
  }

  it("while it is stopped, calls go through once storeTimeoutMs passes; once it answers, they count again", {
    timeout: 30_000,
  }, async () => {
    const own = await startRedis();
    const store = await createRedisQuotaStore({ url: own.url });
    try {
      const { failures, client, rows } = limited(store, 200);
      process.kill(own.pid, "SIGSTOP");
      try {
        for (let i = 0; i < 3; i++) assert.equal(await rows(), 10, "let through over the limit");
      } finally {
        process.kill(own.pid, "SIGCONT");
      }
      assert.equal(failures.length, 3);
      for (const e of failures) {
        assert.ok(e instanceof QuotaStoreTimeoutError && e.operation === "add" && e.timeoutMs === 200, String(e));
      }
      await client.close();
      // Answering again (a server with room for a slow answer on a loaded machine): at 1 call a
      // second, 5 calls in a row that take under 4 s cannot all be let in.
      const again = limited(store, 10_000, 1);
      const outcomes = [];
      for (let i = 0; i < 5; i++) outcomes.push(await again.call());
      const refused = outcomes.filter((o) => o instanceof RpcError && o.kind === "resource_exhausted");
      assert.ok(refused.length > 0, "the limit holds again");
      assert.deepEqual(again.failures, [], "no store failure once it answers");
      await again.client.close();
    } finally {
      await store.close();
      await own.stop();
    }
  });

  it("once it is gone, calls go through at once: commands are not queued for a reconnect", {
    timeout: 30_000,
  }, async () => {
    const own = await startRedis();
    const store = await createRedisQuotaStore({ url: own.url });
    try {
      // Queued for a reconnect, the commands would wait past this and fail as timeouts.
      const { failures, client, rows } = limited(store, 2_000);
      await own.stop();
      for (let i = 0; i < 3; i++) assert.equal(await rows(), 10);
      assert.equal(failures.length, 3);
      for (const e of failures) assert.ok(e instanceof Error && !(e instanceof QuotaStoreTimeoutError), String(e));
      await client.close();
    } finally {
      await store.close();
    }
  });
});

describe("a release while the connection is down", () => {
  it("is sent again once the store reconnects, so the slot does not stay held until its TTL", {
    timeout: 30_000,
  }, async () => {
    // A TCP proxy in front of the shared Redis that can cut its connections and refuse new ones.
    let down = false;
    const open = new Set<Socket>();
    const relay = createNetServer((c) => {
      if (down) return void c.destroy();
      const up = connect(redis.port, "127.0.0.1");
      const drop = () => {
        c.destroy();
        up.destroy();
        open.delete(c);
      };
      open.add(c);
      for (const s of [c, up]) {
        s.on("error", drop);
        s.on("close", drop);
      }
      c.pipe(up);
      up.pipe(c);
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const admin = createClient({ url: redis.url });
    await admin.connect();
    const store = await createRedisQuotaStore({ url: `redis://127.0.0.1:${(relay.address() as AddressInfo).port}` });
    try {
      const key = `${fresh()}slots`;
      const held = () => admin.sendCommand(["ZCARD", `{${key}}`]).then(Number);
      const token = await store.acquire(key, 1, 3_600_000);
      assert.ok(typeof token === "string");
      down = true;
      for (const c of open) c.destroy();
      await assert.rejects(Promise.resolve().then(() => store.release(key, token)));
      assert.equal(await held(), 1, "the slot is still held while Redis is out of reach");
      down = false;
      for (let i = 0; i < 200 && (await held()) !== 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await held(), 0, "the owed release went through after the reconnect");
    } finally {
      await store.close();
      admin.destroy();
      for (const c of open) c.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });
});

describe("connecting to a Redis that is not there", () => {
  it("fails after connectTimeoutMs, whether nothing listens or the listener never answers", {
    timeout: 30_000,
  }, async () => {
    const silent = await silentEndpoint();
    try {
      const port = await freePort(); // nothing listens there
      for (const url of [`redis://127.0.0.1:${port}`, silent.url.replace("http:", "redis:")]) {
        const err = await createRedisQuotaStore({ url, connectTimeoutMs: 300 }).catch((e: unknown) => e);
        assert.ok(err instanceof QuotaStoreTimeoutError && err.operation === "connect", `${url}: ${String(err)}`);
      }
      await assert.rejects(createRedisQuotaStore({ url: silent.url, connectTimeoutMs: 0 }), RangeError);
    } finally {
      await silent.close();
    }
  });
});
