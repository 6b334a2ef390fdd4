/**
 * The S3 backend (quiver-rpc/external/s3) against moto's S3 server, started on loopback by this
 * test (test/helpers/object-stores.ts): the backend suite, then what is S3's own — a bucket policy
 * answering 403, the pre-signed PUT's checksum guard, the options' checks.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { ExternalFetchError, loopbackOnly } from "../../src/external/fetch.js";
import { makePointerBatch } from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { createS3Storage, ExternalStorageError } from "../../src/external/s3.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { type LocalStore, silentEndpoint, startMoto } from "../helpers/object-stores.js";
import { backendSuite } from "./backend-suite.js";

const BUCKET = "quiver-test";
let moto: LocalStore;
let config: S3ClientConfig;
let admin: S3Client;

before(async () => {
  moto = await startMoto();
  config = {
    endpoint: moto.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  };
  admin = new S3Client(config);
  await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
after(async () => {
  admin?.destroy();
  await moto?.stop();
});

/** The key a path-style URL names in `bucket`. */
const keyOf = (url: string, bucket = BUCKET) => decodeURIComponent(new URL(url).pathname.slice(`/${bucket}/`.length));

backendSuite("S3 (moto)", () => ({
  name: "s3",
  make: (o) => createS3Storage({ bucket: BUCKET, clientConfig: config, ...o }),
  makeMissingBucket: () => createS3Storage({ bucket: "missing-bucket", clientConfig: config }),
  async list(prefix) {
    const listed = await admin.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return Promise.all(
      (listed.Contents ?? []).map(async ({ Key }) => {
        const head = await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: Key! }));
        return { key: Key!, contentEncoding: head.ContentEncoding ?? null };
      }),
    );
  },
  async deleteByUrl(url) {
    await admin.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keyOf(url) }));
  },
  signing: "X-Amz",
}));

test("S3 (moto): a 403 from the store is an ExternalFetchError carrying it", async () => {
  const bucket = "quiver-denied";
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  const storage = await createS3Storage({ bucket, clientConfig: config });
  const schema = schemaOf({ result: t.utf8() });
  const url = await storage.upload(new Uint8Array([1, 2, 3]), schema, {});
  const policy = {
    Version: "2012-10-17",
    Statement: [{ Effect: "Deny", Principal: "*", Action: "s3:GetObject", Resource: `arn:aws:s3:::${bucket}/*` }],
  };
  await admin.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
  await assert.rejects(
    new ExternalResolver({ urlValidator: loopbackOnly, maxRetries: 0 }).resolve(makePointerBatch(schema, url)),
    (e: unknown) => e instanceof ExternalFetchError && e.status === 403 && e.kind === "external_fetch_failed",
  );
});

test("S3: a given client whose pre-signed PUT URLs carry an empty body's checksum is refused with what to change", async () => {
  const client = new S3Client(config); // the SDK's default: checksums "WHEN_SUPPORTED"
  try {
    const storage = await createS3Storage({ bucket: BUCKET, client });
    await assert.rejects(
      storage.uploadUrl(schemaOf({ x: t.int64() })),
      (e: unknown) =>
        e instanceof ExternalStorageError && /requestChecksumCalculation: "WHEN_REQUIRED"/.test(e.message),
    );
    const own = await createS3Storage({ bucket: BUCKET, clientConfig: config });
    assert.doesNotMatch((await own.uploadUrl(schemaOf({ x: t.int64() }))).uploadUrl, /x-amz-checksum/i);
  } finally {
    client.destroy();
  }
});

test("S3: the options are checked before anything is loaded or sent", async () => {
  await assert.rejects(createS3Storage({ bucket: "" }), TypeError);
  await assert.rejects(createS3Storage({ bucket: "b", presignExpirySeconds: 1.5 }), RangeError);
  await assert.rejects(createS3Storage({ bucket: "b", client: admin, clientConfig: {} }), /not both/);
  const s = await createS3Storage({ bucket: "b", clientConfig: config });
  assert.equal(s.prefix, "vgi-rpc/");
  assert.equal(s.presignExpirySeconds, 3600);
  s.client.destroy();
});

test("S3: an upload stops when its signal (the call's) aborts, long before uploadTimeoutMs", {
  timeout: 30_000,
}, async () => {
  const silent = await silentEndpoint();
  try {
    const storage = await createS3Storage({ bucket: BUCKET, clientConfig: { ...config, endpoint: silent.url } });
    const signal = AbortSignal.timeout(200);
    const err = await storage
      .upload(new Uint8Array(1024), schemaOf({ x: t.int64() }), { signal })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ExternalStorageError, String(err));
    assert.equal(signal.aborted, true);
    storage.client.destroy();
  } finally {
    await silent.close();
  }
});

test("S3: an upload to a store that stops answering fails after uploadTimeoutMs", { timeout: 30_000 }, async () => {
  const silent = await silentEndpoint();
  try {
    const storage = await createS3Storage({
      bucket: BUCKET,
      clientConfig: { ...config, endpoint: silent.url },
      uploadTimeoutMs: 300,
    });
    const err = await storage.upload(new Uint8Array(1024), schemaOf({ x: t.int64() }), {}).catch((e: unknown) => e);
    assert.ok(err instanceof ExternalStorageError, String(err));
    assert.equal(err.backend, "s3");
    storage.client.destroy();
  } finally {
    await silent.close();
  }
  await assert.rejects(createS3Storage({ bucket: BUCKET, clientConfig: config, uploadTimeoutMs: 0 }), RangeError);
});
