/** `quiver launch -- <worker command>`: the reference's `vgi-rpc launch`, same flags, same output. */
import { RpcError } from "../errors.js";
import {
  defaultStateDir,
  gcStateDir,
  type LaunchOptions,
  launcherStatus,
  launchWorker,
} from "../transports/launch/launcher.js";
import { optionAt, UsageError } from "./cli-args.js";

const USAGE = `usage: quiver launch [OPTIONS] -- WORKER_COMMAND [ARGS...]
       quiver launch --status | --gc [--state-dir DIR]

Spawns or reuses a long-running Unix-socket worker and prints UNIX:<path> for it. The same
command, arguments, working directory and VGI_RPC_* environment find the same worker; concurrent
first callers serialise on a per-hash flock so exactly one worker is spawned. The worker is
started with --unix PATH --idle-timeout SEC appended and must print UNIX:<path> once listening.
Compatible with \`vgi-rpc launch\` (same state directory, hash and lock).

  --socket PATH                  explicit socket path (skips the hash; not listed by --status)
  --idle-timeout SEC             worker exits after SEC seconds idle (default 300)
  --connect-timeout SEC          longest wait for the per-hash lock (default 30)
  --worker-startup-timeout SEC   longest wait for the worker's UNIX:<path> line (default 60)
  --worker-stderr FILE           append the worker's stderr to FILE (default: discarded)
  --state-dir DIR                state directory (default $XDG_RUNTIME_DIR/vgi-rpc or $TMPDIR/vgi-rpc-$UID)
  --status                       list the workers the state directory knows, and exit
  --gc                           remove the files of workers that are gone, and exit
`;

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** `quiver launch`; returns the exit code. */
export async function launchMain(argv: readonly string[]): Promise<number> {
  let status = false;
  let gc = false;
  let stateDir: string | undefined;
  let worker: string[] = [];
  const opts: { -readonly [K in keyof LaunchOptions]?: LaunchOptions[K] } = {};
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === "--") {
        worker = argv.slice(i + 1);
        break;
      }
      if (!a.startsWith("-")) {
        worker = argv.slice(i);
        break;
      }
      const { flag, value, last } = optionAt(argv, i);
      const seconds = (): number => {
        const raw = value();
        const n = Number(raw);
        if (raw.trim() === "" || !Number.isFinite(n) || n < 0)
          throw new UsageError(`${flag} wants seconds >= 0, got '${raw}'`);
        return n;
      };
      if (flag === "-h" || flag === "--help") {
        process.stdout.write(USAGE);
        return 0;
      } else if (flag === "--status") status = true;
      else if (flag === "--gc") gc = true;
      else if (flag === "--state-dir") stateDir = value();
      else if (flag === "--socket") opts.socketPath = value();
      else if (flag === "--idle-timeout") opts.idleTimeoutSeconds = seconds();
      else if (flag === "--connect-timeout") opts.lockTimeoutMs = seconds() * 1000;
      else if (flag === "--worker-startup-timeout") opts.startupTimeoutMs = seconds() * 1000;
      else if (flag === "--worker-stderr") opts.workerStderr = value();
      else throw new UsageError(`unexpected argument '${a}'`);
      i = last();
    }
    if (status && gc) throw new UsageError("--status and --gc are mutually exclusive");
    if (!status && !gc && worker.length === 0) {
      throw new UsageError("missing worker command: pass it after `--`, e.g. `quiver launch -- node worker.js`");
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`quiver launch: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  try {
    const dir = stateDir ?? defaultStateDir();
    if (status) {
      const rows = await launcherStatus(dir);
      if (rows.length === 0) process.stdout.write(`(no workers tracked in ${dir})\n`);
      for (const row of rows) {
        const cmd = row.cmd.length > 0 ? row.cmd.map(shellQuote).join(" ") : "(unknown)";
        const started = row.startedAt === null ? "?" : `${((Date.now() / 1000 - row.startedAt) / 60).toFixed(1)}m ago`;
        process.stdout.write(
          `${row.hash}  ${(row.alive ? "alive" : "dead").padStart(5)}  started ${started.padEnd(12)}  ${cmd}\n`,
        );
      }
      return 0;
    }
    if (gc) {
      const result = await gcStateDir(dir);
      if (result.cleaned.length > 0)
        process.stdout.write(`cleaned ${result.cleaned.length}: ${result.cleaned.join(", ")}\n`);
      if (result.skippedInUse.length > 0) {
        process.stdout.write(`skipped ${result.skippedInUse.length} (in use): ${result.skippedInUse.join(", ")}\n`);
      }
      if (result.cleaned.length === 0 && result.skippedInUse.length === 0) process.stdout.write("(nothing to clean)\n");
      return 0;
    }
    const path = await launchWorker({ ...opts, argv: worker, stateDir: dir });
    process.stdout.write(`UNIX:${path}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`quiver launch: ${err instanceof RpcError ? err.message : (err as Error).message}\n`);
    return 1;
  }
}
