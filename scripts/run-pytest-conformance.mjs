#!/usr/bin/env node
// Runs the pinned reference's pytest conformance suite (vgi_rpc.conformance._pytest_suite,
// vgi-rpc 0.52.2) against our conformance worker over the raw transports, via test/python/.
//
//   node scripts/run-pytest-conformance.mjs                      all transports (pipe, unix, tcp)
//   node scripts/run-pytest-conformance.mjs --transport pipe     one (or a comma list)
//   node scripts/run-pytest-conformance.mjs -- -k TestCancel     extra pytest arguments after --
//   node scripts/run-pytest-conformance.mjs --worker "node dist/bin/quiver-conformance.js"
//                                                                another stdio worker command (it must
//                                                                also take --unix PATH / --tcp H:P)
//
// Prints one line per transport:
//   conformance pytest (<transport>): N passed, N failed, N skipped
// plus one for the items that belong to no transport (HTTP-only and fixture-gated groups, which
// skip by the suite's own mechanism). Setup/teardown errors count as failures. Exits non-zero when
// anything failed or pytest itself did not complete.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensurePython } from "./python-env.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

const { values, positionals } = parseArgs({
  options: {
    transport: { type: "string" },
    worker: { type: "string" },
    timeout: { type: "string", default: "60" },
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: true,
  strict: true,
});
if (values.help) {
  process.stdout.write(
    "usage: node scripts/run-pytest-conformance.mjs [--transport pipe,unix,tcp] [--worker CMD] [--timeout SECONDS] [-- <pytest args>]\n",
  );
  process.exit(0);
}

const python = ensurePython(root);
const work = mkdtempSync(join(tmpdir(), "quiver-pytest-"));
const resultsPath = join(work, "results.json");
// No __pycache__ litter in test/python (pytest honours this for its rewritten test modules too).
const env = { ...process.env, QUIVER_PYTEST_RESULTS: resultsPath, PYTHONDONTWRITEBYTECODE: "1" };
if (values.transport) env.QUIVER_CONFORMANCE_TRANSPORTS = values.transport;
if (values.worker) env.QUIVER_CONFORMANCE_CMD = values.worker;

const args = [
  "-m",
  "pytest",
  "test/python",
  "--rootdir",
  "test/python",
  "-p",
  "no:cacheprovider",
  // Fallback per-test limit; the suite's own modules mark most tests far tighter (5s).
  `--timeout=${values.timeout}`,
  "-q",
  "-rfE",
  ...positionals,
];
process.stdout.write(`$ ${python} ${args.join(" ")}\n`);
process.stdout.write(`worker: ${env.QUIVER_CONFORMANCE_CMD ?? "node --import tsx src/bin/quiver-conformance.ts"}\n`);
const started = process.hrtime.bigint();
const r = spawnSync(python, args, { stdio: "inherit", env });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (r.error) throw r.error;

if (!existsSync(resultsPath)) {
  process.stderr.write(`\npytest wrote no results (exit ${r.status}); see its output above.\n`);
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
    b.failures.push(`${nodeid}${test.outcome === "error" ? " (error outside the test body)" : ""}`);
  }
}

process.stdout.write("\n");
let failed = 0;
for (const [name, b] of buckets) {
  failed += b.failed;
  process.stdout.write(`conformance pytest (${name}): ${b.passed} passed, ${b.failed} failed, ${b.skipped} skipped\n`);
  for (const f of b.failures) process.stdout.write(`    FAILED ${f}\n`);
}
process.stdout.write(`conformance pytest wall time: ${seconds.toFixed(1)}s (pytest exit ${r.status})\n`);

// pytest exit 0 = all passed, 1 = some failed; anything else (interrupted, internal/usage error,
// nothing collected) means the run itself is not trustworthy.
if (failed > 0 || r.status !== 0) process.exit(r.status && r.status !== 1 ? r.status : 1);
