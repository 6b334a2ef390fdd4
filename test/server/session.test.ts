import assert from "node:assert/strict";
import { test } from "node:test";
import { RuntimeError, ValueError } from "../../src/errors.js";
import { batchFromColumns, EMPTY_SCHEMA, emptyBatch, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { IpcStreamEncoder } from "../../src/wire/ipc.js";
import { classifyBatch, errorFromMetadata, readLogRecord } from "../../src/wire/messages.js";
import { readStream, requestBytes, streamBytes } from "../helpers/raw-peer.js";

const Calc = defineProtocol(
  "test.Calc.v1",
  { version: "1.2.0" },
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    greet: unary({ name: t.utf8(), punct: t.utf8().default("!") }, t.utf8()),
    fail: unary({ message: t.utf8() }, t.utf8()),
    noop: unary({}, null),
    count: producer(
      { n: t.int64() },
      { output: { i: t.int64() }, header: { total: t.int64() }, state: { i: t.int64(), n: t.int64() } },
    ),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64() } },
    ),
    broken_init: producer({}, { output: { i: t.int64() } }),
    endless: producer({}, { output: { i: t.int64() } }),
  },
);

function makeServer(opts: { includeTracebacks?: boolean } = {}) {
  const cancelled: string[] = [];
  const server = createServer({
    ...opts,
    serverId: "0123456789ab",
    protocols: [
      bind(Calc, {
        add: ({ a, b }) => a + b,
        greet: ({ name, punct }, ctx) => {
          ctx.clientLog("INFO", `greeting ${name}`, { who: name });
          return `hello ${name}${punct}`;
        },
        fail: ({ message }) => {
          throw new ValueError(message);
        },
        noop: () => undefined,
        count: {
          init: ({ n }) => ({ header: { total: n }, state: { i: 0n, n } }),
          produce(state, out) {
            if (state.i >= state.n) return out.finish();
            out.clientLog("DEBUG", `row ${state.i}`);
            out.emit([{ i: state.i }]);
            state.i += 1n;
          },
        },
        scale: {
          init: ({ factor }) => ({ state: { factor } }),
          process(state, input, out) {
            const xs = input.column("x");
            if (xs.some((x) => x < 0)) throw new RuntimeError("negative input");
            out.emitColumns({ x: xs.map((x) => x * state.factor) });
          },
        },
        broken_init: {
          init: () => {
            throw new RuntimeError("cannot start");
          },
          produce: (_state, out) => out.finish(),
        },
        endless: {
          init: () => ({}),
          produce(_state, out) {
            out.emit([{ i: 1n }]);
          },
          onCancel() {
            cancelled.push("endless");
          },
        },
      }),
    ],
  });
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  return {
    server,
    cancelled,
    served,
    send: (chunks: Uint8Array[]) => pipe.client.write(chunks),
    read: async () => {
      const s = await readStream(framer);
      assert.ok(s, "expected a response stream");
      return s;
    },
    close: async () => {
      pipe.client.close();
      await served;
    },
  };
}

const req = (
  method: string,
  fields: Parameters<typeof requestBytes>[1],
  values: Record<string, unknown[]>,
  extra = {},
) => requestBytes(method, fields, values, extra, "test.Calc.v1", "1.2.0");

test("a unary call answers one result batch, with client logs before it", async () => {
  const s = makeServer();
  await s.send(req("greet", { name: t.utf8(), punct: t.utf8() }, { name: ["ada"], punct: ["?"] }));
  const { schema, batches } = await s.read();
  assert.deepEqual(
    schema.fields.map((f) => f.name),
    ["result"],
  );
  assert.equal(batches.length, 2);
  assert.equal(classifyBatch(batches[0]!), "log");
  const log = readLogRecord(batches[0]!.metadata);
  assert.equal(log.message, "greeting ada");
  assert.deepEqual(log.extra, { who: "ada" });
  assert.equal(log.serverId, "0123456789ab");
  assert.match(log.requestId, /^[0-9a-f]{16}$/);
  assert.equal(batches[1]!.getChildAt(0)!.get(0), "hello ada?");
  await s.close();
});

test("a void method answers a zero-row batch on the empty schema", async () => {
  const s = makeServer();
  await s.send(req("noop", {}, {}));
  const { schema, batches } = await s.read();
  assert.equal(schema.fields.length, 0);
  assert.equal(batches.length, 1);
  assert.equal(classifyBatch(batches[0]!), "data");
  await s.close();
});

test("routing and contract failures are typed errors and the connection keeps serving", async () => {
  const s = makeServer();
  const cases: Array<[Uint8Array[], string, number]> = [
    [req("nope", {}, {}), "method_not_implemented", 0],
    [
      requestBytes("add", { a: t.float64(), b: t.float64() }, { a: [1], b: [2] }, {}, "other.Proto.v1"),
      "protocol_not_supported",
      0,
    ],
    [
      requestBytes("add", { a: t.float64(), b: t.float64() }, { a: [1], b: [2] }, {}, "test.Calc.v1", "1.1.0"),
      "protocol_version_mismatch",
      1,
    ],
    [req("__describe__", {}, {}), "method_not_implemented", 0],
  ];
  for (const [bytes, kind, resultFields] of cases) {
    await s.send(bytes);
    const { schema, batches } = await s.read();
    assert.equal(schema.fields.length, resultFields, kind);
    const err = errorFromMetadata(batches[0]!.metadata);
    assert.equal(err.kind, kind);
  }
  // Wrong parameter type: a TypeError on the result schema.
  await s.send(req("add", { a: t.int64(), b: t.float64() }, { a: [1n], b: [2] }));
  const wrong = await s.read();
  const err = errorFromMetadata(wrong.batches[0]!.metadata);
  assert.equal(err.type, "TypeError");
  assert.match(err.message, /parameter 'a' expected Arrow type float64/);
  // Missing routing key.
  const md = new Map([
    ["vgi_rpc.method", "add"],
    ["vgi_rpc.request_version", "1"],
  ]);
  const fields = { a: t.float64(), b: t.float64() };
  await s.send(streamBytes(schemaOf(fields), [batchFromColumns(fields, { a: [1], b: [2] }, md)]));
  assert.equal(errorFromMetadata((await s.read()).batches[0]!.metadata).kind, "protocol_not_specified");
  // And the connection still works.
  await s.send(req("add", fields, { a: [1.5], b: [2.25] }));
  assert.equal((await s.read()).batches[0]!.getChildAt(0)!.get(0), 3.75);
  await s.close();
});

test("a handler's exception reaches the client with its type, and the code defaults to UNKNOWN", async () => {
  const s = makeServer({ includeTracebacks: true });
  await s.send(req("fail", { message: t.utf8() }, { message: ["boom"] }));
  const { batches } = await s.read();
  assert.equal(classifyBatch(batches[0]!), "error");
  const err = errorFromMetadata(batches[0]!.metadata);
  assert.equal(err.type, "ValueError");
  assert.equal(err.message, "boom");
  assert.equal(err.code, "UNKNOWN");
  assert.match(err.remoteTraceback, /ValueError/);
  await s.close();
});

test("by default an error batch carries no traceback, frames or file paths", async () => {
  const s = makeServer();
  assert.equal(s.server.includeTracebacks, false);
  await s.send(req("fail", { message: t.utf8() }, { message: ["boom"] }));
  const { batches } = await s.read();
  const md = batches[0]!.metadata;
  const err = errorFromMetadata(md);
  assert.equal(err.type, "ValueError");
  assert.equal(err.message, "boom");
  assert.equal(err.remoteTraceback, "");
  const extra = JSON.parse(md.get("vgi_rpc.log_extra") ?? "{}") as Record<string, unknown>;
  for (const key of ["traceback", "frames", "cause"]) assert.equal(extra[key], undefined, key);
  assert.doesNotMatch([...md.values()].join("\n"), /session\.test\.ts|\bat /);
  await s.close();
});

test("a producer sends its header, one batch per tick, then EOS when it finishes", async () => {
  const s = makeServer();
  await s.send(req("count", { n: t.int64() }, { n: [2n] }));
  const header = await s.read();
  assert.equal(header.batches[0]!.getChildAt(0)!.get(0), 2n);
  const tick = emptyBatch(EMPTY_SCHEMA);
  const enc = streamBytes(EMPTY_SCHEMA, [tick, tick, tick]);
  // Input stream: schema + 3 ticks + EOS, sent whole (the server reads lockstep).
  await s.send(enc);
  const out = await s.read();
  const data = out.batches.filter((b) => classifyBatch(b) === "data");
  const logs = out.batches.filter((b) => classifyBatch(b) === "log");
  assert.deepEqual(
    data.map((b) => b.getChildAt(0)!.get(0)),
    [0n, 1n],
  );
  assert.equal(logs.length, 2);
  // As the reference writes them: a turn's logs carry the server id, not the request id.
  for (const log of logs) {
    assert.equal(readLogRecord(log.metadata).serverId, "0123456789ab");
    assert.equal(readLogRecord(log.metadata).requestId, "");
  }
  await s.send(req("add", { a: t.float64(), b: t.float64() }, { a: [1], b: [1] }));
  assert.equal((await s.read()).batches[0]!.getChildAt(0)!.get(0), 2);
  await s.close();
});

test("an exchange casts compatible input, and a mid-stream error ends the stream but not the connection", async () => {
  const s = makeServer();
  await s.send(req("scale", { factor: t.float64() }, { factor: [2] }));
  const inFields = { x: t.int64() };
  const batches = [
    batchFromColumns(inFields, { x: [1n, 2n] }),
    batchFromColumns(inFields, { x: [-1n] }),
    batchFromColumns(inFields, { x: [5n] }),
  ];
  await s.send(streamBytes(schemaOf(inFields), batches));
  const out = await s.read();
  assert.equal(out.batches.length, 2);
  assert.deepEqual([...out.batches[0]!.getChildAt(0)!], [2, 4]);
  const err = errorFromMetadata(out.batches[1]!.metadata);
  assert.equal(err.type, "RuntimeError");
  assert.equal(err.message, "negative input");
  await s.send(req("add", { a: t.float64(), b: t.float64() }, { a: [1], b: [1] }));
  assert.equal((await s.read()).batches[0]!.getChildAt(0)!.get(0), 2);
  await s.close();
});

test("an exchange input with the wrong field set is an Input schema mismatch", async () => {
  const s = makeServer();
  await s.send(req("scale", { factor: t.float64() }, { factor: [2] }));
  const inFields = { y: t.float64() };
  await s.send(streamBytes(schemaOf(inFields), [batchFromColumns(inFields, { y: [1] })]));
  const out = await s.read();
  const err = errorFromMetadata(out.batches[0]!.metadata);
  assert.equal(err.type, "TypeError");
  assert.match(err.message, /Input schema mismatch/);
  await s.close();
});

test("an init error answers on the empty schema and the pending input stream is drained", async () => {
  const s = makeServer();
  await s.send(req("broken_init", {}, {}));
  const out = await s.read();
  assert.equal(out.schema.fields.length, 0);
  assert.equal(errorFromMetadata(out.batches[0]!.metadata).message, "cannot start");
  await s.send(streamBytes(EMPTY_SCHEMA, [emptyBatch(EMPTY_SCHEMA)]));
  await s.send(req("add", { a: t.float64(), b: t.float64() }, { a: [2], b: [3] }));
  assert.equal((await s.read()).batches[0]!.getChildAt(0)!.get(0), 5);
  await s.close();
});

test("cancel calls onCancel once and closes the output without an error", async () => {
  const s = makeServer();
  await s.send(req("endless", {}, {}));
  const cancel = emptyBatch(EMPTY_SCHEMA, new Map([["vgi_rpc.cancel", "1"]]));
  await s.send(streamBytes(EMPTY_SCHEMA, [emptyBatch(EMPTY_SCHEMA), emptyBatch(EMPTY_SCHEMA), cancel]));
  const out = await s.read();
  assert.equal(out.batches.length, 2);
  assert.ok(out.batches.every((b) => classifyBatch(b) === "data"));
  assert.deepEqual(s.cancelled, ["endless"]);
  await s.send(req("add", { a: t.float64(), b: t.float64() }, { a: [2], b: [3] }));
  assert.equal((await s.read()).batches[0]!.getChildAt(0)!.get(0), 5);
  await s.close();
});

test("garbage bytes get an error stream and end the session cleanly", async () => {
  const s = makeServer();
  await s.send([new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")]);
  const out = await s.read();
  assert.equal(errorFromMetadata(out.batches[0]!.metadata).kind, "protocol_error");
  await s.served;
});

test("draining lets the stream in progress finish, then ends the session; drain() resolves after it", async () => {
  const s = makeServer();
  await s.send(req("count", { n: t.int64() }, { n: [3n] }));
  await s.read(); // header
  const tick = emptyBatch(EMPTY_SCHEMA);
  // The input stream is opened with one tick; it is still open when drain begins.
  const input = new IpcStreamEncoder(EMPTY_SCHEMA);
  await s.send([...input.begin(), ...input.batch(tick)]);
  let drained = false;
  const draining = s.server.drain().then(() => {
    drained = true;
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(drained, false, "drain waits for the open stream");
  await s.send([...input.batch(tick), ...input.batch(tick), ...input.batch(tick), ...input.end()]);
  const out = await s.read();
  assert.equal(out.batches.filter((b) => classifyBatch(b) === "data").length, 3);
  await draining;
  assert.equal(drained, true);
  await s.served; // the session ended without a new request
});

test("setting a cookie outside a unary HTTP call is a typed error the client sees", async () => {
  const Cookies = defineProtocol("test.Cookies.v1", {}, { set: unary({}, t.utf8()) });
  const server = createServer({
    protocols: [
      bind(Cookies, {
        set: (_p, ctx) => {
          ctx.setCookie("session", "abc");
          return "set";
        },
      }),
    ],
  });
  const pipe = memoryPipe("pipe");
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  await pipe.client.write(requestBytes("set", {}, {}, {}, "test.Cookies.v1", null));
  const out = await readStream(framer);
  const err = errorFromMetadata(out!.batches[0]!.metadata);
  assert.equal(err.kind, "cookie_not_allowed");
  assert.match(err.message, /only be set by a unary call served over HTTP/);
  pipe.client.close();
  await served;
});
