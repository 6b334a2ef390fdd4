#!/usr/bin/env node
// Builds the pinned test tools that are not npm or PyPI packages into .tools/bin (git-ignored):
// today the GCS emulator fake-gcs-server, which test/external/gcs.test.ts starts on loopback.
// `npm test` calls it before the unit tests; run it yourself before running that test alone:
//
//   node scripts/tools.mjs
//
// It needs Go (https://go.dev/dl/); `go install` fetches the module through the Go module proxy.
// Nothing is skipped silently: without Go, or when the build fails, it exits 1 saying what to do.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The emulator's module and version; a change here rebuilds it. */
export const FAKE_GCS_SERVER = "github.com/fsouza/fake-gcs-server@v1.56.1";
const TOOLS = ".tools";

/** Where the binary is (or will be) for this checkout. */
export function fakeGcsServerPath(root) {
  return join(root, TOOLS, "bin", "fake-gcs-server");
}

function die(message) {
  process.stderr.write(`\n[test tools] ${message}\n`);
  process.exit(1);
}

/** Returns the fake-gcs-server binary, building it with `go install` when missing or stale. */
export function ensureFakeGcsServer(root) {
  const bin = fakeGcsServerPath(root);
  const stamp = join(root, TOOLS, "fake-gcs-server.version");
  if (existsSync(bin) && existsSync(stamp) && readFileSync(stamp, "utf8") === FAKE_GCS_SERVER) return bin;
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error || go.status !== 0) {
    die(
      `Go is needed to build the GCS emulator (${FAKE_GCS_SERVER}) for test/external/gcs.test.ts.\n` +
        "Fix: install Go (https://go.dev/dl/), then run `node scripts/tools.mjs` or `npm test` again.",
    );
  }
  process.stdout.write(`[test tools] go install ${FAKE_GCS_SERVER} into ${join(TOOLS, "bin")}\n`);
  mkdirSync(dirname(bin), { recursive: true });
  const r = spawnSync("go", ["install", FAKE_GCS_SERVER], {
    stdio: "inherit",
    env: { ...process.env, GOBIN: dirname(bin) },
    timeout: 15 * 60 * 1000,
  });
  if (r.status !== 0 || !existsSync(bin)) {
    die(
      `\`go install ${FAKE_GCS_SERVER}\` failed (exit ${r.status ?? r.signal}).\n` +
        "Fix: make the Go module proxy reachable (GOPROXY for a mirror), then run `node scripts/tools.mjs` again.",
    );
  }
  writeFileSync(stamp, FAKE_GCS_SERVER);
  return bin;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  process.stdout.write(`${ensureFakeGcsServer(root)}\n`);
}
