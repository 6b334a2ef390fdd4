/** The demo service's protocol (`npm start`), importable without starting the service. */
import { defineProtocol, exchange, producer, unary } from "../protocol/methods.js";
import { t } from "../protocol/types.js";

/** The demo protocol: arithmetic, a range producer and a running-mean exchange. */
export const Demo = defineProtocol(
  "quiver.Demo.v1",
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    greet: unary({ name: t.utf8(), greeting: t.utf8().default("hello") }, t.utf8()),
    range: producer(
      { start: t.int64(), stop: t.int64(), batch_size: t.int64().default(1000n) },
      {
        output: { n: t.int64(), square: t.int64() },
        header: { total: t.int64() },
        state: { next: t.int64(), stop: t.int64(), batch_size: t.int64() },
      },
    ),
    running_mean: exchange(
      {},
      {
        input: { x: t.float64() },
        output: { mean: t.float64(), count: t.int64() },
        state: { sum: t.float64(), count: t.int64() },
      },
    ),
  },
);
