#!/usr/bin/env node
/**
 * `npm run bench`: compiles src and bench with tsc into `.bench/` (git-ignored) and runs the built
 * bench/run.js with this script's arguments, so the figures are those of the JavaScript users run
 * (the package's dist is tsc output too), not of tsx's on-the-fly build.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const out = join(root, ".bench");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

const built = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.bench.json")], { stdio: "inherit" });
if (built.status !== 0) {
  process.stderr.write("bench: the TypeScript build failed (see above)\n");
  process.exit(built.status ?? 1);
}
// The shm addon is found relative to src/transports/shm (native/shm/build): under .bench/ that is
// .bench/native, so point it at the real one.
const native = join(out, "native");
if (!existsSync(native) && !isLink(native)) symlinkSync(join(root, "native"), native, "dir");

const run = spawnSync(process.execPath, [join(out, "bench", "run.js"), ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(run.status ?? (run.signal ? 1 : 0));

function isLink(path) {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
