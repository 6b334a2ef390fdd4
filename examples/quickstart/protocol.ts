// The protocol: declared once, imported by both the server and the client. It starts nothing.
import { defineProtocol, exchange, producer, t, unary } from "quiver-rpc";

export const Calc = defineProtocol(
  "acme.Calc.v1",
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { i: t.int64(), n: t.int64() } }),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64() } },
    ),
  },
);
