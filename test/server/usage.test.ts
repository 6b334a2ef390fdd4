/**
 * The usage meter: calls, errors, rows and bytes per principal and method over rolling windows;
 * and `quiver.Usage.v1`, through which an operator holding the declared scheme and scope reads it
 * remotely while other callers are refused.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError, ValueError } from "../../src/errors.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { createUsageMeter, USAGE_PROTOCOL, usageProtocol } from "../../src/server/usage.js";
import { allHarnesses } from "../helpers/all-transports.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const P = defineProtocol(
  "test.Used.v1",
  { version: "1.0.0" },
  { sum: unary({ xs: t.list(t.int64()) }, t.int64()), bad: unary({}, t.int64()) },
);
const impl = bind(P, {
  sum: ({ xs }) => xs.reduce((a, b) => a + b, 0n),
  bad: () => {
    throw new ValueError("no");
  },
});

const ALICE = authenticated("jwt", "alice");
const BOB = authenticated("jwt", "bob");
const OPERATOR = authenticated("ops", "operator", {}, { scheme: "ops", scopes: ["usage:read"] });
const NO_SCOPE = authenticated("ops", "intern", {}, { scheme: "ops", scopes: [] });

describe("usage meter", () => {
  it("tallies each principal's calls, errors, rows and bytes per method over rolling windows", async () => {
    let clock = 1_800_000_000_000;
    const meter = createUsageMeter({ bucketMs: 1000, buckets: 10, now: () => clock });
    const server = createServer({ interceptors: [meter.interceptor], protocols: [impl] });
    const alice = proxy(memoryClientAs(server, ALICE), P);
    const bob = proxy(memoryClientAs(server, BOB), P);
    assert.equal(await alice.sum({ xs: [1n, 2n] }), 3n);
    await assert.rejects(alice.bad());
    clock += 3000;
    assert.equal(await alice.sum({ xs: [5n] }), 5n);
    assert.equal(await bob.sum({ xs: [] }), 0n);

    const all = meter.report();
    assert.deepEqual(
      all.map((e) => [e.principal, e.method, e.calls, e.errors, e.inputRows, e.outputRows]),
      [
        ["alice", "test.Used.v1.bad", 1, 1, 0, 0],
        ["alice", "test.Used.v1.sum", 2, 0, 2, 2],
        ["bob", "test.Used.v1.sum", 1, 0, 1, 1],
      ],
    );
    assert.ok(all[1]!.inputBytes > 0 && all[1]!.outputBytes === 16, JSON.stringify(all[1]));
    // The last second only: the calls made 3 s ago fall outside.
    assert.deepEqual(
      meter.report(1000, "alice").map((e) => [e.method, e.calls]),
      [["test.Used.v1.sum", 1]],
    );
    // Past the meter's span everything has rolled off.
    clock += 10_000;
    assert.deepEqual(meter.report(), []);
  });

  it("tallies new series past maxSeries under <other>", async () => {
    const meter = createUsageMeter({ maxSeries: 1 });
    const server = createServer({ interceptors: [meter.interceptor], protocols: [impl] });
    await proxy(memoryClientAs(server, ALICE), P).sum({ xs: [1n] });
    await proxy(memoryClientAs(server, BOB), P).sum({ xs: [1n] });
    assert.deepEqual(
      meter.report().map((e) => e.principal),
      ["<other>", "alice"],
    );
  });
});

describe(`${USAGE_PROTOCOL}`, () => {
  const serve = () => {
    const meter = createUsageMeter();
    return createServer({
      interceptors: [meter.interceptor],
      securitySchemes: { ops: { type: "bearer", scopes: { "usage:read": "read usage per caller" } } },
      protocols: [impl, meter.binding({ ops: ["usage:read"] })],
    });
  };
  const Usage = usageProtocol({ ops: ["usage:read"] });

  for (const transport of ["memory", "http"] as const) {
    it(`${transport}: an operator with the scope reads usage per principal; others are refused`, async () => {
      const harness = await allHarnesses({ alice: ALICE, operator: OPERATOR, intern: NO_SCOPE })[transport](serve());
      const alice = await harness.connect("alice");
      const operator = await harness.connect("operator");
      const intern = await harness.connect("intern");
      try {
        await proxy(alice, P).sum({ xs: [1n, 2n, 3n] });
        await proxy(alice, P).sum({ xs: [4n] });
        const rows = await (await proxy(operator, Usage).report({ principal: "alice" })).toArray();
        assert.deepEqual(
          rows.map((r) => [r.principal, r.method, r.calls, r.errors, r.input_rows, r.output_rows]),
          [["alice", "test.Used.v1.sum", 2n, 0n, 2n, 2n]],
        );
        const everyone = await (await proxy(operator, Usage).report({ window_seconds: 60n })).toArray();
        assert.ok(everyone.some((r) => r.principal === "operator" && r.method === `${USAGE_PROTOCOL}.report`));
        // Another scheme (alice), or the scheme without the scope (intern): refused.
        for (const who of [alice, intern]) {
          const err = await (async () => (await proxy(who, Usage).report({})).toArray())().catch((e: unknown) => e);
          assert.ok(err instanceof RpcError, String(err));
          assert.equal(err.code, "PERMISSION_DENIED", err.message);
        }
      } finally {
        await Promise.all([alice.close(), operator.close(), intern.close()]);
        await harness.close();
      }
    });
  }

  it("is never open: binding it needs a scheme the server declares", () => {
    const meter = createUsageMeter();
    assert.throws(
      () => createServer({ protocols: [impl, meter.binding({ ops: ["usage:read"] })] }),
      /requires security scheme 'ops'/,
    );
    assert.throws(() => meter.binding({}), /admits nobody/);
  });
});
