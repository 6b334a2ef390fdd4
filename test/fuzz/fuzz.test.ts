/**
 * The short fuzz run inside `npm test`: the two issue-#21 reproductions and a few seeded mutated
 * requests per transport against the built worker. Each fails on a hang, a crash or a valid call
 * not answered afterwards; the failing cases are saved under .fuzz-results/test for
 * `npm run fuzz -- --replay FILE`. The long run is `npm run fuzz -- --cases N`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TRANSPORTS, type TransportName } from "./cases.js";
import { failureGroups, type HarnessOptions, runFuzz } from "./harness.js";
import { DEFAULT_RUN_OPTIONS } from "./targets.js";
import { workerBuilt } from "./worker.js";

/** The fixed seed of the short run. */
const SEED = 2121;
/** Generated cases per transport. */
const CASES = 20;

function options(transport: TransportName, regressions: boolean, cases: number): HarnessOptions {
  return {
    ...DEFAULT_RUN_OPTIONS,
    idleMs: 100,
    deadlineMs: 2000,
    probeMs: 1500,
    oomWaitMs: 6000,
    seed: SEED,
    cases,
    transports: [transport],
    timeBudgetMs: 0,
    resultsDir: ".fuzz-results/test",
    regressions,
    // The campaign's findings run in `npm run fuzz`; the short run keeps to the two reproductions.
    findings: false,
    log: () => {},
  };
}

async function expectClean(opts: HarnessOptions): Promise<void> {
  assert.ok(workerBuilt(), "dist/bin/quiver-conformance.js is missing: run `npm run build` first");
  const { stats, ok } = await runFuzz(opts);
  const s = stats[0]!;
  assert.equal(s.cases, opts.cases + (opts.regressions ? 2 : 0));
  assert.ok(
    ok,
    `${s.hangs} hangs, ${s.crashes} crashes, ${s.recoveryFailures} failed recoveries:\n${failureGroups(stats).join("\n")}`,
  );
}

describe("the issue #21 reproductions (fixed regression cases)", () => {
  for (const transport of TRANSPORTS) {
    test(`over ${transport}, neither the 2^31-1 metadata count nor the spliced request hangs or crashes the worker, and a fresh connection is answered after each`, {
      timeout: 120_000,
    }, async () => {
      await expectClean(options(transport, true, 0));
    });
  }
});

describe(`a short seeded fuzz run (seed ${SEED}, ${CASES} cases per transport)`, () => {
  for (const transport of TRANSPORTS) {
    test(`mutated ${transport} requests and stream turns never hang or crash the worker, and a valid call is answered after each`, {
      timeout: 180_000,
    }, async () => {
      await expectClean(options(transport, false, CASES));
    });
  }
});
