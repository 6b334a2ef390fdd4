// Shared by the server (main.ts) and the page (page.ts). It imports from the browser entry, which
// has no `node:` imports, so a bundler can put it in a page.
import { defineProtocol, producer, t, unary } from "quiver-rpc/ws/client";

export const Squares = defineProtocol(
  "acme.Squares.v1",
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    squares: producer({ n: t.int64() }, { output: { square: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
  },
);
