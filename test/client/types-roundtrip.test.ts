/**
 * Every declarable Arrow type, end to end (the cases are test/fixtures/types-table.ts, the types
 * docs/types.md lists): its values round-trip through quiver (typed client → our server), through
 * the reference (our client → the reference serving the same declaration, and the reference's
 * client → our worker), and each value outside its type's domain is refused by our client before
 * anything is sent and, returned by a handler, by our server as the error the caller receives.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { callUnary } from "../../src/client/typed.js";
import { InvalidValueError, RpcError } from "../../src/errors.js";
import { defineProtocol, type UnaryDecl, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { type Binding, bind, createServer } from "../../src/server/server.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { pythonCases, TYPE_CASES, TypesService } from "../fixtures/types-table.js";
import { memoryClient, python } from "./helpers.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const CASES_ENV = { ...process.env, QUIVER_TYPES_CASES: JSON.stringify(pythonCases()) };

/** `return_<name>`: the handler returns the `i`-th refused value of the case as its result. */
const Refusing = defineProtocol(
  "test.Refusing.v1",
  {},
  Object.fromEntries(TYPE_CASES.map((c) => [`return_${c.name}`, unary({ i: t.int32() }, c.spec())])) as Readonly<
    Record<string, UnaryDecl>
  >,
);

function echoHandlers(protocol: { readonly methods: Readonly<Record<string, unknown>> }) {
  return Object.fromEntries(Object.keys(protocol.methods).map((n) => [n, ({ value }: { value: unknown }) => value]));
}

/** Asserts `err` is the refusal of `value` by `method`'s `role` with `type` and a problem matching `message`. */
function isRefusal(err: unknown, method: string, where: string, type: string, message: RegExp): boolean {
  assert.ok(err instanceof RpcError, `expected an RpcError, got ${String(err)}`);
  assert.equal(err.type, type, err.message);
  const prefix = `${method}() ${where}`;
  assert.ok(err.message.startsWith(prefix), `"${err.message}" should start with "${prefix}"`);
  const rest = err.message.slice(prefix.length);
  assert.match(rest.slice(rest.indexOf(": ") + 2), message);
  return true;
}

describe("typed client → quiver server, per type", () => {
  let client: RpcClient;
  let calls = 0;
  before(() => {
    const server = createServer({
      protocols: [
        bind(TypesService, echoHandlers(TypesService) as never) as Binding,
        bind(
          Refusing,
          Object.fromEntries(
            TYPE_CASES.map((c) => [`return_${c.name}`, ({ i }: { i: number }) => c.refused[i]!.value]),
          ) as never,
        ) as Binding,
      ],
      onCallEnd: () => {
        calls++;
      },
    });
    client = memoryClient(server).client;
  });
  after(() => client?.close());

  for (const c of TYPE_CASES) {
    test(`${c.name}: values round-trip exactly; values outside the type are refused before sending and from a handler`, async () => {
      const method = `echo_${c.name}`;
      for (const v of c.samples) {
        assert.deepEqual(await callUnary(client, TypesService, method, { value: v }), v, `${method}(${String(v)})`);
      }
      for (const [i, r] of c.refused.entries()) {
        const before = calls;
        await assert.rejects(callUnary(client, TypesService, method, { value: r.value }), (err: unknown) => {
          assert.ok(err instanceof InvalidValueError, `expected an InvalidValueError, got ${String(err)}`);
          assert.equal(err.method, method);
          assert.equal(err.field, "value");
          return isRefusal(err, method, "parameter 'value", r.type, r.message);
        });
        assert.equal(calls, before, "a refused value is never sent");
        // The same value returned by a handler: the caller gets the server's refusal.
        await assert.rejects(callUnary(client, Refusing, `return_${c.name}`, { i }), (err: unknown) => {
          assert.ok(!(err instanceof InvalidValueError), "the refusal came over the wire");
          return isRefusal(err, `return_${c.name}`, "result", r.type, r.message);
        });
      }
      // The connection is still in step.
      assert.deepEqual(await callUnary(client, TypesService, method, { value: c.samples[0] }), c.samples[0]);
    });
  }
});

describe("our client → the reference serving the same declaration, per type", () => {
  let client: RpcClient;
  before(async () => {
    client = await connectSubprocess(python(), [join(ROOT, "test/fixtures/types_worker.py"), "--describe"], {
      timeoutMs: 20_000,
      stderr: "ignore",
      env: CASES_ENV,
    });
  });
  after(() => client?.close());

  test("the reference hashes the declaration as we do", async () => {
    const described = await client.describe();
    const Declared = defineProtocol(
      "TypesService",
      {},
      Object.fromEntries(
        Object.entries(TypesService.methods).filter(([name]) =>
          TYPE_CASES.some((c) => `echo_${c.name}` === name && c.pyarrow !== null),
        ),
      ),
    );
    const ours = createServer({ protocols: [bind(Declared, echoHandlers(Declared) as never) as Binding] });
    assert.equal(described.protocolHash, ours.protocols.get("TypesService")!.hash);
  });

  for (const c of TYPE_CASES) {
    const values = c.reference ?? c.samples;
    const skip = c.pyarrow === null || values.length === 0 ? (c.referenceGap ?? true) : false;
    test(`${c.name}: the reference echoes our values exactly`, { skip }, async () => {
      for (const v of values) {
        assert.deepEqual(await callUnary(client, TypesService, `echo_${c.name}`, { value: v }), v);
      }
    });
  }
});

describe("the reference's client → our worker, per type", () => {
  let report: Record<string, { sent: string; ok: boolean; got?: string; want?: string; error?: string }[]> = {};
  before(() => {
    const worker = [process.execPath, "--import", "tsx", join(ROOT, "test/fixtures/types-worker.ts")];
    const r = spawnSync(python(), [join(ROOT, "test/fixtures/types_client.py"), JSON.stringify(worker)], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
      env: CASES_ENV,
    });
    assert.equal(r.status, 0, `python client failed: ${r.stderr}`);
    report = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}");
  });

  for (const c of TYPE_CASES) {
    const skip = c.pyarrow === null || (c.python ?? []).length === 0 ? (c.referenceGap ?? true) : false;
    test(`${c.name}: our worker echoes the reference's values as pyarrow reads them`, { skip }, () => {
      const results = report[c.name];
      assert.ok(results !== undefined && results.length === (c.python ?? []).length, `no report for ${c.name}`);
      for (const r of results) assert.ok(r.ok, `${c.name}(${r.sent}): ${r.error ?? `got ${r.got}, want ${r.want}`}`);
    });
  }
});

test("columns apache-arrow cannot read (list views, run-end encoding) pass through our worker untouched inside embedded IPC", () => {
  const worker = [process.execPath, "--import", "tsx", join(ROOT, "src/bin/quiver-conformance.ts")];
  const r = spawnSync(python(), [join(ROOT, "test/fixtures/opaque_columns_client.py"), JSON.stringify(worker)], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `python client failed: ${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}"), {
    batch_equal: true,
    schema_equal: true,
    types: [
      "list_view<item: int64>",
      "large_list_view<item: string>",
      "run_end_encoded<run_ends: int32, values: string>",
    ],
  });
});
