/**
 * Exchange inputs reconciled with the declared input schema as the reference's
 * `_coerce_input_batch` does: every expectation is what the reference returned or raised for the
 * same batch (test/fixtures/casts/coerce.json, written by scripts/make-cast-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { pyarrowSchemaText } from "../../src/protocol/pyarrow-names.js";
import { UnsupportedTargetError } from "../../src/server/casts.js";
import { coerceInput } from "../../src/server/validate.js";
import { decodeStreamBytes } from "../../src/wire/ipc.js";
import { encodeColumn } from "../helpers/encode-column.js";

interface Failure {
  readonly error: string;
  readonly message: string;
}

interface CoerceCase {
  readonly label: string;
  readonly input: string;
  readonly target: string;
  readonly ok?: { readonly schema: string; readonly columns: readonly (readonly unknown[])[]; readonly same: boolean };
  readonly error?: string;
  readonly message?: string;
  readonly cause?: Failure;
}

const CASES: readonly CoerceCase[] = JSON.parse(
  readFileSync(new URL("../fixtures/casts/coerce.json", import.meta.url), "utf8"),
);

function decode(b64: string) {
  const decoded = decodeStreamBytes(new Uint8Array(Buffer.from(b64, "base64")));
  assert.ok(decoded !== null);
  return decoded;
}

describe("exchange inputs are coerced as the reference coerces them", () => {
  for (const c of CASES) {
    test(`${c.label}: ${c.ok ? "accepted" : `${c.error}${c.cause ? ` (${c.cause.error})` : ""}`}`, () => {
      const input = decode(c.input).batches[0]!;
      const target = decode(c.target).schema;
      if (c.ok !== undefined) {
        const out = coerceInput(input, target);
        assert.equal(pyarrowSchemaText(out.schema), c.ok.schema);
        assert.deepEqual(out.data.children.map(encodeColumn), c.ok.columns);
        assert.equal(out === input, c.ok.same, "the batch passes untouched exactly when the reference returns it");
        return;
      }
      assert.throws(
        () => coerceInput(input, target),
        (err: Error) => {
          assert.equal(err.name, c.error);
          assert.equal(err.message, c.message);
          const cause = err.cause as Error | undefined;
          if (cause instanceof UnsupportedTargetError) {
            // A target quiver does not cast to: the refusal (what the caller sees) must agree.
            assert.equal(c.cause?.error, "ArrowNotImplementedError");
          } else {
            assert.deepEqual(cause && { error: cause.name, message: cause.message }, c.cause);
          }
          return true;
        },
      );
    });
  }
});
