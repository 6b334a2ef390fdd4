/**
 * Pointer resolution against a fake storage server started here (test/helpers/fake-storage.ts):
 * objects the reference wrote (raw, zstd, gzip), URL validation, caps, redirects, parallel
 * ranges, and each failure as an ExternalFetchError.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type { RecordBatch } from "apache-arrow";
import { ExternalFetchError, httpsOnly, loopbackOnly } from "../../src/external/fetch.js";
import { LOCATION_FETCH_MS_KEY, LOCATION_SOURCE_KEY, makePointerBatch } from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { readLogRecord } from "../../src/wire/messages.js";
import { type FakeStorageServer, serveFakeStorage } from "../helpers/fake-storage.js";

const dir = new URL("../fixtures/external/", import.meta.url);
const bytes = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const facts = JSON.parse(readFileSync(new URL("fixtures.json", dir), "utf8")) as {
  unary_sha256: string;
  turn_sha256: string;
};
const resultSchema = schemaOf({ result: t.utf8() });
const turnSchema = schemaOf({ index: t.int64(), value: t.int64() });

let storage: FakeStorageServer;
before(async () => {
  storage = await serveFakeStorage();
});
after(() => storage.close());

/** A resolver for the loopback fake storage that fails fast. */
const resolver = (opts: ConstructorParameters<typeof ExternalResolver>[0] = {}) =>
  new ExternalResolver({ urlValidator: loopbackOnly, retryDelayMs: 1, ...opts });

for (const [name, encoding] of [
  ["object-unary.bin", undefined],
  ["object-unary.zstd", "zstd"],
  ["object-unary.gzip", "gzip"],
] as const) {
  test(`a reference-written object (${encoding ?? "identity"}) resolves to its result`, async () => {
    const url = storage.put(bytes(name), encoding);
    const out = await resolver().resolve(makePointerBatch(resultSchema, url, facts.unary_sha256));
    assert.equal(out.numRows, 1);
    assert.equal(out.getChild("result")!.get(0), "x".repeat(5000));
    assert.equal(out.metadata.get(LOCATION_SOURCE_KEY), url);
    assert.match(out.metadata.get(LOCATION_FETCH_MS_KEY) ?? "", /^\d+\.\d$/);
    assert.equal(out.schema, resultSchema, "re-wrapped on the pointer's schema");
  });
}

test("a turn's object: its log goes to onLog, its data batch keeps its own metadata", async () => {
  const url = storage.put(bytes("object-turn.bin"));
  const logs: RecordBatch[] = [];
  const out = await resolver().resolve(makePointerBatch(turnSchema, url, facts.turn_sha256), (l) => logs.push(l));
  assert.deepEqual(
    logs.map((l) => readLogRecord(l.metadata).message),
    ["turn 0"],
  );
  assert.deepEqual([...out.getChild("value")!].map(Number), [0, 10, 20]);
  assert.equal(out.metadata.get("conformance.batch_index"), "0");
});

test("parallel Range requests above parallelThresholdBytes reassemble the object", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  const ranged = storage.hits.get("GET range") ?? 0;
  const out = await resolver({ parallelThresholdBytes: 1024, chunkSizeBytes: 1000, maxParallelRequests: 3 }).resolve(
    makePointerBatch(resultSchema, url, facts.unary_sha256),
  );
  assert.equal(out.getChild("result")!.get(0), "x".repeat(5000));
  assert.equal((storage.hits.get("GET range") ?? 0) - ranged, 6, "5296 bytes in 1000-byte ranges");
});

test("a SHA-256 mismatch is an ExternalFetchError, and is not retried", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  const gets = storage.hits.get("GET download") ?? 0;
  await assert.rejects(
    resolver().resolve(makePointerBatch(resultSchema, url, "0".repeat(64))),
    (e: unknown) => e instanceof ExternalFetchError && /SHA-256 checksum mismatch/.test(e.message),
  );
  assert.equal((storage.hits.get("GET download") ?? 0) - gets, 1);
});

test("a 404 is an ExternalFetchError carrying the status, after the retries", async () => {
  const url = `${storage.baseUrl}/download/nope?X-Token=secret`;
  const heads = storage.hits.get("HEAD download") ?? 0;
  await assert.rejects(
    resolver({ maxRetries: 1 }).resolve(makePointerBatch(resultSchema, url)),
    (e: unknown) =>
      e instanceof ExternalFetchError &&
      e.status === 404 &&
      e.code === "UNAVAILABLE" &&
      e.url === `${storage.baseUrl}/download/nope` &&
      !e.message.includes("secret"),
  );
  assert.equal((storage.hits.get("HEAD download") ?? 0) - heads, 2, "two attempts");
});

test("https only by default: a plain-http URL is refused before any request", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  const before = storage.hits.get("HEAD download") ?? 0;
  await assert.rejects(
    new ExternalResolver({ retryDelayMs: 1 }).resolve(makePointerBatch(resultSchema, url)),
    (e: unknown) => e instanceof ExternalFetchError && /URL rejected: URL scheme 'http' not allowed/.test(e.message),
  );
  assert.equal(storage.hits.get("HEAD download") ?? 0, before);
  assert.throws(() => httpsOnly("ftp://x/y"), /scheme 'ftp'/);
  assert.doesNotThrow(() => httpsOnly("https://x/y"));
  assert.throws(() => loopbackOnly("http://example.com/x"), /non-loopback/);
  assert.throws(() => loopbackOnly("file:///etc/passwd"), /non-HTTP/);
});

test("redirects: same host followed; a hop the validator refuses is never requested; loops are bounded", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  const ok = await resolver().resolve(
    makePointerBatch(resultSchema, url.replace("/download/", "/redirect/"), facts.unary_sha256),
  );
  assert.equal(ok.numRows, 1);
  const noLocalhost = (u: string) => {
    loopbackOnly(u);
    if (new URL(u).hostname === "localhost") throw new Error("localhost refused");
  };
  const before = storage.hits.get("GET download") ?? 0;
  await assert.rejects(
    resolver({ urlValidator: noLocalhost }).resolve(
      makePointerBatch(resultSchema, url.replace("/download/", "/redirect-localhost/")),
    ),
    (e: unknown) => e instanceof ExternalFetchError && /localhost refused/.test(e.message),
  );
  assert.equal(storage.hits.get("GET download") ?? 0, before);
  await assert.rejects(
    resolver({ maxRedirects: 3 }).resolve(makePointerBatch(resultSchema, url.replace("/download/", "/redirect-loop/"))),
    (e: unknown) => e instanceof ExternalFetchError && /redirect limit exceeded \(max_redirects=3\)/.test(e.message),
  );
});

test("size caps: encoded bytes over maxFetchBytes, decoded bytes over maxDecompressedBytes", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  await assert.rejects(
    resolver({ maxFetchBytes: 1000 }).resolve(makePointerBatch(resultSchema, url)),
    (e: unknown) => e instanceof ExternalFetchError && /exceeds max_fetch_bytes \(1000\)/.test(e.message),
  );
  const zurl = storage.put(bytes("object-unary.zstd"), "zstd");
  await assert.rejects(
    resolver({ maxDecompressedBytes: 2000 }).resolve(makePointerBatch(resultSchema, zurl)),
    (e: unknown) => e instanceof ExternalFetchError && /max_decompressed_bytes=2000/.test(e.message),
  );
});

test("an object that is not what a pointer names: wrong schema, no data batch, garbage", async () => {
  const url = storage.put(bytes("object-unary.bin"));
  await assert.rejects(
    resolver().resolve(makePointerBatch(turnSchema, url)),
    (e: unknown) => e instanceof ExternalFetchError && /Schema mismatch/.test(e.message),
  );
  const garbage = storage.put(new TextEncoder().encode("<html>not arrow</html>"));
  await assert.rejects(resolver().resolve(makePointerBatch(resultSchema, garbage)), ExternalFetchError);
});

test("maxConcurrentFetches bounds resolutions in flight", async () => {
  const r = resolver({ maxConcurrentFetches: 1 });
  const urls = [0, 1, 2].map(() => storage.put(bytes("object-unary.bin")));
  const out = await Promise.all(urls.map((u) => r.resolve(makePointerBatch(resultSchema, u, facts.unary_sha256))));
  assert.equal(out.length, 3);
  assert.throws(() => new ExternalResolver({ maxConcurrentFetches: 0 }), /at least 1/);
});
