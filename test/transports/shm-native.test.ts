/**
 * The native shared-memory addon: it must have been built wherever it can be (a C compiler and
 * the running Node's headers), so CI cannot silently fall back to file I/O. Set
 * QUIVER_ALLOW_NO_NATIVE=1 to waive that on a machine that deliberately lacks the addon.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { shmSupport } from "../../src/transports/shm/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const prefix = dirname(dirname(process.execPath));
const headers = join(prefix, "include", "node", "node_api.h");
const cc = process.env.CC || "cc";
const hasCompiler = spawnSync(cc, ["--version"], { timeout: 30_000 }).status === 0;
const buildable = process.platform !== "win32" && hasCompiler && existsSync(headers);
const waived = process.env.QUIVER_ALLOW_NO_NATIVE === "1";
/** Every child here is bounded. */
const CHILD_TIMEOUT_MS = 120_000;

test("the addon was built at install wherever a C compiler and Node headers exist", {
  skip: buildable ? false : `not buildable here (compiler ${hasCompiler}, ${headers} ${existsSync(headers)})`,
}, (t) => {
  const support = shmSupport();
  if (support.backing !== "mmap" && waived) {
    t.skip(`QUIVER_ALLOW_NO_NATIVE=1: running on the file backing (${support.reason})`);
    return;
  }
  assert.equal(
    support.backing,
    "mmap",
    `the native addon did not build or load: ${support.reason}; run \`node scripts/build-native.mjs\` (QUIVER_ALLOW_NO_NATIVE=1 waives this)`,
  );
  const status = JSON.parse(readFileSync(join(root, "native/shm/build-status.json"), "utf8")) as { built: boolean };
  assert.equal(status.built, true);
});

test("a view outlives close and GC; the mapping goes only once no view of it remains", {
  skip: process.platform === "linux" && shmSupport().backing === "mmap" ? false : "needs Linux and the native addon",
}, () => {
  // A child with --expose-gc: a crash there fails this test instead of the runner.
  const script = `
    import { ShmSegment } from ${JSON.stringify(join(root, "src/transports/shm/index.ts"))};
    import { readFileSync } from "node:fs";
    const mapped = (path) => readFileSync("/proc/self/maps", "utf8").includes(path);
    const settle = async () => { for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); } };
    const s = ShmSegment.create(8 * 1024 * 1024, { backing: "mmap" });
    const off = s.allocate(4096);
    s.write(off, [new Uint8Array(4096).fill(0x5a)]);
    let view = s.read(off, 4096);
    const path = s.path;
    s.close();
    s.unlink();
    await settle();
    const out = { afterClose: mapped(path), sum: view.reduce((a, b) => a + b, 0) };
    view = null;
    await settle();
    out.afterDrop = mapped(path);
    process.stdout.write(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
    encoding: "utf8",
    timeout: CHILD_TIMEOUT_MS,
  });
  assert.equal(r.status, 0, `child failed (signal ${r.signal}): ${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout), { afterClose: true, sum: 0x5a * 4096, afterDrop: false });
});

test("the install script builds from the packaged files alone, and records a failure without failing", {
  skip: buildable ? false : "needs a C compiler and Node headers",
}, () => {
  // Lay out what `npm pack` ships for the addon (package.json "files") in a scratch package.
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    files: string[];
    scripts: Record<string, string>;
  };
  assert.equal(pkg.scripts.install, "node scripts/build-native.mjs");
  const dir = mkdtempSync(join(tmpdir(), "quiver-native-"));
  try {
    // Every source binding.gyp compiles, the header they share, the gyp file and the script.
    const gyp = JSON.parse(readFileSync(join(root, "native/shm/binding.gyp"), "utf8")) as {
      targets: Array<{ sources: string[] }>;
    };
    const sources = gyp.targets.flatMap((t) => t.sources).map((s) => `native/shm/${s}`);
    for (const f of [...sources, "native/shm/pool.h", "native/shm/binding.gyp", "scripts/build-native.mjs"]) {
      assert.ok(pkg.files.includes(f), `package.json files lacks ${f}`);
      mkdirSync(join(dir, dirname(f)), { recursive: true });
      cpSync(join(root, f), join(dir, f));
    }
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, [join(dir, "scripts/build-native.mjs")], {
        cwd: dir,
        encoding: "utf8",
        timeout: CHILD_TIMEOUT_MS,
        env: { ...process.env, ...env },
      });
    const status = () =>
      JSON.parse(readFileSync(join(dir, "native/shm/build-status.json"), "utf8")) as {
        built: boolean;
        reason: string | null;
      };

    const noCc = run({ CC: "/nonexistent/cc" });
    assert.equal(noCc.status, 0, noCc.stderr);
    assert.equal(status().built, false);
    assert.match(status().reason ?? "", /no C compiler/);
    assert.equal(run({ CC: "/nonexistent/cc", QUIVER_REQUIRE_NATIVE: "1" }).status, 1);

    const ok = run({});
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual([status().built, status().reason], [true, null]);
    assert.ok(existsSync(join(dir, "native/shm/build/Release/quiver_shm.node")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
