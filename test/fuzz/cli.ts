/**
 * `npm run fuzz -- [options]`: the fuzz harness against the built conformance worker.
 *
 *   --cases N            generated cases per transport (default 200)
 *   --seed N             run seed (default: from the clock; printed either way)
 *   --transports a,b     stdio,unix,tcp,ws,http,shm (default: all)
 *   --time-budget S      stop starting cases after S seconds in all (default 0: none)
 *   --deadline MS        longest a case runs before the server is judged (default 3000)
 *   --idle MS            quiet time after which an open connection is judged (default 150)
 *   --probe MS           bound on a probe or recovery call (default 2000)
 *   --heap MIB           the worker's --max-old-space-size (default 512)
 *   --recovery-every N   stdio/shm: a fresh worker's valid call every N cases, besides after each
 *                        failure (default 50; 1 checks after every case, at twice the time)
 *   --results DIR        where failing cases are saved (default .fuzz-results)
 *   --no-regressions     skip the fixed cases run first (the two issue-#21 reproductions and
 *                        the first campaign's findings, test/fuzz/findings.ts)
 *   --verbose, -v        print every case's outcome, not only failures
 *   --replay FILE        run one saved case (with --times N) and print what happened
 *
 * Exits 1 on any hang, crash or failed recovery (replay: when the case still fails), 2 on misuse.
 */
import { parseArgs } from "node:util";
import { TRANSPORTS, type TransportName } from "./cases.js";
import { caseBytes, failureGroups, isFailure, replay, runFuzz, table } from "./harness.js";
import { DEFAULT_RUN_OPTIONS, type RunOptions } from "./targets.js";

function fail(message: string): never {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}

function int(values: Record<string, string | boolean | undefined>, name: string, dflt: number): number {
  const raw = values[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (typeof raw !== "string" || !Number.isSafeInteger(n) || n < 0) fail(`--${name} wants a non-negative integer`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        cases: { type: "string" },
        seed: { type: "string" },
        transports: { type: "string" },
        "time-budget": { type: "string" },
        deadline: { type: "string" },
        idle: { type: "string" },
        probe: { type: "string" },
        heap: { type: "string" },
        "recovery-every": { type: "string" },
        results: { type: "string" },
        "no-regressions": { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
        replay: { type: "string" },
        times: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(
      "usage: npm run fuzz -- [--cases N] [--seed N] [--transports stdio,unix,tcp,ws,http,shm] [--time-budget S] [--deadline MS] [--idle MS] [--probe MS] [--heap MIB] [--recovery-every N] [--results DIR] [--no-regressions] [--verbose] | --replay FILE [--times N]\n",
    );
    return;
  }
  const run: RunOptions = {
    ...DEFAULT_RUN_OPTIONS,
    deadlineMs: int(values, "deadline", DEFAULT_RUN_OPTIONS.deadlineMs),
    idleMs: int(values, "idle", DEFAULT_RUN_OPTIONS.idleMs),
    probeMs: int(values, "probe", DEFAULT_RUN_OPTIONS.probeMs),
    heapMb: int(values, "heap", DEFAULT_RUN_OPTIONS.heapMb),
    recoveryEvery: Math.max(1, int(values, "recovery-every", DEFAULT_RUN_OPTIONS.recoveryEvery)),
  };
  if (typeof values.replay === "string") {
    const { results, fuzzCase, peakKb } = await replay(values.replay, run, int(values, "times", 1));
    const bytes = caseBytes(fuzzCase);
    process.stdout.write(
      `replaying ${fuzzCase.transport} ${fuzzCase.index < 0 ? "regression" : "case"} ${fuzzCase.index} of seed ${fuzzCase.runSeed}: ${fuzzCase.seedName}; ${fuzzCase.mutator}: ${fuzzCase.desc}\n` +
        `  ${bytes.byteLength} bytes: ${Buffer.from(bytes.subarray(0, 64)).toString("hex")}${bytes.byteLength > 64 ? "..." : ""}\n`,
    );
    for (const r of results) {
      process.stdout.write(`  -> ${r.outcome} (recovery ${r.recovery}, ${r.ms} ms): ${r.detail}\n`);
      if (r.stack) process.stdout.write(`     ${r.stack.slice(0, 8).join("\n     ")}\n`);
    }
    process.stdout.write(`  worker peak RSS ${Math.round(peakKb / 1024)} MiB\n`);
    process.exit(results.some(isFailure) ? 1 : 0);
  }
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : int(values, "seed", 0);
  const transports = (typeof values.transports === "string" ? values.transports.split(",") : [...TRANSPORTS]).map((t) =>
    t.trim(),
  );
  for (const t of transports) if (!(TRANSPORTS as readonly string[]).includes(t)) fail(`unknown transport '${t}'`);
  const cases = int(values, "cases", 200);
  process.stdout.write(
    `fuzz: seed ${seed}, ${cases} cases per transport on ${transports.join(", ")}; deadline ${run.deadlineMs} ms, idle ${run.idleMs} ms, probe ${run.probeMs} ms, worker heap ${run.heapMb} MiB\n`,
  );
  const { stats, ok } = await runFuzz({
    ...run,
    seed,
    cases,
    transports: transports as TransportName[],
    timeBudgetMs: int(values, "time-budget", 0) * 1000,
    resultsDir: typeof values.results === "string" ? values.results : ".fuzz-results",
    regressions: values["no-regressions"] !== true,
    verbose: values.verbose === true,
    log: (l) => process.stdout.write(`${l}\n`),
  });
  process.stdout.write(`\nseed ${seed}\n${table(stats)}\n`);
  const notes = failureGroups(stats, "notes");
  if (notes.length > 0) {
    process.stdout.write(
      `\nnotes (not failures: no answer before a close, unreadable answers, 5xx, lingering connections, slow exits):\n  ${notes.join("\n  ")}\n`,
    );
  }
  const groups = failureGroups(stats);
  if (groups.length > 0) process.stdout.write(`\ndistinct failures:\n  ${groups.join("\n  ")}\n`);
  process.stdout.write(
    ok ? "\nno hangs, crashes or failed recoveries\n" : "\nFAILED: hangs, crashes or failed recoveries above\n",
  );
  process.exit(ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
