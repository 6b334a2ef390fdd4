#!/usr/bin/env node
// Import cycles in src/: none allowed.
//
// dpdm parses every module of src with the TypeScript compiler (type-only imports and dynamic
// imports count: a type cycle is still a cycle in the design), resolving the `.js` specifiers to
// their `.ts` files. dpdm's own cycle report depends on the order it walks the files in, so the
// cycles are enumerated here, all of them, each written from its alphabetically first module:
// the same code always gives the same list.
//
// Fails (exit 1), listing them, on any cycle.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDependencyTree } from "dpdm";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
/** Cycles through more modules than this are not enumerated one by one (a tangle that large fails anyway). */
const MAX_CYCLES = 10_000;

const tree = await parseDependencyTree(["src/**/*.ts"], {
  context: root,
  transform: false,
  skipDynamicImports: false,
  onProgress: () => {},
});

/** Module → the src modules it imports (sorted, unique). */
const graph = new Map();
const unresolved = [];
for (const [id, deps] of Object.entries(tree)) {
  if (!id.startsWith("src/") || deps === null) continue;
  const out = new Set();
  for (const d of deps) {
    if (d.id === null) {
      if (d.request.startsWith(".")) unresolved.push(`${id}: ${d.request}`);
      continue;
    }
    if (d.id.startsWith("src/")) out.add(d.id);
  }
  graph.set(id, [...out].sort());
}
if (unresolved.length > 0) {
  process.stderr.write(`import cycles: relative imports dpdm could not resolve:\n  ${unresolved.join("\n  ")}\n`);
  process.exit(1);
}

/** Strongly connected components of more than one module, or of one importing itself (Tarjan). */
function tangles() {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

/** Every elementary cycle inside `scc`, each starting at its alphabetically first module. */
function cyclesIn(scc) {
  const members = new Set(scc);
  const found = [];
  for (const start of scc) {
    // Only cycles whose first module is `start`: every other module on them sorts after it.
    const path = [start];
    const onPath = new Set(path);
    const walk = (v) => {
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w) || w < start) continue;
        if (w === start) {
          found.push([...path]);
          if (found.length > MAX_CYCLES) throw new Error(`more than ${MAX_CYCLES} cycles among ${scc.join(", ")}`);
        } else if (!onPath.has(w)) {
          path.push(w);
          onPath.add(w);
          walk(w);
          onPath.delete(w);
          path.pop();
        }
      }
    };
    walk(start);
  }
  return found;
}

const show = (cycle) => [...cycle, cycle[0]].join(" -> ");
const cycles = tangles().flatMap(cyclesIn).map(show).sort();

const files = graph.size;
if (cycles.length === 0) {
  process.stdout.write(`import cycles: none in ${files} modules of src\n`);
  process.exit(0);
}
process.stderr.write(
  `import cycles: ${cycles.length} in src (type-only and dynamic imports count):\n${cycles.map((c) => `  ${c}`).join("\n")}\n` +
    "Break each by moving what both sides need into a module of its own, or importing in one direction only.\n",
);
process.exit(1);
