/**
 * The HTTP transport end to end over real sockets (port 0): unary calls, producer and exchange
 * streams continued from sealed tokens (also across two instances sharing a key), token tamper and
 * expiry, size caps, content type and coding, authentication, cookies and transport metadata.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import type { RecordBatch, Schema } from "apache-arrow";
import { decompress as zstdDecompress } from "fzstd";
import { AuthFailure, authenticated, bearerAuthenticateStatic, requireAuthenticated } from "../../src/auth/index.js";
import { ValueError } from "../../src/errors.js";
import { batchFromRows, rowsFromBatch } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { type FieldSpecs, type RowOf, t } from "../../src/protocol/types.js";
import { admit, Call, runUnary } from "../../src/server/dispatch.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { coreOf } from "../../src/server/types.js";
import { type HttpListener, listenHttp } from "../../src/transports/http/index.js";
import { EMPTY_SCHEMA, emptyBatch } from "../../src/wire/batches.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";
import {
  CALL_STATE_KEY,
  CANCEL_KEY,
  ERROR_CODE_KEY,
  ERROR_KIND_KEY,
  LOG_EXTRA_KEY,
  LOG_LEVEL_KEY,
  LOG_MESSAGE_KEY,
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
  STREAM_STATE_KEY,
} from "../../src/wire/keys.js";

const P = "quiver.HttpTest.v1";
const ARROW = "application/vnd.apache.arrow.stream";

const Proto = defineProtocol(
  P,
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    fail: unary({}, t.utf8()),
    whoami: unary({}, t.utf8()),
    meta: unary({}, t.utf8()),
    set_cookies: unary({}, t.utf8()),
    blob: unary({ n: t.int64() }, t.binary()),
    range: producer(
      { stop: t.int64() },
      { output: { n: t.int64() }, header: { total: t.int64() }, state: { next: t.int64(), stop: t.int64() } },
    ),
    cookie_stream: producer({}, { output: { n: t.int64() }, header: null, state: {} }),
    mean: exchange(
      {},
      {
        input: { x: t.float64() },
        output: { mean: t.float64(), count: t.int64() },
        state: { sum: t.float64(), count: t.int64() },
      },
    ),
  },
);

function makeServer(opts: { includeTracebacks?: boolean } = {}): RpcServer {
  return createServer({
    ...opts,
    protocols: [
      bind(Proto, {
        add: ({ a, b }) => a + b,
        fail: () => {
          throw new ValueError("deliberate failure");
        },
        whoami: (_p, ctx) => `${requireAuthenticated(ctx).principal}@${ctx.auth.domain}`,
        meta: (_p, ctx) =>
          JSON.stringify({
            remote_addr: ctx.transportMetadata.remote_addr,
            user_agent: ctx.transportMetadata.user_agent,
            transport: ctx.transport,
            session: ctx.cookies.get("session") ?? null,
          }),
        set_cookies: (_p, ctx) => {
          ctx.setCookie("session", "abc123", {
            expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)),
            maxAge: 3600,
            domain: "example.com",
            path: "/app",
            secure: true,
            sameSite: "Strict",
            partitioned: true,
          });
          ctx.setCookie("plain", "v");
          ctx.deleteCookie("old", { path: "/" });
          return "ok";
        },
        blob: ({ n }) => new Uint8Array(Number(n)),
        range: {
          init: ({ stop }) => ({ header: { total: stop }, state: { next: 0n, stop } }),
          produce: (state, out) => {
            if (state.next >= state.stop) return out.finish();
            out.emit([{ n: state.next }]);
            state.next += 1n;
          },
        },
        cookie_stream: {
          init: (_p, ctx) => {
            ctx.setCookie("nope", "1");
            return { state: {} };
          },
          produce: (_s, out) => out.finish(),
        },
        mean: {
          init: () => ({ state: { sum: 0, count: 0n } }),
          process: (state, input, out) => {
            for (const x of input.column("x")) {
              state.sum += x;
              state.count += 1n;
            }
            out.emit([{ mean: state.sum / Number(state.count), count: state.count }]);
          },
        },
      }),
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// A minimal raw HTTP client for the tests

function requestBody<F extends FieldSpecs>(method: string, fields: F, row: RowOf<F>): Uint8Array {
  const md = new Map([
    [METHOD_KEY, method],
    [REQUEST_VERSION_KEY, REQUEST_VERSION],
    [PROTOCOL_KEY, P],
    [PROTOCOL_VERSION_KEY, "1.0.0"],
  ]);
  const batch = batchFromRows(fields, [row], md);
  return concatBytes(encodeStream(batch.schema, [batch]));
}

function inputBody(batch: RecordBatch): Uint8Array {
  return concatBytes(encodeStream(batch.schema, [batch]));
}

/** Every IPC stream in a body, in order. */
async function decodeStreams(body: Uint8Array): Promise<{ schema: Schema; batches: RecordBatch[] }[]> {
  async function* once() {
    yield body;
  }
  const framer = new MessageFramer(once());
  const out: { schema: Schema; batches: RecordBatch[] }[] = [];
  let decoder = new IpcStreamDecoder();
  let batches: RecordBatch[] = [];
  for (;;) {
    const frame = await framer.next();
    if (frame === "end") break;
    if (frame === "eos") {
      if (decoder.schema) out.push({ schema: decoder.schema, batches });
      decoder = new IpcStreamDecoder();
      batches = [];
      continue;
    }
    const r = decoder.accept(frame);
    if (r !== null && "numRows" in r) batches.push(r);
  }
  return out;
}

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly bytes: Uint8Array;
}

async function post(url: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method: "POST",
    body: new Uint8Array(body),
    headers: { "content-type": ARROW, ...headers },
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, headers: res.headers, bytes: new Uint8Array(await res.arrayBuffer()) };
}

function errorOf(batches: readonly RecordBatch[]): { message: string; kind: string } | null {
  for (const b of batches) {
    if (b.metadata.get(LOG_LEVEL_KEY) === "EXCEPTION") {
      return { message: b.metadata.get(LOG_MESSAGE_KEY) ?? "", kind: b.metadata.get(ERROR_KIND_KEY) ?? "" };
    }
  }
  return null;
}

function dataOf(batches: readonly RecordBatch[]): RecordBatch[] {
  return batches.filter((b) => b.numRows > 0 || (b.metadata.size > 0 && !b.metadata.has(LOG_LEVEL_KEY)));
}

const tokenBatch = (batches: readonly RecordBatch[]) => batches.find((b) => b.metadata.has(STREAM_STATE_KEY));

/** A zstd frame holding `data` in raw blocks (valid zstd; no compressor needed on Node 20). */
function zstdRawFrame(data: Uint8Array): Uint8Array {
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0xa0];
  const size = data.byteLength;
  parts.push(size & 0xff, (size >>> 8) & 0xff, (size >>> 16) & 0xff, (size >>> 24) & 0xff);
  const out: Uint8Array[] = [new Uint8Array(parts)];
  const MAX = 128 * 1024;
  for (let at = 0; at < size || at === 0; at += MAX) {
    const chunk = data.subarray(at, Math.min(size, at + MAX));
    const last = at + MAX >= size ? 1 : 0;
    const header = (chunk.byteLength << 3) | last;
    out.push(new Uint8Array([header & 0xff, (header >>> 8) & 0xff, (header >>> 16) & 0xff]), chunk);
    if (size === 0) break;
  }
  return concatBytes(out);
}

// ---------------------------------------------------------------------------------------------

describe("HTTP transport", { timeout: 60_000 }, () => {
  const key = new Uint8Array(32).fill(7);
  let a: HttpListener;
  let b: HttpListener;
  let other: HttpListener;
  let capped: HttpListener;
  let authed: HttpListener;
  let shortTtl: HttpListener;
  let traced: HttpListener;

  before(async () => {
    traced = await listenHttp(makeServer({ includeTracebacks: true }));
    a = await listenHttp(makeServer(), { tokenKey: key });
    b = await listenHttp(makeServer(), { tokenKey: key });
    other = await listenHttp(makeServer(), { tokenKey: new Uint8Array(32).fill(9) });
    capped = await listenHttp(makeServer(), { maxRequestBytes: 1024, maxResponseBytes: 65536 });
    shortTtl = await listenHttp(makeServer(), { tokenKey: key, tokenTtlSeconds: 1 });
    authed = await listenHttp(makeServer(), {
      authenticate: bearerAuthenticateStatic({ tokens: { s3cret: authenticated("bearer", "alice") } }),
    });
  });
  after(async () => {
    await Promise.all([a, b, other, capped, authed, shortTtl, traced].map((l) => l.close()));
  });

  const add = (l: HttpListener, headers: Record<string, string> = {}, body?: Uint8Array) =>
    post(`${l.url}/${P}/add`, body ?? requestBody("add", Proto.methods.add.params, { a: 1, b: 2 }), headers);

  it("answers a unary call with the capability headers and the request id", async () => {
    const r = await add(a, { "x-request-id": "req-1" });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), ARROW);
    assert.equal(r.headers.get("x-request-id"), "req-1");
    assert.equal(r.headers.get("vgi-accept-max-response-bytes-support"), "true");
    assert.ok(r.headers.get("vgi-supported-encodings")?.includes("gzip"));
    assert.equal(r.headers.get("x-vgi-rpc-error"), null);
    const [stream] = await decodeStreams(r.bytes);
    assert.deepEqual(rowsFromBatch({ result: t.float64() }, stream!.batches[0]!), [{ result: 3 }]);
  });

  it("answers a method error with 200 and X-VGI-RPC-Error", async () => {
    const r = await post(`${a.url}/${P}/fail`, requestBody("fail", {}, {}));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-vgi-rpc-error"), "true");
    const [stream] = await decodeStreams(r.bytes);
    assert.match(errorOf(stream!.batches)!.message, /deliberate failure/);
  });

  it("sends an anonymous caller no traceback by default, and one when the server opts in", async () => {
    const extraOf = async (l: HttpListener) => {
      const r = await post(`${l.url}/${P}/fail`, requestBody("fail", {}, {}));
      assert.equal(r.status, 200);
      const [stream] = await decodeStreams(r.bytes);
      const error = stream!.batches.find((x) => x.metadata.get(LOG_LEVEL_KEY) === "EXCEPTION")!;
      return { text: new TextDecoder().decode(r.bytes), extra: JSON.parse(error.metadata.get(LOG_EXTRA_KEY)!) };
    };
    const here = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
    const plain = await extraOf(a);
    assert.equal(plain.extra.exception_message, "deliberate failure");
    for (const k of ["traceback", "frames", "cause"]) assert.equal(plain.extra[k], undefined, k);
    // No stack text and no server path anywhere in the response body.
    assert.ok(!plain.text.includes(here), "the response names a server directory");
    assert.doesNotMatch(plain.text, /\n\s+at /);

    const opted = await extraOf(traced);
    assert.match(opted.extra.traceback, /ValueError: deliberate failure\n\s+at /);
    assert.ok(opted.text.includes(here), "the opted-in traceback names the handler's file");
    assert.ok(Array.isArray(opted.extra.frames) && opted.extra.frames.length > 0);
  });

  it("serves /health (GET, HEAD, OPTIONS) and maps routes to 404/405", async () => {
    const g = await fetch(`${a.url}/health`);
    assert.equal(g.status, 200);
    assert.equal(((await g.json()) as { status: string }).status, "ok");
    const h = await fetch(`${a.url}/health`, { method: "HEAD" });
    assert.equal(h.status, 200);
    const o = await fetch(`${a.url}/health`, { method: "OPTIONS" });
    assert.equal(o.status, 200);
    assert.match(o.headers.get("cache-control") ?? "", /max-age=/);
    assert.equal((await post(`${a.url}/${P}/nope`, requestBody("nope", {}, {}))).status, 404);
    assert.equal((await post(`${a.url}/no.such.Proto/add`, requestBody("add", {}, {}))).status, 404);
    assert.equal((await fetch(`${a.url}/${P}/add`)).status, 405);
    assert.equal((await fetch(`${a.url}/a/b/c/d`)).status, 404);
  });

  it("refuses a wrong content type with 415 and a truncated body with 400, and keeps serving", async () => {
    const wrong = await add(a, { "content-type": "application/json" });
    assert.equal(wrong.status, 415);
    assert.match(errorOf((await decodeStreams(wrong.bytes))[0]!.batches)!.message, /Content-Type/);
    const full = requestBody("add", Proto.methods.add.params, { a: 1, b: 2 });
    const truncated = await add(a, {}, full.subarray(0, full.byteLength - 20));
    assert.equal(truncated.status, 400);
    assert.equal((await add(a)).status, 200);
  });

  it("refuses a body over the cap with 413", async () => {
    const r = await post(`${capped.url}/${P}/add`, new Uint8Array(4096));
    assert.equal(r.status, 413);
    assert.match(new TextDecoder().decode(r.bytes), /max_request_bytes/);
    assert.equal(r.headers.get("vgi-max-request-bytes"), "1024");
    // A chunked body (no Content-Length) is refused while it streams in, and the 413 still arrives.
    const status = await new Promise<number>((resolve, reject) => {
      const q = request(`${capped.url}/${P}/add`, {
        method: "POST",
        headers: { "content-type": ARROW, "transfer-encoding": "chunked" },
        timeout: 5000,
      });
      q.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      q.on("error", reject);
      q.on("timeout", () => q.destroy(new Error("timeout")));
      for (let i = 0; i < 8; i++) q.write(new Uint8Array(512));
      q.end();
    });
    assert.equal(status, 413);
    assert.equal((await add(capped)).status, 200);
  });

  it("answers a response over the cap with ResponseTooLargeError", async () => {
    const r = await post(`${capped.url}/${P}/blob`, requestBody("blob", Proto.methods.blob.params, { n: 200_000n }));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-vgi-rpc-error"), "true");
    assert.match(errorOf((await decodeStreams(r.bytes))[0]!.batches)!.message, /max_response_bytes/);
  });

  it("decodes gzip and zstd request bodies and refuses an unknown coding with 415", async () => {
    const body = requestBody("add", Proto.methods.add.params, { a: 2, b: 3 });
    for (const [coding, encoded] of [
      ["gzip", gzipSync(body)],
      ["zstd", zstdRawFrame(body)],
    ] as const) {
      const r = await add(a, { "content-encoding": coding }, encoded);
      assert.equal(r.status, 200, coding);
      const [stream] = await decodeStreams(r.bytes);
      assert.deepEqual(rowsFromBatch({ result: t.float64() }, stream!.batches[0]!), [{ result: 5 }]);
    }
    assert.equal((await add(a, { "content-encoding": "br" }, body)).status, 415);
    assert.equal((await add(a, { "content-encoding": "gzip" }, body)).status, 400);
  });

  it("compresses responses with gzip when asked", async () => {
    const res = await fetch(`${a.url}/${P}/add`, {
      method: "POST",
      body: new Uint8Array(requestBody("add", Proto.methods.add.params, { a: 1, b: 1 })),
      headers: { "content-type": ARROW, "accept-encoding": "gzip" },
    });
    assert.equal(res.headers.get("content-encoding"), "gzip");
    const [stream] = await decodeStreams(new Uint8Array(await res.arrayBuffer())); // fetch decodes
    assert.equal(stream!.batches[0]!.numRows, 1);
  });

  it("writes a large answer from its pieces: whole, plain, gzip-compressed and through the fetch-style form", async () => {
    // A 3 MiB binary value: its data buffer goes out as its own piece beside the small ones.
    const n = 3 * 1024 * 1024 + 5;
    const body = requestBody("blob", Proto.methods.blob.params, { n: BigInt(n) });
    const check = async (bytes: Uint8Array) => {
      const [stream] = await decodeStreams(bytes);
      const value = stream!.batches[0]!.getChildAt(0)!.get(0) as Uint8Array;
      assert.equal(value.byteLength, n);
      assert.ok(value.every((x) => x === 0));
    };
    const plain = await post(`${a.url}/${P}/blob`, body, { "accept-encoding": "identity" });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("content-length"), String(plain.bytes.byteLength));
    await check(plain.bytes);
    const gz = await post(`${a.url}/${P}/blob`, body, {
      "x-vgi-accept-encoding": "gzip",
      "accept-encoding": "identity",
    });
    assert.equal(gz.headers.get("x-vgi-content-encoding"), "gzip");
    assert.ok(gz.bytes.byteLength < n / 10);
    await check(new Uint8Array((await import("node:zlib")).gunzipSync(gz.bytes)));
    const { createHttpHandler } = await import("../../src/transports/http/index.js");
    const res = await createHttpHandler(makeServer()).fetch(
      new Request(`http://local/${P}/blob`, {
        method: "POST",
        body: new Uint8Array(body),
        headers: { "content-type": ARROW },
      }),
    );
    await check(new Uint8Array(await res.arrayBuffer()));
  });

  it("compresses responses with zstd when the VGI header asks, stamping X-VGI-Content-Encoding", async () => {
    const r = await post(`${a.url}/${P}/add`, requestBody("add", Proto.methods.add.params, { a: 2, b: 2 }), {
      "x-vgi-accept-encoding": "zstd",
      "accept-encoding": "identity",
    });
    assert.equal(r.headers.get("x-vgi-content-encoding"), "zstd");
    assert.equal(r.headers.get("content-encoding"), null);
    const [stream] = await decodeStreams(zstdDecompress(r.bytes));
    assert.deepEqual(rowsFromBatch({ result: t.float64() }, stream!.batches[0]!), [{ result: 4 }]);
    const plain = await add(a, { "accept-encoding": "identity, gzip" });
    assert.equal(plain.headers.get("content-encoding"), null);
    assert.equal(plain.headers.get("vgi-supported-encodings"), "zstd, gzip");
  });

  it("runs a producer stream: header and first turn in /init, then one turn per /exchange", async () => {
    const init = await post(`${a.url}/${P}/range/init`, requestBody("range", Proto.methods.range.params, { stop: 3n }));
    assert.equal(init.status, 200);
    const [header, first] = await decodeStreams(init.bytes);
    assert.deepEqual(rowsFromBatch({ total: t.int64() }, header!.batches[0]!), [{ total: 3n }]);
    const seen = dataOf(first!.batches).flatMap((x) => rowsFromBatch({ n: t.int64() }, x).map((r) => r.n));
    let tok = tokenBatch(first!.batches);
    assert.ok(tok?.metadata.get(CALL_STATE_KEY));
    const callToken = tok!.metadata.get(CALL_STATE_KEY)!;
    for (let turns = 0; tok && turns < 10; turns++) {
      const md = new Map([
        [STREAM_STATE_KEY, tok.metadata.get(STREAM_STATE_KEY)!],
        [CALL_STATE_KEY, callToken],
      ]);
      // Alternate instances: any instance with the key continues the stream.
      const r = await post(`${(turns % 2 ? a : b).url}/${P}/range/exchange`, inputBody(emptyBatch(EMPTY_SCHEMA, md)));
      assert.equal(r.status, 200);
      const [s] = await decodeStreams(r.bytes);
      seen.push(...dataOf(s!.batches).flatMap((x) => rowsFromBatch({ n: t.int64() }, x).map((row) => row.n)));
      tok = tokenBatch(s!.batches);
    }
    assert.deepEqual(seen, [0n, 1n, 2n]);
  });

  async function openMean(l: HttpListener): Promise<{ cursor: string; call: string }> {
    const init = await post(`${l.url}/${P}/mean/init`, requestBody("mean", {}, {}));
    assert.equal(init.status, 200);
    const [s] = await decodeStreams(init.bytes);
    const tok = tokenBatch(s!.batches)!;
    return { cursor: tok.metadata.get(STREAM_STATE_KEY)!, call: tok.metadata.get(CALL_STATE_KEY)! };
  }

  function meanInput(x: number, cursor: string, call: string, extra: [string, string][] = []): Uint8Array {
    const md = new Map([[STREAM_STATE_KEY, cursor], [CALL_STATE_KEY, call], ...extra]);
    return inputBody(batchFromRows({ x: t.float64() }, [{ x }], md));
  }

  it("runs an exchange across two instances sharing a token key", async () => {
    const { call } = await openMean(a);
    let { cursor } = await openMean(a).then((o) => ({ cursor: o.cursor }));
    // The second open's cursor belongs to another call: mixing tokens is refused.
    const mixed = await post(`${a.url}/${P}/mean/exchange`, meanInput(1, cursor, call));
    assert.equal(mixed.status, 400);
    const opened = await openMean(a);
    cursor = opened.cursor;
    const means: number[] = [];
    for (const [i, x] of [2, 4, 9].entries()) {
      const r = await post(`${(i % 2 ? b : a).url}/${P}/mean/exchange`, meanInput(x, cursor, opened.call));
      assert.equal(r.status, 200);
      const [s] = await decodeStreams(r.bytes);
      const data = dataOf(s!.batches)[0]!;
      means.push(rowsFromBatch({ mean: t.float64() }, data)[0]!.mean);
      cursor = data.metadata.get(STREAM_STATE_KEY)!;
    }
    assert.deepEqual(means, [2, 3, 5]);
    // An instance with another key cannot open the tokens.
    const foreign = await post(`${other.url}/${P}/mean/exchange`, meanInput(1, cursor, opened.call));
    assert.equal(foreign.status, 400);
    // Cancel answers an empty output stream.
    const cancel = await post(
      `${a.url}/${P}/mean/exchange`,
      inputBody(
        emptyBatch(
          EMPTY_SCHEMA,
          new Map([
            [STREAM_STATE_KEY, cursor],
            [CALL_STATE_KEY, opened.call],
            [CANCEL_KEY, "1"],
          ]),
        ),
      ),
    );
    assert.equal(cancel.status, 200);
    assert.deepEqual((await decodeStreams(cancel.bytes))[0]!.batches, []);
  });

  it("refuses a tampered, missing or expired state token with 400", async () => {
    const { cursor, call } = await openMean(a);
    const chars = [...cursor];
    const at = 40;
    chars[at] = chars[at] === "A" ? "B" : "A";
    const tampered = await post(`${a.url}/${P}/mean/exchange`, meanInput(1, chars.join(""), call));
    assert.equal(tampered.status, 400);
    assert.match(errorOf((await decodeStreams(tampered.bytes))[0]!.batches)!.message, /state token/i);
    const missing = await post(`${a.url}/${P}/mean/exchange`, inputBody(batchFromRows({ x: t.float64() }, [{ x: 1 }])));
    assert.equal(missing.status, 400);
    assert.match(errorOf((await decodeStreams(missing.bytes))[0]!.batches)!.message, /Missing state token/);
    const short = await openMean(shortTtl);
    await new Promise((r) => setTimeout(r, 2100));
    const expired = await post(`${shortTtl.url}/${P}/mean/exchange`, meanInput(1, short.cursor, short.call));
    assert.equal(expired.status, 400);
    assert.match(errorOf((await decodeStreams(expired.bytes))[0]!.batches)!.message, /expired/);
    assert.equal((await add(a)).status, 200);
  });

  it("authenticates: 401 with a reason without or with a bad token, principal with a good one", async () => {
    const none = await add(authed);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get("vgi-auth-reason"), "missing_credential");
    const body = JSON.parse(new TextDecoder().decode(none.bytes)) as { error: string; detail: string };
    assert.equal(body.error, "unauthorized");
    assert.match(body.detail, /Authorization/);
    const bad = await add(authed, { authorization: "Bearer wrong" });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get("vgi-auth-reason"), "invalid_credential");
    assert.equal((await fetch(`${authed.url}/health`)).status, 200);
    const ok = await post(`${authed.url}/${P}/whoami`, requestBody("whoami", {}, {}), {
      authorization: "Bearer s3cret",
    });
    assert.equal(ok.status, 200);
    const [s] = await decodeStreams(ok.bytes);
    assert.deepEqual(rowsFromBatch({ result: t.utf8() }, s!.batches[0]!), [{ result: "alice@bearer" }]);
    // Anonymous callers of a method that requires a caller get a PermissionError.
    const anon = await post(`${a.url}/${P}/whoami`, requestBody("whoami", {}, {}));
    assert.equal(anon.headers.get("x-vgi-rpc-error"), "true");
    const [as] = await decodeStreams(anon.bytes);
    const err = as!.batches.at(-1)!.metadata;
    assert.match(err.get(LOG_MESSAGE_KEY) ?? "", /Authentication required/);
    assert.equal(
      (JSON.parse(err.get(LOG_EXTRA_KEY) ?? "{}") as { exception_type: string }).exception_type,
      "PermissionError",
    );
    assert.equal(err.get(ERROR_CODE_KEY), "PERMISSION_DENIED");
  });

  it("gives handlers remote_addr, user_agent and request cookies", async () => {
    const r = await post(`${a.url}/${P}/meta`, requestBody("meta", {}, {}), {
      "user-agent": "quiver-test/1",
      cookie: "session=xyz; other=1",
    });
    const [s] = await decodeStreams(r.bytes);
    const value = JSON.parse(rowsFromBatch({ result: t.utf8() }, s!.batches[0]!)[0]!.result) as Record<string, string>;
    assert.equal(value.remote_addr, "127.0.0.1");
    assert.equal(value.user_agent, "quiver-test/1");
    assert.equal(value.transport, "http");
    assert.equal(value.session, "xyz");
  });

  it("sets cookies with every attribute from a unary call", async () => {
    const res = await fetch(`${a.url}/${P}/set_cookies`, {
      method: "POST",
      body: new Uint8Array(requestBody("set_cookies", {}, {})),
      headers: { "content-type": ARROW },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.headers.getSetCookie(), [
      "session=abc123; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Max-Age=3600; Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Strict; Partitioned",
      "plain=v; Path=/; HttpOnly",
      "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; HttpOnly",
    ]);
  });

  it("refuses cookies in an HTTP stream with a typed error and sets none", async () => {
    const res = await fetch(`${a.url}/${P}/cookie_stream/init`, {
      method: "POST",
      body: new Uint8Array(requestBody("cookie_stream", {}, {})),
      headers: { "content-type": ARROW },
    });
    assert.equal(res.headers.get("x-vgi-rpc-error"), "true");
    assert.deepEqual(res.headers.getSetCookie(), []);
    const [s] = await decodeStreams(new Uint8Array(await res.arrayBuffer()));
    assert.equal(errorOf(s!.batches)!.kind, "cookie_not_allowed");
  });

  it("refuses cookies on a pipe call with the same typed error", async () => {
    const server = makeServer();
    const call = new Call({
      server: coreOf(server),
      transport: "pipe",
      transportMetadata: {},
      auth: authenticated("x", "y"),
    });
    const md = new Map([
      [METHOD_KEY, "set_cookies"],
      [REQUEST_VERSION_KEY, REQUEST_VERSION],
      [PROTOCOL_KEY, P],
      [PROTOCOL_VERSION_KEY, "1.0.0"],
    ]);
    const admission = admit(call, batchFromRows({}, [{}], md));
    assert.equal(admission.kind, "unary");
    if (admission.kind !== "unary") return;
    const answer = await runUnary(call, admission.method, admission.params);
    assert.equal(errorOf(answer.batches)!.kind, "cookie_not_allowed");
  });

  it("throws AuthFailure subclasses as 401 through a custom authenticator", async () => {
    const l = await listenHttp(makeServer(), {
      authenticate: () => {
        throw new AuthFailure("expired_credential", "token expired");
      },
    });
    try {
      const r = await add(l);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("vgi-auth-reason"), "expired_credential");
      assert.match(new TextDecoder().decode(r.bytes), /token expired/);
    } finally {
      await l.close();
    }
  });

  it("serves the same transport through the fetch-style handler", async () => {
    const { createHttpHandler } = await import("../../src/transports/http/index.js");
    const handler = createHttpHandler(makeServer());
    const res = await handler.fetch(
      new Request(`http://local/${P}/add`, {
        method: "POST",
        body: new Uint8Array(requestBody("add", Proto.methods.add.params, { a: 20, b: 22 })),
        headers: { "content-type": ARROW },
      }),
    );
    assert.equal(res.status, 200);
    const [s] = await decodeStreams(new Uint8Array(await res.arrayBuffer()));
    assert.deepEqual(rowsFromBatch({ result: t.float64() }, s!.batches[0]!), [{ result: 42 }]);
  });
});
