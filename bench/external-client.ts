/**
 * The client half of the external-storage figures, in a process of its own so its peak RSS is the
 * client's alone (run by bench/run.ts):
 *
 *   node bench/external-client.js URL BATCHES ROWS
 *
 * Connects over HTTP to the bench server at URL with an `ExternalResolver` (loopback URLs: the
 * bench's fake storage), drains a short producer stream to warm up, then times one stream of
 * BATCHES batches of ROWS rows, read batch by batch. Prints one JSON line:
 * `{"seconds": S, "rows": N, "pointers": P, "rss": BYTES}` — P counts the batches that came
 * through storage (they carry `vgi_rpc.location.source`), `rss` is this process's peak RSS.
 */
import { proxy } from "../src/client/typed.js";
import { loopbackOnly } from "../src/external/fetch.js";
import { LOCATION_SOURCE_KEY } from "../src/external/pointer.js";
import { ExternalResolver } from "../src/external/resolve.js";
import { connectHttp } from "../src/transports/http/client.js";
import { Bench } from "./service.js";

const [url, batchesArg, rowsArg] = process.argv.slice(2);
if (url === undefined || batchesArg === undefined || rowsArg === undefined) {
  process.stderr.write("usage: external-client URL BATCHES ROWS\n");
  process.exit(2);
}

const client = connectHttp(url, { external: new ExternalResolver({ urlValidator: loopbackOnly }) });
const bench = proxy(client, Bench);

async function drain(batches: bigint): Promise<{ rows: number; pointers: number }> {
  const stream = await bench.rows({ batches, rows: BigInt(rowsArg!) });
  let rows = 0;
  let pointers = 0;
  for await (const b of stream.batches()) {
    rows += b.numRows;
    if (b.metadata.has(LOCATION_SOURCE_KEY)) pointers++;
  }
  return { rows, pointers };
}

try {
  await drain(2n);
  const t0 = performance.now();
  const { rows, pointers } = await drain(BigInt(batchesArg));
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, rows, pointers, rss: process.resourceUsage().maxRSS * 1024 })}\n`);
} finally {
  client.close();
}
