#!/usr/bin/env node
// Builds the shared-memory addon (native/shm) at install time, with npm's bundled node-gyp
// compiling against the running Node's own headers (<prefix>/include/node): nothing is
// downloaded. A missing compiler or missing headers never fail the install — the shm transport
// then falls back to positional file I/O — but the outcome is always recorded in
// native/shm/build-status.json (git-ignored) so tests and users can see why.
//
//   node scripts/build-native.mjs            build, record, exit 0 whatever happened
//   QUIVER_REQUIRE_NATIVE=1 ...               exit 1 when the addon did not build
//   QUIVER_SKIP_NATIVE=1 ...                  do not build; record that it was skipped
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const addonDir = join(root, "native", "shm");
const statusFile = join(addonDir, "build-status.json");
const output = join(addonDir, "build", "Release", "quiver_shm.node");
/** The compiler run is bounded: a wedged toolchain must not hang `npm ci`. */
const BUILD_TIMEOUT_MS = 5 * 60 * 1000;

/** Where the running Node keeps its headers: <prefix>/include/node, prefix = dirname(dirname(node)). */
function nodeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir);
  candidates.push(dirname(dirname(process.execPath)));
  for (const dir of candidates) {
    if (existsSync(join(dir, "include", "node", "node_api.h"))) return { dir };
  }
  return { reason: `no Node headers (include/node/node_api.h) under ${candidates.join(" or ")}` };
}

/** npm's bundled node-gyp: npm names it in npm_config_node_gyp when running a script; else next to npm. */
function nodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    candidates.push(join(dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  }
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  // Run with this Node, so only the JavaScript entry point will do (not a shell wrapper).
  const found = candidates.find((p) => p.endsWith(".js") && existsSync(p));
  return found ? { path: found } : { reason: `npm's node-gyp not found (looked at ${candidates.join(", ")})` };
}

function compiler() {
  const cc = process.env.CC || "cc";
  const r = spawnSync(cc, ["--version"], { encoding: "utf8", timeout: 30_000 });
  if (r.error || r.status !== 0)
    return { reason: `no C compiler (${cc} --version failed: ${r.error?.code ?? r.status})` };
  return { name: r.stdout.split("\n")[0] };
}

function record(status) {
  const full = {
    built: status.built,
    reason: status.reason ?? null,
    addon: status.built ? output : null,
    node: process.version,
    napiVersion: process.versions.napi,
    platform: `${process.platform}-${process.arch}`,
    at: new Date().toISOString(),
    ...status.extra,
  };
  mkdirSync(addonDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify(full, null, 2)}\n`);
  const line = status.built ? `built ${output}` : `not built: ${status.reason} (shm falls back to file I/O)`;
  process.stderr.write(`quiver-rpc native shm addon: ${line}\n`);
  if (!status.built && process.env.QUIVER_REQUIRE_NATIVE === "1") process.exit(1);
  process.exit(0);
}

function main() {
  if (process.env.QUIVER_SKIP_NATIVE === "1") return record({ built: false, reason: "skipped: QUIVER_SKIP_NATIVE=1" });
  if (process.platform === "win32") {
    return record({ built: false, reason: "Windows has no POSIX shared memory; the addon is POSIX-only" });
  }
  const headers = nodeDir();
  if (!headers.dir) return record({ built: false, reason: headers.reason });
  const gyp = nodeGyp();
  if (!gyp.path) return record({ built: false, reason: gyp.reason });
  const cc = compiler();
  if (!cc.name) return record({ built: false, reason: cc.reason });
  const r = spawnSync(process.execPath, [gyp.path, "rebuild", "--release", `--nodedir=${headers.dir}`], {
    cwd: addonDir,
    encoding: "utf8",
    timeout: BUILD_TIMEOUT_MS,
    // --nodedir means node-gyp never fetches headers; offline makes any other fetch fail fast.
    env: { ...process.env, npm_config_offline: "true" },
  });
  const log = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const extra = { nodedir: headers.dir, nodeGyp: gyp.path, compiler: cc.name };
  if (r.error || r.status !== 0 || !existsSync(output)) {
    const why = r.error ? r.error.message : `node-gyp exited ${r.status}`;
    return record({ built: false, reason: `${why}: ${log.trim().split("\n").slice(-8).join(" | ")}`, extra });
  }
  return record({ built: true, extra });
}

main();
