/**
 * What the browser tests share: the Chromium to drive (required, never skipped: without it a
 * test fails saying how to install it), its flags, and an esbuild bundle of a page script that
 * fails on any Node built-in it reaches.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import { chromium, type Page } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

/** Flags for Chromium on a machine with no network but loopback: no background connections. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The Chromium binary to drive, or an error saying how to get one. */
export function chromiumPath(): string {
  const override = process.env.QUIVER_CHROMIUM;
  if (override !== undefined && override !== "") {
    if (!existsSync(override)) throw new Error(`QUIVER_CHROMIUM=${override} does not exist`);
    return override;
  }
  const path = "/usr/bin/chromium";
  if (!existsSync(path)) {
    throw new Error(
      `Chromium is required by the browser test and ${path} is missing. Install it ` +
        "(`sudo apt-get install -y chromium`; `.ci/run` does this) or set QUIVER_CHROMIUM=/path/to/chromium.",
    );
  }
  return path;
}

/** Fails the bundle on any Node built-in: the browser entry must not reach one. */
const noNodeModules: Plugin = {
  name: "no-node-modules",
  setup(b) {
    const names = builtinModules
      .filter((m) => !m.startsWith("node:"))
      .map((m) => m.replace(/[/\\^$.*+?()[\]{}|]/g, "\\$&"));
    const filter = new RegExp(`^(?:node:.*|(?:${names.join("|")})(?:/.*)?)$`);
    b.onResolve({ filter }, (args) => ({
      errors: [
        {
          text: `the browser bundle reaches the Node module '${args.path}' (imported by ${relative(root, args.importer)})`,
        },
      ],
    }));
  },
};

/** Bundles a script (`entry` under test/browser, `page.ts` by default, or `source` given inline) and what it imports for the browser, in memory. */
export async function bundleForBrowser(source?: string, entry = "page.ts"): Promise<string> {
  const out = await build({
    ...(source === undefined
      ? { entryPoints: [join(here, entry)] }
      : { stdin: { contents: source, resolveDir: here, sourcefile: "inline.ts", loader: "ts" } }),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
    plugins: [noNodeModules],
  });
  const js = out.outputFiles[0];
  assert.ok(js !== undefined, "esbuild produced no output");
  return js.text;
}

export function serveText(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" });
  res.end(body);
}

/** A headless Chromium on a fresh profile, and its first page; `close` ends it and removes the profile. */
export async function launchBrowser(): Promise<{ page: Page; close(): Promise<void> }> {
  const executablePath = chromiumPath();
  const profile = mkdtempSync(join(tmpdir(), "quiver-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      page,
      async close() {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}
