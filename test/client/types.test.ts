/**
 * The typed client's compile-time contract: `tsc --noEmit` (part of `npm test`) fails if any
 * `@ts-expect-error` below is not an error, or if a positive line does not type-check. The check
 * functions are never called; one runtime test keeps the file a test module.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { type ParamsIn, proxy } from "../../src/client/typed.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { type TypeSpec, t } from "../../src/protocol/types.js";

const Calc = defineProtocol(
  "acme.Calc.v1",
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    big: unary({ n: t.int64() }, t.int64().optional()),
    noop: unary({}, null),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, header: { total: t.int64() } }),
    ticks: producer({}, { output: { s: t.utf8() } }),
    dyn: producer({}, { output: "dynamic" }),
    scale: exchange({ factor: t.float64() }, { input: { x: t.float64() }, output: { y: t.float64() } }),
  },
);

/** A spec whose default is recorded in its type (what `default()` would return to make it optional). */
const defaulted = <V>(spec: TypeSpec<V>, value: V) =>
  spec.default(value) as TypeSpec<V> & { readonly hasDefault: true };
const WithDefaults = defineProtocol(
  "acme.D.v1",
  {},
  { greet: unary({ name: t.utf8(), punct: defaulted(t.utf8(), "!") }, t.utf8()) },
);

type Is<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const yes = <T extends true>(_: T) => {};

export async function typeLevelChecks(client: RpcClient): Promise<void> {
  const calc = proxy(client, Calc);

  const sum: number = await calc.add({ a: 1, b: 2 });
  yes<Is<typeof sum, number>>(true);
  // @ts-expect-error `b` is required
  await calc.add({ a: 1 });
  // @ts-expect-error float64 params are numbers, not strings
  await calc.add({ a: "1", b: 2 });
  // @ts-expect-error no such parameter
  await calc.add({ a: 1, b: 2, c: 3 });
  // @ts-expect-error the result is a number
  const wrong: string = await calc.add({ a: 1, b: 2 });
  void wrong;

  const big = await calc.big({ n: 1n });
  yes<Is<typeof big, bigint | null>>(true);
  // @ts-expect-error int64 params are bigint
  await calc.big({ n: 1 });

  const nothing = await calc.noop();
  yes<Is<typeof nothing, undefined>>(true);

  const s = await calc.count({ n: 3n });
  yes<Is<typeof s.header, { total: bigint }>>(true);
  for await (const row of s) yes<Is<typeof row, { i: bigint }>>(true);
  const ticks = await calc.ticks();
  yes<Is<typeof ticks.header, null>>(true);
  for await (const row of ticks) {
    // @ts-expect-error rows have only `s`
    void row.i;
  }
  for await (const row of await calc.dyn()) yes<Is<typeof row, Readonly<Record<string, unknown>>>>(true);
  await calc.ticks({}, { signal: new AbortController().signal });

  const x = await calc.scale({ factor: 2 });
  const out = await x.exchange([{ x: 1 }]);
  yes<Is<typeof out, { y: number }[]>>(true);
  // @ts-expect-error input rows have `x`
  await x.exchange([{ y: 1 }]);
  await x.close();

  // The client's own methods take the same declarations.
  const viaClient: number = await client.call(Calc, "add", { a: 1, b: 2 });
  void viaClient;
  // @ts-expect-error `count` is a producer, not a unary method
  await client.call(Calc, "count", { n: 1n });
  // @ts-expect-error no such method
  await client.call(Calc, "nope", {});
  await client.stream(Calc, "count", { n: 1n });
  await client.exchange(Calc, "scale", { factor: 1 });

  // A parameter whose spec records its default is optional.
  const d = proxy(client, WithDefaults);
  await d.greet({ name: "ada" });
  await d.greet({ name: "ada", punct: "?" });
  // @ts-expect-error `name` has no default
  await d.greet({ punct: "?" });
  yes<Is<ParamsIn<(typeof WithDefaults)["methods"]["greet"]["params"]>, { name: string; punct?: string }>>(true);
}

test("the typed-client type checks compile (see typeLevelChecks)", () => {
  assert.equal(typeof typeLevelChecks, "function");
});
