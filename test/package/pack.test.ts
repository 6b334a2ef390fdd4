/**
 * The package as a user installs it: `npm pack` of the built `dist/` (npm test builds it before
 * the tests run), installed offline into an empty project, then every entry point in
 * package.json's `exports` imported at run time, and every symbol README.md and docs/ document
 * imported under TypeScript `strict` with NodeNext resolution and `skipLibCheck: false` (so every
 * declaration file those imports reach is checked too). The browser entry is also checked as a
 * page would see it: DOM types and no Node types. The README's quick start is copied into that
 * project, type-checked with the rest and run under tsx.
 */
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
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

test("the packed package installs offline, and every documented export imports under strict NodeNext", () => {
  requireBuild();

  // npm pack: the `files` of package.json, as npm publish would send them.
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
  // No install scripts (the native addon's build is tested elsewhere) and no optional
  // dependencies (the OpenTelemetry SDK and bufferutil): the import surface needs neither.
  const installed = run(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional", tarball],
    app,
    120_000,
  );
  assert.equal(
    installed.status,
    0,
    `could not install the packed package offline from the npm cache (run \`npm ci\` once, online, to fill it):\n${tail(installed.stderr)}`,
  );

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
  mkdirSync(join(app, "node_modules/@types"), { recursive: true });
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
