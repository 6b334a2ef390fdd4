/** The protocol the browser test's page calls: bound by the test's server, bundled into the page. */
import { defineProtocol, exchange, producer, t, unary } from "../../src/transports/ws/browser.js";

/** One method of each kind, plus one that always fails and one that reports its caller. */
export const Calc = defineProtocol(
  "test.Browser.v1",
  {},
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    divide: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    whoami: unary({}, t.utf8()),
    squares: producer(
      { n: t.int64(), batch_size: t.int64() },
      {
        output: { i: t.int64(), square: t.int64() },
        header: { total: t.int64() },
        state: { next: t.int64(), n: t.int64(), batch_size: t.int64() },
      },
    ),
    running_sum: exchange(
      {},
      {
        input: { x: t.float64() },
        output: { sum: t.float64(), count: t.int64() },
        state: { sum: t.float64(), count: t.int64() },
      },
    ),
  },
);
