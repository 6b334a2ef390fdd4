/**
 * What the HTTP transport's optional features cost a small call (`npm run bench -- --only
 * http-features`): client and server in this process over loopback, each figure next to the same
 * call with the feature off, measured in the same run.
 *
 * - CORS on, every call from an allowed origin (its headers computed and sent);
 * - sticky sessions on, every call inside an open session (its lookup, turn lock and headers);
 * - a stream turn retried once: every other `/exchange` answered 503 (`Retry-After: 0`) by a
 *   proxy and re-sent by the client, against the same proxy passing everything.
 */
import { proxy } from "../src/client/typed.js";
import { defineProtocol, producer, unary } from "../src/protocol/methods.js";
import { t } from "../src/protocol/types.js";
import { bind, createServer } from "../src/server/server.js";
import { connectHttp, type HttpServerOptions, listenHttp } from "../src/transports/http/index.js";
import { flakyProxy } from "../test/helpers/flaky-proxy.js";
import { timed } from "./net.js";
import type { Figure } from "./report.js";

const Features = defineProtocol(
  "bench.HttpFeatures.v1",
  {},
  {
    noop: unary({}, null),
    open: unary({}, null),
    count: producer({ n: t.int64() }, { output: { i: t.int64() }, state: { next: t.int64(), n: t.int64() } }),
  },
);

function featureServer() {
  return createServer({
    protocols: [
      bind(Features, {
        noop: () => undefined,
        open: (_p, ctx) => ctx.openSession({ opened: Date.now() }),
        count: {
          init: ({ n }) => ({ state: { next: 0n, n } }),
          produce(state, out) {
            if (state.next >= state.n) return out.finish();
            out.emit([{ i: state.next }]);
            state.next++;
          },
        },
      }),
    ],
  });
}

/** No-op calls/s against a server with `options`, the client sending `headers` (in a session when `session`). */
async function unaryRate(
  options: HttpServerOptions,
  seconds: number,
  headers: Record<string, string> = {},
  session = false,
): Promise<number> {
  const listener = await listenHttp(featureServer(), options);
  const client = connectHttp(listener.url, { headers });
  try {
    const channel = session ? client.withSession() : client;
    const features = proxy(channel, Features);
    if (session) await features.open({});
    return (await timed(() => features.noop({}), seconds)).rate;
  } finally {
    await client.close();
    await listener.close();
  }
}

/** Producer turns/s through a proxy (every other turn refused once when `flaky`). */
async function turnRate(seconds: number, flaky: boolean): Promise<number> {
  const listener = await listenHttp(featureServer());
  let exchanges = 0;
  // Every other `/exchange` answered 503 once when `flaky`.
  const front = await flakyProxy(listener.url, (path) =>
    flaky && path.endsWith("/exchange") && exchanges++ % 2 === 0 ? 503 : null,
  );
  const client = connectHttp(front.url, { retry: { maxRetries: 3, backoffBaseMs: 0, backoffMaxMs: 0 } });
  try {
    const features = proxy(client, Features);
    let turns = 0;
    const end = performance.now() + seconds * 1000;
    const t0 = performance.now();
    while (performance.now() < end) {
      for await (const _row of await features.count({ n: 50n })) turns++;
    }
    return turns / ((performance.now() - t0) / 1000);
  } finally {
    await client.close();
    await front.close();
    await listener.close();
  }
}

/** The section's figures. */
export async function httpFeatureFigures(seconds: number): Promise<Figure[]> {
  const origin = "https://app.example";
  await unaryRate({ sticky: true, cors: { origins: [origin] } }, seconds, { origin }, true); // warm up every path
  const plain = await unaryRate({}, seconds);
  const cors = await unaryRate({ cors: { origins: [origin] } }, seconds, { origin });
  const stickyOff = await unaryRate({}, seconds);
  const sticky = await unaryRate({ sticky: true }, seconds, {}, true);
  await turnRate(seconds / 2, true); // warm up
  const direct = await turnRate(seconds, false);
  const retried = await turnRate(seconds, true);
  if (process.env.QUIVER_BENCH_DEBUG) console.error({ plain, cors, stickyOff, sticky, direct, retried });
  return [
    {
      figure: "unary no-op calls/s, CORS on (allowed origin)",
      transport: "http",
      value: cors,
      unit: "calls/s",
      limit: "same call, CORS off",
      ratio: cors / plain,
    },
    {
      figure: "unary no-op calls/s in a sticky session",
      transport: "http",
      value: sticky,
      unit: "calls/s",
      limit: "same call, sticky off",
      ratio: sticky / stickyOff,
    },
    {
      figure: "producer turns/s, every other turn refused 503 once and retried",
      transport: "http",
      value: retried,
      unit: "turns/s",
      limit: "same turns through the same proxy, none refused",
      ratio: retried / direct,
    },
  ];
}
