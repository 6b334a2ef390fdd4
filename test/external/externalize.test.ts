/**
 * A server externalizing through the fake storage protocol (FakeStorage against the test's own
 * fake storage server), read by quiver's client with an ExternalResolver, over a memory pipe and
 * over HTTP: unary results, stream headers, producer turns with their logs, exchange turns.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";
import { requestBatch } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { ExternalRef, publishExternal, serializeStream } from "../../src/external/externalize.js";
import { loopbackOnly } from "../../src/external/fetch.js";
import {
  LOCATION_KEY,
  LOCATION_SHA256_KEY,
  LOCATION_SOURCE_KEY,
  makePointerBatch,
} from "../../src/external/pointer.js";
import { ExternalResolver } from "../../src/external/resolve.js";
import { FakeStorage } from "../../src/external/storage.js";
import { batchFromRows, emptyBatch, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { listenHttp } from "../../src/transports/http/listen.js";
import { concatBytes, decodeStreamBytes, encodeStream } from "../../src/wire/ipc.js";
import type { LogRecord } from "../../src/wire/messages.js";
import { memoryClient, rejection } from "../client/helpers.js";
import { type FakeStorageServer, serveFakeStorage } from "../helpers/fake-storage.js";
import { silentEndpoint } from "../helpers/object-stores.js";

const Big = defineProtocol(
  "test.Big.v1",
  {},
  {
    echo: unary({ value: t.utf8() }, t.utf8()),
    published: unary({ value: t.utf8() }, t.utf8()),
    count: producer(
      { n: t.int64() },
      { output: { i: t.int64(), pad: t.utf8() }, header: { label: t.utf8() }, state: { i: t.int64(), n: t.int64() } },
    ),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64() } },
    ),
  },
);

let storage: FakeStorageServer;
before(async () => {
  storage = await serveFakeStorage();
});
after(() => storage.close());

function makeServer(thresholdBytes: number, compression?: "zstd" | "gzip", baseUrl = storage.baseUrl) {
  const backend = new FakeStorage(baseUrl);
  const refs = new Map<string, Promise<ExternalRef>>();
  return createServer({
    external: {
      storage: backend,
      thresholdBytes,
      fetch: { urlValidator: loopbackOnly, retryDelayMs: 1 },
      ...(compression ? { compression: { algorithm: compression } } : {}),
    },
    protocols: [
      bind(Big, {
        echo: ({ value }) => value,
        published: async ({ value }) => {
          let ref = refs.get(value);
          if (ref === undefined) {
            const fields = { result: t.utf8() };
            ref = publishExternal(batchFromRows(fields, [{ result: value }], undefined, schemaOf(fields)), backend);
            refs.set(value, ref);
          }
          return (await ref) as unknown as string;
        },
        count: {
          init: ({ n }) => ({ header: { label: "L".repeat(3000) }, state: { i: 0n, n } }),
          produce(state, out) {
            if (state.i >= state.n) return out.finish();
            out.clientLog("INFO", `row ${state.i}`);
            out.emit([{ i: state.i, pad: "p".repeat(3000) }]);
            state.i += 1n;
          },
        },
        scale: {
          init: ({ factor }) => ({ state: { factor } }),
          process(state, input, out) {
            out.emit(input.rows().map((r) => ({ x: r.x * state.factor })));
          },
        },
      }),
    ],
  });
}

const resolver = () => new ExternalResolver({ urlValidator: loopbackOnly });

async function exercise(api: ReturnType<typeof proxy<typeof Big>>, logs: LogRecord[]) {
  const before = storage.objects.size;
  assert.equal(await api.echo({ value: "small" }), "small");
  assert.equal(storage.objects.size, before, "below the threshold: inline");
  const big = "x".repeat(10_000);
  assert.equal(await api.echo({ value: big }), big);
  assert.equal(storage.objects.size, before + 1);
  const s = await api.count({ n: 3n });
  assert.equal(s.header.label, "L".repeat(3000));
  assert.deepEqual(
    (await s.toArray()).map((r) => r.i),
    [0n, 1n, 2n],
  );
  assert.deepEqual(
    logs.map((l) => l.message),
    ["row 0", "row 1", "row 2"],
  );
  const ex = await api.scale({ factor: 2 });
  const xs = Array.from({ length: 1000 }, (_, i) => ({ x: i }));
  assert.deepEqual(
    (await ex.exchange(xs)).map((r) => r.x),
    xs.map((r) => r.x * 2),
  );
  assert.deepEqual(await ex.exchange([{ x: 1 }, { x: 2 }]), [{ x: 2 }, { x: 4 }]);
  await ex.close();
  // the big echo, the header, three producer turns, the first exchange turn (the second, 16 bytes
  // of values, stays inline)
  assert.equal(storage.objects.size, before + 6);
  const published = storage.objects.size;
  assert.equal(await api.published({ value: "tiny" }), "tiny");
  assert.equal(await api.published({ value: "tiny" }), "tiny");
  assert.equal(storage.objects.size, published + 1, "an ExternalRef is published once");
}

test("over a memory pipe: every kind of answer externalized and resolved", async () => {
  const logs: LogRecord[] = [];
  const { client } = memoryClient(makeServer(1024), { external: resolver(), onLog: (r) => logs.push(r) });
  await exercise(proxy(client, Big), logs);
  await client.close();
});

test("over HTTP, with zstd objects: every kind of answer externalized and resolved", async () => {
  const server = makeServer(1024, "zstd");
  const listener = await listenHttp(server, { port: 0 });
  const logs: LogRecord[] = [];
  const client = connectHttp(`http://127.0.0.1:${listener.port}`, {
    external: resolver(),
    onLog: (r) => logs.push(r),
  });
  try {
    await exercise(proxy(client, Big), logs);
    const zstd = [...storage.objects.values()].filter((o) => o.encoding === "zstd");
    assert.ok(zstd.length > 0, "objects were uploaded with Content-Encoding: zstd");
  } finally {
    client.close();
    await server.close();
  }
});

test("the resolved batch names its source; a client without a resolver gets a protocol_error naming the option", async () => {
  const server = makeServer(1);
  const { client } = memoryClient(server, { external: resolver() });
  const batch = await client.unaryBatch(
    { protocol: Big.name, method: "echo" },
    batchFromRows({ value: t.utf8() }, [{ value: "hello" }]),
  );
  assert.match(batch.metadata.get(LOCATION_SOURCE_KEY) ?? "", /^http:\/\/127\.0\.0\.1:\d+\/download\//);
  await client.close();
  const bare = memoryClient(server).client;
  await assert.rejects(
    proxy(bare, Big).echo({ value: "hello" }),
    (e: unknown) =>
      e instanceof RpcError && e.kind === "protocol_error" && /external: new ExternalResolver/.test(e.message),
  );
  assert.equal(
    await proxy(bare, Big)
      .published({ value: "still in sync" })
      .catch(() => "failed"),
    "failed",
  );
  await bare.close();
});

test("an upload that fails answers the call with its error; the connection stays usable", async () => {
  const server = makeServer(1, undefined, "http://127.0.0.1:9");
  const { client } = memoryClient(server, { external: resolver() });
  const api = proxy(client, Big);
  // An error batch, not a broken connection: the second call is answered the same way.
  const answered = (e: unknown) => e instanceof RpcError && e.kind !== "transport_error";
  await assert.rejects(api.echo({ value: "x" }), answered);
  await assert.rejects(api.echo({ value: "y" }), answered);
  await client.close();
});

test("createServer checks the policy", () => {
  const storageOk = new FakeStorage("http://127.0.0.1:1");
  const Tiny = defineProtocol("test.Tiny.v1", {}, { noop: unary({}, null) });
  const protocols = [bind(Tiny, { noop: () => undefined })];
  assert.throws(
    () => createServer({ protocols, external: { storage: storageOk, thresholdBytes: -1 } }),
    /thresholdBytes/,
  );
  assert.throws(
    () =>
      createServer({
        protocols,
        external: { storage: storageOk, compression: { algorithm: "brotli" as never } },
      }),
    /algorithm/,
  );
  assert.throws(() => new ExternalRef(""), /non-empty/);
  assert.throws(() => new ExternalRef("https://x", "ABC"), /64 lowercase hex/);
});

test("the server resolves client-sent pointers on a byte stream: a request and an exchange input", async () => {
  const server = makeServer(1 << 30);
  const { client } = memoryClient(server, { external: resolver() });
  const echo = { protocol: Big.name, method: "echo" };
  // The request as the client would send it inline, uploaded; the pointer sent in its place.
  const params = batchFromRows({ value: t.utf8() }, [{ value: "from storage" }]);
  const object = serializeStream(params.schema, [requestBatch(params, echo)]);
  const url = storage.put(object);
  const digest = createHash("sha256").update(object).digest("hex");
  const pointerParams = emptyBatch(params.schema);
  const location = new Map([
    [LOCATION_KEY, url],
    [LOCATION_SHA256_KEY, digest],
  ]);
  const result = await client.unaryBatch(echo, pointerParams, location);
  assert.equal(result.getChild("result")!.get(0), "from storage");
  // A digest that does not match: the call's error, and the connection goes on.
  await assert.rejects(
    client.unaryBatch(echo, pointerParams, new Map([...location, [LOCATION_SHA256_KEY, "0".repeat(64)]])),
    (e: unknown) => e instanceof RpcError && /checksum mismatch/.test(e.message),
  );
  assert.equal(await proxy(client, Big).echo({ value: "inline" }), "inline");
  // An exchange input sent as a pointer.
  const stream = await client.openStream(
    { protocol: Big.name, method: "scale" },
    batchFromRows({ factor: t.float64() }, [{ factor: 10 }]),
    { hasHeader: false },
  );
  const input = batchFromRows({ x: t.float64() }, [{ x: 1.5 }, { x: 2 }]);
  const inputUrl = storage.put(serializeStream(input.schema, [input]));
  const out = await stream.send(makePointerBatch(input.schema, inputUrl));
  assert.deepEqual([...out!.getChild("x")!], [15, 20]);
  await stream.close();
  await client.close();
});

test("HTTP: __upload_url__/init vends method-bound URL pairs and the capabilities say so", async () => {
  const server = makeServer(1 << 30);
  const listener = await listenHttp(server, {
    port: 0,
    uploadUrls: new FakeStorage(storage.baseUrl),
    maxUploadBytes: 1 << 20,
  });
  const base = `http://127.0.0.1:${listener.port}`;
  try {
    const caps = await fetch(`${base}/health`, { method: "OPTIONS" });
    assert.equal(caps.headers.get("vgi-upload-url-support"), "true");
    assert.equal(caps.headers.get("vgi-max-upload-bytes"), String(1 << 20));
    assert.equal(caps.headers.get("vgi-externalization-enabled"), "true");
    const post = (method: string, count: bigint) =>
      fetch(`${base}/__upload_url__/init`, {
        method: "POST",
        headers: { "content-type": "application/vnd.apache.arrow.stream" },
        body: concatBytes(
          encodeStream(schemaOf({ count: t.int64() }), [
            requestBatch(batchFromRows({ count: t.int64() }, [{ count }]), { protocol: "", method }),
          ]),
        ) as Uint8Array<ArrayBuffer>,
      });
    const res = await post("__upload_url__", 2n);
    assert.equal(res.status, 200);
    const answer = decodeStreamBytes(new Uint8Array(await res.arrayBuffer()))!;
    const batch = answer.batches[0]!;
    assert.equal(batch.numRows, 2);
    const upload = String(batch.getChild("upload_url")!.get(0));
    const download = String(batch.getChild("download_url")!.get(0));
    assert.match(upload, /\/upload\//);
    assert.match(download, /\/download\//);
    assert.ok(Number(batch.getChild("expires_at")!.get(0)) > Date.now());
    const put = await fetch(upload, { method: "PUT", body: "payload" });
    assert.equal(put.status, 204);
    assert.equal(await (await fetch(download)).text(), "payload");
    assert.equal((await post("something_else", 1n)).status, 400);
  } finally {
    await server.close();
  }
});

test("HTTP client uploads: a PUT to a store that stops answering fails the call after uploads.timeoutMs", {
  timeout: 30_000,
}, async () => {
  const silent = await silentEndpoint();
  const server = makeServer(1 << 30);
  const listener = await listenHttp(server, {
    port: 0,
    maxRequestBytes: 4096,
    uploadUrls: {
      uploadUrl: async () => ({
        uploadUrl: `${silent.url}/put`,
        downloadUrl: `${silent.url}/get`,
        expiresAt: new Date(Date.now() + 60_000),
      }),
    },
  });
  const client = connectHttp(`http://127.0.0.1:${listener.port}`, {
    external: resolver(),
    uploads: { urlValidator: loopbackOnly, timeoutMs: 300 },
  });
  try {
    await assert.rejects(
      proxy(client, Big).echo({ value: "q".repeat(20_000) }),
      (e: unknown) =>
        e instanceof RpcError && e.kind === "transport_error" && /no answer within 300 ms/.test(e.message),
    );
  } finally {
    client.close();
    await server.close();
    await silent.close();
  }
});

test("HTTP: maxExternalizedResponseBytes refuses an upload that would pass it, and says so", async () => {
  const server = makeServer(1024);
  const listener = await listenHttp(server, { port: 0, maxExternalizedResponseBytes: 8192 });
  const base = `http://127.0.0.1:${listener.port}`;
  const client = connectHttp(base, { external: resolver() });
  try {
    const caps = await fetch(`${base}/health`, { method: "OPTIONS" });
    assert.equal(caps.headers.get("vgi-max-externalized-response-bytes"), "8192");
    const api = proxy(client, Big);
    const before = storage.objects.size;
    await assert.rejects(
      api.echo({ value: "x".repeat(100_000) }),
      (e: unknown) =>
        e instanceof RpcError && e.type === "RuntimeError" && /exceeds max_externalized_response_bytes/.test(e.message),
    );
    assert.equal(storage.objects.size, before, "refused before the upload");
    // Under the cap it still externalizes; each request has its own budget.
    assert.equal(await api.echo({ value: "y".repeat(4000) }), "y".repeat(4000));
    assert.equal(await api.echo({ value: "z".repeat(4000) }), "z".repeat(4000));
    assert.equal(storage.objects.size, before + 2);
  } finally {
    client.close();
    await server.close();
  }
});

test("HTTP client uploads: a request over the server's cap goes up through a vended URL, a pointer in its place", async () => {
  const server = makeServer(1 << 30);
  const listener = await listenHttp(server, {
    port: 0,
    maxRequestBytes: 4096,
    uploadUrls: new FakeStorage(storage.baseUrl),
  });
  const base = `http://127.0.0.1:${listener.port}`;
  const big = "q".repeat(20_000);
  const plain = connectHttp(base, { external: resolver() });
  const uploading = connectHttp(base, { external: resolver(), uploads: { urlValidator: loopbackOnly } });
  try {
    await assert.rejects(proxy(plain, Big).echo({ value: big }), (e: unknown) => e instanceof RpcError);
    const before = storage.objects.size;
    assert.equal(await proxy(uploading, Big).echo({ value: big }), big);
    assert.equal(storage.objects.size, before + 1, "the request was uploaded");
    // An exchange input over the cap too: its state tokens ride on the pointer.
    const ex = await proxy(uploading, Big).scale({ factor: 2 });
    const xs = Array.from({ length: 1000 }, (_, i) => ({ x: i }));
    assert.deepEqual(
      (await ex.exchange(xs)).map((r) => r.x),
      xs.map((r) => r.x * 2),
    );
    await ex.close();
    // A vended URL the validator refuses fails the call before anything is PUT.
    const strict = connectHttp(base, { external: resolver(), uploads: {} });
    const count = storage.objects.size;
    await assert.rejects(proxy(strict, Big).echo({ value: big }), /upload URL rejected/);
    assert.equal(storage.objects.size, count);
    strict.close();
  } finally {
    plain.close();
    uploading.close();
    await server.close();
  }
});

test("the call's signal reaches ExternalStorage.upload and aborts when the call's deadline passes (pipe unary, HTTP exchange turn)", {
  timeout: 30_000,
}, async () => {
  const signals: AbortSignal[] = [];
  const hanging = {
    upload: (_data: Uint8Array, _schema: unknown, opts: { readonly signal?: AbortSignal }) => {
      if (opts.signal !== undefined) signals.push(opts.signal);
      return new Promise<string>(() => {});
    },
  };
  const server = createServer({
    callTimeoutMs: 300,
    external: { storage: hanging, thresholdBytes: 1024, fetch: { urlValidator: loopbackOnly } },
    protocols: [
      bind(Big, {
        echo: ({ value }) => value,
        published: ({ value }) => value,
        count: { init: () => ({ header: { label: "" }, state: { i: 0n, n: 0n } }), produce: (_s, out) => out.finish() },
        scale: {
          init: ({ factor }) => ({ state: { factor } }),
          process(_state, input, out) {
            out.emit(input.rows().map((r) => ({ x: r.x })));
          },
        },
      }),
    ],
  });
  const { client } = memoryClient(server);
  const listener = await listenHttp(server, { port: 0 });
  const http = connectHttp(`http://127.0.0.1:${listener.port}`, { external: resolver() });
  try {
    const err = await rejection(proxy(client, Big).echo({ value: "y".repeat(5_000) }));
    assert.equal(err.kind, "deadline_exceeded");
    assert.equal(signals.length, 1);
    assert.equal(signals[0]!.aborted, true);
    const session = await proxy(http, Big).scale({ factor: 1 });
    const xs = Array.from({ length: 1_000 }, (_, i) => ({ x: i }));
    const turn = await rejection(session.exchange(xs));
    assert.equal(turn.kind, "deadline_exceeded");
    assert.equal(signals.length, 2);
    assert.equal(signals[1]!.aborted, true);
  } finally {
    http.close();
    await client.close();
    await listener.close();
  }
});
