import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { decompress } from "fzstd";
import { caseFromJson, caseToJson, sessionCase, sessionRegressions, splitWrites } from "./cases.js";
import { findingCases, findings } from "./findings.js";
import { gzipBomb, zstdBomb, zstdStored } from "./http-cases.js";
import { allPoints, messagesOf, pointsOf, splitIpc } from "./ipc-walk.js";
import {
  alignedWord,
  bitflipAny,
  bitflipFlatbuffer,
  byteRun,
  countInflate,
  hugeMetadataCount,
  MUTATORS,
  messageShuffle,
  mutate,
  offsetCorrupt,
  oversizedLength,
  prefixSplice,
  randomBytes,
  splice,
  truncateBoundary,
  truncateWithin,
} from "./mutators.js";
import { Rng } from "./rng.js";
import { echoStringRequest, loadSessionSeeds } from "./seeds.js";
import { shmCase } from "./shm-cases.js";

function changedBytes(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.max(a.byteLength, b.byteLength); i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

describe("the seeded random generator", () => {
  test("gives the same sequence for the same seed and labels, and another for another label", () => {
    const a = new Rng(42, "tcp", 3);
    const b = new Rng(42, "tcp", 3);
    const c = new Rng(42, "tcp", 4);
    const sa = Array.from({ length: 16 }, () => a.u32());
    assert.deepEqual(
      sa,
      Array.from({ length: 16 }, () => b.u32()),
    );
    assert.notDeepEqual(
      sa,
      Array.from({ length: 16 }, () => c.u32()),
    );
  });

  test("keeps int, range and pick within their bounds", () => {
    const r = new Rng(7);
    for (let i = 0; i < 1000; i++) {
      const n = r.int(10);
      assert.ok(n >= 0 && n < 10);
      const m = r.range(3, 5);
      assert.ok(m >= 3 && m <= 5);
    }
    assert.equal(r.int(1), 0);
  });
});

describe("the IPC walker", () => {
  test("splits a request into its schema message, record batch and end-of-stream marker", async () => {
    const req = await echoStringRequest();
    const parts = splitIpc(req);
    assert.equal(parts.length, 3);
    const [schema, batch, eos] = parts;
    assert.ok(schema !== undefined && !schema.eos && schema.headerType === 1 && schema.start === 0);
    assert.ok(batch !== undefined && !batch.eos && batch.headerType === 3 && batch.start === schema.end);
    assert.ok(batch.bodyLength > 0);
    assert.ok(eos?.eos === true && eos.end === req.byteLength);
  });

  test("finds the fields, metadata, nodes and buffers of a request's flatbuffers", async () => {
    const req = await echoStringRequest();
    const labels = allPoints(req).map((p) => `${p.kind} ${p.label}`);
    for (const want of [
      "vector-length Schema.fields",
      "string-length Schema.fields[0].name",
      "vector-length Message.custom_metadata",
      "int64 Message.bodyLength",
      "int64 RecordBatch.length",
      "vector-length RecordBatch.nodes",
      "int64 RecordBatch.nodes[0].length",
      "int64 RecordBatch.buffers[2].length",
    ]) {
      assert.ok(labels.includes(want), `missing ${want} in ${labels.join(", ")}`);
    }
    const batch = messagesOf(splitIpc(req)).find((m) => m.headerType === 3)!;
    const md = pointsOf(req, batch).find((p) => p.label === "Message.custom_metadata" && p.kind === "vector-length")!;
    assert.equal(md.value, 4, "the client's request carries four metadata entries");
  });

  test("never throws on random bytes", () => {
    const r = new Rng(1);
    for (let i = 0; i < 200; i++) {
      const junk = r.bytes(r.range(0, 600));
      allPoints(junk);
    }
  });
});

describe("the issue #21 reproductions", () => {
  test("(a) changes exactly the four bytes of the record batch's custom-metadata count, to 2^31-1", async () => {
    const req = await echoStringRequest();
    const m = hugeMetadataCount(req);
    const changed = changedBytes(req, m.bytes);
    assert.equal(m.bytes.byteLength, req.byteLength);
    assert.equal(changed.length, 4);
    assert.deepEqual(changed, [changed[0]!, changed[0]! + 1, changed[0]! + 2, changed[0]! + 3]);
    const at = changed[0]!;
    assert.equal(new DataView(m.bytes.buffer, m.bytes.byteOffset).getUint32(at, true), 2 ** 31 - 1);
    const batch = messagesOf(splitIpc(req)).find((x) => x.headerType === 3)!;
    assert.ok(at > batch.metaStart && at < batch.metaStart + batch.metaLength, "inside the record batch's flatbuffer");
  });

  test("(b) is the first 111 bytes of the request followed by the whole request", async () => {
    const req = await echoStringRequest();
    const m = prefixSplice(req);
    assert.equal(m.bytes.byteLength, 111 + req.byteLength);
    assert.deepEqual(m.bytes.subarray(0, 111), req.subarray(0, 111));
    assert.deepEqual(m.bytes.subarray(111), req);
    const schema = splitIpc(req)[0]!;
    assert.ok(!schema.eos && 111 > schema.metaStart && 111 < schema.end, "the cut lands inside the schema flatbuffer");
  });

  test("are the first cases of every session transport", async () => {
    const req = await echoStringRequest();
    const cases = sessionRegressions("tcp", req, 5);
    assert.deepEqual(
      cases.map((c) => [c.index, c.mutator]),
      [
        [-1, "regression-a"],
        [-2, "regression-b"],
      ],
    );
    assert.ok(cases[0]!.input.kind === "session");
    assert.deepEqual(cases[0]!.input.writes[0], hugeMetadataCount(req).bytes);
  });
});

describe("the first campaign's findings", () => {
  test("are each a small, exact change to a real client request or conversation", async () => {
    const seeds = await loadSessionSeeds();
    const all = await findings();
    assert.equal(all.length, 7);
    for (const f of all) {
      const seed = seeds.find((s) => s.name === f.seedName)!.bytes;
      if (f.name === "input-stream-without-schema") {
        assert.ok(f.bytes.byteLength < seed.byteLength);
        continue;
      }
      assert.equal(f.bytes.byteLength, seed.byteLength, f.name);
      const changed = changedBytes(seed, f.bytes);
      assert.ok(changed.length >= 1 && changed.length <= 8, `${f.name}: ${changed.length} bytes changed`);
      assert.ok(changed.at(-1)! - changed[0]! < 8, `${f.name}: the change is one field`);
    }
  });

  test("become HTTP cases only where they are one request", async () => {
    const http = await findingCases("http", 1);
    const tcp = await findingCases("tcp", 1);
    assert.equal(tcp.length, 7);
    assert.deepEqual(
      http.map((c) => c.mutator),
      [
        "finding-schema-fields-count",
        "finding-record-batch-nodes-count",
        "finding-record-batch-buffers-count",
        "finding-decimal-field-typed-as-map",
      ],
    );
    assert.ok(tcp.every((c) => c.index <= -3));
  });
});

describe("the mutators", () => {
  const all = [
    bitflipAny,
    bitflipFlatbuffer,
    truncateBoundary,
    truncateWithin,
    countInflate,
    offsetCorrupt,
    alignedWord,
    oversizedLength,
    splice,
    randomBytes,
    messageShuffle,
    byteRun,
  ];

  test("are each listed with a weight", () => {
    assert.deepEqual(new Set(MUTATORS.map(([m]) => m)), new Set(all));
  });

  test("give the same bytes and description for the same seed", async () => {
    const seeds = await loadSessionSeeds();
    for (const m of all) {
      for (let i = 0; i < 20; i++) {
        const seed = seeds[i % seeds.length]!;
        const a = m(new Rng(9, i), seed.bytes, seeds);
        const b = m(new Rng(9, i), seed.bytes, seeds);
        assert.deepEqual(a, b, `${m.name} #${i}`);
      }
    }
  });

  test("almost always change the bytes, and never touch their input", async () => {
    const seeds = await loadSessionSeeds();
    let same = 0;
    for (let i = 0; i < 300; i++) {
      const seed = seeds[i % seeds.length]!;
      const before = seed.bytes.slice();
      const m = mutate(new Rng(3, i), seed.bytes, seeds);
      assert.deepEqual(seed.bytes, before);
      if (m.bytes.byteLength === seed.bytes.byteLength && changedBytes(m.bytes, seed.bytes).length === 0) same++;
    }
    assert.ok(same < 10, `${same} of 300 mutations left the bytes as they were`);
  });

  test("inflate a count the walker found to a larger value", async () => {
    const req = await echoStringRequest();
    for (let i = 0; i < 30; i++) {
      const m = countInflate(new Rng(11, i), req, [])!;
      const at = Number(/@(\d+)/.exec(m.desc)![1]);
      const p = allPoints(req).find((q) => q.at === at)!;
      assert.ok(p.kind === "vector-length" || p.kind === "string-length");
      assert.deepEqual(
        changedBytes(req, m.bytes).filter((x) => x < at || x >= at + 4),
        [],
      );
    }
  });

  test("truncate at or inside message boundaries to a strict prefix", async () => {
    const req = await echoStringRequest();
    for (let i = 0; i < 30; i++) {
      for (const t of [truncateBoundary, truncateWithin]) {
        const m = t(new Rng(5, i), req, [])!;
        assert.ok(m.bytes.byteLength > 0 && m.bytes.byteLength < req.byteLength);
        assert.deepEqual(m.bytes, req.subarray(0, m.bytes.byteLength));
      }
    }
  });
});

describe("fuzz cases", () => {
  test("are a pure function of the run seed, the transport and the index", async () => {
    const seeds = await loadSessionSeeds();
    for (let i = 0; i < 20; i++) {
      assert.equal(
        caseToJson(await sessionCase(77, "unix", i, seeds)),
        caseToJson(await sessionCase(77, "unix", i, seeds)),
      );
    }
    assert.notEqual(
      caseToJson(await sessionCase(77, "unix", 0, seeds)),
      caseToJson(await sessionCase(78, "unix", 0, seeds)),
    );
  });

  test("survive a JSON round trip, shared-memory segment images included", async () => {
    const seeds = await loadSessionSeeds();
    const session = await sessionCase(1, "ws", 3, seeds);
    assert.deepEqual(caseFromJson(caseToJson(session)), session);
    const shm = shmCase(1, 4);
    const back = caseFromJson(caseToJson(shm));
    assert.deepEqual(back, shm);
    assert.ok(back.input.kind === "shm" && back.input.segment.image.byteLength > 0);
  });

  test("split writes of two or three bytes never ask for more pieces than there are bytes", () => {
    const r = new Rng(3);
    for (const length of [2, 3]) {
      const bytes = r.bytes(length);
      for (let i = 0; i < 200; i++) {
        const pieces = splitWrites(r, bytes);
        assert.ok(pieces.length >= 1 && pieces.length <= length);
        assert.deepEqual(Buffer.concat(pieces), Buffer.from(bytes));
      }
    }
  });

  test("split writes back into the bytes they came from", () => {
    const r = new Rng(2);
    const bytes = r.bytes(500);
    for (let i = 0; i < 50; i++) {
      const pieces = splitWrites(r, bytes);
      assert.ok(pieces.length >= 1 && pieces.length <= 3);
      assert.deepEqual(Buffer.concat(pieces), Buffer.from(bytes));
    }
  });
});

describe("the hand-made compressed bodies", () => {
  test("a zstd frame of stored blocks decodes to the body", () => {
    const body = new Rng(4).bytes(300_000);
    assert.deepEqual(decompress(zstdStored(body)), body);
  });

  test("a zstd RLE bomb is four bytes per 128 KiB of zeros", () => {
    const bomb = zstdBomb(1024 * 1024);
    assert.equal(bomb.byteLength, 6 + 8 * 4);
    const out = decompress(bomb);
    assert.equal(out.byteLength, 1024 * 1024);
    assert.ok(out.every((b) => b === 0));
  });

  test("a gzip bomb is concatenated members that decode to the stated size", () => {
    const bomb = gzipBomb(3);
    assert.ok(bomb.byteLength < 16 * 1024);
    assert.equal(gunzipSync(bomb).byteLength, 3 * 1024 * 1024);
  });
});
