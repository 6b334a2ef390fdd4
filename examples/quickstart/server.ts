// The worker: serves Calc on stdin/stdout. stdout carries Arrow IPC, so log to stderr.
import { bind, createServer } from "quiver-rpc";
import { serveStdio } from "quiver-rpc/stdio";
import { Calc } from "./protocol.js";

const server = createServer({
  protocols: [
    bind(Calc, {
      add: ({ a, b }) => a + b, // a, b: number, inferred from the declaration
      count: {
        init: ({ n }) => ({ state: { i: 0n, n } }), // n: bigint (int64)
        produce: (s, out) => (s.i < s.n ? out.emit([{ i: s.i++ }]) : out.finish()),
      },
      scale: {
        init: ({ factor }) => ({ state: { factor } }),
        process: (s, input, out) => out.emitColumns({ x: input.column("x").map((x) => x * s.factor) }),
      },
    }),
  ],
});

await serveStdio(server);
