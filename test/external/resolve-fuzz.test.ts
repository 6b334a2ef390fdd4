/**
 * The resolver reads bytes from a peer (the object store): the fuzz harness's mutators
 * (test/fuzz/mutators.ts) applied to reference-written objects, served raw and zstd-coded; every
 * resolution must end in a batch or a typed error (ExternalFetchError, or the RpcError an error
 * batch carries), never another exception or a hang.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { RpcError } from "../../src/errors.js";
import { loopbackOnly } from "../../src/external/fetch.js";
import { makePointerBatch } from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { encodeBody } from "../../src/transports/http/compression.js";
import { type ByteSeed, mutate } from "../fuzz/mutators.js";
import { Rng } from "../fuzz/rng.js";
import { type FakeStorageServer, serveFakeStorage } from "../helpers/fake-storage.js";

const dir = new URL("../fixtures/external/", import.meta.url);
const seeds: ByteSeed[] = ["object-unary.bin", "object-turn.bin"].map((name) => ({
  name,
  bytes: new Uint8Array(readFileSync(new URL(name, dir))),
}));
const schemas = {
  "object-unary.bin": schemaOf({ result: t.utf8() }),
  "object-turn.bin": schemaOf({ index: t.int64(), value: t.int64() }),
} as const;
const CASES = Number(process.env.QUIVER_FUZZ_CASES ?? 300);

let storage: FakeStorageServer;
before(async () => {
  storage = await serveFakeStorage();
});
after(() => storage.close());

test(`${CASES} mutated objects resolve to a batch or a typed error`, async () => {
  const resolver = new ExternalResolver({ urlValidator: loopbackOnly, maxRetries: 0, timeoutMs: 5_000 });
  let resolved = 0;
  let refused = 0;
  for (let i = 0; i < CASES; i++) {
    const rng = new Rng(20251207, "external", i);
    const seed = seeds[i % seeds.length]!;
    const m = mutate(rng, seed.bytes, seeds);
    const zstd = i % 4 === 3;
    const body = zstd ? ((await encodeBody("zstd", m.bytes)) ?? m.bytes) : m.bytes;
    const url = storage.put(body, zstd ? "zstd" : undefined);
    const schema = schemas[seed.name as keyof typeof schemas];
    try {
      const out = await resolver.resolve(makePointerBatch(schema, url));
      assert.equal(out.schema, schema);
      resolved++;
    } catch (err) {
      assert.ok(err instanceof RpcError, `case ${i} (${m.mutator}: ${m.desc}) threw ${String(err)}`);
      refused++;
    }
  }
  assert.equal(resolved + refused, CASES);
});
