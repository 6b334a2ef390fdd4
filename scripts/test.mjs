#!/usr/bin/env node
// The whole test suite: typecheck, lint, the import-cycle check, build, the API reference (TypeDoc,
// warnings are errors), unit/contract tests (the package test among them packs and installs the
// built package; test/examples type-checks and runs examples/), then the pinned Python
// reference's conformance runner against our worker over a pipe (plain, and with a shared-memory
// segment), a Unix socket, TCP, WebSocket
// (through the pipe-to-WebSocket bridge) and HTTP. The Python environment is created on first use
// in .venv-conformance/ (git-ignored) and reused after. Nothing is skipped silently: a missing interpreter or an unreachable package index
// fails the run with instructions.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePython, venvBin } from "./python-env.mjs";
import { ensureFakeGcsServer } from "./tools.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

const totals = { passed: 0, failed: 0, skipped: 0 };

function step(title) {
  process.stdout.write(`\n=== ${title}\n`);
}

/** Prints the closing summary line and exits. */
function finish(ok) {
  const failed = ok ? totals.failed : Math.max(totals.failed, 1);
  process.stdout.write(`\ntotal: ${totals.passed} passed, ${failed} failed, ${totals.skipped} skipped\n`);
  process.exit(ok ? 0 : 1);
}

function run(cmd, args, opts = {}) {
  const { capture, ...rest } = opts;
  const r = spawnSync(cmd, args, {
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
    ...rest,
  });
  if (r.error) throw r.error;
  return r;
}

function must(title, cmd, args) {
  step(title);
  const r = run(cmd, args);
  if (r.status !== 0) {
    process.stderr.write(`\n${title} failed (exit ${r.status}).\n`);
    finish(false);
  }
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
// The GCS emulator test/external/gcs.test.ts starts (built with Go into .tools/bin on first use).
ensureFakeGcsServer(root);

must("typecheck (tsc --noEmit)", "npx", ["tsc", "--noEmit", "-p", "tsconfig.json"]);
must("lint (biome, warnings are errors)", "npx", ["biome", "check", "--error-on-warnings", "."]);
must("import cycles (dpdm: none allowed)", process.execPath, ["scripts/check-cycles.mjs"]);
must("build (dist/ emptied first)", "npm", ["run", "build"]);
must("API reference (typedoc into docs/api, warnings are errors)", "npx", ["typedoc"]);

step("unit and contract tests (node:test)");
{
  const tapFile = join(root, ".test-results.tap");
  rmSync(tapFile, { force: true });
  const env = { ...process.env, VGI_PYTHON: python };
  const r = run(
    process.execPath,
    [
      "--import",
      "tsx",
      "--test",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=tap",
      `--test-reporter-destination=${tapFile}`,
      ...listTests("test"),
    ],
    { env },
  );
  const tap = existsSync(tapFile) ? readFileSync(tapFile, "utf8") : "";
  const num = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, "m").exec(tap) ?? [])[1] ?? 0);
  totals.passed += num("pass");
  totals.failed += num("fail") + num("cancelled");
  totals.skipped += num("skipped") + num("todo");
  process.stdout.write(
    `unit: ${num("pass")} passed, ${num("fail") + num("cancelled")} failed, ${num("skipped")} skipped\n`,
  );
  if (r.status !== 0 || num("pass") === 0) {
    process.stderr.write(`\nunit tests failed (exit ${r.status}).\n`);
    finish(false);
  }
}

// The reference's conformance runner against our worker.
const worker = [process.execPath, join(root, "dist/bin/quiver-conformance.js")];
process.stdout.write(run(venvBin(root, "vgi-rpc-test"), ["--version"], { capture: true }).stdout);

/** Starts the worker with `args` and waits for the line announcing its address. */
function startWorker(args, prefix) {
  return startAnnounced(worker[0], [...worker.slice(1), ...args], prefix);
}

/**
 * Starts `cmd` and waits for the complete stdout line starting with `prefix`; returns the rest of
 * it. Its stdout is drained after (never closed under it: a child writing on would fail EPIPE).
 */
function startAnnounced(cmd, args, prefix) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30 * 60 * 1000);
  child.on("exit", () => clearTimeout(timer));
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk) => {
      out += chunk;
      const line = out
        .split("\n")
        .slice(0, -1)
        .find((l) => l.startsWith(prefix));
      if (line === undefined) return;
      child.stdout.off("data", onData);
      child.stdout.resume();
      resolve({ child, address: line.slice(prefix.length).trim() });
    };
    child.stdout.on("data", onData);
    child.stdout.once("end", () => reject(new Error(`${cmd} ${args.join(" ")} exited without printing ${prefix}`)));
  });
}

/** One vgi-rpc-test run (`runner`: how to start it); returns true when it passed with no failure. */
function conformance(label, targetArgs, runner = [venvBin(root, "vgi-rpc-test")]) {
  step(`vgi-rpc conformance over ${label} (vgi-rpc-test ${targetArgs[0]})`);
  const r = run(runner[0], [...runner.slice(1), ...targetArgs, "--format", "json", "--timeout", "300"], {
    capture: true,
    maxBuffer: 64 * 1024 * 1024,
  });
  let report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    process.stdout.write(r.stdout ?? "");
    process.stderr.write(`\nvgi-rpc-test produced no JSON report (exit ${r.status}).\n`);
    totals.failed += 1;
    return false;
  }
  writeFileSync(join(root, `.conformance-${label}.json`), JSON.stringify(report, null, 1));
  const results = report.results ?? [];
  const passed = results.filter((t) => t.passed && !t.skipped).length;
  const skipped = results.filter((t) => t.skipped);
  const failed = results.filter((t) => !t.passed && !t.skipped);
  for (const t of failed) process.stdout.write(`  FAIL ${t.name}: ${String(t.error ?? "").split("\n")[0]}\n`);
  for (const t of skipped) process.stdout.write(`  skip ${t.name}: ${t.skip_reason}\n`);
  process.stdout.write(`conformance ${label}: ${passed} passed, ${failed.length} failed, ${skipped.length} skipped\n`);
  totals.passed += passed;
  totals.failed += failed.length;
  totals.skipped += skipped.length;
  return r.status === 0 && failed.length === 0 && passed > 0;
}

// The pipe run also checks the worker's access log with the suite's own validator.
const accessLog = join(mkdtempSync(join(tmpdir(), "quiver-")), "access.jsonl");
let ok = conformance("pipe", [
  "--cmd",
  `${worker.join(" ")} --access-log ${accessLog} --access-log-debug`,
  "--access-log",
  accessLog,
]);
// The same suite with the runner's client offering a 4 MiB shared-memory segment: every request
// advertises it, our worker attaches it and answers large batches through it.
ok = conformance("pipe-shm", ["--cmd", worker.join(" "), "--shm", "4194304"]) && ok;
const sock = join(mkdtempSync(join(tmpdir(), "quiver-")), "conformance.sock");
for (const [label, args, prefix, flag] of [
  ["unix", ["--unix", sock], "UNIX:", "--unix"],
  ["tcp", ["--tcp", "127.0.0.1:0"], "TCP:", "--tcp"],
]) {
  const { child, address } = await startWorker(args, prefix);
  ok = conformance(label, [flag, address]) && ok;
  child.kill("SIGTERM");
}
// WebSocket: the full suite through `quiver bridge` (the pipe protocol on the runner's side, our
// WebSocket client and server in between), including the over-2-GiB echo.
{
  const { child, address } = await startWorker(["--ws"], "WS:");
  ok =
    conformance("ws-bridge", [
      "--cmd",
      `${process.execPath} ${join(root, "dist/bin/quiver.js")} bridge --ws ${address}`,
    ]) && ok;
  child.kill("SIGTERM");
}
// HTTP: the full suite at the root prefix (access log validated too), then the suite's
// response-cap group against the strict-cap fixture (max_response_bytes = 64 KiB, as the
// reference's serve_conformance_http_strict.py configures it).
const httpLog = join(mkdtempSync(join(tmpdir(), "quiver-")), "access-http.jsonl");
for (const [label, extra, suiteArgs] of [
  ["http", ["--access-log", httpLog], ["--access-log", httpLog]],
  ["http-strict-cap", ["--max-response-bytes", "65536"], ["--filter", "http_response_cap.*"]],
]) {
  const { child, address } = await startWorker(["--http", ...extra], "PORT:");
  ok = conformance(label, ["--url", `http://127.0.0.1:${address}`, ...suiteArgs]) && ok;
  child.kill("SIGTERM");
}
// The suite once more with our worker externalizing every batch (threshold 1) through the
// reference's fake storage, over pipe, unix, tcp and http. The stock vgi-rpc-test opens its
// connections with no external-location configuration, so it cannot read a pointer from any worker
// started with --fake-storage (the reference's own included); test/python-external runs the same CLI
// with its client resolving pointers from loopback, as the reference's pytest suite configures it.
// Each run has its own storage (the over-2-GiB echo leaves its object there), checked afterwards
// for what the worker uploaded.
{
  const runner = [python, join(root, "test/python-external/vgi_rpc_test_external.py")];
  const storageSock = join(mkdtempSync(join(tmpdir(), "quiver-")), "storage.sock");
  for (const [label, args, prefix, target] of [
    ["pipe-storage", null, null, null],
    ["unix-storage", ["--unix", storageSock], "UNIX:", (a) => ["--unix", a]],
    ["tcp-storage", ["--tcp", "127.0.0.1:0"], "TCP:", (a) => ["--tcp", a]],
    ["http-storage", ["--http"], "PORT:", (a) => ["--url", `http://127.0.0.1:${a}`]],
  ]) {
    const storage = await startAnnounced(python, ["-m", "vgi_rpc.conformance.fake_storage", "--port", "0"], "PORT:");
    const storageUrl = `http://127.0.0.1:${storage.address}`;
    const external = ["--fake-storage", storageUrl, "--externalize-threshold", "1"];
    if (args === null) {
      ok = conformance(label, ["--cmd", [...worker, ...external].join(" ")], runner) && ok;
    } else {
      const { child, address } = await startWorker([...args, ...external], prefix);
      ok = conformance(label, target(address), runner) && ok;
      child.kill("SIGTERM");
    }
    // Proof the run went through the storage: the objects the worker uploaded.
    const stats = await (await fetch(`${storageUrl}/_stats`)).json();
    process.stdout.write(`${label}: the worker uploaded ${stats.object_count} objects to the fake storage\n`);
    if (!(stats.object_count > 0)) {
      process.stderr.write(`\n${label}: nothing was uploaded: the worker did not externalize.\n`);
      totals.failed += 1;
      ok = false;
    }
    storage.child.kill("SIGTERM");
  }
}
// The reference's pytest suite over pipe, unix and tcp (the groups that apply to raw transports;
// HTTP-only and fixture-gated groups skip by the suite's own mechanism). The worker runs with a
// fixed 16 MiB young generation, as a long-running server should: the resource-soak group measures
// RSS slope, and V8 otherwise grows its semi-spaces during the test, which reads as a leak.
step("vgi-rpc pytest conformance suite (pipe, unix, tcp)");
{
  const r = run(
    process.execPath,
    [
      join(root, "scripts/run-pytest-conformance.mjs"),
      "--worker",
      `${process.execPath} --min-semi-space-size=16 --max-semi-space-size=16 ${join(root, "dist/bin/quiver-conformance.js")}`,
    ],
    { capture: true, maxBuffer: 64 * 1024 * 1024 },
  );
  process.stdout.write(r.stdout ?? "");
  for (const m of (r.stdout ?? "").matchAll(
    /^conformance pytest \((pipe|unix|tcp)\): (\d+) passed, (\d+) failed, (\d+) skipped$/gm,
  )) {
    totals.passed += Number(m[2]);
    totals.failed += Number(m[3]);
    totals.skipped += Number(m[4]);
  }
  if (r.status !== 0) {
    process.stderr.write(`\npytest conformance failed (exit ${r.status}).\n`);
    ok = false;
  }
}
// The reference's pytest suite over HTTP (test/python-http starts its own workers, each with the
// flags its fixture groups need; groups for features we do not serve skip by the suite's rules).
// Its workers also run with a fixed 16 MiB young generation, for the HTTP resource-soak group, as
// the pipe suite's do: without it, a semi-space growing mid-test read as an RSS slope of 3.3 MB per
// epoch (limit 2 MiB) in 1 of 2 runs of the stream-error-cancel scenario.
step("vgi-rpc pytest conformance suite (http)");
{
  const r = run(
    python,
    [
      "-m",
      "pytest",
      "test/python-http",
      "--rootdir",
      "test/python-http",
      "-p",
      "no:cacheprovider",
      "--timeout=60",
      "-q",
    ],
    {
      capture: true,
      maxBuffer: 64 * 1024 * 1024,
      env: {
        ...process.env,
        PYTHONDONTWRITEBYTECODE: "1",
        QUIVER_CONFORMANCE_CMD: `${process.execPath} --min-semi-space-size=16 --max-semi-space-size=16 ${join(root, "dist/bin/quiver-conformance.js")}`,
      },
    },
  );
  const out = r.stdout ?? "";
  process.stdout.write(out.split("\n").slice(-15).join("\n"));
  const last = out.split("\n").filter(Boolean).at(-1) ?? "";
  const count = (word) => Number((new RegExp(`(\\d+) ${word}`).exec(last) ?? [])[1] ?? 0);
  const [passed, failed, skipped] = [count("passed"), count("failed") + count("error"), count("skipped")];
  process.stdout.write(`\nconformance pytest (http): ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  totals.passed += passed;
  totals.failed += failed;
  totals.skipped += skipped;
  if (r.status !== 0 || passed === 0) ok = false;
}
// The same pytest suite with our CLIENT on the other end: the reference's ClientDriver drives
// src/bin/quiver-client-driver against the reference's own worker, over stdio, unix, tcp and stdio
// with a shared-memory segment.
step("vgi-rpc pytest conformance suite through quiver's client (stdio, unix, tcp, shm)");
{
  const r = run(
    process.execPath,
    [join(root, "scripts/run-client-conformance.mjs"), "--transport", "stdio,unix,tcp,shm"],
    { capture: true, maxBuffer: 64 * 1024 * 1024 },
  );
  const out = r.stdout ?? "";
  process.stdout.write(out.split("\n").slice(-12).join("\n"));
  let counted = 0;
  for (const m of out.matchAll(
    /^client conformance \((stdio|unix|tcp|shm)\): (\d+) passed, (\d+) failed, (\d+) skipped$/gm,
  )) {
    totals.passed += Number(m[2]);
    totals.failed += Number(m[3]);
    totals.skipped += Number(m[4]);
    counted++;
  }
  if (r.status !== 0 || counted !== 4) {
    process.stderr.write(`\nclient conformance failed (exit ${r.status}, ${counted} of 4 transports reported).\n`);
    ok = false;
  }
}
// The differential test (test/differential): the reference's client makes the same seeded calls
// (seed 1, 100 per transport) on the reference's worker and on ours over pipe, Unix and HTTP and
// compares the answers exactly; any difference not in test/differential/known.json fails the run.
step("differential test: reference worker vs ours, same seeded calls (pipe, unix, http)");
{
  const r = run(
    process.execPath,
    [
      join(root, "scripts/run-differential.mjs"),
      "--no-build",
      "--seed",
      "1",
      "--cases",
      "100",
      "--transports",
      "pipe,unix,http",
      "--known",
      "test/differential/known.json",
      "--json",
      join(root, ".differential-npm-test.json"),
      "--max-seconds",
      "150",
    ],
    { capture: true, maxBuffer: 64 * 1024 * 1024, timeout: 5 * 60 * 1000 },
  );
  const out = r.stdout ?? "";
  // The per-transport lines and the difference groups; the normalization list is in the JSON report.
  process.stdout.write(
    out
      .split("\n")
      .filter((l) => !l.startsWith("  - ") && !l.startsWith("        ."))
      .join("\n"),
  );
  const counts = [
    ...out.matchAll(/^(pipe|unix|http): (\d+) cases, (\d+) same, (\d+) different \((\d+) known, (\d+) unexpected\)/gm),
  ];
  const unexpected = counts.reduce((n, m) => n + Number(m[6]), 0);
  const harnessOk = (r.status === 0 || r.status === 1) && counts.length === 3;
  for (const m of counts) {
    totals.passed += Number(m[3]) + Number(m[5]);
    totals.failed += Number(m[6]);
  }
  if (!harnessOk || unexpected > 0 || r.status !== 0) {
    process.stderr.write(`\ndifferential test failed (exit ${r.status ?? r.signal}).\n`);
    ok = false;
  }
}
finish(ok);
