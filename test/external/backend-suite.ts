/**
 * The tests every object-store backend passes against its real local server (moto for S3,
 * fake-gcs-server for GCS): a server externalizing a producer's large results into the store and
 * quiver's client reading them back over HTTP, a large request uploaded through the store's
 * vended URLs, the URL lifetime, a deleted object and a missing bucket as typed errors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { ExternalFetchError, loopbackOnly } from "../../src/external/fetch.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { type ExternalStorage, ExternalStorageError, type UploadUrlProvider } from "../../src/external/storage.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { listenHttp } from "../../src/transports/http/listen.js";

const Big = defineProtocol(
  "test.Stores.v1",
  {},
  {
    echo: unary({ value: t.utf8() }, t.utf8()),
    rows: producer(
      { n: t.int64(), width: t.int64() },
      { output: { i: t.int64(), pad: t.utf8() }, state: { i: t.int64(), n: t.int64(), width: t.int64() } },
    ),
  },
);

const resultSchema = schemaOf({ result: t.utf8() });

/** A backend under test, and what the test needs to see inside its store. */
export interface BackendUnderTest {
  /** `s3`, `gcs`: the `backend` its errors name. */
  readonly name: string;
  /** A storage on the test bucket under `prefix`, its URLs living `presignExpirySeconds`. */
  make(opts: { prefix: string; presignExpirySeconds?: number }): Promise<ExternalStorage & UploadUrlProvider>;
  /** The same on a bucket that does not exist. */
  makeMissingBucket(): Promise<ExternalStorage>;
  /** Object names under `prefix`, with their stored Content-Encoding (`null` when none). */
  list(prefix: string): Promise<{ key: string; contentEncoding: string | null }[]>;
  /** Deletes the object a URL the storage handed out names. */
  deleteByUrl(url: string): Promise<void>;
  /** The prefix of its URLs' signing parameters (`X-Amz`, `X-Goog`: both sign as SigV4 does). */
  readonly signing: "X-Amz" | "X-Goog";
}

const resolver = () => new ExternalResolver({ urlValidator: loopbackOnly, retryDelayMs: 1, maxRetries: 0 });

function makeServer(storage: ExternalStorage, compression: boolean) {
  return createServer({
    external: {
      storage,
      thresholdBytes: 64 * 1024,
      fetch: { urlValidator: loopbackOnly, retryDelayMs: 1 },
      ...(compression ? { compression: { algorithm: "zstd" as const } } : {}),
    },
    protocols: [
      bind(Big, {
        echo: ({ value }) => value,
        rows: {
          init: ({ n, width }) => ({ state: { i: 0n, n, width } }),
          produce(state, out) {
            if (state.i >= state.n) return out.finish();
            out.emit([{ i: state.i, pad: String(state.i % 10n).repeat(Number(state.width)) }]);
            state.i += 1n;
          },
        },
      }),
    ],
  });
}

/** Serves `storage` over HTTP for the length of `body`. */
async function withHttp<T>(
  storage: ExternalStorage,
  opts: { compression?: boolean; maxRequestBytes?: number; uploadUrls?: UploadUrlProvider },
  body: (base: string) => Promise<T>,
): Promise<T> {
  const server = makeServer(storage, opts.compression ?? false);
  const listener = await listenHttp(server, {
    port: 0,
    ...(opts.maxRequestBytes === undefined ? {} : { maxRequestBytes: opts.maxRequestBytes }),
    ...(opts.uploadUrls === undefined ? {} : { uploadUrls: opts.uploadUrls }),
  });
  try {
    return await body(`http://127.0.0.1:${listener.port}`);
  } finally {
    await server.close();
  }
}

/** The signing time (ms since the epoch) and lifetime (s) a pre-signed URL carries. */
function lifetime(url: string, signing: string): { signedAt: number; expiresIn: number } {
  const q = new URL(url).searchParams;
  const d = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(q.get(`${signing}-Date`) ?? "");
  assert.ok(d !== null, `no ${signing}-Date in the URL`);
  return {
    signedAt: Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!),
    expiresIn: Number(q.get(`${signing}-Expires`)),
  };
}

const KEY = /^[0-9a-f]{32}\.arrow(\.zst)?$/;

export function backendSuite(label: string, backend: () => BackendUnderTest): void {
  test(`${label}: a server externalizes a producer's large results into the store, and quiver's client reads them back over HTTP`, async () => {
    const b = backend();
    const prefix = `produce-${Date.now()}/`;
    const storage = await b.make({ prefix });
    await withHttp(storage, { compression: true }, async (base) => {
      const client = connectHttp(base, { external: resolver() });
      try {
        const rows = await (await proxy(client, Big).rows({ n: 3n, width: 200_000n })).toArray();
        assert.deepEqual(
          rows.map((r) => [r.i, r.pad.length, r.pad[0]]),
          [
            [0n, 200_000, "0"],
            [1n, 200_000, "1"],
            [2n, 200_000, "2"],
          ],
        );
        const small = await (await proxy(client, Big).rows({ n: 2n, width: 10n })).toArray();
        assert.equal(small.length, 2, "small turns stay inline");
      } finally {
        client.close();
      }
    });
    const objects = await b.list(prefix);
    assert.equal(objects.length, 3, "one object per large turn");
    for (const o of objects) {
      assert.match(o.key.slice(prefix.length), KEY);
      assert.ok(o.key.endsWith(".arrow.zst"), `${o.key}: zstd objects are named .arrow.zst`);
      assert.equal(o.contentEncoding, "zstd", `${o.key}: the Content-Encoding is stored`);
    }
  });

  test(`${label}: a request over the server's cap goes up through the store's upload URLs over HTTP`, async () => {
    const b = backend();
    const prefix = `upload-${Date.now()}/`;
    const storage = await b.make({ prefix });
    await withHttp(storage, { maxRequestBytes: 16 * 1024, uploadUrls: storage }, async (base) => {
      const big = "u".repeat(300_000);
      const client = connectHttp(base, { external: resolver(), uploads: { urlValidator: loopbackOnly } });
      try {
        assert.equal(await proxy(client, Big).echo({ value: big }), big);
      } finally {
        client.close();
      }
    });
    const objects = await b.list(prefix);
    // The uploaded request, and the echoed result the server externalized (uncompressed here).
    assert.equal(objects.length, 2);
    for (const o of objects) {
      assert.match(o.key.slice(prefix.length), /^[0-9a-f]{32}\.arrow$/);
      assert.equal(o.contentEncoding, null);
    }
  });

  test(`${label}: the URLs live as long as presignExpirySeconds says, and expiresAt agrees`, async () => {
    const b = backend();
    const storage = await b.make({ prefix: "lifetime/", presignExpirySeconds: 150 });
    const before = Date.now();
    const url = await storage.upload(new Uint8Array([1, 2, 3]), resultSchema, {});
    const pair = await storage.uploadUrl(resultSchema);
    const afterMs = Date.now();
    for (const u of [url, pair.uploadUrl, pair.downloadUrl]) {
      const { signedAt, expiresIn } = lifetime(u, b.signing);
      assert.equal(expiresIn, 150);
      // Signing times have one-second resolution.
      assert.ok(signedAt >= before - 1_000 && signedAt <= afterMs, `signed at ${new Date(signedAt).toISOString()}`);
    }
    const expiresAt = pair.expiresAt.getTime();
    assert.ok(expiresAt >= before + 150_000 && expiresAt <= afterMs + 150_000);
    await assert.rejects(b.make({ prefix: "x/", presignExpirySeconds: 0 }), RangeError);
    await assert.rejects(b.make({ prefix: "x/", presignExpirySeconds: 604_801 }), RangeError);
  });

  test(`${label}: an object deleted before the client fetches it fails the call with ExternalFetchError 404`, async () => {
    const b = backend();
    const inner = await b.make({ prefix: "deleted/" });
    const deleting: ExternalStorage = {
      async upload(data, schema, opts) {
        const url = await inner.upload(data, schema, opts);
        await b.deleteByUrl(url);
        return url;
      },
    };
    await withHttp(deleting, {}, async (base) => {
      const client = connectHttp(base, { external: resolver() });
      try {
        await assert.rejects(
          proxy(client, Big).echo({ value: "d".repeat(100_000) }),
          (e: unknown) => e instanceof ExternalFetchError && e.status === 404 && !e.url.includes("?"),
        );
        assert.equal(await proxy(client, Big).echo({ value: "small" }), "small", "the client is still usable");
      } finally {
        client.close();
      }
    });
  });

  test(`${label}: an upload into a missing bucket fails the call with external_storage_failed`, async () => {
    const b = backend();
    const missing = await b.makeMissingBucket();
    await assert.rejects(
      missing.upload(new Uint8Array([1]), resultSchema, {}),
      (e: unknown) => e instanceof ExternalStorageError && e.backend === b.name && e.status === 404,
    );
    await withHttp(missing, {}, async (base) => {
      const client = connectHttp(base, { external: resolver() });
      try {
        await assert.rejects(
          proxy(client, Big).echo({ value: "m".repeat(100_000) }),
          (e: unknown) => e instanceof RpcError && e.kind === "external_storage_failed" && /missing/.test(e.message),
        );
      } finally {
        client.close();
      }
    });
  });
}
