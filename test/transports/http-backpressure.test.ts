/**
 * Backpressure on the HTTP server: a connection's requests are served one answer at a time, so a
 * client that pipelines requests and never reads costs at most an answer or two, and what waits
 * is dropped when it leaves. No timings are asserted: the tests count handler invocations and
 * waiting requests.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { batchFromRows, rowsFromBatch } from "../../src/protocol/batch.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { type FieldSpecs, type RowOf, t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import {
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type HttpListener,
  listenHttp,
} from "../../src/transports/http/index.js";
import { decodeIpcBody } from "../../src/transports/http/ipc-body.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import {
  METHOD_KEY,
  PROTOCOL_KEY,
  PROTOCOL_VERSION_KEY,
  REQUEST_VERSION,
  REQUEST_VERSION_KEY,
} from "../../src/wire/keys.js";

const P = "quiver.HttpBackpressureTest.v1";
const ARROW = "application/vnd.apache.arrow.stream";
const MiB = 1024 * 1024;
/** Far more than loopback socket buffers take from a peer that does not read. */
const BIG = 16 * MiB;

const Proto = defineProtocol(
  P,
  { version: "1.0.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    big: producer({}, { output: { data: t.binary() }, header: null, state: { sent: t.bool() } }),
  },
);

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

function rawRequest(path: string, body: Uint8Array): Uint8Array {
  const head = `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${ARROW}\r\nContent-Length: ${body.byteLength}\r\n\r\n`;
  return concatBytes([new TextEncoder().encode(head), body]);
}

/** Reads `count` HTTP/1.1 responses (Content-Length framed) from `socket`, in order. */
async function readResponses(socket: Socket, count: number): Promise<{ status: number; body: Uint8Array }[]> {
  const out: { status: number; body: Uint8Array }[] = [];
  let chunks: Uint8Array[] = [];
  let held = 0;
  /** The response being read: its head's length and its body's, once the head is in. */
  let need: { head: number; body: number; status: number } | null = null;
  for await (const chunk of socket) {
    chunks.push(chunk as Uint8Array);
    held += (chunk as Uint8Array).byteLength;
    for (;;) {
      if (need === null) {
        const start = concatBytes(chunks);
        chunks = [start];
        const text = new TextDecoder("latin1").decode(start.subarray(0, Math.min(start.byteLength, 8192)));
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) break;
        const lines = text.slice(0, end).split("\r\n");
        const length = Number(lines.find((l) => /^content-length:/i.test(l))!.split(":")[1]);
        need = { head: end + 4, body: length, status: Number(lines[0]!.split(" ")[1]) };
      }
      if (held < need.head + need.body) break;
      const all = concatBytes(chunks);
      out.push({ status: need.status, body: all.slice(need.head, need.head + need.body) });
      const rest = all.subarray(need.head + need.body);
      chunks = [rest];
      held = rest.byteLength;
      need = null;
      if (out.length === count) return out;
    }
  }
  return out;
}

/** Waits (yielding to the event loop) until `ready` holds; the test's timeout bounds it. */
async function until(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("HTTP backpressure", { timeout: 60_000 }, () => {
  let produced = 0;
  let http: HttpListener;
  const serverSockets: Socket[] = [];
  const addBody = (a: number) => requestBody("add", Proto.methods.add.params, { a, b: 1 });
  const initBody = requestBody("big", Proto.methods.big.params, {});
  const add = async (a: number): Promise<number> => {
    const res = await fetch(`${http.url}/${P}/add`, {
      method: "POST",
      body: new Uint8Array(addBody(a)),
      headers: { "content-type": ARROW },
      signal: AbortSignal.timeout(10_000),
    });
    const decoded = await decodeIpcBody(new Uint8Array(await res.arrayBuffer()));
    return rowsFromBatch({ result: t.float64() }, decoded.batches[0]!)[0]!.result;
  };

  before(async () => {
    const server = createServer({
      protocols: [
        bind(Proto, {
          add: ({ a, b }) => a + b,
          big: {
            init: () => ({ state: { sent: false } }),
            produce: (state, out) => {
              if (state.sent) return out.finish();
              produced++;
              state.sent = true;
              out.emit([{ data: new Uint8Array(BIG) }]);
            },
          },
        }),
      ],
    });
    http = await listenHttp(server);
    http.server.on("connection", (s: Socket) => serverSockets.push(s));
  });
  after(async () => {
    for (const s of serverSockets) s.destroy();
    await http.close();
  });

  it("produces one or two answers for a connection that pipelines requests and never reads, and drops the rest when it leaves", async () => {
    produced = 0;
    const client = connect(http.port, "127.0.0.1");
    await once(client, "connect");
    client.on("error", () => {}); // leaving with answers unread resets the connection
    client.pause();
    const requests = 20;
    const one = rawRequest(`/${P}/big/init`, initBody);
    client.write(concatBytes(Array.from({ length: requests }, () => one)));
    await until(() => produced > 2 || (produced >= 1 && http.handler.waitingRequests >= 1));
    // Another connection is served meanwhile.
    assert.equal(await add(2), 3);
    assert.ok(produced <= 2, `${produced} answers produced for a client that reads none`);
    assert.ok(http.handler.waitingRequests <= requests - produced);

    const serverSide = serverSockets.find((s) => s.remotePort === client.localPort)!;
    const closed = new Promise((resolve) => serverSide.once("close", resolve)); // (it errors first: ECONNRESET)
    const before = produced;
    client.destroy();
    await closed;
    assert.equal(http.handler.waitingRequests, 0);
    assert.equal(await add(4), 5);
    assert.equal(produced, before, "no waiting request ran after its client left");
  });

  it("applies listenHttp's connection timeouts, and drops a client that never finishes its headers", async () => {
    const defaults = http.server;
    assert.equal(defaults.headersTimeout, DEFAULT_HEADERS_TIMEOUT_MS);
    assert.equal(defaults.requestTimeout, DEFAULT_REQUEST_TIMEOUT_MS);
    assert.equal(defaults.keepAliveTimeout, DEFAULT_KEEP_ALIVE_TIMEOUT_MS);
    const strict = await listenHttp(http.handler.server, {
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      keepAliveTimeoutMs: 200,
    });
    try {
      assert.equal(strict.server.headersTimeout, 300);
      assert.equal(strict.server.requestTimeout, 600);
      assert.equal(strict.server.keepAliveTimeout, 200);
      const client = connect(strict.port, "127.0.0.1");
      client.on("error", () => {});
      await once(client, "connect");
      client.write("POST /x/y HTTP/1.1\r\nHost: x\r\n"); // and never the blank line
      let answer = "";
      for await (const chunk of client) answer += String(chunk);
      assert.match(answer, /^HTTP\/1\.1 408 /);
    } finally {
      await strict.close();
    }
  });

  it("answers pipelined requests in order to a client that reads them", async () => {
    const client = connect(http.port, "127.0.0.1");
    await once(client, "connect");
    const n = 12;
    client.write(concatBytes(Array.from({ length: n }, (_, i) => rawRequest(`/${P}/add`, addBody(i)))));
    const responses = await readResponses(client, n);
    client.destroy();
    assert.equal(responses.length, n);
    const results: number[] = [];
    for (const r of responses) {
      assert.equal(r.status, 200);
      const decoded = await decodeIpcBody(r.body);
      results.push(rowsFromBatch({ result: t.float64() }, decoded.batches[0]!)[0]!.result);
    }
    assert.deepEqual(
      results,
      Array.from({ length: n }, (_, i) => i + 1),
    );
  });

  it("serves every pipelined request with a large answer once the client reads them", async () => {
    produced = 0;
    const client = connect(http.port, "127.0.0.1");
    await once(client, "connect");
    const n = 3;
    const one = rawRequest(`/${P}/big/init`, initBody);
    client.write(concatBytes([...Array.from({ length: n }, () => one), rawRequest(`/${P}/add`, addBody(6))]));
    const responses = await readResponses(client, n + 1);
    client.destroy();
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(produced, n);
    for (const r of responses.slice(0, n)) assert.ok(r.body.byteLength > BIG);
    const last = await decodeIpcBody(responses[n]!.body);
    assert.equal(rowsFromBatch({ result: t.float64() }, last.batches[0]!)[0]!.result, 7);
  });
});
