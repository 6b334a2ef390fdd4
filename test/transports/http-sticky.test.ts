/**
 * HTTP sticky sessions (`HttpServerOptions.sticky`) end to end over real sockets (port 0), through
 * quiver's client (`HttpClient.withSession`): opening from a handler, resuming, closing from the
 * handler and by `DELETE /__session__`, lifetime and idle expiry, forged, foreign-caller and
 * other-instance tokens, the registry's bounds, one call at a time per session, shutdown, draining,
 * echo headers, CORS exposure and the call records; the registry on a fake clock; the token's
 * layout; and quiver's client against the reference's sticky server, whose tokens ours open and
 * whose server opens ours.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { RpcError } from "../../src/errors.js";
import { ANONYMOUS, type AuthContext } from "../../src/protocol/context.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import type { CallRecord } from "../../src/server/records.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { tokenCipher } from "../../src/transports/http/aead.js";
import {
  connectHttp,
  type HttpClient,
  type HttpListener,
  type HttpListenOptions,
  listenHttp,
  type StickyOptions,
} from "../../src/transports/http/index.js";
import { openSessionToken, sealSessionToken, sessionAad } from "../../src/transports/http/session-token.js";
import { SessionRegistry, stickyConfig } from "../../src/transports/http/sticky.js";
import { memoryClient, python, rejection, within } from "../client/helpers.js";

const P = "quiver.StickyTest.v1";

/** A session's state: `close()` counts its calls (sync or, with `slowClose`, async). */
class Counter {
  closed = 0;
  closeFinished = false;
  constructor(
    public value: bigint,
    private readonly slowClose = false,
  ) {}
  close(): Promise<void> | undefined {
    this.closed++;
    if (!this.slowClose) return undefined;
    return new Promise((resolve) =>
      setTimeout(() => {
        this.closeFinished = true;
        resolve();
      }, 50),
    );
  }
}

const Proto = defineProtocol(
  P,
  { version: "1.0.0" },
  {
    open: unary({ initial: t.int64(), ttl: t.float64().default(0), slow_close: t.bool().default(false) }, t.utf8()),
    add: unary({ by: t.int64(), delay_ms: t.int64().default(0n) }, t.int64()),
    close: unary({}, t.int64()),
    peek: unary({}, t.utf8().optional()),
    count: producer(
      { n: t.int64() },
      { output: { v: t.int64() }, header: null, state: { i: t.int64(), n: t.int64() } },
    ),
    sum: exchange({}, { input: { by: t.int64() }, output: { v: t.int64() } }),
  },
);

/** Every counter opened, and the [start, end] of every `add`, in order. */
let opened: Counter[] = [];
let spans: { readonly session: string; readonly start: number; readonly end: number }[] = [];

function counterOf(session: unknown): Counter {
  if (!(session instanceof Counter)) throw new RpcError("no counter bound", { type: "RuntimeError" });
  return session;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function makeServer(): RpcServer {
  return createServer({
    protocols: [
      bind(Proto, {
        open: ({ initial, ttl, slow_close }, ctx) => {
          const counter = new Counter(initial, slow_close);
          ctx.openSession(counter, ttl > 0 ? { ttlSeconds: ttl } : {});
          opened.push(counter);
          return ctx.sessionId ?? "";
        },
        add: async ({ by, delay_ms }, ctx) => {
          const counter = counterOf(ctx.session);
          const start = performance.now();
          // Read, wait, write: two calls interleaved on one counter would lose an update.
          const before = counter.value;
          if (delay_ms > 0n) await sleep(Number(delay_ms));
          counter.value = before + by;
          spans.push({ session: ctx.sessionId ?? "", start, end: performance.now() });
          return counter.value;
        },
        close: (_p, ctx) => {
          const counter = counterOf(ctx.session);
          ctx.closeSession();
          assert.equal(ctx.session, null, "no session after closeSession");
          return counter.value;
        },
        peek: (_p, ctx) => ctx.sessionId,
        count: {
          init: ({ n }) => ({ state: { i: 0n, n } }),
          produce(state, out, ctx) {
            if (state.i >= state.n) {
              out.finish();
              return;
            }
            const counter = counterOf(ctx.session);
            counter.value += 1n;
            out.emit([{ v: counter.value }]);
            state.i += 1n;
          },
        },
        sum: {
          init: () => ({}),
          process(_state, input, out, ctx) {
            const counter = counterOf(ctx.session);
            for (const by of input.column("by")) counter.value += by;
            out.emit([{ v: counter.value }]);
          },
        },
      }),
    ],
  });
}

interface Running {
  readonly server: RpcServer;
  readonly listener: HttpListener;
  readonly client: HttpClient;
  readonly svc: ReturnType<typeof proxy<typeof Proto>>;
  stop(): Promise<void>;
}

async function start(sticky: StickyOptions | boolean = true, opts: HttpListenOptions = {}): Promise<Running> {
  const server = makeServer();
  const listener = await listenHttp(server, { sticky, ...opts });
  const client = connectHttp(listener.url);
  return {
    server,
    listener,
    client,
    svc: proxy(client, Proto),
    async stop() {
      await client.close();
      await listener.close({ graceMs: 1_000 });
    },
  };
}

/** The reference's RuntimeError for a session that cannot be opened, word for word (no kind, code UNKNOWN). */
function assertNoSession(e: RpcError, message: RegExp): void {
  assert.equal(e.type, "RuntimeError");
  assert.equal(e.kind, "");
  assert.equal(e.code, "UNKNOWN");
  assert.match(e.message, message);
}

function assertLost(e: RpcError, message?: RegExp): void {
  assert.equal(e.type, "SessionLostError");
  assert.equal(e.kind, "session_lost");
  assert.equal(e.code, "ABORTED");
  if (message !== undefined) assert.match(e.message, message);
}

/** A raw `DELETE {url}/__session__` with `token` (or none). */
async function deleteSession(url: string, token?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/__session__`, {
    method: "DELETE",
    headers: token === undefined ? headers : { ...headers, "VGI-Session": token },
  });
  await res.arrayBuffer();
  return res;
}

describe("sticky sessions over HTTP", () => {
  let s: Running;
  before(async () => {
    opened = [];
    spans = [];
    s = await start({ echoHeaders: { "x-route": "instance-1" } });
  });
  after(() => s.stop());

  test("capability headers advertise sticky sessions, their default lifetime and the echo headers", async () => {
    const res = await fetch(`${s.listener.url}/health`, { method: "OPTIONS" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("vgi-sticky-enabled"), "true");
    assert.equal(res.headers.get("vgi-sticky-default-ttl"), "300");
    assert.equal(res.headers.get("vgi-sticky-echo-headers"), "x-route");
    // `{prefix}/__session__` takes DELETE only (the reference's route, status for status).
    const preflight = await fetch(`${s.listener.url}/__session__`, { method: "OPTIONS" });
    assert.equal(preflight.headers.get("allow"), "DELETE");
    for (const method of ["GET", "POST", "PUT", "HEAD"]) {
      const res = await fetch(`${s.listener.url}/__session__`, { method });
      await res.arrayBuffer();
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get("allow"), "DELETE, OPTIONS", method);
    }
  });

  test("a session opened by one call is the same object in the calls that follow, unary and streams", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    const id = await svc.open({ initial: 7n });
    assert.match(id, /^[0-9a-f]{24}$/);
    assert.ok(sess.token !== null && /^[A-Za-z0-9_-]+$/.test(sess.token), "the answer carried a token");
    assert.deepEqual(sess.echoHeaders, { "x-route": "instance-1" });
    assert.equal(await svc.peek({}), id);
    assert.equal(await svc.add({ by: 10n }), 17n);
    assert.equal(await svc.add({ by: 10n }), 27n);
    const produced = await svc.count({ n: 3n });
    assert.deepEqual(await produced.toArray(), [{ v: 28n }, { v: 29n }, { v: 30n }]);
    const ex = await svc.sum({});
    assert.deepEqual(await ex.exchange([{ by: 5n }, { by: 5n }]), [{ v: 40n }]);
    assert.deepEqual(await ex.exchange([{ by: 1n }]), [{ v: 41n }]);
    await ex.close();
    assert.equal(await svc.close({}), 41n);
    assert.equal(sess.token, null, "VGI-Session-Close dropped the token");
    assert.deepEqual(sess.echoHeaders, {});
    const counter = opened.at(-1)!;
    assert.equal(counter.closed, 1, "closing the session closed its state");
  });

  test("a client that did not opt in cannot have a session opened for it", async () => {
    assertNoSession(
      await rejection(s.svc.open({ initial: 1n })),
      /^client did not opt in to sticky sessions \(missing VGI-Session-Accept: true header/,
    );
    assert.equal(await s.svc.peek({}), null);
  });

  test("one session per request: opening a second one in a bound request is refused", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    await svc.open({ initial: 1n });
    assertNoSession(
      await rejection(svc.open({ initial: 2n })),
      /^a sticky session is already active for this request$/,
    );
    await sess.close();
  });

  test("a closed session's token is answered session_lost, as a 200 flagged X-VGI-RPC-Error before the body is read", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    await svc.open({ initial: 99n });
    const token = sess.detach()!;
    await proxy(s.client.withSession({ token }), Proto).close({});
    assertLost(
      await rejection(proxy(s.client.withSession({ token }), Proto).add({ by: 1n })),
      /not found, expired, or principal mismatch/,
    );
    // The refusal comes before the request is read: an empty body gets it too.
    const res = await fetch(`${s.listener.url}/${P}/peek`, {
      method: "POST",
      headers: { "Content-Type": "application/vnd.apache.arrow.stream", "VGI-Session": token },
      body: new Uint8Array(0),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-vgi-rpc-error"), "true");
    assert.equal(res.headers.get("content-type"), "application/vnd.apache.arrow.stream");
    await res.arrayBuffer();
  });

  test("forged and tampered tokens are answered session_lost", async () => {
    assertLost(await rejection(proxy(s.client.withSession({ token: "not-a-real-token" }), Proto).peek({})));
    assertLost(await rejection(proxy(s.client.withSession({ token: "!!" }), Proto).peek({})), /malformed/);
    const sess = s.client.withSession();
    await proxy(sess, Proto).open({ initial: 1n });
    const token = sess.token!;
    const flipped = `${token.slice(0, 30)}${token[30] === "A" ? "B" : "A"}${token.slice(31)}`;
    assertLost(await rejection(proxy(s.client.withSession({ token: flipped }), Proto).peek({})), /verification failed/);
    const otherKey = sealSessionToken(
      { serverId: s.server.serverId, sessionId: randomBytes(12), expiresAt: 2 ** 40 },
      randomBytes(32),
      sessionAad(ANONYMOUS),
    );
    assertLost(
      await rejection(proxy(s.client.withSession({ token: otherKey }), Proto).peek({})),
      /verification failed/,
    );
    assert.equal(await proxy(sess, Proto).add({ by: 1n }), 2n, "the real token still works");
    await sess.close();
  });

  test("DELETE /__session__ is 200 for no token, a bad one or a gone session, and 204 when it closes one", async () => {
    assert.equal((await deleteSession(s.listener.url)).status, 200);
    assert.equal((await deleteSession(s.listener.url, "garbage")).status, 200);
    const sess = s.client.withSession();
    await proxy(sess, Proto).open({ initial: 1n });
    const counter = opened.at(-1)!;
    const token = sess.token!;
    const res = await deleteSession(s.listener.url, token);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("vgi-session-close"), "true");
    assert.equal(counter.closed, 1);
    assert.equal((await deleteSession(s.listener.url, token)).status, 200, "idempotent");
    assertLost(await rejection(proxy(sess, Proto).peek({})));
  });

  test("DELETE waits for the call using the session, then closes it", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    await svc.open({ initial: 0n });
    const counter = opened.at(-1)!;
    const slow = svc.add({ by: 5n, delay_ms: 300n });
    await sleep(50);
    const deleted = deleteSession(s.listener.url, sess.token!);
    assert.equal(await slow, 5n, "the call in flight finished on its state");
    assert.equal((await deleted).status, 204);
    assert.equal(counter.value, 5n);
    assert.equal(counter.closed, 1);
  });

  test("the client's close() deletes a session still open; detach() leaves it open for a resume", async () => {
    const sess = s.client.withSession();
    await proxy(sess, Proto).open({ initial: 3n });
    const counter = opened.at(-1)!;
    const token = sess.detach();
    assert.equal(sess.token, null);
    await sess.close(); // nothing to send
    assert.equal(counter.closed, 0);
    const resumed = s.client.withSession({ token: token!, echoHeaders: { "x-route": "instance-1" } });
    assert.equal(await proxy(resumed, Proto).add({ by: 1n }), 4n);
    await resumed.close();
    assert.equal(counter.closed, 1, "close() sent DELETE /__session__");
    assert.equal(resumed.token, null);
    await resumed.close(); // idempotent
  });

  test("calls on one session run one at a time; different sessions run in parallel", async () => {
    const one = proxy(s.client.withSession(), Proto);
    const oneId = await one.open({ initial: 0n });
    spans = [];
    const results = await Promise.all([one.add({ by: 1n, delay_ms: 150n }), one.add({ by: 2n, delay_ms: 150n })]);
    // Whichever ran first, the second saw its write: 1 then 3, or 2 then 3.
    assert.ok(
      ["1,3", "2,3"].includes(results.sort((a, b) => Number(a - b)).join(",")),
      `serialized results: ${results.join(", ")}`,
    );
    assert.equal(await one.add({ by: 0n }), 3n, "no update was lost");
    const [a, b] = spans.filter((x) => x.session === oneId);
    assert.ok(a !== undefined && b !== undefined);
    assert.ok(b.start >= a.end, "the second call started after the first answered");

    const two = proxy(s.client.withSession(), Proto);
    const twoId = await two.open({ initial: 0n });
    const three = proxy(s.client.withSession(), Proto);
    const threeId = await three.open({ initial: 0n });
    spans = [];
    await Promise.all([two.add({ by: 1n, delay_ms: 300n }), three.add({ by: 1n, delay_ms: 300n })]);
    const x = spans.find((v) => v.session === twoId)!;
    const y = spans.find((v) => v.session === threeId)!;
    assert.ok(x.start < y.end && y.start < x.end, "the two sessions' calls overlapped");
  });

  test("a method that throws inside a session does not wedge it", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    await svc.open({ initial: 1n });
    await rejection(svc.open({ initial: 1n })); // refused inside the session
    assert.equal(await within(svc.add({ by: 1n }), 5_000, "the next call"), 2n);
    await sess.close();
  });

  test("a request waiting for a session that its running call closes gets session_lost", async () => {
    const sess = s.client.withSession();
    const svc = proxy(sess, Proto);
    await svc.open({ initial: 1n });
    const running = svc.add({ by: 1n, delay_ms: 200n });
    await sleep(50);
    const token = sess.token!;
    // The close queues behind the running add, the peek behind both (they take turns in arrival order).
    const closed = proxy(s.client.withSession({ token }), Proto).close({});
    await sleep(30);
    const waiting = rejection(proxy(s.client.withSession({ token }), Proto).peek({}));
    assert.equal(await running, 2n);
    assert.equal(await closed, 2n);
    assertLost(await waiting);
  });

  test("each request of a session echoes the headers the opening answer named", async () => {
    const seen: (string | null)[] = [];
    const e = await start(
      { echoHeaders: { "x-route": "instance-9" } },
      {
        authenticate: (req) => {
          seen.push(req.headers.get("x-route"));
          return ANONYMOUS;
        },
      },
    );
    try {
      const sess = e.client.withSession();
      const svc = proxy(sess, Proto);
      await svc.open({ initial: 1n });
      await svc.add({ by: 1n });
      await svc.close({});
      await svc.peek({});
      assert.deepEqual(seen, [null, "instance-9", "instance-9", null]);
    } finally {
      await e.stop();
    }
  });
});

describe("sticky session lifetimes", () => {
  test("a session past its lifetime is answered session_lost, and its state closed by the sweep", async () => {
    opened = [];
    const r = await start({ sweepIntervalMs: 50 });
    try {
      const sess = r.client.withSession();
      const svc = proxy(sess, Proto);
      await svc.open({ initial: 1n, ttl: 0.3 });
      assert.equal(await svc.add({ by: 1n }), 2n);
      await sleep(600);
      assert.equal(opened[0]!.closed, 1, "swept without a request");
      assert.equal(r.listener.handler.sessions?.size, 0);
      assertLost(await rejection(svc.add({ by: 1n })));
    } finally {
      await r.stop();
    }
  });

  test("an idle timeout closes a session nobody used, not one in use", async () => {
    opened = [];
    const r = await start({ sweepIntervalMs: 50, idleTimeoutSeconds: 0.4 });
    try {
      const svc = proxy(r.client.withSession(), Proto);
      await svc.open({ initial: 0n });
      for (let i = 0; i < 6; i++) {
        await sleep(100);
        await svc.add({ by: 1n });
      }
      assert.equal(opened[0]!.closed, 0);
      await sleep(800);
      assert.equal(opened[0]!.closed, 1);
      assertLost(await rejection(svc.add({ by: 1n })));
    } finally {
      await r.stop();
    }
  });

  test("a lifetime past maxTtlSeconds, or not positive, is refused with RangeError", async () => {
    const r = await start({ defaultTtlSeconds: 30, maxTtlSeconds: 60 });
    try {
      const svc = proxy(r.client.withSession(), Proto);
      const e = await rejection(svc.open({ initial: 0n, ttl: 61 }));
      assert.equal(e.type, "RangeError");
      assert.equal(r.listener.handler.sessions?.size, 0);
    } finally {
      await r.stop();
    }
  });

  test("the registry expires and idles sessions on its clock", () => {
    let now = 1_000_000;
    const reg = new SessionRegistry(
      stickyConfig({ defaultTtlSeconds: 10, idleTimeoutSeconds: 3 }),
      randomBytes(32),
      "srv000000001",
      pino({ level: "silent" }),
      () => now,
    );
    try {
      const a = new Counter(0n);
      const { entry, token } = reg.open(a, {}, ANONYMOUS);
      reg.give(entry); // the opening request answered
      now += 2_000;
      assert.ok(!(reg.lookup(token, ANONYMOUS) instanceof RpcError), "alive at 2 s");
      assert.equal(reg.sweep(), 0);
      now += 4_000; // idle 6 s > 3 s
      assert.equal(reg.sweep(), 1);
      assert.equal(a.closed, 1);
      const b = new Counter(0n);
      const opened2 = reg.open(b, { ttlSeconds: 5 }, ANONYMOUS);
      now += 4_000; // still held by its request: not idle
      assert.equal(reg.sweep(), 0);
      reg.give(opened2.entry);
      now += 1_500; // 5.5 s > 5 s lifetime
      const lost = reg.lookup(opened2.token, ANONYMOUS);
      assert.ok(lost instanceof RpcError && lost.kind === "session_lost");
      assert.equal(b.closed, 1, "an expired session found by a lookup is closed");
      assert.equal(reg.size, 0);
    } finally {
      void reg.closeAll();
    }
  });

  test("a session that expires while a call holds it closes its state after the call", () => {
    let now = 0;
    const reg = new SessionRegistry(stickyConfig({}), randomBytes(32), "srv", pino({ level: "silent" }), () => now);
    const c = new Counter(0n);
    const { entry } = reg.open(c, { ttlSeconds: 1 }, ANONYMOUS);
    now += 5_000;
    assert.equal(reg.sweep(), 1);
    assert.equal(c.closed, 0, "held by its call");
    reg.give(entry);
    assert.equal(c.closed, 1);
  });
});

describe("sticky session bounds", () => {
  test("maxSessions refuses the next open with session_limit until one closes", async () => {
    const r = await start({ maxSessions: 2 });
    try {
      const a = r.client.withSession();
      await proxy(a, Proto).open({ initial: 0n });
      await proxy(r.client.withSession(), Proto).open({ initial: 0n });
      const e = await rejection(proxy(r.client.withSession(), Proto).open({ initial: 0n }));
      assert.equal(e.kind, "session_limit");
      assert.equal(e.type, "SessionLimitError");
      assert.equal(e.code, "RESOURCE_EXHAUSTED");
      await a.close();
      await proxy(r.client.withSession(), Proto).open({ initial: 0n });
      assert.equal(r.listener.handler.sessions?.size, 2);
    } finally {
      await r.stop();
    }
  });

  test("maxWaitingPerSession answers requests past it session_limit", async () => {
    const r = await start({ maxWaitingPerSession: 1 });
    try {
      const sess = r.client.withSession();
      const svc = proxy(sess, Proto);
      await svc.open({ initial: 0n });
      const results = await Promise.allSettled([
        svc.add({ by: 1n, delay_ms: 300n }),
        svc.add({ by: 1n, delay_ms: 300n }),
        svc.add({ by: 1n, delay_ms: 300n }),
      ]);
      const refused = results.filter((x) => x.status === "rejected");
      assert.equal(refused.length, 1);
      const e = (refused[0] as PromiseRejectedResult).reason as RpcError;
      assert.equal(e.kind, "session_limit");
      assert.equal(await svc.add({ by: 0n }), 2n);
    } finally {
      await r.stop();
    }
  });

  test("maxWaitMs answers a request that waited that long session_limit; the session goes on", async () => {
    const r = await start({ maxWaitMs: 100 });
    try {
      const sess = r.client.withSession();
      const svc = proxy(sess, Proto);
      await svc.open({ initial: 0n });
      const slow = svc.add({ by: 1n, delay_ms: 600n });
      const waited = await rejection(svc.add({ by: 10n }));
      assert.equal(waited.kind, "session_limit");
      assert.match(waited.message, /maxWaitMs/);
      assert.equal(await slow, 1n);
      // The request that gave up never ran, and never holds the session: the next one is served.
      assert.equal(await svc.add({ by: 0n }), 1n);
    } finally {
      await r.stop();
    }
  });

  test("options outside their ranges are refused when the handler is made", async () => {
    const server = makeServer();
    await assert.rejects(listenHttp(server, { sticky: { defaultTtlSeconds: 0 } }), RangeError);
    await assert.rejects(listenHttp(server, { sticky: { defaultTtlSeconds: 1.5 } }), RangeError);
    await assert.rejects(listenHttp(server, { sticky: { maxSessions: -1 } }), RangeError);
    await assert.rejects(listenHttp(server, { sticky: { maxWaitMs: 0 } }), RangeError);
    await assert.rejects(listenHttp(server, { sticky: { defaultTtlSeconds: 100, maxTtlSeconds: 10 } }), RangeError);
    await assert.rejects(listenHttp(server, { sticky: { echoHeaders: { "bad name": "x" } } }), TypeError);
  });
});

describe("sticky sessions across callers and instances", () => {
  test("a token replayed by another caller is answered session_lost; its owner still resumes it", async () => {
    const who = (req: { headers: { get(n: string): string | null } }): AuthContext => {
      const name = req.headers.get("x-who");
      return name ? authenticated("test", name) : ANONYMOUS;
    };
    const r = await start(true, { authenticate: who });
    const alice = connectHttp(r.listener.url, { headers: { "x-who": "alice" } });
    const bob = connectHttp(r.listener.url, { headers: { "x-who": "bob" } });
    try {
      const sess = alice.withSession();
      await proxy(sess, Proto).open({ initial: 5n });
      const token = sess.detach()!;
      assertLost(await rejection(proxy(bob.withSession({ token }), Proto).add({ by: 100n })), /verification failed/);
      assertLost(await rejection(proxy(r.client.withSession({ token }), Proto).add({ by: 100n })));
      assert.equal((await deleteSession(r.listener.url, token, { "x-who": "bob" })).status, 200);
      assert.equal(await proxy(alice.withSession({ token }), Proto).add({ by: 1n }), 6n);
      assert.equal((await deleteSession(r.listener.url, token, { "x-who": "alice" })).status, 204);
    } finally {
      await alice.close();
      await bob.close();
      await r.stop();
    }
  });

  test("an instance sharing the token key refuses another instance's session (server id), which still serves it", async () => {
    const tokenKey = randomBytes(32);
    const a = await start(true, { tokenKey });
    const b = await start(true, { tokenKey });
    try {
      assert.notEqual(a.server.serverId, b.server.serverId);
      const sess = a.client.withSession();
      await proxy(sess, Proto).open({ initial: 5n });
      const token = sess.detach()!;
      assertLost(
        await rejection(proxy(b.client.withSession({ token }), Proto).add({ by: 1n })),
        /different worker \(server_id mismatch\)/,
      );
      assert.equal((await deleteSession(b.listener.url, token)).status, 200);
      assert.equal(await proxy(a.client.withSession({ token }), Proto).add({ by: 1n }), 6n);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("sticky sessions and the handler's life", () => {
  test("close() closes every session's state, awaiting async close()", async () => {
    opened = [];
    const r = await start();
    await proxy(r.client.withSession(), Proto).open({ initial: 0n });
    await proxy(r.client.withSession(), Proto).open({ initial: 0n, slow_close: true });
    assert.equal(r.listener.handler.sessions?.size, 2);
    await r.stop();
    assert.deepEqual(
      opened.map((c) => c.closed),
      [1, 1],
    );
    assert.equal(opened[1]!.closeFinished, true, "the async close() settled before close() resolved");
    assert.equal(r.listener.handler.sessions?.size, 0);
  });

  test("while draining, opening is refused with server_draining and open sessions keep serving", async () => {
    const r = await start();
    try {
      const sess = r.client.withSession();
      const svc = proxy(sess, Proto);
      await svc.open({ initial: 10n });
      const sessions = r.listener.handler.sessions!;
      sessions.setDraining(true);
      assert.equal(sessions.draining, true);
      assert.equal(await svc.add({ by: 5n }), 15n);
      const e = await rejection(proxy(r.client.withSession(), Proto).open({ initial: 1n }));
      assert.equal(e.type, "ServerDrainingError");
      assert.equal(e.kind, "server_draining");
      assert.deepEqual(e.details, [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 1 }]);
      sessions.setDraining(false);
      await proxy(r.client.withSession(), Proto).open({ initial: 1n });
    } finally {
      await r.stop();
    }
  });

  test("call records carry the session's id and what the call did with it", async () => {
    const records: CallRecord[] = [];
    const r = await start();
    r.server.observe((rec) => records.push(rec));
    try {
      const svc = proxy(r.client.withSession(), Proto);
      const id = await svc.open({ initial: 0n });
      await svc.add({ by: 1n });
      await svc.close({});
      await r.svc.peek({});
      const mine = records.filter((x) => x.protocol === P);
      assert.deepEqual(
        mine.map((x) => [x.method, x.sessionAction, x.sessionId]),
        [
          ["open", "open", id],
          ["add", "resume", id],
          ["close", "close", id],
          ["peek", "none", ""],
        ],
      );
    } finally {
      await r.stop();
    }
  });
});

describe("without sticky sessions", () => {
  test("an HTTP handler without them advertises none, has no /__session__, and refuses openSession", async () => {
    const records: CallRecord[] = [];
    const r = await start(false);
    r.server.observe((rec) => records.push(rec));
    try {
      const res = await fetch(`${r.listener.url}/health`, { method: "OPTIONS" });
      assert.equal(res.headers.get("vgi-sticky-enabled"), null);
      assert.equal(res.headers.get("vgi-sticky-default-ttl"), null);
      assert.equal((await deleteSession(r.listener.url, "x")).status, 405);
      assert.equal(r.listener.handler.sessions, null);
      const sess = r.client.withSession();
      assertNoSession(
        await rejection(proxy(sess, Proto).open({ initial: 1n })),
        /^sticky sessions not available on this transport$/,
      );
      // A session header is nobody's business here.
      assert.equal(await proxy(r.client.withSession({ token: "whatever" }), Proto).peek({}), null);
      assert.equal(records.at(-1)?.sessionAction, "");
    } finally {
      await r.stop();
    }
  });

  test("a session transport refuses openSession and binds no session", async () => {
    const { client, served } = memoryClient(makeServer());
    try {
      const svc = proxy(client, Proto);
      assertNoSession(await rejection(svc.open({ initial: 1n })), /^sticky sessions not available on this transport$/);
      assert.equal(await svc.peek({}), null);
    } finally {
      await client.close();
      await served;
    }
  });
});

describe("CORS with sticky sessions", () => {
  test("the session headers and the echo headers are exposed to allowed origins", async () => {
    const r = await start({ echoHeaders: { "x-route": "i1" } }, { cors: { origins: ["https://app.example"] } });
    try {
      const res = await fetch(`${r.listener.url}/health`, { headers: { Origin: "https://app.example" } });
      await res.arrayBuffer();
      const exposed = (res.headers.get("access-control-expose-headers") ?? "").split(", ");
      for (const h of [
        "VGI-Sticky-Enabled",
        "VGI-Sticky-Default-TTL",
        "VGI-Sticky-Echo-Headers",
        "VGI-Session",
        "VGI-Session-Close",
        "VGI-Echo-x-route",
      ]) {
        assert.ok(exposed.includes(h), `${h} is exposed (${exposed.join(", ")})`);
      }
    } finally {
      await r.stop();
    }
  });
});

describe("the session token", () => {
  test("has the reference's layout and opens only under its key and caller", () => {
    const key = randomBytes(32);
    const alice = authenticated("d", "alice");
    const sessionId = randomBytes(12);
    const token = sealSessionToken(
      { serverId: "abcdef012345", sessionId, expiresAt: 1_900_000_000 },
      key,
      sessionAad(alice),
    );
    const raw = Buffer.from(token, "base64url");
    assert.equal(token.includes("="), false, "unpadded");
    assert.equal(raw[0], 1, "version byte");
    // version + nonce + (created_at 8 + len 1 + server id 12 + session id 12 + expires_at 8) + tag
    assert.equal(raw.byteLength, 1 + 24 + (8 + 1 + 12 + 12 + 8) + 16);
    const opened = openSessionToken(token, key, sessionAad(alice));
    assert.equal(opened.serverId, "abcdef012345");
    assert.deepEqual(Buffer.from(opened.sessionId), sessionId);
    assert.equal(opened.expiresAt, 1_900_000_000);
    const lost = (f: () => unknown) =>
      assert.throws(f, (e: unknown) => e instanceof RpcError && e.kind === "session_lost");
    lost(() => openSessionToken(token, key, sessionAad(authenticated("d", "bob"))));
    lost(() => openSessionToken(token, key, sessionAad(ANONYMOUS)));
    lost(() => openSessionToken(token, randomBytes(32), sessionAad(alice)));
    lost(() => openSessionToken(token.slice(0, 40), key, sessionAad(alice)));
    lost(() => openSessionToken(`${token}A`, key, sessionAad(alice)));
    lost(() => openSessionToken("x".repeat(2000), key, sessionAad(alice)));
    const v2 = Buffer.from(raw);
    v2[0] = 2;
    lost(() => openSessionToken(v2.toString("base64url"), key, sessionAad(alice)));
  });

  test("a frame sealed with the right key but the wrong shape is session_lost, whatever its length byte says", () => {
    const key = randomBytes(32);
    const aad = sessionAad(ANONYMOUS);
    for (let length = 0; length <= 96; length++) {
      for (const idLength of [0, 1, 12, length - 29, length - 28, 255]) {
        const plain = randomBytes(length);
        if (length > 8) plain[8] = Math.max(0, Math.min(255, idLength));
        const nonce = randomBytes(24);
        const envelope = Buffer.concat([Buffer.of(1), nonce, tokenCipher.seal(key, nonce, aad, plain)]);
        const frameFits = length >= 9 && length === 9 + plain[8]! + 12 + 8;
        const text = envelope.toString("base64url");
        if (frameFits) assert.equal(openSessionToken(text, key, aad).sessionId.byteLength, 12);
        else assert.throws(() => openSessionToken(text, key, aad), /malformed session token/);
      }
    }
  });

  test("its AAD is the reference's: the v6 state prefix, the identity tail, the server scope", () => {
    const text = (a: AuthContext) => Buffer.from(sessionAad(a)).toString("latin1");
    assert.equal(text(ANONYMOUS), "vgi_rpc.state.v6\0\0anonymous\0\0server");
    assert.equal(text(authenticated("dom", "ann")), "vgi_rpc.state.v6\0\x01dom\0ann\0\0server");
    assert.equal(
      text(authenticated("dom", "ann", { peer_evidence_binding: "b1" })),
      "vgi_rpc.state.v7\0\x01dom\0ann\0b1\0\0server",
    );
  });
});

describe("quiver's client against the reference's sticky server", () => {
  const key = randomBytes(32);
  let child: ChildProcess;
  let url: string;
  let client: HttpClient;

  before(async () => {
    child = spawn(python(), [new URL("sticky-reference-worker.py", import.meta.url).pathname, key.toString("hex")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const port = await within(
      new Promise<number>((resolve, reject) => {
        let buf = "";
        child.stdout!.on("data", (c: Buffer) => {
          buf += c.toString("utf8");
          const m = /^PORT:(\d+)\s*$/m.exec(buf);
          if (m) resolve(Number(m[1]));
        });
        child.once("exit", (code) => reject(new Error(`the reference worker exited (${code})`)));
      }),
      30_000,
      "the reference worker's PORT line",
    );
    url = `http://127.0.0.1:${port}`;
    client = connectHttp(url);
  });
  after(async () => {
    await client?.close();
    child?.kill("SIGKILL");
  });

  test("opens, resumes across unary calls and both stream kinds, and closes a session", async () => {
    const sess = client.withSession();
    const svc = proxy(sess, ConformanceService);
    assert.equal(await svc.open_counter({ initial: 7n }), 7n);
    assert.ok(sess.token !== null);
    assert.deepEqual(sess.echoHeaders, { "x-vgi-conformance-echo": "conformance-fixed-marker" });
    assert.equal(await svc.increment_counter({ by: 10n }), 17n);
    const produced = await svc.stream_session_counter({ count: 2n });
    assert.deepEqual(await produced.toArray(), [{ value: 18n }, { value: 19n }]);
    const ex = await svc.exchange_session_counter({});
    assert.deepEqual(await ex.exchange([{ by: 5n }]), [{ value: 24n }]);
    await ex.close();
    assert.equal(await svc.close_counter({}), 24n);
    assert.equal(sess.token, null);
    const e = await rejection(proxy(client, ConformanceService).open_counter({ initial: 1n }));
    assert.equal(e.type, "RuntimeError");
    assert.match(e.message, /VGI-Session-Accept/);
  });

  test("close() deletes the session there; its token is then session_lost", async () => {
    const sess = client.withSession();
    await proxy(sess, ConformanceService).open_counter({ initial: 1n });
    const token = sess.token!;
    await sess.close();
    const e = await rejection(proxy(client.withSession({ token }), ConformanceService).increment_counter({ by: 1n }));
    assertLost(e, /not found, expired, or principal mismatch/);
  });

  test("its tokens open with ours, and ours with its: the same layout, AAD and key use", async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as { server_id: string };
    const sess = client.withSession();
    await proxy(sess, ConformanceService).open_counter({ initial: 1n });
    const theirs = openSessionToken(sess.token!, key, sessionAad(ANONYMOUS));
    assert.equal(theirs.serverId, health.server_id);
    const now = Date.now() / 1000;
    assert.ok(theirs.expiresAt > now + 290 && theirs.expiresAt <= now + 301, "its default 300 s lifetime");
    await sess.close();
    // A token we seal for its server id opens there (the session is unknown, not the token).
    const ours = sealSessionToken(
      { serverId: health.server_id, sessionId: randomBytes(12), expiresAt: Math.floor(now) + 60 },
      key,
      sessionAad(ANONYMOUS),
    );
    assertLost(
      await rejection(proxy(client.withSession({ token: ours }), ConformanceService).increment_counter({ by: 1n })),
      /not found, expired, or principal mismatch/,
    );
    const foreign = sealSessionToken(
      { serverId: health.server_id, sessionId: randomBytes(12), expiresAt: Math.floor(now) + 60 },
      randomBytes(32),
      sessionAad(ANONYMOUS),
    );
    assertLost(
      await rejection(proxy(client.withSession({ token: foreign }), ConformanceService).increment_counter({ by: 1n })),
      /verification failed/,
    );
  });
});
