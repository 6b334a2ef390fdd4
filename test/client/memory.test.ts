/** Our client against our own server over the in-memory pipe. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { paramsBatch, proxy } from "../../src/client/typed.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { METHOD_KEY, PROTOCOL_KEY, PROTOCOL_VERSION_KEY, REQUEST_VERSION_KEY } from "../../src/wire/keys.js";
import type { LogRecord } from "../../src/wire/messages.js";
import { memoryClient, within } from "./helpers.js";

const Calc = defineProtocol(
  "acme.Calc.v1",
  { version: "1.2.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    greet: unary({ name: t.utf8(), punct: t.utf8().default("!") }, t.utf8()),
    noop: unary({}, null),
    meta: unary({}, t.utf8()),
    fail: unary({ kind: t.utf8() }, t.utf8()),
    count: producer(
      { n: t.int64() },
      { output: { i: t.int64() }, header: { total: t.int64() }, state: { i: t.int64(), n: t.int64() } },
    ),
    forever: producer({}, { output: { i: t.int64() }, state: { i: t.int64() } }),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64() } },
    ),
  },
);

let cancelled = 0;
let lastMetadata = new Map<string, string>();

function makeServer() {
  return createServer({
    protocols: [
      bind(Calc, {
        add: ({ a, b }) => a + b,
        greet: ({ name, punct }, ctx) => {
          ctx.clientLog("INFO", `greeting ${name}`, { who: name });
          return `hello ${name}${punct}`;
        },
        noop: () => {},
        meta: (_p, ctx) => {
          lastMetadata = new Map(ctx.requestMetadata);
          return "ok";
        },
        fail: ({ kind }) => {
          if (kind === "value") throw new ValueError("bad value");
          throw new RpcError("custom failure", { type: "QuotaError", code: "RESOURCE_EXHAUSTED", kind: "quota" });
        },
        count: {
          init: ({ n }) => {
            if (n < 0n) throw new ValueError("n must be >= 0");
            return { state: { i: 0n, n }, header: { total: n } };
          },
          produce: (s, out) => {
            if (s.i === 2n) out.clientLog("WARN", "halfway");
            if (s.i === 3n && s.n === 99n) throw new ValueError("boom at 3");
            if (s.i < s.n) out.emit([{ i: s.i++ }]);
            else out.finish();
          },
        },
        forever: {
          init: () => ({ state: { i: 0n } }),
          produce: (s, out) => out.emit([{ i: s.i++ }]),
          onCancel: () => {
            cancelled++;
          },
        },
        scale: {
          init: ({ factor }) => ({ state: { factor } }),
          process: (s, input, out) => out.emitColumns({ x: input.column("x").map((x) => x * s.factor) }),
          onCancel: () => {
            cancelled++;
          },
        },
      }),
    ],
  });
}

test("unary calls through the typed proxy: results, defaults, void, logs and request metadata", async () => {
  const logs: LogRecord[] = [];
  const { client, served } = memoryClient(makeServer(), { onLog: (r) => logs.push(r) });
  const calc = proxy(client, Calc);
  assert.equal(await calc.add({ a: 1, b: 2.5 }), 3.5);
  assert.equal(await client.call(Calc, "add", { a: 2, b: 2 }), 4);
  assert.equal(await calc.greet({ name: "ada" } as never), "hello ada!");
  assert.equal(await calc.greet({ name: "bob", punct: "?" }), "hello bob?");
  assert.equal(await calc.noop(), undefined);
  assert.equal(logs.length, 2);
  assert.equal(logs[0]!.level, "INFO");
  assert.equal(logs[0]!.message, "greeting ada");
  assert.equal(logs[0]!.extra.who, "ada");
  assert.equal(await calc.meta(), "ok");
  assert.equal(lastMetadata.get(METHOD_KEY), "meta");
  assert.equal(lastMetadata.get(REQUEST_VERSION_KEY), "1");
  assert.equal(lastMetadata.get(PROTOCOL_KEY), "acme.Calc.v1");
  assert.equal(lastMetadata.get(PROTOCOL_VERSION_KEY), "1.2.0");
  await assert.rejects(() => calc.add({ a: 1 } as never), /parameter 'b' is not optional/);
  await client.close();
  await within(served, 2000, "server session end");
});

test("server errors arrive as RpcError with type, message, code and kind; the connection stays usable", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  await assert.rejects(calc.fail({ kind: "value" }), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.type, "ValueError");
    assert.equal(e.message, "bad value");
    return true;
  });
  await assert.rejects(calc.fail({ kind: "quota" }), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.type, "QuotaError");
    assert.equal(e.code, "RESOURCE_EXHAUSTED");
    assert.equal(e.kind, "quota");
    return true;
  });
  await assert.rejects(
    client.unaryBatch(
      { protocol: "acme.Calc.v1", protocolVersion: "1.2.0", method: "nope" },
      paramsBatch("nope", {}, {}),
    ),
    (e: unknown) => e instanceof RpcError && e.kind === "method_not_implemented",
  );
  await assert.rejects(
    client.unaryBatch(
      { protocol: "acme.Calc.v1", protocolVersion: "9.0.0", method: "noop" },
      paramsBatch("noop", {}, {}),
    ),
    (e: unknown) => e instanceof RpcError && e.kind === "protocol_version_mismatch",
  );
  assert.equal(await calc.add({ a: 1, b: 1 }), 2);
  await client.close();
});

test("producer: header, typed rows, logs mid-stream, and an error mid-stream", async () => {
  const logs: LogRecord[] = [];
  const { client } = memoryClient(makeServer(), { onLog: (r) => logs.push(r) });
  const calc = proxy(client, Calc);
  const s = await calc.count({ n: 4n });
  assert.deepEqual(s.header, { total: 4n });
  assert.deepEqual(await s.toArray(), [{ i: 0n }, { i: 1n }, { i: 2n }, { i: 3n }]);
  assert.deepEqual(
    logs.map((l) => [l.level, l.message]),
    [["WARN", "halfway"]],
  );
  const bad = await client.stream(Calc, "count", { n: 99n });
  const seen: bigint[] = [];
  await assert.rejects(
    (async () => {
      for await (const r of bad) seen.push(r.i);
    })(),
    (e: unknown) => e instanceof RpcError && e.type === "ValueError" && e.message === "boom at 3",
  );
  assert.deepEqual(seen, [0n, 1n, 2n]);
  assert.equal(await calc.add({ a: 1, b: 2 }), 3);
  await client.close();
});

test("an init error on a method with a header rejects the stream call; the connection stays in sync", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  await assert.rejects(
    calc.count({ n: -1n }),
    (e: unknown) => e instanceof RpcError && e.type === "ValueError" && e.message === "n must be >= 0",
  );
  assert.equal(await calc.add({ a: 2, b: 3 }), 5);
  assert.deepEqual(await (await calc.count({ n: 1n })).toArray(), [{ i: 0n }]);
  await client.close();
});

test("exchange: lockstep turns, close, and the connection is reused after", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  const s = await calc.scale({ factor: 3 });
  assert.equal(s.header, null);
  assert.deepEqual(await s.exchange([{ x: 1 }, { x: 2 }]), [{ x: 3 }, { x: 6 }]);
  assert.deepEqual(await s.exchange([{ x: -1 }]), [{ x: -3 }]);
  await s.close();
  await assert.rejects(s.exchange([{ x: 1 }]), /closed or cancelled/);
  assert.equal(await calc.add({ a: 5, b: 5 }), 10);
  await client.close();
});

test("cancel: breaking out of a producer, AbortSignal, and exchange.cancel() send the cancel batch", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  const before = cancelled;
  for await (const r of await calc.forever()) if (r.i === 2n) break;
  assert.equal(cancelled, before + 1);

  const ac = new AbortController();
  const s = await calc.forever({}, { signal: ac.signal });
  const got: bigint[] = [];
  await assert.rejects(
    (async () => {
      for await (const r of s) {
        got.push(r.i);
        if (r.i === 4n) ac.abort(new Error("stop now"));
      }
    })(),
    /stop now/,
  );
  assert.deepEqual(got, [0n, 1n, 2n, 3n, 4n]);
  assert.equal(cancelled, before + 2);

  const ex = await calc.scale({ factor: 2 });
  assert.deepEqual(await ex.exchange([{ x: 1 }]), [{ x: 2 }]);
  await ex.cancel();
  assert.equal(cancelled, before + 3);
  assert.equal(await calc.add({ a: 1, b: 2 }), 3);
  await client.close();
});

test("concurrent calls queue on one connection; a stream holds it until it ends", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => calc.add({ a: i, b: 1 })));
  assert.deepEqual(
    results,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  // A call that fails hands the connection on like one that succeeds.
  const mixed = await Promise.allSettled([
    calc.add({ a: 1, b: 1 }),
    calc.fail({ kind: "value" }),
    calc.add({ a: 2, b: 2 }),
  ]);
  assert.deepEqual(
    mixed.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
  assert.equal((mixed[2] as PromiseFulfilledResult<number>).value, 4);
  const ex = await calc.scale({ factor: 10 });
  const queued = calc.add({ a: 1, b: 1 });
  assert.deepEqual(await ex.exchange([{ x: 1 }]), [{ x: 10 }]);
  await ex.close();
  assert.equal(await queued, 2);
  await client.close();
});

test("describe and listProtocols via vgi_rpc.Reflection.v1", async () => {
  const { client } = memoryClient(makeServer());
  const listing = await client.listProtocols();
  assert.deepEqual(
    listing.protocols.map((p) => p.name),
    ["acme.Calc.v1", "vgi_rpc.Reflection.v1"],
  );
  const d = await client.describe();
  assert.equal(d.protocolName, "acme.Calc.v1");
  assert.equal(d.protocolVersion, "1.2.0");
  assert.match(d.protocolHash, /^[0-9a-f]{64}$/);
  assert.deepEqual([...d.methods.keys()], ["add", "count", "fail", "forever", "greet", "meta", "noop", "scale"]);
  const add = d.methods.get("add")!;
  assert.equal(add.methodType, "unary");
  assert.deepEqual(
    add.paramsSchema.fields.map((f) => f.name),
    ["a", "b"],
  );
  assert.equal(d.methods.get("count")!.hasHeader, true);
  assert.equal(d.methods.get("scale")!.isExchange, true);
  assert.equal(d.methods.get("count")!.isExchange, false);
  await client.close();
});

test("closing the client fails calls queued behind an open stream (no hang)", async () => {
  const { client } = memoryClient(makeServer());
  const calc = proxy(client, Calc);
  const ex = await calc.scale({ factor: 1 });
  const queued = calc.add({ a: 1, b: 1 });
  await client.close();
  await within(
    assert.rejects(queued, (e: unknown) => e instanceof RpcError && e.kind === "transport_error"),
    2000,
    "the queued call",
  );
  await assert.rejects(ex.exchange([{ x: 1 }]), (e: unknown) => e instanceof RpcError && e.kind === "transport_error");
  await assert.rejects(calc.add({ a: 1, b: 1 }), /the client is closed/);
});
