/**
 * Parallel Range fetches and their hedging, against a slow HTTP server started here: chosen
 * ranges stall on their first request, so the fetcher's speculative retries (the reference's
 * `speculative_retry_multiplier` and `max_speculative_hedges`) can be watched from the server.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { serializeStream } from "../../src/external/externalize.js";
import { ExternalFetchError, type FetchOptions, loopbackOnly } from "../../src/external/fetch.js";
import { makePointerBatch } from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { batchFromRows, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";

const CHUNK = 16 * 1024;
const fields = { blob: t.binary() };
const schema = schemaOf(fields);

/** One batch of one binary value: its IPC stream is the object served. */
function object(valueBytes: number): { ipc: Uint8Array; value: Uint8Array; sha256: string } {
  const value = new Uint8Array(randomBytes(valueBytes));
  const ipc = serializeStream(schema, [batchFromRows(fields, [{ blob: value }])]);
  return { ipc, value, sha256: createHash("sha256").update(ipc).digest("hex") };
}

interface Slow {
  readonly url: string;
  /** Range requests seen, by first byte. */
  readonly requests: Map<number, number>;
  /** Range requests the client abandoned before they were answered, by first byte. */
  readonly abandoned: Map<number, number>;
  /** The most Range requests in flight at once. */
  peak: number;
}

let server: Server;
let base = "";
interface Served {
  readonly ipc: Uint8Array;
  /** Ranges whose first request waits this many ms, by first byte. */
  readonly stalls: Map<number, number>;
  /** Ranges answered with this status, by first byte. */
  readonly failures: Map<number, number>;
  readonly slow: Slow;
}
const objects = new Map<string, Served>();

before(async () => {
  let inFlight = 0;
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const entry = objects.get(req.url ?? "");
    if (entry === undefined) {
      res.writeHead(404, { "content-length": "0" }).end();
      return;
    }
    const { ipc, stalls, failures, slow } = entry;
    const headers = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    if (req.method === "HEAD") {
      res.writeHead(200, { ...headers, "content-length": String(ipc.byteLength) }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (m === null) {
      res.writeHead(200, { ...headers, "content-length": String(ipc.byteLength) }).end(ipc);
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), ipc.byteLength - 1);
    const seen = (slow.requests.get(start) ?? 0) + 1;
    slow.requests.set(start, seen);
    const failure = failures.get(start);
    if (failure !== undefined) {
      res.writeHead(failure, { "content-length": "0" }).end();
      return;
    }
    inFlight++;
    slow.peak = Math.max(slow.peak, inFlight);
    let answered = false;
    const answer = () => {
      answered = true;
      res.writeHead(206, {
        ...headers,
        "content-range": `bytes ${start}-${end}/${ipc.byteLength}`,
        "content-length": String(end - start + 1),
      });
      res.end(ipc.subarray(start, end + 1));
    };
    res.on("close", () => {
      inFlight--;
      if (!answered) slow.abandoned.set(start, (slow.abandoned.get(start) ?? 0) + 1);
      clearTimeout(timer);
    });
    // The first request for a stalling range waits; any later one is answered at once.
    const stall = seen === 1 ? (stalls.get(start) ?? 0) : 0;
    const timer = stall > 0 ? setTimeout(answer, stall) : undefined;
    if (stall === 0) answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);

/**
 * Serves a new object of `chunks` ranges: those at the `stalled` indexes wait `ms` on their first
 * request, those at the `failed` ones are answered with HTTP 500.
 */
function serve(chunks: number, stalled: readonly number[], ms: number, failed: readonly number[] = []) {
  const obj = object(chunks * CHUNK - 600); // the IPC framing fills the last chunk part-way
  const slow: Slow = { url: `${base}/${objects.size}`, requests: new Map(), abandoned: new Map(), peak: 0 };
  objects.set(`/${objects.size}`, {
    ipc: obj.ipc,
    stalls: new Map(stalled.map((i) => [i * CHUNK, ms])),
    failures: new Map(failed.map((i) => [i * CHUNK, 500])),
    slow,
  });
  return { ...obj, slow };
}

async function fetchTimed(o: ReturnType<typeof serve>, opts: FetchOptions) {
  const resolver = new ExternalResolver({
    urlValidator: loopbackOnly,
    parallelThresholdBytes: CHUNK,
    chunkSizeBytes: CHUNK,
    maxRetries: 0,
    ...opts,
  });
  const started = performance.now();
  const batch = await resolver.resolve(makePointerBatch(schema, o.slow.url, o.sha256));
  const ms = performance.now() - started;
  assert.deepEqual(batch.getChild("blob")!.get(0), o.value, "the object reassembled byte for byte");
  return ms;
}

const duplicates = (s: Slow) => [...s.requests.values()].reduce((n, c) => n + c - 1, 0);

test("a straggling range is hedged: the fetch ends long before the stalled request would answer", async () => {
  const o = serve(8, [5], 20_000);
  const ms = await fetchTimed(o, { maxParallelRequests: 8 });
  assert.ok(ms < 5_000, `the fetch took ${ms.toFixed(0)} ms, as if it had waited for the stall`);
  assert.equal(o.slow.requests.get(5 * CHUNK), 2, "the stalled range was requested a second time");
  assert.ok(duplicates(o.slow) <= 4, "no more hedges than maxSpeculativeHedges (default 4)");
  // The loser is dropped as soon as its twin wins, not left to run out its stall.
  await waitFor(() => (o.slow.abandoned.get(5 * CHUNK) ?? 0) === 1, "the stalled request to be abandoned");
});

test("with speculativeRetryMultiplier 0 nothing is hedged: the stalled range is waited for", async () => {
  const o = serve(6, [3], 700);
  const ms = await fetchTimed(o, { speculativeRetryMultiplier: 0 });
  assert.ok(ms >= 650, `the fetch took ${ms.toFixed(0)} ms, less than the stall`);
  assert.deepEqual([...o.slow.requests.values()], [1, 1, 1, 1, 1, 1], "each range requested once");
});

test("maxSpeculativeHedges caps the hedges of one object", async () => {
  const o = serve(8, [2, 6], 700);
  const ms = await fetchTimed(o, { maxSpeculativeHedges: 1 });
  assert.equal(duplicates(o.slow), 1, "exactly one range requested twice");
  assert.ok(ms >= 650, `the fetch took ${ms.toFixed(0)} ms: the unhedged straggler was waited for`);
});

test("maxParallelRequests holds with hedges in flight, and every range is fetched", async () => {
  const o = serve(12, [1], 20_000);
  const ms = await fetchTimed(o, { maxParallelRequests: 3 });
  assert.ok(ms < 5_000, `the fetch took ${ms.toFixed(0)} ms`);
  assert.ok(o.slow.peak <= 3, `${o.slow.peak} range requests were in flight at once`);
  assert.equal(o.slow.requests.size, 12);
});

test("a range answered with an error fails the fetch: ExternalFetchError with that status", async () => {
  const o = serve(6, [], 0, [4]);
  const resolver = new ExternalResolver({
    urlValidator: loopbackOnly,
    parallelThresholdBytes: CHUNK,
    chunkSizeBytes: CHUNK,
    maxRetries: 0,
  });
  await assert.rejects(
    resolver.resolve(makePointerBatch(schema, o.slow.url, o.sha256)),
    (e: unknown) => e instanceof ExternalFetchError && e.status === 500,
  );
});

async function waitFor(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
