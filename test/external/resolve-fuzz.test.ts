/**
 * The resolver reads bytes from a peer (the object store): the fuzz harness's mutators
 * (test/fuzz/mutators.ts) applied to reference-written objects, served raw and zstd-coded; every
 * resolution must end in a batch or a typed error (ExternalFetchError, or the RpcError an error
 * batch carries), never another exception or a hang. Then a store that misbehaves request by
 * request (statuses, Content-Range, sizes, encodings, redirects, stalls) under parallel Range
 * fetches with hedging, and pre-signed-style probes.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, test } from "node:test";
import { encodeBody } from "../../src/codec/compression.js";
import { RpcError } from "../../src/errors.js";
import { loopbackOnly } from "../../src/external/fetch.js";
import { makePointerBatch } from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { type ByteSeed, concat, mutate } from "../fuzz/mutators.js";
import { Rng } from "../fuzz/rng.js";
import { type FakeStorageServer, serveFakeStorage } from "../helpers/fake-storage.js";

const dir = new URL("../fixtures/external/", import.meta.url);
const seeds: ByteSeed[] = ["object-unary.bin", "object-turn.bin"].map((name) => ({
  name,
  bytes: new Uint8Array(readFileSync(new URL(name, dir))),
}));
const schemas = {
  "object-unary.bin": schemaOf({ result: t.utf8() }),
  "object-turn.bin": schemaOf({ index: t.int64(), value: t.int64() }),
} as const;
const CASES = Number(process.env.QUIVER_FUZZ_CASES ?? 300);

let storage: FakeStorageServer;
before(async () => {
  storage = await serveFakeStorage();
});
after(() => storage.close());

test(`${CASES} mutated objects resolve to a batch or a typed error`, async () => {
  const resolver = new ExternalResolver({ urlValidator: loopbackOnly, maxRetries: 0, timeoutMs: 5_000 });
  let resolved = 0;
  let refused = 0;
  for (let i = 0; i < CASES; i++) {
    const rng = new Rng(20251207, "external", i);
    const seed = seeds[i % seeds.length]!;
    const m = mutate(rng, seed.bytes, seeds);
    const zstd = i % 4 === 3;
    const body = zstd ? ((await encodeBody("zstd", m.bytes)) ?? m.bytes) : m.bytes;
    const url = storage.put(body, zstd ? "zstd" : undefined);
    const schema = schemas[seed.name as keyof typeof schemas];
    try {
      const out = await resolver.resolve(makePointerBatch(schema, url));
      assert.equal(out.schema, schema);
      resolved++;
    } catch (err) {
      assert.ok(err instanceof RpcError, `case ${i} (${m.mutator}: ${m.desc}) threw ${String(err)}`);
      refused++;
    }
  }
  assert.equal(resolved + refused, CASES);
});

/**
 * What a hostile store does to one request: answer it right, or lie in its status, its headers
 * (Content-Range, Accept-Ranges, Content-Encoding, Location) or its body (short, long, cut off),
 * or stall past the fetch deadline.
 */
type Misdeed =
  | "honest"
  | "status"
  | "full-body"
  | "bad-range"
  | "lie-total"
  | "short"
  | "long"
  | "cut"
  | "no-ranges"
  | "encoding"
  | "redirect"
  | "stall";
const MISDEEDS: readonly (readonly [Misdeed, number])[] = [
  ["honest", 10],
  ["status", 2],
  ["full-body", 1],
  ["bad-range", 1],
  ["lie-total", 1],
  ["short", 1],
  ["long", 1],
  ["cut", 1],
  ["no-ranges", 1],
  ["encoding", 1],
  ["redirect", 1],
  ["stall", 0.1],
];

test(`${CASES} fetches from a store that misbehaves per request end in a batch or a typed error`, async () => {
  const seed = seeds[0]!;
  const schema = schemas["object-unary.bin"];
  // Requests of case `i` draw from the case's own generator, in the order they arrive.
  let rng = new Rng(20251207, "hostile-store", 0);
  let object = seed.bytes;
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const deed = rng.weighted(MISDEEDS);
    const total = object.byteLength;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    const [start, end] = m === null ? [0, total - 1] : [Number(m[1]), Math.min(Number(m[2]), total - 1)];
    let body = m === null ? object : object.subarray(start, end + 1);
    const headers: Record<string, string> = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    let status = m === null ? 200 : 206;
    if (m !== null) headers["content-range"] = `bytes ${start}-${end}/${total}`;
    switch (deed) {
      case "status":
        status = rng.pick([200, 204, 206, 301, 403, 404, 405, 416, 500, 501, 503]);
        break;
      case "full-body":
        status = 200;
        body = object;
        delete headers["content-range"];
        break;
      case "bad-range":
        headers["content-range"] = rng.pick(["bytes */*", "bytes 0-0/x", "garbage", `bytes ${end}-${start}/${total}`]);
        break;
      case "lie-total":
        headers["content-range"] = `bytes ${start}-${end}/${rng.pick([0, 1, total * 2, 2 ** 53, total - 1])}`;
        break;
      case "short":
        body = body.subarray(0, Math.max(0, body.byteLength - rng.range(1, 64)));
        break;
      case "long":
        body = concat([body, rng.bytes(rng.range(1, 64))]);
        break;
      case "no-ranges":
        delete headers["accept-ranges"];
        break;
      case "encoding":
        headers["content-encoding"] = rng.pick(["zstd", "gzip", "br", "zstd, gzip", "identity"]);
        break;
      case "redirect":
        res.writeHead(rng.pick([301, 302, 307]), rng.chance(0.5) ? { location: req.url ?? "/" } : {}).end();
        return;
      case "stall":
        return; // never answered: the fetch's deadline ends it
      case "cut":
      case "honest":
        break;
    }
    if (deed === "cut") {
      res.writeHead(status, { ...headers, "content-length": String(body.byteLength) });
      res.write(body.subarray(0, body.byteLength >> 1));
      res.destroy();
      return;
    }
    res.writeHead(status, headers); // no Content-Length: chunked, so a body of any size goes out
    res.end(req.method === "HEAD" ? undefined : body);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let resolved = 0;
  let refused = 0;
  try {
    for (let i = 0; i < CASES; i++) {
      rng = new Rng(20251207, "hostile-store", i);
      object = rng.chance(0.3) ? mutate(rng, seed.bytes, seeds).bytes : seed.bytes;
      // Half the cases look pre-signed (the Range-GET probe), half are probed with HEAD.
      const url = rng.chance(0.5) ? `${base}/o?X-Amz-Signature=s&X-Amz-Credential=c` : `${base}/o`;
      const resolver = new ExternalResolver({
        urlValidator: loopbackOnly,
        maxRetries: 0,
        timeoutMs: 500,
        parallelThresholdBytes: rng.pick([1, 512, 1 << 20]),
        chunkSizeBytes: rng.pick([64, 700, 4096]),
        maxParallelRequests: rng.range(1, 8),
        maxFetchBytes: rng.pick([1 << 20, 4096, 100]),
      });
      try {
        const out = await resolver.resolve(makePointerBatch(schema, url));
        assert.equal(out.schema, schema);
        resolved++;
      } catch (err) {
        assert.ok(err instanceof RpcError, `case ${i} threw ${String(err)}`);
        refused++;
      }
    }
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.equal(resolved + refused, CASES);
  assert.ok(resolved > 0 && refused > 0, `${resolved} resolved, ${refused} refused: both outcomes are exercised`);
});
