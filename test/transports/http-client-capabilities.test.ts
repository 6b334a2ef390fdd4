/**
 * The HTTP client's capabilities query and request compression: what `capabilities()` reads off
 * `OPTIONS /health`, and request bodies gzipped once the server said it decodes gzip.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";

const Echo = defineProtocol("test.Capabilities.v1", {}, { size: unary({ text: t.utf8() }, t.int64()) });
const server = () => createServer({ protocols: [bind(Echo, { size: ({ text }) => BigInt(text.length) })] });

describe("HTTP client capabilities and request compression", () => {
  it("reads the server's capabilities from OPTIONS /health", async () => {
    const listener = await listenHttp(server(), { maxRequestBytes: 1_000_000, maxResponseBytes: 70_000 });
    const client = connectHttp(listener.url);
    try {
      const caps = await client.capabilities();
      assert.equal(caps.maxRequestBytes, 1_000_000);
      assert.equal(caps.maxResponseBytes, 70_000);
      assert.equal(caps.acceptsResponseBudget, true);
      assert.ok(caps.supportedEncodings.includes("gzip"), String(caps.supportedEncodings));
      assert.equal(caps.externalizationEnabled, false);
      assert.equal(caps.uploadUrlSupport, false);
      assert.equal(caps.stickyEnabled, false);
      assert.equal(caps.proxyProofRequired, false);
      assert.equal(caps.maxAgeSeconds, 300);
    } finally {
      await client.close();
      await listener.close();
    }
  });

  it("gzips large request bodies once the server said it decodes gzip, and only those", async () => {
    const listener = await listenHttp(server());
    const sent: { encoding: string | null; bytes: number }[] = [];
    const recording: typeof fetch = async (input, init) => {
      const headers = new Headers(init?.headers);
      const body = init?.body;
      const bytes = body instanceof Uint8Array ? body.byteLength : body instanceof Blob ? body.size : 0;
      sent.push({ encoding: headers.get("content-encoding"), bytes });
      return fetch(input, init);
    };
    const client = connectHttp(listener.url, { fetch: recording, compressRequests: { minBytes: 10_000 } });
    const echo = proxy(client, Echo);
    const big = "abc".repeat(100_000);
    try {
      assert.equal(await echo.size({ text: big }), 300_000n); // the server's encodings are not known yet
      assert.equal(await echo.size({ text: big }), 300_000n);
      assert.equal(await echo.size({ text: "small" }), 5n);
      assert.deepEqual(
        sent.map((s) => s.encoding),
        [null, "gzip", null],
      );
      assert.ok(sent[1]!.bytes < sent[0]!.bytes / 10, `gzipped ${sent[1]!.bytes} of ${sent[0]!.bytes}`);
    } finally {
      await client.close();
      await listener.close();
    }
    assert.throws(() => connectHttp("http://127.0.0.1:9", { compressRequests: { minBytes: -1 } }), /minBytes/);
  });
});
