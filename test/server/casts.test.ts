/**
 * pyarrow's safe casts, pair by pair and value by value: every expectation is what pyarrow itself
 * returned (test/fixtures/casts/casts.json, written by scripts/make-cast-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { ArrowCastError, castColumn } from "../../src/server/casts.js";
import { decodeStreamBytes } from "../../src/wire/ipc.js";
import { encodeColumn } from "../helpers/encode-column.js";

type Result = { readonly ok: readonly unknown[] } | { readonly error: string; readonly message: string };

interface CastFixture {
  readonly pyarrow: string;
  readonly targets: readonly { readonly name: string; readonly schema: string }[];
  readonly sources: readonly {
    readonly label: string;
    readonly type: string;
    readonly stream: string;
    readonly pieces: readonly string[];
    readonly results: Readonly<Record<string, readonly Result[]>>;
  }[];
}

const FIXTURE: CastFixture = JSON.parse(readFileSync(new URL("../fixtures/casts/casts.json", import.meta.url), "utf8"));

function decode(b64: string) {
  const decoded = decodeStreamBytes(new Uint8Array(Buffer.from(b64, "base64")));
  assert.ok(decoded !== null);
  return decoded;
}

const targets = FIXTURE.targets.map((t) => ({ name: t.name, type: decode(t.schema).schema.fields[0]!.type }));

describe(`casts as pyarrow ${FIXTURE.pyarrow} casts`, () => {
  for (const source of FIXTURE.sources) {
    const decoded = decode(source.stream);
    const field = decoded.schema.fields[0]!;
    for (const target of targets) {
      const results = source.results[target.name]!;
      test(`${source.label} → ${target.name}`, () => {
        decoded.batches.forEach((batch, k) => {
          const expected = results[k]!;
          const what = `${source.pieces[k]} of ${source.label} → ${target.name}`;
          let got: Result;
          try {
            got = { ok: encodeColumn(castColumn(batch.data.children[0]!, field, target.type)) };
          } catch (err) {
            if (!(err instanceof ArrowCastError)) throw err;
            got = { error: err.pyType, message: err.message };
          }
          assert.deepEqual(got, expected, what);
        });
      });
    }
  }
});
