#!/usr/bin/env node
// Runs the pinned reference's pytest conformance suite (vgi_rpc.conformance._pytest_suite,
// vgi-rpc 0.52.2) through quiver's CLIENT: the reference's ClientDriver drives
// src/bin/quiver-client-driver against the reference's own conformance worker, via test/python-client/.
//
//   node scripts/run-client-conformance.mjs                          stdio, unix and tcp
//   node scripts/run-client-conformance.mjs --transport stdio        one (or a comma list)
//   node scripts/run-client-conformance.mjs -- -k TestUnary          extra pytest arguments after --
//
// Compiles the driver once into a temp dir (tsc) so each connection starts fast, then prints
//   client conformance (<transport>): N passed, N failed, N skipped
// and exits non-zero when anything failed or pytest did not complete.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensurePython } from "./python-env.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
const { values, positionals } = parseArgs({
  options: { transport: { type: "string" }, timeout: { type: "string", default: "60" } },
  allowPositionals: true,
  strict: true,
});

const python = ensurePython(root);
const work = mkdtempSync(join(tmpdir(), "quiver-client-conformance-"));
const out = join(work, "build");
// Emit even if unrelated files fail to type-check; the driver's own files are checked by `npm test`.
spawnSync(
  process.execPath,
  [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", out],
  {
    stdio: "ignore",
  },
);
const driverJs = join(out, "bin/quiver-client-driver.js");
if (!existsSync(driverJs)) {
  process.stderr.write("could not compile src/bin/quiver-client-driver.ts\n");
  process.exit(1);
}
symlinkSync(join(root, "node_modules"), join(work, "node_modules"));
const resultsPath = join(work, "results.json");
const env = {
  ...process.env,
  QUIVER_PYTEST_RESULTS: resultsPath,
  QUIVER_CLIENT_DRIVER: `${process.execPath} ${driverJs}`,
  PYTHONDONTWRITEBYTECODE: "1",
};
if (values.transport) env.QUIVER_CLIENT_TRANSPORTS = values.transport;
const args = [
  "-m",
  "pytest",
  "test/python-client",
  "--rootdir",
  "test/python-client",
  "-p",
  "no:cacheprovider",
  `--timeout=${values.timeout}`,
  "-q",
  "-rfE",
  ...positionals,
];
const started = process.hrtime.bigint();
const r = spawnSync(python, args, { stdio: "inherit", env });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (!existsSync(resultsPath)) {
  process.stderr.write(`\npytest wrote no results (exit ${r.status}).\n`);
  rmSync(work, { recursive: true, force: true });
  process.exit(r.status || 1);
}
const results = JSON.parse(readFileSync(resultsPath, "utf8"));
rmSync(work, { recursive: true, force: true });
const NONE = "no transport: HTTP-only/fixture-gated groups";
const buckets = new Map();
for (const t of results.transports) buckets.set(t, { passed: 0, failed: 0, skipped: 0, failures: [] });
for (const [nodeid, test] of Object.entries(results.tests)) {
  const key = test.transport ?? NONE;
  if (!buckets.has(key)) buckets.set(key, { passed: 0, failed: 0, skipped: 0, failures: [] });
  const b = buckets.get(key);
  if (test.outcome === "passed") b.passed++;
  else if (test.outcome === "skipped") b.skipped++;
  else {
    b.failed++;
    b.failures.push(nodeid);
  }
}
let failed = 0;
process.stdout.write("\n");
for (const [name, b] of buckets) {
  failed += b.failed;
  process.stdout.write(`client conformance (${name}): ${b.passed} passed, ${b.failed} failed, ${b.skipped} skipped\n`);
  for (const f of b.failures) process.stdout.write(`    FAILED ${f}\n`);
}
process.stdout.write(`client conformance wall time: ${seconds.toFixed(1)}s (pytest exit ${r.status})\n`);
process.exit(failed > 0 || (r.status !== 0 && r.status !== 1) ? 1 : 0);
