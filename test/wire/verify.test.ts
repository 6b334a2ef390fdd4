/**
 * Header verification: every header the reference and arrow-js write passes, and hostile ones —
 * inflated counts, shared objects, deep nesting, messages landing inside another, bit flips — are
 * refused with a protocol_error before any decoder loops over what they claim.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Field, Int32, List, Schema, Struct, Utf8 } from "apache-arrow";
import { KeyValue } from "apache-arrow/fb/key-value";
import { Message as FbMessage } from "apache-arrow/fb/message";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { MetadataVersion } from "apache-arrow/fb/metadata-version";
import { RecordBatch as FbRecordBatch } from "apache-arrow/fb/record-batch";
import { Builder } from "flatbuffers";
import { RpcError } from "../../src/errors.js";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, decodeMessage, encodeSchemaMessage, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";
import { verifyMessageHeader } from "../../src/wire/verify.js";
import { customMetadataCountAt, fieldPosition, messageSpans, messageTable } from "../helpers/ipc-bytes.js";

const fixtureDir = new URL("../fixtures/wire/", import.meta.url);
const fixtures = readdirSync(fixtureDir)
  .filter((n) => n.endsWith(".bin"))
  .map((n) => ({ name: n, bytes: new Uint8Array(readFileSync(new URL(n, fixtureDir))) }));

/** Decodes every stream in `bytes` as a server would; returns the batches read. */
async function decodeAll(bytes: Uint8Array): Promise<number> {
  const framer = new MessageFramer(
    (async function* () {
      yield bytes;
    })(),
  );
  let decoder = new IpcStreamDecoder();
  let batches = 0;
  for (;;) {
    const f = await framer.next();
    if (f === "end") return batches;
    if (f === "eos") {
      decoder = new IpcStreamDecoder();
      continue;
    }
    const out = decoder.accept(f);
    if (out !== null && "numRows" in out) {
      batches++;
      // Read every value, as a handler would. arrow-js's getters refuse int64 values past 2^53
      // where they return numbers (dates in ms, 64-bit offsets): a value it cannot represent, not
      // a malformed batch, so that one error is let through; any other means the layout was wrong.
      for (const row of out) {
        try {
          JSON.stringify(row, (_k, v) => (typeof v === "bigint" ? String(v) : v));
        } catch (err) {
          if (!/is not safe to convert to a number/.test((err as Error).message)) throw err;
        }
      }
    }
  }
}

/** Decoding either succeeds or fails with a protocol_error; nothing else may escape. */
async function decodesOrRefuses(bytes: Uint8Array, label: string): Promise<"ok" | "refused"> {
  try {
    await decodeAll(bytes);
    return "ok";
  } catch (err) {
    if (!(err instanceof RpcError)) assert.fail(`${label}: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(
      err.kind === "protocol_error" || err.kind === "message_too_large",
      `${label}: ${err.kind}: ${err.message}`,
    );
    return "refused";
  }
}

/**
 * Asserts the header is refused: as unsound (`framed` false: verification throws, nothing in it
 * can be trusted) or as sound but not to be decoded (`framed` true: its body can be skipped).
 */
function expectRefused(bytes: Uint8Array, pattern: RegExp, framed = false): void {
  let err: unknown = null;
  try {
    const verified = verifyMessageHeader(bytes);
    assert.ok(framed, "verification should have thrown");
    err = verified.refusal;
  } catch (e) {
    assert.ok(!framed, `verification threw: ${(e as Error).message}`);
    err = e;
  }
  assert.ok(err instanceof RpcError && err.kind === "protocol_error", String(err));
  assert.match(err.message, pattern);
}

/** Seeded xorshift, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

describe("message header verification", () => {
  it("accepts every header in the reference's fixtures, every type pyarrow writes included", async () => {
    for (const { name, bytes } of fixtures) {
      for (const s of messageSpans(bytes)) {
        assert.equal(verifyMessageHeader(bytes.subarray(s.start, s.start + s.metadataLength)).refusal, null, name);
      }
      assert.ok((await decodeAll(bytes)) > 0, name);
    }
  });

  it("accepts the headers quiver writes, nested and dictionary types included", async () => {
    const nested = new Schema([
      new Field("l", new List(new Field("item", new Struct([new Field("s", new Utf8(), true)]), true)), true),
      new Field("i", new Int32(), false),
    ]);
    assert.equal(verifyMessageHeader(encodeSchemaMessage(nested).subarray(8)).refusal, null);
    const Row = { a: t.int64(), s: t.utf8(), b: t.binary(), f: t.float64() };
    const batch = batchFromColumns(Row, {
      a: [1n, 2n],
      s: ["x", "y"],
      b: [new Uint8Array([1]), new Uint8Array(0)],
      f: [1.5, 2],
    });
    assert.equal(await decodeAll(concatBytes(encodeStream(schemaOf(Row), [batch]))), 1);
  });

  it("refuses a record batch declaring 2^31-1 custom-metadata entries (4 bytes changed) at once", async () => {
    const request = fixtures.find((f) => f.name === "request-echo-string.bin")!.bytes;
    const batch = messageSpans(request).find((s) => s.bodyLength > 0)!;
    const mutated = request.slice();
    const view = new DataView(mutated.buffer);
    const count = customMetadataCountAt(mutated, batch)!;
    assert.ok(view.getUint32(count, true) > 0);
    view.setUint32(count, 0x7fffffff, true);
    expectRefused(mutated.subarray(batch.start, batch.start + batch.metadataLength), /declares 2147483647 entries/);
    assert.equal(await decodesOrRefuses(mutated, "inflated metadata"), "refused");
  });

  it("refuses the first 111 bytes of a request followed by the whole request (a header landing inside another)", async () => {
    const request = fixtures.find((f) => f.name === "request-echo-string.bin")!.bytes;
    const spliced = concatBytes([request.subarray(0, 111), request]);
    assert.equal(await decodesOrRefuses(spliced, "splice"), "refused");
  });

  it("refuses a metadata vector whose entries all share one long string, on the lean and the general path", async () => {
    for (const header of [MessageHeader.RecordBatch, MessageHeader.Schema]) {
      const b = new Builder(1024);
      const value = b.createString("v".repeat(16 * 1024));
      const key = b.createString("k");
      KeyValue.startKeyValue(b);
      KeyValue.addKey(b, key);
      KeyValue.addValue(b, value);
      const kv = KeyValue.endKeyValue(b);
      const metadata = FbMessage.createCustomMetadataVector(b, new Array(100_000).fill(kv));
      let headerAt: number;
      if (header === MessageHeader.RecordBatch) {
        FbRecordBatch.startRecordBatch(b);
        headerAt = FbRecordBatch.endRecordBatch(b);
      } else {
        b.startVector(4, 0, 4);
        const fields = b.endVector();
        b.startObject(4);
        b.addFieldOffset(1, fields, 0);
        headerAt = b.endObject();
      }
      FbMessage.startMessage(b);
      FbMessage.addVersion(b, MetadataVersion.V5);
      FbMessage.addHeaderType(b, header);
      FbMessage.addHeader(b, headerAt);
      FbMessage.addCustomMetadata(b, metadata);
      FbMessage.finishMessageBuffer(b, FbMessage.endMessage(b));
      const bytes = b.asUint8Array();
      // 400 KB of header would decode into 1.6 GB of strings.
      expectRefused(bytes, /same objects too many times/);
      assert.throws(() => decodeMessage(bytes), RpcError);
    }
  });

  it("refuses fields whose children are shared level after level (2^24 visits from a 1 KB header)", () => {
    const b = new Builder(1024);
    // A leaf Int32 field, then 24 levels of structs each listing the level below twice.
    b.startObject(2);
    b.addFieldInt32(0, 32, 0);
    b.addFieldInt8(1, 1, 0);
    const int32 = b.endObject();
    const field = (typeId: number, type: number, children: number | null) => {
      b.startObject(7);
      b.addFieldInt8(2, typeId, 0);
      b.addFieldOffset(3, type, 0);
      if (children !== null) b.addFieldOffset(5, children, 0);
      return b.endObject();
    };
    let node = field(2, int32, null);
    for (let level = 0; level < 24; level++) {
      b.startObject(0);
      const struct = b.endObject();
      b.startVector(4, 2, 4);
      b.addOffset(node);
      b.addOffset(node);
      node = field(13, struct, b.endVector());
    }
    b.startVector(4, 1, 4);
    b.addOffset(node);
    const fields = b.endVector();
    b.startObject(4);
    b.addFieldOffset(1, fields, 0);
    const schema = b.endObject();
    FbMessage.startMessage(b);
    FbMessage.addVersion(b, MetadataVersion.V5);
    FbMessage.addHeaderType(b, MessageHeader.Schema);
    FbMessage.addHeader(b, schema);
    FbMessage.finishMessageBuffer(b, FbMessage.endMessage(b));
    const bytes = b.asUint8Array();
    assert.ok(bytes.byteLength < 1024);
    expectRefused(bytes, /same objects too many times/);
  });

  it("refuses types nested deeper than Arrow C++ reads", () => {
    let type: Struct | List = new Struct([new Field("x", new Int32(), true)]);
    for (let i = 0; i < 70; i++) type = new List(new Field("item", type, true));
    expectRefused(encodeSchemaMessage(new Schema([new Field("deep", type, true)])).subarray(8), /nesting deeper/);
    let ok: Struct | List = new Struct([new Field("x", new Int32(), true)]);
    for (let i = 0; i < 40; i++) ok = new List(new Field("item", ok, true));
    assert.equal(
      verifyMessageHeader(encodeSchemaMessage(new Schema([new Field("deep", ok, true)])).subarray(8)).refusal,
      null,
    );
  });

  it("refuses message types and versions outside the wire protocol", () => {
    const request = fixtures.find((f) => f.name === "request-echo-string.bin")!.bytes;
    const schema = messageSpans(request)[0]!;
    const header = request.slice(schema.start, schema.start + schema.metadataLength);
    const root = messageTable(request, schema);
    const versionAt = fieldPosition(header, 0, root, 0)!;
    const typeAt = fieldPosition(header, 0, root, 1)!;
    const tensor = header.slice();
    tensor[typeAt] = MessageHeader.Tensor;
    expectRefused(tensor, /Tensor is not part of the vgi-rpc wire protocol/, true);
    const v3 = header.slice();
    new DataView(v3.buffer).setInt16(versionAt, MetadataVersion.V3, true);
    expectRefused(v3, /metadata version 2 is not supported/, true);
  });

  it("every 4-byte word of every fixture header set to a hostile count decodes or is refused, never more", async () => {
    const values = [0x7fffffff, 0xffffffff, 0x80000000, 0x00010000, 0x0000ffff, 1, 0];
    let refused = 0;
    let cases = 0;
    for (const { name, bytes } of fixtures) {
      for (const s of messageSpans(bytes)) {
        for (let p = 0; p + 4 <= s.metadataLength; p += 4) {
          for (const v of values) {
            const mutated = bytes.slice();
            new DataView(mutated.buffer).setUint32(s.start + p, v, true);
            cases++;
            if ((await decodesOrRefuses(mutated, `${name}@${s.start + p}=${v}`)) === "refused") refused++;
          }
        }
      }
    }
    assert.ok(cases > 5000 && refused > cases / 4, `${refused} of ${cases} refused`);
  });

  it("random bit flips, truncations and splices of fixture streams decode or are refused (seeded)", async () => {
    const next = rng(20261207);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    for (let i = 0; i < Number(process.env.QUIVER_WIRE_FUZZ_CASES ?? 3000); i++) {
      const { name, bytes } = pick(fixtures);
      let mutated: Uint8Array;
      const kind = i % 3;
      if (kind === 0) {
        mutated = bytes.slice();
        const flips = 1 + Math.floor(next() * 8);
        for (let f = 0; f < flips; f++) {
          const bit = Math.floor(next() * mutated.byteLength * 8);
          mutated[bit >> 3]! ^= 1 << (bit & 7);
        }
      } else if (kind === 1) {
        mutated = bytes.subarray(0, Math.floor(next() * bytes.byteLength));
      } else {
        mutated = concatBytes([bytes.subarray(0, Math.floor(next() * bytes.byteLength)), pick(fixtures).bytes]);
      }
      await decodesOrRefuses(mutated, `${name} case ${i}`);
    }
  });
});
