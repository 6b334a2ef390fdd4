#!/usr/bin/env node
// The whole test suite: typecheck, lint, build, unit/contract tests, then the pinned Python
// reference's conformance runner against our worker. The Python environment is created on first
// use in .venv-conformance/ (git-ignored) and reused after. Nothing is skipped silently: a
// missing interpreter or an unreachable package index fails the run with instructions.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePython, venvBin } from "./python-env.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

const totals = { passed: 0, failed: 0, skipped: 0 };

function step(title) {
  process.stdout.write(`\n=== ${title}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: opts.capture ? ["ignore", "pipe", "inherit"] : "inherit", encoding: "utf8", ...opts });
  if (r.error) throw r.error;
  return r;
}

function must(title, cmd, args, opts) {
  step(title);
  const r = run(cmd, args, opts);
  if (r.status !== 0) {
    process.stderr.write(`\n${title} failed (exit ${r.status}).\n`);
    process.exit(1);
  }
  return r;
}

function listTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTests(p));
    else if (entry.name.endsWith(".test.ts")) out.push(p);
  }
  return out.sort();
}

const python = ensurePython(root);

must("typecheck (tsc --noEmit)", "npx", ["tsc", "--noEmit", "-p", "tsconfig.json"]);
must("lint (biome, warnings are errors)", "npx", ["biome", "check", "--error-on-warnings", "."]);
must("build", "npx", ["tsc", "-p", "tsconfig.build.json"]);

step("unit and contract tests (node:test)");
{
  const env = { ...process.env, VGI_PYTHON: python, QUIVER_ROOT: root };
  const r = run(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout", "--test-reporter=tap", "--test-reporter-destination=.test-results.tap", ...listTests("test")], { env });
  const tap = existsSync(".test-results.tap") ? readFileSync(".test-results.tap", "utf8") : "";
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, "m").exec(tap) ?? [])[1] ?? 0);
  totals.passed += num("pass");
  totals.failed += num("fail") + num("cancelled");
  totals.skipped += num("skipped") + num("todo");
  if (r.status !== 0 || num("pass") === 0) {
    process.stderr.write(`\nunit tests failed (exit ${r.status}).\n`);
    process.stdout.write(`\ntotal: ${totals.passed} passed, ${Math.max(totals.failed, 1)} failed, ${totals.skipped} skipped\n`);
    process.exit(1);
  }
}

// The conformance runner over a pipe: one worker, every test in sequence on one connection.
step("vgi-rpc conformance (vgi-rpc-test --cmd, pipe)");
{
  const worker = `${process.execPath} ${join(root, "dist/bin/quiver-conformance.js")}`;
  const version = run(venvBin(root, "vgi-rpc-test"), ["--version"], { capture: true });
  process.stdout.write(version.stdout);
  const r = run(venvBin(root, "vgi-rpc-test"), ["--cmd", worker, "--format", "json", "--timeout", "300"], {
    capture: true,
    maxBuffer: 64 * 1024 * 1024,
  });
  let report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    process.stdout.write(r.stdout ?? "");
    process.stderr.write(`\nvgi-rpc-test produced no JSON report (exit ${r.status}).\n`);
    process.exit(1);
  }
  writeFileSync(".conformance-pipe.json", JSON.stringify(report, null, 1));
  const results = report.results ?? [];
  const passed = results.filter((t) => t.passed && !t.skipped).length;
  const skipped = results.filter((t) => t.skipped).length;
  const failed = results.filter((t) => !t.passed && !t.skipped);
  for (const t of failed) process.stdout.write(`  FAIL ${t.name}: ${String(t.error ?? "").split("\n")[0]}\n`);
  for (const t of results.filter((x) => x.skipped)) process.stdout.write(`  skip ${t.name}: ${t.skip_reason}\n`);
  process.stdout.write(`conformance pipe: ${passed} passed, ${failed.length} failed, ${skipped} skipped\n`);
  totals.passed += passed;
  totals.failed += failed.length;
  totals.skipped += skipped;
  if (r.status !== 0 || failed.length > 0 || passed === 0) {
    process.stdout.write(`\ntotal: ${totals.passed} passed, ${Math.max(totals.failed, 1)} failed, ${totals.skipped} skipped\n`);
    process.exit(1);
  }
}

process.stdout.write(`\ntotal: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
