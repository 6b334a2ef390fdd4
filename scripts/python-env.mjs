// Creates and reuses the pinned Python environment that hosts the reference conformance suite.
// Fails loudly (never skips) when no Python >= 3.13 exists or the package index is unreachable.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** What the environment must hold; a change here rebuilds it. */
export const PINNED = [
  "vgi-rpc[http,conformance,cli,external]==0.52.2",
  "pytest==9.2.0",
  "pytest-timeout==2.4.0",
  // The S3-compatible server the S3 backend tests start on loopback (test/external/s3.test.ts).
  "moto[server]==5.2.6",
];
const VENV = ".venv-conformance";

export function venvBin(root, name) {
  return join(root, VENV, "bin", name);
}

function versionOf(python) {
  const r = spawnSync(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout) return null;
  const [maj, min] = r.stdout.trim().split(".").map(Number);
  return { maj, min, text: r.stdout.trim() };
}

function candidates() {
  const out = [];
  if (process.env.VGI_RPC_PYTHON) out.push(process.env.VGI_RPC_PYTHON);
  for (const v of ["python3.14", "python3.13", "python3"]) out.push(v);
  const pyenv = join(homedir(), ".pyenv", "versions");
  if (existsSync(pyenv)) {
    for (const d of readdirSync(pyenv).sort().reverse()) out.push(join(pyenv, d, "bin", "python"));
  }
  return out;
}

function findPython() {
  for (const c of candidates()) {
    const v = versionOf(c);
    if (v && (v.maj > 3 || (v.maj === 3 && v.min >= 13))) return c;
  }
  return null;
}

function die(message) {
  process.stderr.write(`\n[conformance environment] ${message}\n`);
  process.exit(1);
}

/** Returns the venv's python, creating or refreshing the venv when needed. */
export function ensurePython(root) {
  const venvPython = venvBin(root, "python");
  const stamp = join(root, VENV, ".pinned");
  const want = PINNED.join("\n");
  if (existsSync(venvPython) && existsSync(stamp) && readFileSync(stamp, "utf8") === want) return venvPython;

  const base = findPython();
  if (!base) {
    die(
      "No Python >= 3.13 found (the pinned vgi-rpc 0.52.2 needs it).\n" +
        "Fix: install Python 3.13+ (e.g. `pyenv install 3.13`), or point VGI_RPC_PYTHON at one:\n" +
        "  VGI_RPC_PYTHON=/path/to/python3.13 npm test",
    );
  }
  // A worktree that links another checkout's environment must not rebuild it: `venv --clear`
  // follows the link and empties the environment every checkout sharing it runs on.
  const venvDir = join(root, VENV);
  if (existsSync(venvDir) && lstatSync(venvDir).isSymbolicLink()) {
    die(
      `${venvDir} is a link to a shared environment (${realpathSync(venvDir)}) whose stamp does not match ` +
        `this checkout's pins (${PINNED.join(", ")}); refusing to rebuild it in place.\n` +
        "Fix: remove the link to give this checkout its own environment, or bring the two checkouts' pins in line.",
    );
  }
  process.stdout.write(`[conformance environment] creating ${VENV} with ${base}\n`);
  let r = spawnSync(base, ["-m", "venv", "--clear", join(root, VENV)], { stdio: "inherit" });
  if (r.status !== 0)
    die(`\`${base} -m venv\` failed (exit ${r.status}). Fix: install the venv module for that Python.`);
  r = spawnSync(venvPython, ["-m", "pip", "install", "--disable-pip-version-check", "--quiet", ...PINNED], {
    stdio: "inherit",
  });
  if (r.status !== 0) {
    die(
      `pip could not install ${PINNED.join(" ")} (exit ${r.status}).\n` +
        "Fix: make a Python package index reachable (PIP_INDEX_URL for a mirror), then run `npm test` again.",
    );
  }
  writeFileSync(stamp, want);
  return venvPython;
}

// `node scripts/python-env.mjs` creates (or checks) the environment and prints its python.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${ensurePython(resolve(dirname(fileURLToPath(import.meta.url)), ".."))}\n`);
}
