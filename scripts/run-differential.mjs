#!/usr/bin/env node
// The differential test (test/differential/): the pinned reference's Python client makes the same
// seeded calls on the reference's conformance worker and on ours, over pipe, Unix socket and HTTP,
// and compares the answers exactly (values and float bits, types, nulls, schemas, metadata, stream
// headers, logs, errors). Builds dist/ first (tsc), then runs the Python driver in the project venv
// (created on first use, as `npm test` does).
//
//   npm run differential -- --seed 1 --cases 100 --transports pipe,unix,http
//   npm run differential -- --seed 1,2,3 --cases 1000 --big 6 --json .differential-long.json   # long run
//   npm run differential -- --seed 7 --only 17 --transports pipe --show       # one case, both outcomes
//   npm run differential -- --call 'echo_float(value=f64(0xfff8000000000000))' --transports pipe --show
//   npm run differential -- --help                                           # every option
//
// Options of this wrapper (the rest go to the driver): --no-build skips the build. The driver gets
// a hard deadline of its --max-seconds (default 3600) plus 10 minutes; past it, SIGTERM, then SIGKILL.
// Exit status: the driver's (0 same or known-only, 1 unexpected differences, 2 harness failure).
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePython } from "./python-env.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

const argv = process.argv.slice(2);
const noBuild = argv.includes("--no-build");
const args = argv.filter((a) => a !== "--no-build");
const wantsHelp = args.includes("--help") || args.includes("-h");

const python = ensurePython(root);
if (!noBuild && !wantsHelp) {
  const b = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    stdio: "inherit",
    timeout: 10 * 60 * 1000,
  });
  if (b.status !== 0) {
    process.stderr.write(`differential: build failed (exit ${b.status ?? b.signal})\n`);
    process.exit(2);
  }
}

const at = args.indexOf("--max-seconds");
const maxSeconds = at >= 0 ? Number(args[at + 1]) : 3600;
const deadlineMs = ((Number.isFinite(maxSeconds) ? maxSeconds : 3600) + 600) * 1000;
const r = spawnSync(python, ["-m", "differential.run", "--node", process.execPath, ...args], {
  stdio: "inherit",
  timeout: deadlineMs,
  killSignal: "SIGTERM",
  env: {
    ...process.env,
    PYTHONPATH: [join(root, "test"), process.env.PYTHONPATH].filter(Boolean).join(":"),
    PYTHONDONTWRITEBYTECODE: "1",
  },
});
if (r.error) {
  process.stderr.write(`differential: ${r.error.message}\n`);
  process.exit(2);
}
if (r.signal) {
  process.stderr.write(`differential: driver stopped by ${r.signal} (deadline ${deadlineMs / 1000}s)\n`);
  process.exit(2);
}
process.exit(r.status ?? 2);
