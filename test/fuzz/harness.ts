/**
 * The fuzz run: for each transport, start its worker, run the regression cases and then `cases`
 * generated ones (seeded, bounded by a time budget), judge each, save every failure (hang, crash,
 * failed recovery) as a replayable JSON file, and tally the results per transport.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  caseFromJson,
  caseToJson,
  type FuzzCase,
  type HttpInput,
  sessionCase,
  sessionRegressions,
  type TransportName,
} from "./cases.js";
import { findingCases } from "./findings.js";
import { ARROW, httpCase, httpCaseContext, httpRegressions } from "./http-cases.js";
import { type ByteSeed, concat } from "./mutators.js";
import { echoStringRequest, type HttpSeed, loadHttpSeeds, loadSessionSeeds } from "./seeds.js";
import { shmCase, shmRegressions } from "./shm-cases.js";
import { type CaseResult, httpBaseUrl, makeTarget, type RunOptions, type Target, type ValidCalls } from "./targets.js";
import { workerBuilt } from "./worker.js";

export interface HarnessOptions extends RunOptions {
  readonly seed: number;
  /** Generated cases per transport. */
  readonly cases: number;
  readonly transports: readonly TransportName[];
  /** Wall-clock budget for the whole run (ms); 0 for none. Cases not reached are not run. */
  readonly timeBudgetMs: number;
  /** Where failing cases are written (null: nowhere). */
  readonly resultsDir: string | null;
  /**
   * Run the fixed cases first: the two issue-#21 reproductions, then (with `findings`) the
   * distinct failures of the first campaign (see findings.ts).
   */
  readonly regressions: boolean;
  /** With `regressions`, also the first campaign's findings. Default true. */
  readonly findings?: boolean;
  /** Progress and findings, one line at a time. */
  readonly log: (line: string) => void;
  /** Log every case's outcome, not only failures. */
  readonly verbose?: boolean;
}

/** One failing case. */
export interface Failure {
  readonly fuzzCase: FuzzCase;
  readonly result: CaseResult;
  /** Where it was saved, if it was. */
  readonly file: string | null;
}

export interface TransportStats {
  readonly transport: TransportName;
  cases: number;
  answered: number;
  errors: number;
  closed: number;
  waiting: number;
  hangs: number;
  crashes: number;
  recoveries: number;
  recoveryChecks: number;
  recoveryFailures: number;
  lingering: number;
  /** HTTP 5xx answers (the spec never answers 500 for bad input). */
  http5xx: number;
  peakKb: number;
  restarts: number;
  ms: number;
  /** Cases not run because the time budget ran out. */
  skipped: number;
  readonly failures: Failure[];
  /**
   * Cases worth a look that are not failures: a connection closed with no answer at all, an HTTP
   * 5xx, a connection the server kept open after ours closed, an answer that is not readable
   * IPC, a pipe worker slow to exit. Saved
   * in a `notes` folder beside the failures.
   */
  readonly notes: Failure[];
}

export function isFailure(r: CaseResult): boolean {
  return r.outcome === "hang" || r.outcome === "crash" || r.recovery === "failed";
}

/** What makes a passing case worth a look (see `TransportStats.notes`), or null. */
export function noteOf(r: CaseResult): string | null {
  if (r.status !== undefined && r.status >= 500) return "5xx";
  if (r.lingering) return "lingering";
  if (r.malformed !== undefined) return "malformed-answer";
  if (r.outcome === "closed") return "closed";
  if (r.slow === true) return "slow";
  return null;
}

function emptyStats(transport: TransportName): TransportStats {
  return {
    transport,
    cases: 0,
    answered: 0,
    errors: 0,
    closed: 0,
    waiting: 0,
    hangs: 0,
    crashes: 0,
    recoveries: 0,
    recoveryChecks: 0,
    recoveryFailures: 0,
    lingering: 0,
    http5xx: 0,
    peakKb: 0,
    restarts: 0,
    ms: 0,
    skipped: 0,
    failures: [],
    notes: [],
  };
}

function tally(s: TransportStats, r: CaseResult): void {
  s.cases++;
  if (r.outcome === "answered") s.answered++;
  else if (r.outcome === "error") s.errors++;
  else if (r.outcome === "closed") s.closed++;
  else if (r.outcome === "waiting") s.waiting++;
  else if (r.outcome === "hang") s.hangs++;
  else s.crashes++;
  if (r.recovery !== "not-run") s.recoveryChecks++;
  if (r.recovery === "ok") s.recoveries++;
  if (r.recovery === "failed") s.recoveryFailures++;
  if (r.lingering) s.lingering++;
  if (r.status !== undefined && r.status >= 500) s.http5xx++;
}

/** The valid calls used as probes and recovery checks. */
export async function validCalls(): Promise<ValidCalls> {
  const value = "recovery-check";
  const bytes = await echoStringRequest(value);
  const http: HttpInput = {
    kind: "http",
    method: "POST",
    path: "/ConformanceService/echo_string",
    headers: [["content-type", ARROW]],
    body: bytes,
  };
  return { session: { bytes, value }, http: { input: http, value } };
}

/** Saves a failing case (with its result) as JSON; returns the file. */
function save(dir: string, c: FuzzCase, r: CaseResult, what: string = r.outcome): string {
  mkdirSync(dir, { recursive: true });
  const which = c.index < -2 ? c.mutator : c.index < 0 ? `regression${-c.index}` : `case${c.index}`;
  const name = `${c.transport}-seed${c.runSeed}-${which}-${what}.json`;
  const file = join(dir, name);
  const json = JSON.parse(caseToJson(c)) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...json, result: r }, null, 1));
  return file;
}

function line(c: FuzzCase, r: CaseResult): string {
  const what = c.index < 0 ? `regression ${c.mutator}` : `case ${c.index}`;
  const stack = r.stack ? `\n      at ${r.stack.slice(1, 4).join("\n      at ")}` : "";
  const status = r.status === undefined ? "" : ` ${r.status}`;
  return `  ${c.transport} ${what} [${c.seedName}; ${c.mutator}: ${c.desc.slice(0, 160)}] -> ${r.outcome.toUpperCase()}${status}${
    r.recovery === "failed" ? " (recovery FAILED)" : ""
  }: ${r.detail}${stack}`;
}

/** A generator of case `i` for a started target. */
async function caseSource(
  t: Target,
  name: TransportName,
  seed: number,
  echo: Uint8Array,
  tokenKeyHex: string,
): Promise<{ regressions: FuzzCase[]; make(i: number): Promise<FuzzCase> }> {
  if (name === "http") {
    const seeds: HttpSeed[] = await loadHttpSeeds(httpBaseUrl(t));
    const key = Buffer.from(tokenKeyHex, "hex");
    const ctx = await httpCaseContext(seeds, new Uint8Array(key));
    const echoSeed = seeds.find((s) => s.name === "echo_string.unary");
    if (echoSeed === undefined) throw new Error("no echo_string HTTP seed was captured");
    return {
      regressions: [...httpRegressions(echoSeed, seed), ...(await findingCases("http", seed))],
      make: (i) => httpCase(seed, i, ctx),
    };
  }
  if (name === "shm") {
    return {
      regressions: shmRegressions([...sessionRegressions("shm", echo, seed), ...(await findingCases("shm", seed))]),
      make: async (i) => shmCase(seed, i),
    };
  }
  const seeds: ByteSeed[] = await loadSessionSeeds();
  return {
    regressions: [...sessionRegressions(name, echo, seed), ...(await findingCases(name, seed))],
    make: (i) => sessionCase(seed, name, i, seeds),
  };
}

/** Runs the fuzz campaign; `ok` is false on any hang, crash or failed recovery. */
export async function runFuzz(opts: HarnessOptions): Promise<{ stats: TransportStats[]; ok: boolean }> {
  if (!workerBuilt()) throw new Error("dist/bin/quiver-conformance.js is missing: run `npm run build` first");
  const started = Date.now();
  const valid = await validCalls();
  const echo = await echoStringRequest();
  const all: TransportStats[] = [];
  for (const name of opts.transports) {
    const s = emptyStats(name);
    all.push(s);
    const t0 = Date.now();
    const target = makeTarget(name, opts, valid);
    await target.start();
    try {
      const source = await caseSource(target, name, opts.seed, echo, opts.tokenKeyHex);
      const run = async (c: FuzzCase) => {
        const r = await target.run(c);
        tally(s, r);
        if (isFailure(r)) {
          const file = opts.resultsDir === null ? null : save(opts.resultsDir, c, r);
          s.failures.push({ fuzzCase: c, result: r, file });
          opts.log(line(c, r));
        } else {
          if (opts.verbose) opts.log(line(c, r));
          const note = noteOf(r);
          if (note !== null) {
            const file = opts.resultsDir === null ? null : save(join(opts.resultsDir, "notes"), c, r, note);
            s.notes.push({ fuzzCase: c, result: r, file });
          }
        }
        return r;
      };
      if (opts.regressions) {
        for (const c of source.regressions) if (opts.findings !== false || c.index >= -2) await run(c);
      }
      for (let i = 0; i < opts.cases; i++) {
        if (opts.timeBudgetMs > 0 && Date.now() - started > opts.timeBudgetMs) {
          s.skipped = opts.cases - i;
          opts.log(`  ${name}: time budget spent, ${s.skipped} cases not run`);
          break;
        }
        await run(await source.make(i));
        if ((i + 1) % 100 === 0) {
          opts.log(
            `  ${name}: ${i + 1}/${opts.cases} cases, ${s.hangs} hangs, ${s.crashes} crashes, ${s.recoveryFailures} failed recoveries`,
          );
        }
      }
    } finally {
      await target.stop();
      s.peakKb = target.peakKb;
      s.restarts = target.restarts;
      s.ms = Date.now() - t0;
    }
    opts.log(`${name}: done in ${(s.ms / 1000).toFixed(1)} s`);
  }
  const ok = all.every((s) => s.hangs === 0 && s.crashes === 0 && s.recoveryFailures === 0);
  return { stats: all, ok };
}

/** Replays one saved case (any file `save` wrote, or a bare case) `times` times. */
export async function replay(
  file: string,
  opts: RunOptions,
  times = 1,
): Promise<{ results: CaseResult[]; fuzzCase: FuzzCase; peakKb: number }> {
  if (!workerBuilt()) throw new Error("dist/bin/quiver-conformance.js is missing: run `npm run build` first");
  const c = caseFromJson(readFileSync(file, "utf8"));
  const target = makeTarget(c.transport, opts, await validCalls());
  await target.start();
  const results: CaseResult[] = [];
  try {
    for (let i = 0; i < times; i++) results.push(await target.run(c));
  } finally {
    await target.stop();
  }
  return { results, fuzzCase: c, peakKb: target.peakKb };
}

/** The per-transport table. */
export function table(stats: readonly TransportStats[]): string {
  const head = [
    "transport",
    "cases",
    "answered",
    "error",
    "closed",
    "waiting",
    "hangs",
    "crashes",
    "recovered",
    "lingering",
    "5xx",
    "peak RSS",
    "time",
  ];
  const rows = stats.map((s) => [
    s.transport,
    String(s.cases) + (s.skipped > 0 ? ` (+${s.skipped} not run)` : ""),
    String(s.answered),
    String(s.errors),
    String(s.closed),
    String(s.waiting),
    String(s.hangs),
    String(s.crashes),
    `${s.recoveries}/${s.recoveryChecks}`,
    String(s.lingering),
    String(s.http5xx),
    `${Math.round(s.peakKb / 1024)} MiB`,
    `${(s.ms / 1000).toFixed(0)} s`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)].join("\n");
}

/**
 * Where a stuck or dying worker was: its first frame in quiver's own code and the library frame
 * it called, e.g. `decodeMessage (dist/wire/ipc.js) > decode (apache-arrow/ipc/metadata/message.mjs)`.
 */
export function stackSignature(stack: readonly string[] | undefined): string | null {
  if (stack === undefined) return null;
  const frames = stack.slice(1).map((f) => f.replace(/:\d+\)$/, ")"));
  // The first frame of quiver's own code that is not an error constructor.
  const i = frames.findIndex((f) => f.includes("dist/") && !f.includes("dist/errors.js"));
  if (i < 0) return frames.slice(0, 2).join(" < ") || null;
  const inner = frames[i - 1];
  return inner !== undefined && !inner.includes("dist/errors.js")
    ? `${frames[i]} > ${inner.replace("node_modules/", "")}`
    : frames[i]!;
}

/**
 * Distinct failures (or notes): grouped by where the worker was, or without a stack by outcome
 * and detail (numbers blurred).
 */
export function failureGroups(stats: readonly TransportStats[], which: "failures" | "notes" = "failures"): string[] {
  const groups = new Map<
    string,
    { outcomes: Map<string, number>; transports: Set<string>; mutators: Set<string>; example: Failure }
  >();
  for (const s of stats) {
    for (const f of s[which]) {
      const r = f.result;
      const where = stackSignature(r.stack);
      let outcome: string = r.outcome;
      if (which === "notes") outcome = noteOf(r) ?? r.outcome;
      else if (r.recovery === "failed" && r.outcome !== "hang" && r.outcome !== "crash") outcome = "failed recovery";
      const what = outcome === "malformed-answer" ? (r.malformed ?? "") : r.detail;
      const key = where ?? `${outcome}: ${what.replace(/\d+/g, "N").slice(0, 100)}`;
      let g = groups.get(key);
      if (g === undefined) {
        g = { outcomes: new Map(), transports: new Set(), mutators: new Set(), example: f };
        groups.set(key, g);
      }
      g.outcomes.set(outcome, (g.outcomes.get(outcome) ?? 0) + 1);
      g.transports.add(s.transport);
      g.mutators.add(f.fuzzCase.mutator);
    }
  }
  return [...groups.entries()].map(([key, g]) => {
    const outcomes = [...g.outcomes.entries()].map(([o, n]) => `${n} ${o}`).join(", ");
    const ex = g.example;
    return `${key}\n      ${outcomes} on ${[...g.transports].join(",")}; mutators: ${[...g.mutators].join(", ")}\n      e.g. ${ex.file ?? `${ex.fuzzCase.transport} case ${ex.fuzzCase.index}`}: ${ex.fuzzCase.desc.slice(0, 120)}`;
  });
}

/** Concatenated writes of a case (for printing). */
export function caseBytes(c: FuzzCase): Uint8Array {
  return c.input.kind === "http" ? c.input.body : concat(c.input.writes);
}
