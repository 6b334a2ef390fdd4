/**
 * The API reference covers the package's entry points: typedoc.json's `entryPoints` are exactly the
 * sources of package.json's `exports` (npm test builds the reference with warnings as errors, so
 * a symbol an entry point exposes without documenting what it refers to fails the run there).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const root = new URL("../../", import.meta.url);
const read = (file: string): unknown => JSON.parse(readFileSync(new URL(file, root), "utf8"));

test("typedoc.json documents every entry point in package.json exports, and nothing else", () => {
  const pkg = read("package.json") as { exports: Record<string, string | { readonly import: string }> };
  const typedoc = read("typedoc.json") as { entryPoints: readonly string[]; treatWarningsAsErrors?: boolean };
  const sources = Object.values(pkg.exports)
    .filter((target) => typeof target !== "string")
    .map((target) => target.import.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))
    .sort();
  assert.deepEqual([...typedoc.entryPoints].sort(), sources);
  assert.equal(typedoc.treatWarningsAsErrors, true);
});
