/**
 * The typed client refuses an answer its declaration cannot read (a missing field, another Arrow
 * type, a null declared not null) with a ProtocolError, and the connection stays usable after.
 * The server here declares one set of answer types and the client another, under the same
 * protocol name and the same parameters.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryClient, within } from "./helpers.js";

const NAME = "acme.Shapes.v1";

const Served = defineProtocol(
  NAME,
  {},
  {
    ok: unary({}, t.int64()),
    text: unary({}, t.utf8()),
    nothing: unary({}, t.utf8().optional()),
    rows: producer({}, { output: { i: t.utf8(), extra: t.int64() }, state: { done: t.bool() } }),
    wide: producer({}, { output: { extra: t.utf8(), i: t.int64() }, state: { done: t.bool() } }),
    nullRows: producer({}, { output: { i: t.int64().optional() }, state: { done: t.bool() } }),
    headed: producer({}, { output: { i: t.int64() }, header: { total: t.float64() }, state: { done: t.bool() } }),
    echo: exchange({}, { input: { x: t.float64() }, output: { x: t.int32() }, state: {} }),
  },
);

const Declared = defineProtocol(
  NAME,
  {},
  {
    ok: unary({}, t.int64()),
    text: unary({}, t.int64()),
    nothing: unary({}, t.utf8()),
    rows: producer({}, { output: { i: t.int64() }, state: { done: t.bool() } }),
    wide: producer({}, { output: { i: t.int64() }, state: { done: t.bool() } }),
    nullRows: producer({}, { output: { i: t.int64() }, state: { done: t.bool() } }),
    headed: producer({}, { output: { i: t.int64() }, header: { total: t.int64() }, state: { done: t.bool() } }),
    echo: exchange({}, { input: { x: t.float64() }, output: { x: t.float64() }, state: {} }),
  },
);

function once<R>(row: R) {
  return {
    init: () => ({ state: { done: false } }),
    produce: (s: { done: boolean }, out: { emit(rows: R[]): void; finish(): void }) => {
      if (s.done) out.finish();
      else {
        s.done = true;
        out.emit([row]);
      }
    },
  };
}

function makeServer() {
  return createServer({
    protocols: [
      bind(Served, {
        ok: () => 7n,
        text: () => "seven",
        nothing: () => null,
        rows: once({ i: "one", extra: 1n }),
        wide: once({ extra: "x", i: 5n }),
        nullRows: once({ i: null }),
        headed: { ...once({ i: 1n }), init: () => ({ state: { done: false }, header: { total: 1.5 } }) },
        echo: {
          init: () => ({ state: {} }),
          process: (_s, input, out) => out.emitColumns({ x: input.column("x").map(Math.round) }),
        },
      }),
    ],
  });
}

function refused(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof RpcError, `expected an RpcError, got ${String(e)}`);
    assert.equal(e.type, "ProtocolError");
    assert.equal(e.kind, "protocol_error");
    assert.match(e.message, pattern);
    return true;
  };
}

test("answers that the declaration cannot read are refused with a ProtocolError; the connection stays usable", async () => {
  const { client, served } = memoryClient(makeServer());
  const api = proxy(client, Declared);

  await assert.rejects(api.text(), refused(/^text\(\) answered a result that field 'result' is utf8, declared int64$/));
  assert.equal(await api.ok(), 7n);
  await assert.rejects(api.nothing(), refused(/^nothing\(\) answered a null 'result', which is declared not null$/));
  assert.equal(await api.ok(), 7n);

  const rows = await api.rows();
  await assert.rejects(rows.toArray(), refused(/^rows\(\) answered a batch that field 'i' is utf8, declared int64$/));
  assert.equal(await api.ok(), 7n);

  await assert.rejects((await api.nullRows()).toArray(), refused(/^nullRows\(\) answered a null 'i'/));
  assert.equal(await api.ok(), 7n);

  // A header that cannot be read rejects the call and cancels the stream, so the next call runs.
  await assert.rejects(
    api.headed(),
    refused(/^headed\(\) answered a header that field 'total' is float64, declared int64$/),
  );
  assert.equal(await api.ok(), 7n);

  const session = await api.echo();
  await assert.rejects(
    session.exchange([{ x: 1.4 }]),
    refused(/^echo\(\) answered a batch that field 'x' is int32, declared float64$/),
  );
  await session.close();
  assert.equal(await api.ok(), 7n);

  // Extra fields and another field order are read: only the declared fields are checked.
  assert.deepEqual(await (await api.wide()).toArray(), [{ i: 5n }]);
  assert.equal(await api.ok(), 7n);

  await client.close();
  await within(served, 2000, "server session end");
});

test("a missing field is named in the error", async () => {
  const Missing = defineProtocol(
    NAME,
    {},
    {
      rows: producer({}, { output: { j: t.int64() }, state: { done: t.bool() } }),
      ok: unary({}, t.int64()),
    },
  );
  const { client, served } = memoryClient(makeServer());
  const api = proxy(client, Missing);
  await assert.rejects((await api.rows()).toArray(), refused(/^rows\(\) answered a batch that has no field 'j'$/));
  assert.equal(await api.ok(), 7n);
  await client.close();
  await within(served, 2000, "server session end");
});
