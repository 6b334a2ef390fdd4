/**
 * A value outside its declared type, written anywhere a call writes values: each is refused with
 * an error naming the method, where the value was going and the field (with the path inside it
 * and, in a batch of several rows, the row), never sent wrapped or rounded. Server-side refusals
 * reach the caller as the same error type and message; the connection stays usable.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { InvalidValueError, RpcError } from "../../src/errors.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryClient } from "../client/helpers.js";

const Svc = defineProtocol(
  "test.Refusals.v1",
  {},
  {
    header: producer(
      { seed: t.int64() },
      { output: { i: t.int64() }, header: { big: t.int64(), tags: t.list(t.int8()) }, state: {} },
    ),
    rows: producer({ bad: t.int32() }, { output: { v: t.uint8(), p: t.struct({ x: t.float32() }) }, state: {} }),
    columns: producer({}, { output: { v: t.int16() }, state: {} }),
    scale: exchange({}, { input: { x: t.int32() }, output: { y: t.int32() }, state: {} }),
    nested: unary({}, t.map(t.utf8(), t.list(t.struct({ when: t.timestamp("ns") })))),
    ok: unary({}, t.utf8()),
  },
);

let client: RpcClient;
before(() => {
  const server = createServer({
    protocols: [
      bind(Svc, {
        header: {
          init: ({ seed }) => ({ state: {}, header: { big: seed * 7n, tags: [1, 2, seed > 0n ? 300 : 3] } }),
          produce: (_s, out) => out.finish(),
        },
        rows: {
          init: () => ({ state: {} }),
          produce: (_s, out) => {
            out.emit([
              { v: 1, p: { x: 0 } },
              { v: 2, p: { x: 1e39 } },
            ]);
          },
        },
        columns: {
          init: () => ({ state: {} }),
          produce: (_s, out) => out.emitColumns({ v: [1, 2, 40_000] }),
        },
        scale: {
          init: () => ({ state: {} }),
          process: (_s, input, out) => out.emit(input.rows().map((r) => ({ y: r.x }))),
        },
        nested: () => new Map([["k", [{ when: 1n }, { when: 2n ** 63n }]]]),
        ok: () => "ok",
      }),
    ],
  });
  client = memoryClient(server).client;
});
after(() => client?.close());

function rejectsAs(type: string, message: string) {
  return (e: unknown) => {
    assert.ok(e instanceof RpcError, String(e));
    assert.equal(e.type, type);
    assert.equal(e.message, message);
    return true;
  };
}

test("a header value out of range fails the stream's opening with the field named, and the connection stays usable", async () => {
  const svc = proxy(client, Svc);
  await assert.rejects(
    svc.header({ seed: 2n ** 62n }),
    rejectsAs(
      "OverflowError",
      "header() header field 'big': 32281802128991715328 is out of range for int64 (-9223372036854775808 to 9223372036854775807)",
    ),
  );
  await assert.rejects(
    svc.header({ seed: 1n }),
    rejectsAs("OverflowError", "header() header field 'tags[2]': 300 is out of range for int8 (-128 to 127)"),
  );
  assert.equal(await svc.ok(), "ok");
});

test("an emitted row out of range ends the stream with the output field, its path and its row named", async () => {
  const svc = proxy(client, Svc);
  const stream = await svc.rows({ bad: 0 });
  await assert.rejects(
    stream.toArray(),
    rejectsAs(
      "OverflowError",
      "rows() output field 'p.x' (row 1): 1e+39 is out of range for float32 (-3.4028234663852886e+38 to 3.4028234663852886e+38)",
    ),
  );
  const columns = await svc.columns();
  await assert.rejects(
    columns.toArray(),
    rejectsAs("OverflowError", "columns() output field 'v' (row 2): 40000 is out of range for int16 (-32768 to 32767)"),
  );
  assert.equal(await svc.ok(), "ok");
});

test("a result out of range deep inside a map names the path to it", async () => {
  await assert.rejects(
    proxy(client, Svc).nested(),
    rejectsAs(
      "OverflowError",
      'nested() result["k"][1].when: 9223372036854775808 is out of range for timestamp(ns) (-9223372036854775808 to 9223372036854775807)',
    ),
  );
});

test("an exchange input out of range is refused client-side; the session stays open for the next input", async () => {
  const session = await proxy(client, Svc).scale();
  try {
    await assert.rejects(
      session.exchange([{ x: 1 }, { x: 2 ** 31 }]),
      (e: unknown) =>
        e instanceof InvalidValueError &&
        e.message ===
          "scale() input field 'x' (row 1): 2147483648 is out of range for int32 (-2147483648 to 2147483647)" &&
        e.row === 1,
    );
    assert.deepEqual(await session.exchange([{ x: 3 }]), [{ y: 3 }]);
  } finally {
    await session.close();
  }
});
