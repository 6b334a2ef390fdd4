/**
 * Large HTTP request bodies arriving in pieces, with their length declared or chunked: the call
 * sees the same bytes either way, and a client leaving half-way does not stop the server.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { requestBatch } from "../../src/client/client.js";
import { batchFromRows } from "../../src/protocol/batch.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { type HttpListener, listenHttp } from "../../src/transports/http/index.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";

const P = "quiver.HttpLargeBody.v1";
const ARROW = "application/vnd.apache.arrow.stream";
const Proto = defineProtocol(P, { version: "1.0.0" }, { digest: unary({ data: t.binary() }, t.utf8()) });

/** Length and a position-weighted checksum of `data`: a byte out of place changes it. */
function digest(data: Uint8Array): string {
  let sum = 0;
  for (let i = 0; i < data.byteLength; i++) sum = (sum * 31 + data[i]! + i) % 1_000_000_007;
  return `${data.byteLength}:${sum}`;
}

function requestBody(data: Uint8Array): Uint8Array {
  const params = batchFromRows(Proto.methods.digest.params, [{ data }]);
  const batch = requestBatch(params, { protocol: P, protocolVersion: "1.0.0", method: "digest" });
  return concatBytes(encodeStream(batch.schema, [batch]));
}

/** The utf8 result of a unary answer body. */
async function resultOf(body: Uint8Array): Promise<string> {
  async function* once() {
    yield body;
  }
  const framer = new MessageFramer(once());
  const decoder = new IpcStreamDecoder();
  for (;;) {
    const frame = await framer.next();
    assert.ok(frame !== "end" && frame !== "eos", "the answer has a result batch");
    const out = decoder.accept(frame);
    if (out !== null && "numRows" in out && out.numRows > 0) return String(out.getChildAt(0)!.get(0));
  }
}

/** POSTs `body` in 64 KiB writes, chunked (no Content-Length) or with its length declared. */
function postInPieces(url: string, body: Uint8Array, chunked: boolean): Promise<{ status: number; bytes: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const q = request(url, {
      method: "POST",
      headers: {
        "content-type": ARROW,
        ...(chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(body.byteLength) }),
      },
      timeout: 10_000,
    });
    q.on("response", (res) => {
      const parts: Uint8Array[] = [];
      res.on("data", (d: Uint8Array) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes: concatBytes(parts) }));
      res.on("error", reject);
    });
    q.on("error", reject);
    q.on("timeout", () => q.destroy(new Error("timeout")));
    for (let at = 0; at < body.byteLength; at += 65536) q.write(body.subarray(at, at + 65536));
    q.end();
  });
}

describe("HTTP large request bodies", () => {
  let server: HttpListener;
  before(async () => {
    server = await listenHttp(createServer({ protocols: [bind(Proto, { digest: ({ data }) => digest(data) })] }));
  });
  after(async () => {
    await server.close();
  });

  // 3 MiB: over the size that is read into pooled memory.
  const data = new Uint8Array(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.byteLength; i++) data[i] = (i * 7 + (i >> 11)) & 255;
  const body = requestBody(data);

  it("hands the call the same bytes whether the body's length is declared or not", async () => {
    for (const chunked of [false, true]) {
      const r = await postInPieces(`${server.url}/${P}/digest`, body, chunked);
      assert.equal(r.status, 200);
      assert.equal(await resultOf(r.bytes), digest(data), chunked ? "chunked" : "with Content-Length");
    }
  });

  it("keeps serving after a client goes away half-way through a declared body", async () => {
    await new Promise<void>((resolve) => {
      const q = request(`${server.url}/${P}/digest`, {
        method: "POST",
        headers: { "content-type": ARROW, "content-length": String(body.byteLength) },
        timeout: 10_000,
      });
      q.on("error", () => resolve());
      q.on("close", () => resolve());
      q.write(body.subarray(0, body.byteLength >> 1), () => q.destroy());
    });
    const r = await postInPieces(`${server.url}/${P}/digest`, body, false);
    assert.equal(r.status, 200);
    assert.equal(await resultOf(r.bytes), digest(data));
  });
});
