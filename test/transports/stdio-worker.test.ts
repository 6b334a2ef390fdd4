/**
 * The conformance worker as a real subprocess on pipes: malformed input gets typed error
 * batches, the pipe stays usable where the protocol allows, and a vanished peer ends the worker.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { EMPTY_SCHEMA, emptyBatch } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { classifyBatch, errorFromMetadata } from "../../src/wire/messages.js";
import { RawPeer, requestBytes, streamBytes } from "../helpers/raw-peer.js";

async function echo(peer: RawPeer, value: string): Promise<string> {
  peer.write(requestBytes("echo_string", { value: t.utf8() }, { value: [value] }));
  const r = await peer.readStream();
  assert.ok(r);
  return String(r.batches.at(-1)!.getChildAt(0)!.get(0));
}

test("an unknown method and a wrong request schema are typed errors, and the pipe keeps serving", async () => {
  const peer = RawPeer.spawnWorker();
  peer.write(requestBytes("no_such_method", {}, {}));
  const unknown = await peer.readStream();
  assert.equal(errorFromMetadata(unknown!.batches[0]!.metadata).kind, "method_not_implemented");

  // echo_string declares value: utf8 (non-null); send an int64 instead.
  peer.write(requestBytes("echo_string", { value: t.int64() }, { value: [7n] }));
  const wrong = await peer.readStream();
  const err = errorFromMetadata(wrong!.batches[0]!.metadata);
  assert.equal(err.type, "TypeError");
  assert.match(err.message, /expected Arrow type utf8/);

  // A request without a protocol version is refused by the version gate.
  peer.write(requestBytes("echo_string", { value: t.utf8() }, { value: ["x"] }, {}, "ConformanceService", null));
  const noVersion = await peer.readStream();
  assert.equal(errorFromMetadata(noVersion!.batches[0]!.metadata).kind, "protocol_version_mismatch");

  assert.equal(await echo(peer, "still here"), "still here");
  assert.equal(await peer.close(), 0);
});

test("a request stream with two rows is a protocol error on the empty schema", async () => {
  const peer = RawPeer.spawnWorker();
  peer.write(requestBytes("echo_string", { value: t.utf8() }, { value: ["a", "b"] }));
  const r = await peer.readStream();
  assert.equal(r!.schema.fields.length, 0);
  assert.match(errorFromMetadata(r!.batches[0]!.metadata).message, /Expected 1 row/);
  assert.equal(await echo(peer, "ok"), "ok");
  assert.equal(await peer.close(), 0);
});

test("garbage bytes get an error batch, then the worker exits cleanly", async () => {
  const peer = RawPeer.spawnWorker();
  peer.write(new TextEncoder().encode("this is not an Arrow IPC stream\n"));
  const r = await peer.readStream();
  assert.equal(classifyBatch(r!.batches[0]!), "error");
  assert.equal(errorFromMetadata(r!.batches[0]!.metadata).kind, "protocol_error");
  assert.equal(await peer.readStream(), null);
  assert.equal(await peer.close(), 0);
});

test("a truncated request followed by EOF gets an error batch and a clean exit, not a hang", async () => {
  const peer = RawPeer.spawnWorker();
  const whole = requestBytes("echo_string", { value: t.utf8() }, { value: ["hello"] });
  const bytes = Buffer.concat(whole);
  peer.write(bytes.subarray(0, bytes.length - 20));
  peer.child.stdin.end();
  const r = await peer.readStream();
  assert.equal(errorFromMetadata(r!.batches[0]!.metadata).kind, "protocol_error");
  assert.equal(await peer.close(), 0);
});

test("a peer that disappears mid-stream ends the worker cleanly", async () => {
  const peer = RawPeer.spawnWorker();
  peer.write(requestBytes("cancellable_producer", {}, {}));
  peer.write(streamBytes(EMPTY_SCHEMA, [emptyBatch(EMPTY_SCHEMA)]).slice(0, -1)); // no EOS: stream left open
  const first = await peer.nextBatch();
  assert.ok(first !== null && first !== "eos");
  assert.equal(classifyBatch(first), "data");
  assert.deepEqual(
    first.schema.fields.map((f) => f.name),
    ["index", "value"],
  );
  peer.child.stdout.destroy();
  peer.child.stdin.end();
  const [code] = (await once(peer.child, "exit")) as [number | null];
  assert.equal(code, 0);
});
