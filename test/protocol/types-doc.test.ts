/**
 * docs/types.md and the round-trip cases (test/fixtures/types-table.ts) describe the same types:
 * every case is in the table's "Tested as" column, and every name there is a case.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { TYPE_CASES } from "../fixtures/types-table.js";

test("the type table in docs/types.md names exactly the types the round-trip tests run", () => {
  const doc = readFileSync(new URL("../../docs/types.md", import.meta.url), "utf8");
  const table = doc.slice(doc.indexOf("## The table"), doc.indexOf("\n## ", doc.indexOf("## The table") + 1));
  const rows = table.split("\n").filter((l) => l.startsWith("| `"));
  assert.ok(rows.length > 20, "the table has its rows");
  const named = rows.flatMap((row) => {
    const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
    const tested = cells.at(-2) ?? "";
    return [...tested.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!);
  });
  assert.deepEqual([...named].sort(), TYPE_CASES.map((c) => c.name).sort());
});
