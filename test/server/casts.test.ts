/**
 * pyarrow's safe casts, pair by pair and value by value: every expectation is what pyarrow itself
 * returned (test/fixtures/casts/casts.json, written by scripts/make-cast-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { type Data, DataType, Precision } from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";
import { ArrowCastError, castColumn } from "../../src/server/casts.js";
import { decodeStreamBytes } from "../../src/wire/ipc.js";

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

/** A column's values in the fixture's encoding: integers as strings, floats as the hex of their bits. */
export function encodeColumn(data: Data): unknown[] {
  const out: unknown[] = [];
  const type = data.type;
  for (let i = 0; i < data.length; i++) {
    if (!data.getValid(i) || DataType.isNull(type)) {
      out.push(null);
      continue;
    }
    if (DataType.isFloat(type)) {
      const values = data.values as Uint16Array | Float32Array | Float64Array;
      const width = type.precision === Precision.HALF ? 2 : type.precision === Precision.SINGLE ? 4 : 8;
      const view = new DataView(values.buffer, values.byteOffset + i * width, width);
      const bits =
        width === 2 ? view.getUint16(0, true) : width === 4 ? view.getUint32(0, true) : view.getBigUint64(0, true);
      out.push(bits.toString(16).padStart(width * 2, "0"));
    } else if (DataType.isInt(type)) {
      out.push(String(getVisitor.visit(data, i)));
    } else {
      out.push(getVisitor.visit(data, i));
    }
  }
  return out;
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
