/**
 * The package as a user installs it: `npm pack` of the built `dist/` (npm test builds it before
 * the tests run, emptying dist/ first), installed offline into an empty project as `npm install`
 * would (dependencies and optional ones, no dev ones; no install scripts). Then:
 * - the install's footprint (packages, MB) is printed, held to the 25 MB goal of #24, and holds
 *   no OpenTelemetry package but the API;
 * - the package ships LICENSE, no dist/ file that no current source compiles to, and no source
 *   map naming a file the package lacks;
 * - the bins start, and a worker asked for traces without the SDK says how to add it;
 * - every entry point in package.json's `exports` is imported at run time, and every symbol
 *   README.md and docs/ document imported under TypeScript `strict` with NodeNext resolution and
 *   `skipLibCheck: false` (so every declaration file those imports reach is checked too). The
 *   browser entry is also checked as a page would see it: DOM types and no Node types;
 * - the storage backends' SDKs are optional peers, not installed by default: without them the
 *   S3 and GCS factories fail saying which package to install (the type check above then runs
 *   with the repository's SDKs linked in, as a user who installed them has);
 * - the README's quick start is copied into that project, type-checked with the rest and run
 *   under tsx.
 */
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, posix, relative } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dist = join(root, "dist");
const tsc = join(root, "node_modules/typescript/bin/tsc");

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly engines?: Record<string, string>;
  readonly bin?: Record<string, string>;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly exports: Record<string, string | { readonly types: string; readonly import: string }>;
}
/** The README's quick start, as examples/quickstart holds it. */
const QUICKSTART = ["protocol.ts", "server.ts", "client.ts"] as const;

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as PackageJson;

/**
 * The symbols README.md and docs/ name, by the entry point they are documented under (`type X`
 * for a type). The docs' own `import ... from "quiver-rpc..."` lines are added to these when the
 * test runs. Name a symbol here when the docs start documenting it.
 */
const DOCUMENTED: Readonly<Record<string, readonly string[]>> = {
  "quiver-rpc": [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "InvalidValueError",
    "MAX_IN_FLIGHT",
    "NonIpcBytesError",
    "PIPELINE_UNWRITTEN_BYTES",
    "RpcClient",
    "RpcError",
    "UnsupportedArrowTypeError",
    "ValueError",
    "anonymous",
    "authenticated",
    "authenticatedUser",
    "bind",
    "bufferPoolStats",
    "configureBufferPool",
    "createAccessLog",
    "createServer",
    "defineProtocol",
    "exchange",
    "hasCapability",
    "optionalUser",
    "producer",
    "proxy",
    "requireCapability",
    "requireRole",
    "t",
    "unary",
    "withGrants",
    "type AuthContext",
    "type CallChannel",
    "type CallContext",
    "type CallRecord",
    "type CallStatistics",
    "type ClientSideChannel",
    "type ClientTransport",
    "type Injected",
    "type MonthDayNano",
    "type RpcServer",
    "type ServiceDescription",
    "type SideChannel",
  ],
  "quiver-rpc/stdio": ["PipeClient", "connectSubprocess", "pipeConnect", "serveStdio", "workerTakesSharedMemory"],
  "quiver-rpc/socket": ["connectTcp", "connectUnix", "listenSocket"],
  "quiver-rpc/http": [
    "AuthConfigError",
    "AuthFailure",
    "HttpError",
    "anonymous",
    "apiKeyAuthenticate",
    "authenticated",
    "authenticatedUser",
    "bearerAuthenticate",
    "bearerAuthenticateStatic",
    "chainAuthenticate",
    "connectHttp",
    "createHttpHandler",
    "hasCapability",
    "jwtAuthenticate",
    "listenHttp",
    "mtlsAuthenticate",
    "mtlsAuthenticateXfcc",
    "optionalUser",
    "requireAuthenticated",
    "requireCapability",
    "requireRole",
    "withGrants",
    "type AuthContext",
    "type Authenticator",
    "type HttpClient",
    "type HttpClientOptions",
    "type HttpListenOptions",
    "type HttpServerOptions",
  ],
  "quiver-rpc/ws": [
    "attachWebSocket",
    "connectWebSocket",
    "connectWebSocketClient",
    "listenWebSocket",
    "type WebSocketServerOptions",
  ],
  "quiver-rpc/ws/client": [
    "InvalidValueError",
    "RpcClient",
    "RpcError",
    "UnsupportedArrowTypeError",
    "connectWebSocket",
    "connectWebSocketClient",
    "defineProtocol",
    "exchange",
    "producer",
    "proxy",
    "t",
    "unary",
    "type CallChannel",
    "type ClientTransport",
    "type ServiceDescription",
  ],
  "quiver-rpc/memory": ["memoryPipe"],
  "quiver-rpc/cluster": ["serveCluster", "type ClusterOptions", "type ClusterPrimary"],
  "quiver-rpc/launch": [
    "connectLaunched",
    "gcStateDir",
    "launchWorker",
    "launcherHash",
    "launcherStatus",
    "type LaunchOptions",
  ],
  "quiver-rpc/pool": [
    "createWorkerPool",
    "type PoolMetrics",
    "type PooledWorker",
    "type WorkerPool",
    "type WorkerPoolOptions",
  ],
  "quiver-rpc/external/s3": [
    "ExternalStorageError",
    "MissingSdkError",
    "createS3Storage",
    "type S3Storage",
    "type S3StorageOptions",
  ],
  "quiver-rpc/external/gcs": [
    "ExternalStorageError",
    "MissingSdkError",
    "createGcsStorage",
    "type GcsStorage",
    "type GcsStorageOptions",
  ],
  "quiver-rpc/quota/redis": [
    "MissingSdkError",
    "createRedisQuotaStore",
    "type RedisQuotaStore",
    "type RedisQuotaStoreOptions",
  ],
  "quiver-rpc/shm": [
    "SharedMemoryChannel",
    "ShmError",
    "ShmSegment",
    "decodeFromShm",
    "encodeForShm",
    "readBatchFromShm",
    "sharedMemorySideChannel",
    "shmSupport",
    "writeBatchToShm",
  ],
};

/** DOCUMENTED plus every name the docs' import lines take from the package. */
function documentedImports(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (entry: string, name: string) => {
    const names = out.get(entry) ?? new Set<string>();
    names.add(name);
    out.set(entry, names);
  };
  for (const [entry, names] of Object.entries(DOCUMENTED)) for (const n of names) add(entry, n);
  const docs = [join(root, "README.md"), ...readdirSync(join(root, "docs")).map((f) => join(root, "docs", f))];
  for (const file of docs.filter((f) => f.endsWith(".md"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^\s*import\s*\{([^}]*)\}\s*from\s*"(quiver-rpc(?:\/[^"]*)?)"/gm)) {
      for (const spec of m[1]!.split(",")) {
        const name = spec.trim().replace(/\s+as\s+\w+$/, "");
        if (name !== "") add(m[2]!, name.replace(/^type\s+/, "type "));
      }
    }
  }
  return out;
}

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return r;
}

const tail = (text: string | null) => (text ?? "").trim().split("\n").slice(-25).join("\n");

/** Every `.d.ts` file under `dir`. */
function declarationFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...declarationFiles(p));
    else if (entry.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

function requireBuild(): void {
  assert.ok(
    existsSync(join(dist, "index.js")) && existsSync(join(dist, "index.d.ts")),
    "dist/ is not built: run `npm run build` first (npm test builds it before the tests)",
  );
}

test("the published declarations carry no @internal member", () => {
  requireBuild();
  const tagged = declarationFiles(dist).filter((f) => readFileSync(f, "utf8").includes("@internal"));
  assert.deepEqual(
    tagged.map((f) => relative(root, f)),
    [],
    "declaration files with @internal members (keep internals off exported classes, or check stripInternal in tsconfig.build.json)",
  );
});

const work = mkdtempSync(join(tmpdir(), "quiver-pack-"));
after(() => rmSync(work, { recursive: true, force: true }));

interface Consumer {
  /** The consumer project. */
  readonly app: string;
  /** The installed package in it. */
  readonly installedAt: string;
}

/** The consumer project with the packed package installed (or why it could not be), made on first use. */
let consumer: Consumer | Error | undefined;

function installPacked(): Consumer {
  if (consumer === undefined) {
    try {
      consumer = packAndInstall();
    } catch (err) {
      consumer = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (consumer instanceof Error) throw consumer;
  return consumer;
}

function packAndInstall(): Consumer {
  requireBuild();

  // npm pack: the `files` of package.json, as npm publish would send them (without prepack: the
  // tests run on the build npm test has just made).
  const packed = run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", work], root, 60_000);
  assert.equal(packed.status, 0, `npm pack failed:\n${tail(packed.stderr)}`);
  const tarball = join(work, packed.stdout.trim().split("\n").at(-1)!);
  assert.ok(existsSync(tarball), `npm pack wrote no ${tarball}`);

  // The consumer project. npm would look the tarball's dependencies up in the registry (package
  // documents, which `npm ci` does not cache); a lockfile listing them with this repository's
  // resolved versions lets `--offline` install them from the tarballs already in the npm cache.
  const app = join(work, "app");
  mkdirSync(app);
  const spec = `file:${tarball}`;
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { [pkg.name]: spec } }),
  );
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; link?: boolean }>;
  };
  const packages: Record<string, unknown> = {
    "": { name: "consumer", dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      optionalDependencies: pkg.optionalDependencies,
      hasInstallScript: true,
      engines: pkg.engines,
      bin: pkg.bin,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== "" && entry.dev !== true && entry.link !== true) packages[path] = entry;
  }
  writeFileSync(
    join(app, "package-lock.json"),
    JSON.stringify({ name: "consumer", lockfileVersion: 3, requires: true, packages }),
  );
  // What `npm install quiver-rpc` installs (dependencies and optional dependencies, no dev ones),
  // but without install scripts: the native addon's build is tested elsewhere.
  const installed = run(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball],
    app,
    120_000,
  );
  assert.equal(
    installed.status,
    0,
    `could not install the packed package offline from the npm cache (run \`npm ci\` once, online, to fill it):\n${tail(installed.stderr)}`,
  );
  return { app, installedAt: join(app, "node_modules", pkg.name) };
}

/** Every file under `dir`, as `/`-separated paths relative to it (symbolic links not followed). */
function filesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...filesUnder(join(dir, entry.name), `${prefix}${entry.name}/`));
    else if (entry.isFile()) out.push(`${prefix}${entry.name}`);
  }
  return out;
}

interface Installed {
  readonly name: string;
  /** The package's files' sizes, its own node_modules left out. */
  readonly bytes: number;
  /** As allocated on this file system, directories included (what `du` counts). */
  readonly allocated: number;
}

/** Every package under a `node_modules`, nested ones included (symbolic links not followed). */
function installedPackages(nodeModules: string): Installed[] {
  const out: Installed[] = [];
  const measure = (dir: string, size: { bytes: number; allocated: number }, packageRoot: boolean): void => {
    size.allocated += lstatSync(dir).blocks * 512;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (packageRoot && entry.name === "node_modules") continue;
      const p = join(dir, entry.name);
      if (entry.isDirectory()) measure(p, size, false);
      else if (entry.isFile()) {
        const st = lstatSync(p);
        size.bytes += st.size;
        size.allocated += st.blocks * 512;
      }
    }
  };
  const walk = (modules: string): void => {
    for (const entry of readdirSync(modules, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
      const dirs = entry.name.startsWith("@")
        ? readdirSync(join(modules, entry.name), { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => join(modules, entry.name, e.name))
        : [join(modules, entry.name)];
      for (const dir of dirs) {
        if (!existsSync(join(dir, "package.json"))) continue;
        const size = { bytes: 0, allocated: 0 };
        measure(dir, size, true);
        out.push({ name: relative(nodeModules, dir), ...size });
        if (existsSync(join(dir, "node_modules"))) walk(join(dir, "node_modules"));
      }
    }
  };
  walk(nodeModules);
  return out;
}

const MB = 1_000_000;
/**
 * The issue's goal for a default install (#24): node_modules at most 25 MB, counted as its files'
 * bytes (the space allocated for them depends on the file system's block size; it is printed too).
 */
const FOOTPRINT_LIMIT_BYTES = 25 * MB;

test("the default install is small: no OpenTelemetry SDK, at most 25 MB of node_modules", (t) => {
  const { app } = installPacked();
  const otel = readdirSync(join(app, "node_modules/@opentelemetry")).sort();
  assert.deepEqual(
    otel,
    ["api"],
    "the library depends on @opentelemetry/api only (the bins load the SDK when present)",
  );
  const installed = installedPackages(join(app, "node_modules")).sort((x, y) => y.bytes - x.bytes);
  const sum = (key: "bytes" | "allocated") => installed.reduce((n, p) => n + p[key], 0);
  const bytes = sum("bytes");
  const mb = (n: number) => (n / MB).toFixed(1);
  t.diagnostic(
    `default install: ${installed.length} packages (${pkg.name} and ${installed.length - 1} dependencies), ` +
      `${mb(bytes)} MB of files (${mb(sum("allocated"))} MB allocated on this file system); largest: ` +
      installed
        .slice(0, 4)
        .map((p) => `${p.name} ${mb(p.bytes)} MB`)
        .join(", "),
  );
  assert.ok(
    bytes <= FOOTPRINT_LIMIT_BYTES,
    `node_modules holds ${mb(bytes)} MB of files, over the ${mb(FOOTPRINT_LIMIT_BYTES)} MB goal`,
  );
});

test("the package ships its LICENSE, only the current build, and no source map pointing outside it", () => {
  const { installedAt } = installPacked();
  const files = filesUnder(installedAt);
  const shipped = new Set(files);

  assert.equal(pkg.license, "Apache-2.0");
  assert.ok(shipped.has("LICENSE"), "LICENSE is not in the package");
  const license = readFileSync(join(installedAt, "LICENSE"), "utf8");
  for (const line of ["Apache License", "Version 2.0, January 2004", "END OF TERMS AND CONDITIONS"]) {
    assert.ok(license.includes(line), `LICENSE is not the Apache License 2.0 text (no "${line}")`);
  }

  // dist/ holds what the current sources compile to and nothing else (npm run build empties it first).
  const stale = files.filter(
    (f) =>
      f.startsWith("dist/") &&
      !existsSync(join(root, "src", `${f.slice("dist/".length).replace(/(\.d\.ts|\.js)(\.map)?$/, "")}.ts`)),
  );
  assert.deepEqual(stale, [], "files in dist/ that no source in src/ compiles to (a stale build: npm run build)");

  // A source map (a .map file, or inline) names only files in the package, or carries their text.
  const problems: string[] = [];
  const checkMap = (
    where: string,
    mapDir: string,
    map: { sources?: string[]; sourceRoot?: string; sourcesContent?: (string | null)[] },
  ) => {
    for (const [i, source] of (map.sources ?? []).entries()) {
      if (typeof map.sourcesContent?.[i] === "string") continue;
      const target = posix.normalize(posix.join(mapDir, map.sourceRoot ?? "", source));
      if (!shipped.has(target)) problems.push(`${where} maps to ${target}, not in the package and not inlined`);
    }
  };
  for (const f of files) {
    if (f.endsWith(".map")) {
      checkMap(f, posix.dirname(f), JSON.parse(readFileSync(join(installedAt, f), "utf8")));
      continue;
    }
    if (!/\.(?:[cm]?js|d\.[cm]?ts)$/.test(f)) continue;
    const url = /^\/[/*][#@] sourceMappingURL=(\S+?)(?:\s*\*\/)?\s*$/m.exec(
      readFileSync(join(installedAt, f), "utf8"),
    )?.[1];
    if (url === undefined) continue;
    const inline = /^data:application\/json(?:;charset=[^;,]+)?;base64,(.*)$/.exec(url);
    if (inline !== null) checkMap(f, posix.dirname(f), JSON.parse(Buffer.from(inline[1]!, "base64").toString("utf8")));
    else if (!shipped.has(posix.normalize(posix.join(posix.dirname(f), url))))
      problems.push(`${f} names source map ${url}, not in the package`);
  }
  assert.deepEqual(problems, [], "source maps that point outside the package");
});

test("the bins run from the installed package, and without the OpenTelemetry SDK say how to add it", () => {
  const { installedAt } = installPacked();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));
  const bin = (name: string) => join(installedAt, pkg.bin?.[name] ?? `no bin ${name}`);

  const help = spawnSync(process.execPath, [bin("quiver"), "--help"], { encoding: "utf8", env, timeout: 30_000 });
  assert.equal(help.status, 0, `quiver --help failed:\n${tail(help.stderr)}`);
  assert.match(help.stdout, /usage/i);

  // Traces asked for, the SDK absent: the worker says so, serves (here: an empty stdin) and exits 0.
  const worker = spawnSync(process.execPath, [bin("quiver-conformance"), "--pipe"], {
    encoding: "utf8",
    env: { ...env, OTEL_TRACES_EXPORTER: "console" },
    input: "",
    timeout: 30_000,
  });
  assert.equal(worker.status, 0, `quiver-conformance --pipe failed:\n${tail(worker.stderr)}`);
  assert.match(worker.stderr, /@opentelemetry\/sdk-node is not installed.*npm install @opentelemetry\/sdk-node/);
});

/** The optional peer SDKs, linked from this repository into the consumer when a test needs them. */
const PEER_SDKS = ["@aws-sdk/client-s3", "@aws-sdk/s3-request-presigner", "@google-cloud/storage", "redis"] as const;

test("without their optional SDKs, the S3 and GCS storages and the Redis quota store fail saying what to install", () => {
  const { app } = installPacked();
  for (const sdk of PEER_SDKS) {
    assert.ok(!existsSync(join(app, "node_modules", sdk)), `${sdk} was installed by default`);
  }
  const probe = [
    `const { createS3Storage, MissingSdkError } = await import("${pkg.name}/external/s3");`,
    `const { createGcsStorage } = await import("${pkg.name}/external/gcs");`,
    "for (const make of [() => createS3Storage({ bucket: 'b' }), () => createGcsStorage({ bucket: 'b' })]) {",
    "  try { await make(); console.log('created'); }",
    "  catch (e) { console.log(e instanceof MissingSdkError ? e.message : 'other: ' + e); }",
    "}",
    `const redis = await import("${pkg.name}/quota/redis");`,
    "try { await redis.createRedisQuotaStore({ url: 'redis://127.0.0.1:1' }); console.log('created'); }",
    "catch (e) { console.log(e instanceof redis.MissingSdkError ? e.message : 'other: ' + e); }",
  ].join("\n");
  writeFileSync(join(app, "missing-sdk.mjs"), probe);
  const r = run(process.execPath, ["missing-sdk.mjs"], app, 60_000);
  assert.equal(r.status, 0, tail(r.stderr));
  assert.deepEqual(r.stdout.trim().split("\n"), [
    "quiver-rpc/external/s3 cannot load its SDK (an optional peer dependency): " +
      "npm install @aws-sdk/client-s3 @aws-sdk/s3-request-presigner",
    "quiver-rpc/external/gcs cannot load its SDK (an optional peer dependency): npm install @google-cloud/storage",
    "quiver-rpc/quota/redis cannot load its SDK (an optional peer dependency): npm install redis",
  ]);
});

test("every documented export imports under strict NodeNext", () => {
  const { app } = installPacked();

  // Every entry point resolves and loads; every documented value is there at run time.
  const documented = documentedImports();
  const entries = Object.keys(pkg.exports)
    .filter((k) => k !== "./package.json")
    .map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`));
  for (const entry of documented.keys())
    assert.ok(entries.includes(entry), `the docs import from ${entry}, not in exports`);
  for (const [key, target] of Object.entries(pkg.exports)) {
    if (typeof target === "string") continue;
    for (const file of [target.types, target.import]) {
      assert.ok(
        existsSync(join(app, "node_modules", pkg.name, file)),
        `exports["${key}"] points at ${file}, not in the package`,
      );
    }
  }
  const values = Object.fromEntries(
    [...documented].map(([entry, names]) => [entry, [...names].filter((n) => !n.startsWith("type "))]),
  );
  const probe = [
    `const values = ${JSON.stringify(values)};`,
    "const missing = [];",
    `for (const entry of ${JSON.stringify(entries)}) {`,
    "  const m = await import(entry);",
    "  for (const name of values[entry] ?? []) if (m[name] === undefined) missing.push(entry + ': ' + name);",
    "}",
    "if (missing.length > 0) { console.error(missing.join('\\n')); process.exit(1); }",
  ].join("\n");
  writeFileSync(join(app, "probe.mjs"), probe);
  const loaded = run(process.execPath, ["probe.mjs"], app, 60_000);
  assert.equal(
    loaded.status,
    0,
    `importing the entry points failed, or documented values are missing:\n${tail(loaded.stderr)}`,
  );

  // Types: a Node consumer (strict, NodeNext, Node's types, no DOM) imports every documented
  // name; a page imports the browser entry with DOM types and no Node types.
  const importLine = (entry: string, names: Iterable<string>) =>
    `import { ${[...names].join(", ")} } from "${entry}";\nexport const loaded${entries.indexOf(entry)} = true;\n`;
  const nodeFiles: string[] = [];
  for (const [entry, names] of documented) {
    const file = `uses-${entries.indexOf(entry)}.ts`;
    writeFileSync(join(app, file), importLine(entry, names));
    nodeFiles.push(file);
  }
  // The README's quick start (examples/quickstart, which test/examples keeps equal to the README),
  // copied into the consumer as a user would: type-checked with the rest, then run below.
  mkdirSync(join(app, "quickstart"));
  for (const f of QUICKSTART) {
    copyFileSync(join(root, "examples/quickstart", f), join(app, "quickstart", f));
    nodeFiles.push(`quickstart/${f}`);
  }
  const browserEntry = `${pkg.name}/ws/client`;
  writeFileSync(join(app, "page.ts"), importLine(browserEntry, documented.get(browserEntry) ?? []));
  // The storage backends' types name their SDKs: link them in, as a user of those entries installs them.
  for (const sdk of PEER_SDKS) {
    mkdirSync(join(app, "node_modules", sdk, ".."), { recursive: true });
    if (!existsSync(join(app, "node_modules", sdk)))
      symlinkSync(join(root, "node_modules", sdk), join(app, "node_modules", sdk), "dir");
  }
  // Node's types as this repository pins them, in place of any a dependency brought along.
  mkdirSync(join(app, "node_modules/@types"), { recursive: true });
  rmSync(join(app, "node_modules/@types/node"), { recursive: true, force: true });
  symlinkSync(join(root, "node_modules/@types/node"), join(app, "node_modules/@types/node"), "dir");
  const compilerOptions = {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    verbatimModuleSyntax: true,
    skipLibCheck: false,
    noEmit: true,
  };
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { ...compilerOptions, lib: ["ES2023"], types: ["node"] }, files: nodeFiles }),
  );
  writeFileSync(
    join(app, "tsconfig.page.json"),
    JSON.stringify({ compilerOptions: { ...compilerOptions, lib: ["ES2023", "DOM"], types: [] }, files: ["page.ts"] }),
  );
  for (const project of ["tsconfig.json", "tsconfig.page.json"]) {
    const checked = run(process.execPath, [tsc, "-p", project], app, 120_000);
    assert.equal(
      checked.status,
      0,
      `tsc -p ${project} in the consumer failed:\n${tail(checked.stdout)}${tail(checked.stderr)}`,
    );
  }

  // The quick start runs as written, under tsx (the README's `npx tsx client.ts`).
  symlinkSync(join(root, "node_modules/tsx"), join(app, "node_modules/tsx"), "dir");
  const quick = run(process.execPath, ["--import", "tsx", "quickstart/client.ts"], app, 60_000);
  assert.equal(quick.status, 0, `the quick start failed in the consumer:\n${tail(quick.stdout)}${tail(quick.stderr)}`);
  assert.deepEqual(quick.stdout.trim().split("\n"), ["3", "0n", "1n", "2n", "[ { x: 2 }, { x: 4 } ]"]);
});
