/** Pointer batches against bytes the reference wrote (scripts/make-external-fixtures.py). */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Schema } from "apache-arrow";
import { serializeStream } from "../../src/external/externalize.js";
import {
  isPointerBatch,
  LOCATION_SHA256_KEY,
  makePointerBatch,
  pointerTarget,
  redactUrl,
  totalBufferSize,
} from "../../src/external/pointer.js";
import { batchFromRows, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { decodeStreamBytes } from "../../src/wire/ipc.js";
import { classifyBatch } from "../../src/wire/messages.js";

const dir = new URL("../fixtures/external/", import.meta.url);
const bytes = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const facts = JSON.parse(readFileSync(new URL("fixtures.json", dir), "utf8")) as {
  url: string;
  unary_sha256: string;
  turn_sha256: string;
};

test("the reference's pointer batch decodes as a pointer naming its URL and digest", () => {
  const stream = decodeStreamBytes(bytes("pointer-unary.bin"));
  assert.ok(stream !== null);
  const [pointer] = stream.batches;
  assert.ok(pointer !== undefined);
  assert.equal(isPointerBatch(pointer), true);
  assert.equal(classifyBatch(pointer), "external_pointer");
  assert.deepEqual(pointerTarget(pointer), { url: facts.url, sha256: facts.unary_sha256 });
});

test("a pointer without a digest, on a dictionary-encoded schema, decodes", () => {
  const stream = decodeStreamBytes(bytes("pointer-dict.bin"));
  assert.ok(stream !== null);
  const pointer = stream.batches[0]!;
  assert.equal(isPointerBatch(pointer), true);
  assert.deepEqual(pointerTarget(pointer), { url: facts.url, sha256: null });
  assert.equal(pointer.metadata.has(LOCATION_SHA256_KEY), false);
});

test("makePointerBatch matches the reference's pointer: schema, zero rows, the same metadata", () => {
  const schema = schemaOf({ result: t.utf8() });
  const ref = decodeStreamBytes(bytes("pointer-unary.bin"))!;
  const mine = decodeStreamBytes(serializeStream(schema, [makePointerBatch(schema, facts.url, facts.unary_sha256)]))!;
  assert.equal(mine.schema.toString(), ref.schema.toString());
  assert.equal(mine.schema.fields[0]!.nullable, ref.schema.fields[0]!.nullable);
  assert.equal(mine.batches[0]!.numRows, 0);
  assert.deepEqual([...mine.batches[0]!.metadata], [...ref.batches[0]!.metadata]);
});

test("a zero-row batch with a log level is a log, not a pointer", () => {
  const schema = new Schema([]);
  const stream = decodeStreamBytes(bytes("object-turn.bin"));
  assert.ok(stream !== null);
  assert.equal(isPointerBatch(stream.batches[0]!), false);
  const log = makePointerBatch(schema, "https://x/y");
  log.metadata.set("vgi_rpc.log_level", "INFO");
  assert.equal(isPointerBatch(log), false);
});

test("quiver's serialization of a result decodes to the reference's object", () => {
  const schema = schemaOf({ result: t.utf8() });
  const batch = batchFromRows({ result: t.utf8() }, [{ result: "x".repeat(5000) }], undefined, schema);
  const mine = decodeStreamBytes(serializeStream(schema, [batch]))!;
  const ref = decodeStreamBytes(bytes("object-unary.bin"))!;
  assert.equal(mine.schema.toString(), ref.schema.toString());
  assert.equal(mine.batches.length, 1);
  assert.equal(ref.batches.length, 1);
  assert.equal(mine.batches[0]!.getChild("result")!.get(0), ref.batches[0]!.getChild("result")!.get(0));
});

test("totalBufferSize counts every buffer, as the threshold needs", () => {
  const schema = schemaOf({ result: t.utf8() });
  const batch = batchFromRows({ result: t.utf8() }, [{ result: "x".repeat(5000) }], undefined, schema);
  assert.ok(totalBufferSize(batch) >= 5000);
  // arrow-js pads even an empty column's buffers; a pointer stays small.
  assert.ok(totalBufferSize(makePointerBatch(schema, "https://x")) <= 256);
});

test("redactUrl drops the query, userinfo and fragment", () => {
  assert.equal(redactUrl(facts.url), "https://storage.example/bucket/obj-1");
  assert.equal(redactUrl("https://user:pw@h:8443/p?q=1#f"), "https://h:8443/p");
  assert.equal(redactUrl("not a url"), "<invalid-url>");
});
