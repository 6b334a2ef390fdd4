/**
 * The GCS backend (quiver-rpc/external/gcs) against fake-gcs-server, started on loopback by this
 * test (test/helpers/object-stores.ts): the backend suite, then the options' checks. URLs are
 * signed locally with a service-account key made here; the emulator does not check signatures.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, test } from "node:test";
import { Storage, type StorageOptions } from "@google-cloud/storage";
import { createGcsStorage, ExternalStorageError } from "../../src/external/gcs.js";
import { schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { type LocalStore, silentEndpoint, startFakeGcs } from "../helpers/object-stores.js";
import { backendSuite } from "./backend-suite.js";

const BUCKET = "quiver-test";
let gcs: LocalStore;
let options: StorageOptions;
let admin: Storage;

before(async () => {
  gcs = await startFakeGcs();
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  options = {
    apiEndpoint: gcs.endpoint,
    projectId: "quiver-test",
    credentials: {
      client_email: "signer@quiver-test.iam.gserviceaccount.com",
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    },
  };
  admin = new Storage(options);
  await admin.createBucket(BUCKET);
});
after(() => gcs?.stop());

backendSuite("GCS (fake-gcs-server)", () => ({
  name: "gcs",
  make: (o) => createGcsStorage({ bucket: BUCKET, storageOptions: options, ...o }),
  makeMissingBucket: () => createGcsStorage({ bucket: "missing-bucket", storageOptions: options }),
  async list(prefix) {
    const [files] = await admin.bucket(BUCKET).getFiles({ prefix });
    return files.map((f) => ({ key: f.name, contentEncoding: f.metadata.contentEncoding ?? null }));
  },
  async deleteByUrl(url) {
    const name = decodeURIComponent(new URL(url).pathname.slice(`/${BUCKET}/`.length));
    await admin.bucket(BUCKET).file(name).delete();
  },
  signing: "X-Goog",
}));

test("GCS: the options are checked before anything is loaded or sent", async () => {
  await assert.rejects(createGcsStorage({ bucket: "" }), TypeError);
  await assert.rejects(createGcsStorage({ bucket: "b", presignExpirySeconds: -1 }), RangeError);
  await assert.rejects(createGcsStorage({ bucket: "b", storage: admin, storageOptions: {} }), /not both/);
  const s = await createGcsStorage({ bucket: "b", storageOptions: options });
  assert.equal(s.prefix, "vgi-rpc/");
  assert.equal(s.presignExpirySeconds, 3600);
});

test("GCS: an upload to a store that stops answering fails after uploadTimeoutMs", { timeout: 30_000 }, async () => {
  const silent = await silentEndpoint();
  try {
    const storage = await createGcsStorage({
      bucket: BUCKET,
      storageOptions: { ...options, apiEndpoint: silent.url },
      uploadTimeoutMs: 300,
    });
    const err = await storage.upload(new Uint8Array(1024), schemaOf({ x: t.int64() }), {}).catch((e: unknown) => e);
    assert.ok(err instanceof ExternalStorageError, String(err));
    assert.equal(err.backend, "gcs");
  } finally {
    await silent.close();
  }
  await assert.rejects(createGcsStorage({ bucket: BUCKET, storageOptions: options, uploadTimeoutMs: 1.5 }), RangeError);
});
