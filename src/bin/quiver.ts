#!/usr/bin/env node
/**
 * `quiver`: call and describe any vgi-rpc service from the command line, like the reference's
 * `vgi-rpc` CLI (the full reference is docs/cli.md).
 *
 *   quiver --cmd "python -m my_worker" describe
 *   quiver --unix /tmp/svc.sock call add a=1 b=2
 *   quiver --url https://svc.example -H "Authorization: Bearer $TOKEN" call generate --json '{"count": 3}'
 *   quiver --ws ws://127.0.0.1:8765/ws --format arrow -o rows.arrow call generate count=3
 *   echo '{"value": 1.5}' | quiver --cmd "./worker" call scale factor=2
 *   quiver launch -- node worker.js     start (or find) a warm Unix-socket worker, print UNIX:<path>
 *
 * Output: JSON lines (pretty on a terminal), a column-aligned table (`--format table`) or an Arrow
 * IPC stream (`--format arrow`), on stdout or to `-o FILE`. Errors go to stderr as
 * `{"error": {...}}`: exit 1 when the call failed, 2 when the command line was wrong (nothing sent).
 */
import { readFileSync } from "node:fs";
import type { RecordBatch } from "apache-arrow";
import type { RpcClient } from "../client/client.js";
import type { MethodDescription } from "../client/describe.js";
import { InvalidValueError, RpcError } from "../errors.js";
import { connectHttp, type HttpClient, HttpError } from "../transports/http/client.js";
import { connectTcp, connectUnix } from "../transports/socket/client.js";
import { connectSubprocess } from "../transports/stdio/client.js";
import { connectWebSocketClient } from "../transports/ws/client.js";
import { type Config, packageVersion, parseArgs, shellSplit, USAGE, UsageError } from "./cli-args.js";
import { batchOf, exchangeInputs, paramsFromArgs, paramsFromJson } from "./cli-input.js";
import { answerWriter, describeJson, describeText, Sink } from "./cli-output.js";
import { toJsonText } from "./cli-values.js";

/** A connected client of any transport: the CLI needs only describe, unary, streams and close. */
type AnyClient = RpcClient | HttpClient;

async function connect(cfg: Config): Promise<AnyClient> {
  const opts = {
    timeoutMs: cfg.timeoutMs,
    ...(cfg.verbose
      ? { onLog: (r: { level: string; message: string }) => process.stderr.write(`[${r.level}] ${r.message}\n`) }
      : {}),
  };
  const headers = Object.keys(cfg.headers).length > 0 ? { headers: cfg.headers } : {};
  if (cfg.cmd !== undefined) {
    const [cmd, ...args] = shellSplit(cfg.cmd);
    if (cmd === undefined) throw new UsageError("--cmd is empty");
    return connectSubprocess(cmd, args, opts);
  }
  if (cfg.unix !== undefined) return connectUnix(cfg.unix, opts);
  if (cfg.url !== undefined) {
    return connectHttp(cfg.url, { ...opts, ...headers, ...(cfg.prefix ? { prefix: cfg.prefix } : {}) });
  }
  if (cfg.ws !== undefined) return connectWebSocketClient(cfg.ws, { ...opts, ...headers });
  const m = /^(.*):(\d+)$/.exec(cfg.tcp!);
  if (!m) throw new UsageError("--tcp takes HOST:PORT");
  return connectTcp(m[1] || "127.0.0.1", Number(m[2]), opts);
}

/**
 * All of stdin, or null when there is none: `--no-stdin`, a terminal, or nothing within the probe
 * unless `mustWait`. `asked` (`--input -`) reads it whatever it is.
 */
async function readStdin(cfg: Config, mustWait: boolean, asked = false): Promise<Uint8Array | null> {
  if (!asked && (cfg.noStdin || process.stdin.isTTY)) return null;
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    process.stdin.on("data", (c: Buffer) => chunks.push(c));
    process.stdin.once("end", () => resolve());
    process.stdin.once("error", () => resolve());
  });
  if (!mustWait) {
    // As the reference: a short probe so an inherited, idle stdin does not hang a producer call.
    const first = await Promise.race([
      done.then(() => "end" as const),
      new Promise<"data">((r) => process.stdin.once("data", () => r("data"))),
      new Promise<"idle">((r) => setTimeout(() => r("idle"), 100).unref()),
    ]);
    if (first === "idle") {
      process.stdin.pause();
      process.stdin.destroy();
      return null;
    }
  }
  await done;
  const bytes = Buffer.concat(chunks);
  return bytes.toString("utf8").trim() === "" ? null : bytes;
}

/**
 * An exchange's input batches (from `--input`, else stdin), or null when it has none: a
 * producer, or a stream of unknown kind with nothing on stdin.
 */
async function inputsOf(cfg: Config, md: MethodDescription): Promise<RecordBatch[] | null> {
  if (cfg.input !== undefined) {
    if (md.isExchange === false || md.methodType === "unary") {
      throw new UsageError(
        `--input is for exchanges; ${md.name} is ${md.methodType === "unary" ? "unary" : "a producer"}`,
      );
    }
    let bytes: Uint8Array | null;
    if (cfg.input === "-") bytes = (await readStdin(cfg, true, true)) ?? new Uint8Array(0);
    else {
      try {
        bytes = readFileSync(cfg.input);
      } catch (err) {
        throw new UsageError(`--input ${cfg.input}: ${(err as Error).message}`);
      }
    }
    return exchangeInputs(md.name, bytes, md.inputSchema, cfg.input === "-" ? "stdin" : cfg.input);
  }
  if (md.methodType === "unary" || md.isExchange === false) return null;
  const stdin = await readStdin(cfg, md.isExchange === true);
  if (stdin === null) return md.isExchange === true ? [] : null;
  return exchangeInputs(md.name, stdin, md.inputSchema, "stdin");
}

async function describeCmd(cfg: Config, client: AnyClient, sink: Sink): Promise<void> {
  const d = await client.describe(cfg.protocol);
  if (cfg.format === "table" || (cfg.format === "auto" && sink.terminal)) sink.write(`${describeText(d)}\n`);
  else sink.write(`${toJsonText(describeJson(d), cfg.format === "auto" && sink.terminal ? 2 : undefined)}\n`);
  sink.close();
}

async function callCmd(cfg: Config, client: AnyClient, method: string, args: readonly string[], sink: Sink) {
  const d = await client.describe(cfg.protocol);
  const md = d.methods.get(method);
  if (md === undefined) {
    throw new UsageError(`Unknown method '${method}'. Available: ${[...d.methods.keys()].join(", ")}`);
  }
  if (cfg.json !== undefined && args.length > 0) {
    throw new UsageError("--json and key=value args are mutually exclusive");
  }
  const params =
    cfg.json !== undefined
      ? paramsFromJson(method, cfg.json, md.paramsSchema)
      : paramsFromArgs(method, args, md.paramsSchema);
  const request = batchOf(method, "parameter", md.paramsSchema, params);
  const inputs = await inputsOf(cfg, md);
  const target = {
    protocol: d.protocolName,
    method,
    ...(d.protocolVersion ? { protocolVersion: d.protocolVersion } : {}),
  };

  if (md.methodType === "unary") {
    const batch = await client.unaryBatch(target, request);
    const out = answerWriter(cfg, sink, md.resultSchema);
    if (md.hasReturn) out.batch(batch);
    else out.none();
    out.end(true);
    return;
  }

  const stream = await client.openStream(target, request, { hasHeader: md.hasHeader });
  const out = answerWriter(cfg, sink, md.outputSchema);
  let ok = false;
  try {
    if (stream.header !== null) out.header(stream.header);
    if (inputs === null) {
      for (;;) {
        const b = await stream.tick();
        if (b === null) break;
        out.batch(b);
      }
    } else {
      for (const input of inputs) {
        const b = await stream.send(input);
        if (b === null) break;
        out.batch(b);
      }
    }
    ok = true;
  } finally {
    await stream.close().catch(() => {});
    out.end(ok);
  }
}

/** An error as the JSON object printed on stderr: its type and message, and what else it says. */
function errorJson(e: RpcError): Record<string, unknown> {
  const err: Record<string, unknown> = { type: e.type, message: e.message };
  if (e.code !== "UNKNOWN") err.code = e.code;
  if (e.kind) err.kind = e.kind;
  // An HTTP refusal (a 401 and its VGI-Auth-Reason), over HTTP or on a WebSocket upgrade.
  const refused = e.details.find((x) => x["@type"] === "quiver.WebSocketRefused") as
    | { readonly status?: unknown; readonly reason?: unknown }
    | undefined;
  const status = e instanceof HttpError ? e.status : refused?.status;
  const reason = e instanceof HttpError ? e.authReason : refused?.reason;
  if (typeof status === "number" && status > 0) err.http_status = status;
  if (typeof reason === "string" && reason !== "") err.auth_reason = reason;
  if (e.remoteTraceback) err.traceback = e.remoteTraceback;
  return err;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "bridge") return (await import("./cli-bridge.js")).bridgeMain(argv.slice(1));
  if (argv[0] === "launch") return (await import("./cli-launch.js")).launchMain(argv.slice(1));
  let cfg: Config;
  try {
    const parsed = parseArgs(argv);
    if (parsed.kind === "help") {
      process.stdout.write(USAGE);
      return 0;
    }
    if (parsed.kind === "version") {
      process.stdout.write(`quiver ${packageVersion()}\n`);
      return 0;
    }
    cfg = parsed.cfg;
    const [command] = cfg.positional;
    if (command !== "describe" && command !== "call") throw new UsageError("expected a command (describe, call)");
    if (cfg.format === "arrow" && command === "describe") {
      throw new UsageError("--format arrow is for call; describe prints JSON or a table");
    }
    if (cfg.format === "arrow" && cfg.output === undefined && process.stdout.isTTY) {
      throw new UsageError("--format arrow writes binary: give -o FILE or redirect stdout");
    }
    if (command === "call" && cfg.positional[1] === undefined) throw new UsageError("call needs a METHOD");
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`Error: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  const [command, method, ...args] = cfg.positional;
  const sink = new Sink(cfg.output);
  let client: AnyClient | null = null;
  try {
    client = await connect(cfg);
    if (command === "describe") await describeCmd(cfg, client, sink);
    else await callCmd(cfg, client, method!, args, sink);
    return 0;
  } catch (e) {
    if (e instanceof RpcError) process.stderr.write(`${JSON.stringify({ error: errorJson(e) })}\n`);
    else process.stderr.write(`Error: ${(e as Error).message}\n`);
    // A wrong command line (an unknown name, a value its type refuses) is refused before anything is sent.
    return e instanceof UsageError || e instanceof InvalidValueError ? 2 : 1;
  } finally {
    sink.close();
    await client?.close().catch(() => {});
  }
}

process.exitCode = await main(process.argv.slice(2));
