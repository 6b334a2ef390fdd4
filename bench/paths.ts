/**
 * Where the bench's files are, whether it runs built or from source. `npm run bench` compiles `src`
 * and `bench` with tsc into `.bench/` (scripts/bench.mjs) so that it measures the JavaScript users
 * run; under `tsx` every function carries esbuild's `__name` helper, which costs a small call 15-20 %.
 * `node --import tsx bench/X.ts` still works, for profiling the source as it is.
 */
import { fileURLToPath } from "node:url";

/** True when this module is the tsc build under `.bench/bench/`. */
export const BUILT = import.meta.url.endsWith(".js");

/** The repository's root. */
export const ROOT_DIR = fileURLToPath(new URL(BUILT ? "../../" : "../", import.meta.url));
/** The bench's source folder (its results, the Python peer's script), however the bench runs. */
export const BENCH_DIR = fileURLToPath(new URL(BUILT ? "../../bench/" : "./", import.meta.url));

/**
 * Node arguments that run the bench script `name` (relative to bench/, no extension, e.g.
 * `servers` or `peers/npm`) the way this process runs: built, or through tsx.
 */
export function benchScript(name: string): string[] {
  const file = fileURLToPath(new URL(`./${name}.${BUILT ? "js" : "ts"}`, import.meta.url));
  return BUILT ? [file] : ["--import", "tsx", file];
}
