/**
 * examples/ as an adopter would run them: type-checked under `strict` with examples/tsconfig.json
 * (importing the package by its name, which resolves to this repository's built dist/ through
 * package.json `exports`), then each one run with tsx and its output checked. The README's quick
 * start is examples/quickstart, byte for byte.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const examples = join(root, "examples");

function requireBuild(): void {
  assert.ok(
    existsSync(join(root, "dist/index.js")) && existsSync(join(root, "dist/index.d.ts")),
    "dist/ is not built: run `npm run build` first (npm test builds it before the tests)",
  );
}

/** Runs `file` (relative to examples/) under tsx; returns its stdout once it exits 0. */
function runExample(file: string): string {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(examples, file)], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${file} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const lines = (text: string) => text.trim().split("\n");

test("the README's quick start is examples/quickstart, file for file", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(
    readme.indexOf("## Quick start"),
    readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1),
  );
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const files = ["protocol.ts", "server.ts", "client.ts"].map((f) =>
    readFileSync(join(examples, "quickstart", f), "utf8"),
  );
  assert.deepEqual(blocks, files);
});

test("the examples type-check under strict", () => {
  requireBuild();
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(examples, "tsconfig.json")], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `tsc -p examples/tsconfig.json failed:\n${r.stdout}${r.stderr}`);
});

test("quickstart: the client starts the stdio worker and calls each kind of method", () => {
  requireBuild();
  assert.deepEqual(lines(runExample("quickstart/client.ts")), ["3", "0n", "1n", "2n", "[ { x: 2 }, { x: 4 } ]"]);
});

test("http-auth: a bearer token is accepted, a wrong one refused with a 401", () => {
  requireBuild();
  assert.deepEqual(lines(runExample("http-auth/main.ts")), [
    "hello Bob, from alice's session",
    "refused: HTTP 401, UNAUTHENTICATED, reason invalid_credential",
  ]);
});

test("websocket: a unary call and a producer over one WebSocket", () => {
  requireBuild();
  assert.deepEqual(lines(runExample("websocket/main.ts")), ["add: 5", "squares: 0 1 4 9 16"]);
});

test("secured: scopes, anonymous access to open methods, roles and injected values", () => {
  requireBuild();
  assert.deepEqual(lines(runExample("secured/main.ts")), [
    "anonymous health: ok",
    "anonymous read: refused (unauthenticated, UNAUTHENTICATED)",
    "editor write: 1",
    "reports read: ship it (by editor)",
    "reports write: refused (permission_denied, PERMISSION_DENIED)",
    "editor purge: refused (permission_denied, PERMISSION_DENIED)",
  ]);
});

test("observability: an access log line, usage per caller, a client and a server span in one trace", () => {
  requireBuild();
  const out = lines(runExample("observability/main.ts"));
  assert.deepEqual(out.slice(0, 3), ["mean: 2.5", "access log: method=mean status=ok", 'usage: {"anonymous":8}']);
  const spans = out.slice(3).map((l) => /^span: (\S+) (\w+) trace=(\w+)…$/.exec(l));
  assert.deepEqual(spans.map((m) => `${m?.[1]} ${m?.[2]}`).sort(), ["vgi_rpc/mean CLIENT", "vgi_rpc/mean SERVER"]);
  assert.equal(spans[0]?.[3], spans[1]?.[3], "both spans belong to one trace");
});
