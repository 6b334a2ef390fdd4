/**
 * The `quiver` command line: its options, their parsing, and the usage errors (exit 2) a wrong
 * command line gets. `quiver bridge` reads its own few options (`cli-bridge.ts`) with the same
 * header syntax; `quiver launch` its own (`cli-launch.ts`).
 */
import { readFileSync } from "node:fs";

export const USAGE = `usage: quiver (--cmd "<worker command>" | --unix PATH | --tcp HOST:PORT | --url URL | --ws URL) [options] COMMAND
       quiver bridge --ws URL [-H "Name: value" ...]   relay the pipe protocol on stdin/stdout to a WebSocket server
       quiver launch [options] -- WORKER_COMMAND...    start or find a warm Unix-socket worker (quiver launch --help)
       quiver --version

commands:
  describe                       list the methods of the service's protocol
  call METHOD [k=v ...]          call a method (--json '{...}' for params as JSON); an exchange reads its
                                 input from --input FILE or stdin (Arrow IPC stream, or JSON lines)

options:
  -H, --header "Name: value"     request header for --url (every request) and --ws (the upgrade); repeatable
  --prefix PATH                  URL path prefix with --url (default: none)
  --protocol NAME                protocol to address (default: the first non-vgi_rpc. one listed)
  -f, --format FORMAT            auto (default: JSON lines, pretty on a terminal), json, table, or arrow
                                 (call only: an Arrow IPC stream of the result or output batches)
  -o, --output FILE              write the output to FILE instead of stdout
  -j, --json '{...}'             call parameters as one JSON object
  -i, --input FILE               exchange input: an Arrow IPC stream (each batch one turn) or JSON lines
                                 (each line one row, one turn); - for stdin
  --no-stdin                     never read exchange input from stdin (producer mode)
  --timeout SECONDS              longest wait for any server message (default 120)
  -v, --verbose                  print server log records on stderr
  -V, --version                  print quiver's version
  -h, --help                     this help

exit status: 0 done; 1 the call failed (server, transport or authentication error); 2 the command line
is wrong (an unknown option, method or parameter, or a value its declared type refuses): nothing was called.
`;

/** A wrong command line: reported with exit status 2, before or instead of any call. */
export class UsageError extends Error {}

/**
 * The option at `argv[at]`, spelled `--flag value` or `--flag=value`: its `flag`, `value()` to take
 * its value (a `UsageError` when there is none), and `last()`, the index of the last argument it
 * used (where a loop over `argv` goes on from). For the subcommands that read their own options.
 */
export function optionAt(
  argv: readonly string[],
  at: number,
): { readonly flag: string; value(): string; last(): number } {
  const a = argv[at]!;
  const eq = a.startsWith("--") ? a.indexOf("=") : -1;
  const flag = eq > 0 ? a.slice(0, eq) : a;
  let last = at;
  return {
    flag,
    value() {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++last];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    },
    last: () => last,
  };
}

export type Format = "auto" | "json" | "table" | "arrow";

export interface Config {
  cmd?: string;
  unix?: string;
  tcp?: string;
  url?: string;
  ws?: string;
  prefix?: string;
  protocol?: string;
  format: Format;
  output?: string;
  json?: string;
  input?: string;
  headers: Record<string, string>;
  noStdin: boolean;
  timeoutMs: number;
  verbose: boolean;
  positional: string[];
}

/** What the command line asks for: a command to run, or only help or the version. */
export type Parsed = { readonly kind: "help" } | { readonly kind: "version" } | { readonly kind: "run"; cfg: Config };

/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * A `-H "Name: value"` argument as its name and value (surrounding blanks trimmed), refused when
 * it is not one header (no colon, a name that is no HTTP token, a line break in the value).
 */
export function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = colon < 0 ? "" : text.slice(0, colon).trim();
  const value = colon < 0 ? "" : text.slice(colon + 1).trim();
  if (!TOKEN.test(name)) throw new UsageError(`--header wants "Name: value", got ${JSON.stringify(text)}`);
  if (/[\r\n\0]/.test(value)) throw new UsageError(`--header ${name}: a header value cannot hold a line break`);
  return [name, value];
}

/** The package's version, from its package.json (two levels above this file in `src/bin` and `dist/bin`). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

const FORMATS: readonly Format[] = ["auto", "json", "table", "arrow"];

export function parseArgs(argv: readonly string[]): Parsed {
  const cfg: Config = {
    format: "auto",
    headers: {},
    noStdin: false,
    timeoutMs: 120_000,
    verbose: false,
    positional: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--cmd":
      case "-c":
        cfg.cmd = value();
        break;
      case "--url":
      case "-u":
        cfg.url = value();
        break;
      case "--ws":
        cfg.ws = value();
        if (!/^wss?:\/\//.test(cfg.ws)) throw new UsageError("--ws wants a ws:// or wss:// URL");
        break;
      case "--prefix":
      case "-p":
        cfg.prefix = value();
        break;
      case "--unix":
        cfg.unix = value();
        break;
      case "--tcp":
        cfg.tcp = value();
        break;
      case "--header":
      case "-H": {
        const [name, v] = parseHeader(value());
        cfg.headers[name] = v;
        break;
      }
      case "--protocol":
        cfg.protocol = value();
        break;
      case "--format":
      case "-f": {
        const f = value();
        if (!(FORMATS as readonly string[]).includes(f)) {
          throw new UsageError(`unknown format '${f}' (auto, json, table or arrow)`);
        }
        cfg.format = f as Format;
        break;
      }
      case "--output":
      case "-o":
        cfg.output = value();
        break;
      case "--json":
      case "-j":
        cfg.json = value();
        break;
      case "--input":
      case "-i":
        cfg.input = value();
        break;
      case "--no-stdin":
        cfg.noStdin = true;
        break;
      case "--timeout":
        cfg.timeoutMs = Number(value()) * 1000;
        if (!Number.isFinite(cfg.timeoutMs) || cfg.timeoutMs <= 0) throw new UsageError("--timeout must be > 0");
        break;
      case "--verbose":
      case "-v":
        cfg.verbose = true;
        break;
      case "--version":
      case "-V":
        return { kind: "version" };
      case "--help":
      case "-h":
        return { kind: "help" };
      default:
        if (a.startsWith("-") && a !== "-") throw new UsageError(`unknown option ${a}`);
        cfg.positional.push(a);
    }
  }
  const transports = [cfg.cmd, cfg.unix, cfg.tcp, cfg.url, cfg.ws].filter((x) => x !== undefined).length;
  if (transports === 0) throw new UsageError("Either --cmd, --unix, --tcp, --url or --ws is required");
  if (transports > 1) throw new UsageError("--cmd, --unix, --tcp, --url and --ws are mutually exclusive");
  if (Object.keys(cfg.headers).length > 0 && cfg.url === undefined && cfg.ws === undefined) {
    throw new UsageError("--header applies to --url and --ws");
  }
  return { kind: "run", cfg };
}

/** Splits a command line as a POSIX shell would (quotes and backslashes; no expansion). */
export function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new UsageError("unterminated quote in --cmd");
  if (has || cur) out.push(cur);
  return out;
}
