/**
 * pyarrow's spelling of types and schemas, checked against what the real pyarrow printed for the
 * same IPC bytes (test/fixtures/casts/type-names.json, from scripts/make-cast-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { pyarrowFieldTypeName, pyarrowSchemaText } from "../../src/protocol/pyarrow-names.js";
import { decodeStreamBytes } from "../../src/wire/ipc.js";

interface NameCase {
  readonly label: string;
  readonly stream: string;
  readonly schema: string;
  readonly types: readonly string[];
}

const CASES: readonly NameCase[] = JSON.parse(
  readFileSync(new URL("../fixtures/casts/type-names.json", import.meta.url), "utf8"),
);

function schemaOf(c: NameCase) {
  const decoded = decodeStreamBytes(new Uint8Array(Buffer.from(c.stream, "base64")));
  assert.ok(decoded !== null);
  return decoded.schema;
}

describe("pyarrow type names", () => {
  for (const c of CASES) {
    test(`a field of ${c.label} is named as pyarrow names it`, () => {
      assert.deepEqual(schemaOf(c).fields.map(pyarrowFieldTypeName), c.types);
    });
  }
});

describe("pyarrow schema text", () => {
  for (const c of CASES) {
    test(`the schema with ${c.label} prints as pyarrow prints it`, () => {
      assert.equal(pyarrowSchemaText(schemaOf(c)), c.schema);
    });
  }
});
