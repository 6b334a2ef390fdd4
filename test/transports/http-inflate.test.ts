/**
 * Decoding compressed request bodies under the cap: exactly the cap is accepted and a byte more
 * refused, for gzip and zstd, in one frame or several, sent whole or in pieces; zstd frames are
 * judged by their headers before they are decoded; bombs are refused with 413 while other
 * connections keep being served. No timings are asserted (the bomb test checks an ordering).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { Zstd } from "@hpcc-js/wasm-zstd";
import { DecompressionLimitExceeded, inflateBody } from "../../src/codec/inflate.js";
import { batchFromRows } from "../../src/protocol/batch.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { type HttpListener, listenHttp } from "../../src/transports/http/index.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import {
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
} from "../../src/wire/keys.js";

const P = "quiver.HttpInflateTest.v1";
const ARROW = "application/vnd.apache.arrow.stream";
const KiB = 1024;
const MiB = 1024 * KiB;

const Proto = defineProtocol(P, { version: "1.0.0" }, { add: unary({ a: t.float64(), b: t.float64() }, t.float64()) });

function makeServer(): RpcServer {
  return createServer({ protocols: [bind(Proto, { add: ({ a, b }) => a + b })] });
}

const addBody = (() => {
  const md = new Map([
    [METHOD_KEY, "add"],
    [REQUEST_VERSION_KEY, REQUEST_VERSION],
    [PROTOCOL_KEY, P],
    [PROTOCOL_VERSION_KEY, "1.0.0"],
  ]);
  const batch = batchFromRows(Proto.methods.add.params, [{ a: 1, b: 2 }], md);
  return concatBytes(encodeStream(batch.schema, [batch]));
})();

// ---------------------------------------------------------------------------------------------
// Hand-built zstd frames (RFC 8878): raw and RLE blocks need no compressor.

/** Window descriptor byte for 2^log bytes. */
const windowDescriptor = (log: number) => (log - 10) << 3;

function blockHeader(type: 0 | 1 | 2, size: number, last: boolean): Uint8Array {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0);
  return new Uint8Array([h & 0xff, (h >>> 8) & 0xff, (h >>> 16) & 0xff]);
}

/** A frame holding `data` in raw blocks: single-segment with its size declared, or with a 2^17 window and none. */
function rawFrame(data: Uint8Array, declare: boolean): Uint8Array {
  const size = data.byteLength;
  const head = declare
    ? [0x28, 0xb5, 0x2f, 0xfd, 0xa0, size & 0xff, (size >>> 8) & 0xff, (size >>> 16) & 0xff, (size >>> 24) & 0xff]
    : [0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor(17)];
  const out: Uint8Array[] = [new Uint8Array(head)];
  const MAX = 128 * KiB;
  let at = 0;
  do {
    const chunk = data.subarray(at, Math.min(size, at + MAX));
    at += chunk.byteLength;
    out.push(blockHeader(0, chunk.byteLength, at >= size), chunk);
  } while (at < size);
  return concatBytes(out);
}

/** A frame of `blocks` RLE blocks of `size` bytes each, window 2^windowLog, no content size. */
function rleFrame(blocks: number, size: number, windowLog: number): Uint8Array {
  const out: Uint8Array[] = [new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor(windowLog)])];
  for (let i = 0; i < blocks; i++) out.push(blockHeader(1, size, i === blocks - 1), new Uint8Array([7]));
  return concatBytes(out);
}

/** A single-segment frame header declaring `size` bytes (8-byte field), then one empty raw block. */
function declaringFrame(size: number): Uint8Array {
  const head = [0x28, 0xb5, 0x2f, 0xfd, 0xe0];
  let v = size;
  for (let i = 0; i < 8; i++) {
    head.push(v % 256);
    v = Math.floor(v / 256);
  }
  return concatBytes([new Uint8Array(head), blockHeader(0, 0, true)]);
}

const split = (data: Uint8Array, parts: number): Uint8Array[] => {
  const step = Math.ceil(data.byteLength / parts);
  return Array.from({ length: parts }, (_, i) => data.subarray(i * step, (i + 1) * step));
};

const limits = (maxBytes: number | null, maxZstdWindowBytes = 8 * MiB) => ({ maxBytes, maxZstdWindowBytes });

describe("inflateBody", () => {
  let zstd: Zstd;
  before(async () => {
    zstd = await Zstd.load();
  });

  // Over a MiB, so the decoded output also goes through the pooled slabs.
  const payload = new Uint8Array(2 * MiB + 300 * KiB + 3).map((_, i) => (i * 7) % 251);
  const encodings: [string, "gzip" | "zstd", () => Uint8Array][] = [
    ["gzip, one member", "gzip", () => gzipSync(payload)],
    ["gzip, three members", "gzip", () => concatBytes(split(payload, 3).map((p) => gzipSync(p)))],
    ["zstd, one frame declaring its size", "zstd", () => zstd.compress(payload, 3)],
    ["zstd, raw blocks with no declared size", "zstd", () => rawFrame(payload, false)],
    ["zstd, three frames", "zstd", () => concatBytes(split(payload, 3).map((p) => rawFrame(p, true)))],
  ];

  for (const [name, coding, encode] of encodings) {
    it(`accepts a body decoding to exactly the cap and refuses it one byte under (${name})`, async () => {
      const encoded = encode();
      assert.deepEqual(await inflateBody(coding, encoded, limits(payload.byteLength)), payload);
      await assert.rejects(inflateBody(coding, encoded, limits(payload.byteLength - 1)), DecompressionLimitExceeded);
      assert.deepEqual(await inflateBody(coding, encoded, limits(null)), payload);
    });
  }

  it("refuses a zstd frame that declares a content size over the cap before decoding it", async () => {
    // 2^40 bytes declared in a single-segment frame: fzstd would size its window by it.
    await assert.rejects(inflateBody("zstd", declaringFrame(2 ** 40), limits(MiB)), (err: Error) => {
      assert.ok(err instanceof DecompressionLimitExceeded);
      assert.match(err.message, /declares 1099511627776 bytes/);
      return true;
    });
    // Declared sizes add up over the frames of one body.
    const two = concatBytes([rawFrame(new Uint8Array(600 * KiB), true), rawFrame(new Uint8Array(600 * KiB), true)]);
    await assert.rejects(inflateBody("zstd", two, limits(MiB)), /declares/);
  });

  it("refuses a zstd frame that asks for a window over maxZstdWindowBytes, whatever the cap", async () => {
    const frame = rleFrame(1, 10, 24); // a 16 MiB window
    await assert.rejects(inflateBody("zstd", frame, limits(null)), (err: Error) => {
      assert.ok(!(err instanceof DecompressionLimitExceeded));
      assert.match(err.message, /16777216-byte window/);
      return true;
    });
    assert.equal((await inflateBody("zstd", frame, limits(null, 16 * MiB))).byteLength, 10);
    // A single-segment frame's window is its declared size.
    await assert.rejects(inflateBody("zstd", declaringFrame(9 * MiB), limits(null)), /9437184-byte window/);
  });

  it("refuses tiny zstd blocks that would cost more to decode than a body at the cap, and accepts the cap in full blocks", async () => {
    const cap = MiB;
    // Eight full 128 KiB blocks at an 8 MiB window: the cap exactly.
    assert.equal((await inflateBody("zstd", rleFrame(8, 128 * KiB, 23), limits(cap))).byteLength, cap);
    // Forty one-byte blocks, each moving fzstd's whole 8 MiB window: 40 bytes out, refused.
    await assert.rejects(inflateBody("zstd", rleFrame(40, 1, 23), limits(cap)), (err: Error) => {
      assert.ok(err instanceof DecompressionLimitExceeded);
      assert.match(err.message, /costs more to decode/);
      return true;
    });
    // The same blocks at a 1 KiB window cost little.
    assert.equal((await inflateBody("zstd", rleFrame(40, 1, 10), limits(cap))).byteLength, 40);
  });

  it("refuses truncated and malformed zstd bodies as corrupt, not as too large", async () => {
    const frame = rawFrame(payload, true);
    for (const bad of [
      frame.subarray(0, frame.byteLength - 1),
      frame.subarray(0, 7),
      concatBytes([frame, new Uint8Array([1, 2, 3, 4, 5])]),
      new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x08, 0, 0, 0]), // reserved bit
      concatBytes([new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor(10)]), blockHeader(0, 2048, true)]),
    ]) {
      await assert.rejects(inflateBody("zstd", bad, limits(4 * MiB)), (err: Error) => {
        assert.ok(!(err instanceof DecompressionLimitExceeded), err.message);
        return true;
      });
    }
    await assert.rejects(inflateBody("gzip", gzipSync(payload).subarray(0, 100), limits(4 * MiB)), (err: Error) => {
      assert.ok(!(err instanceof DecompressionLimitExceeded), err.message);
      return true;
    });
  });
});

// ---------------------------------------------------------------------------------------------

/** Posts `pieces` as one request body: with a Content-Length when whole, chunked otherwise. */
function post(
  url: string,
  pieces: readonly Uint8Array[],
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const whole = pieces.length === 1;
    const q = request(url, {
      method: "POST",
      headers: {
        "content-type": ARROW,
        ...(whole ? { "content-length": String(pieces[0]!.byteLength) } : { "transfer-encoding": "chunked" }),
        ...headers,
      },
      timeout: 30_000,
    });
    q.on("response", (res) => {
      let body = "";
      res.setEncoding("latin1");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    q.on("error", reject);
    q.on("timeout", () => q.destroy(new Error("timeout")));
    for (const p of pieces) q.write(p);
    q.end();
  });
}

describe("HTTP request decompression", { timeout: 60_000 }, () => {
  let atCap: HttpListener;
  let underCap: HttpListener;
  let defaults: HttpListener;
  let zstd: Zstd;

  before(async () => {
    zstd = await Zstd.load();
    atCap = await listenHttp(makeServer(), { maxRequestBytes: addBody.byteLength });
    underCap = await listenHttp(makeServer(), { maxRequestBytes: addBody.byteLength - 1 });
    defaults = await listenHttp(makeServer());
  });
  after(async () => {
    await Promise.all([atCap, underCap, defaults].map((l) => l.close()));
  });

  for (const [coding, encode] of [
    ["gzip", (b: Uint8Array) => new Uint8Array(gzipSync(b))],
    ["zstd", (b: Uint8Array) => zstd.compress(b, 3)],
  ] as const) {
    for (const [how, pieces] of [
      ["whole", 1],
      ["in pieces", 5],
    ] as const) {
      it(`accepts a ${coding} body decoding to exactly max_request_bytes and refuses one byte more, sent ${how}`, async () => {
        const encoded = encode(addBody);
        const parts = pieces === 1 ? [encoded] : split(encoded, pieces);
        const ok = await post(`${atCap.url}/${P}/add`, parts, { "content-encoding": coding });
        assert.equal(ok.status, 200, ok.body);
        const refused = await post(`${underCap.url}/${P}/add`, parts, { "content-encoding": coding });
        assert.equal(refused.status, 413);
        assert.match(refused.body, /max_request_bytes/);
      });
    }
  }

  it("answers a zstd window over maxZstdWindowBytes with 400", async () => {
    const r = await post(`${defaults.url}/${P}/add`, [rleFrame(1, 10, 24)], { "content-encoding": "zstd" });
    assert.equal(r.status, 400);
    assert.match(r.body, /window/);
  });

  for (const [coding, bomb] of [
    ["gzip", () => new Uint8Array(gzipSync(new Uint8Array(257 * MiB), { level: 9 }))],
    // 2100 RLE blocks of 128 KiB at an 8 MiB window, no content size: 8 KiB inflating to 262 MiB.
    ["zstd", () => rleFrame(2100, 128 * KiB, 23)],
  ] as const) {
    it(`refuses a ${coding} bomb with 413 and serves another connection's calls meanwhile`, async () => {
      const body = bomb();
      const events: string[] = [];
      const refused = post(`${defaults.url}/${P}/add`, [body], { "content-encoding": coding }).then((r) => {
        events.push("bomb");
        return r;
      });
      for (let i = 0; i < 3; i++) {
        const r = await post(`${defaults.url}/${P}/add`, [addBody], {});
        assert.equal(r.status, 200);
        events.push("call");
      }
      const r = await refused;
      assert.equal(r.status, 413);
      assert.deepEqual(events, ["call", "call", "call", "bomb"]);
    });
  }
});
