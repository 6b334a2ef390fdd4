/**
 * The per-call hook's consumers: the JSONL access log (checked against the pinned reference's
 * own JSON schema), the request-bound pino logger, and OpenTelemetry server spans parented on
 * the caller's trace context.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { context, propagation, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { pino } from "pino";
import { proxy } from "../../src/client/typed.js";
import { ValueError } from "../../src/errors.js";
import { EMPTY_SCHEMA, emptyBatch } from "../../src/protocol/batch.js";
import { defineProtocol, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { createAccessLog } from "../../src/server/access-log.js";
import { bind, createServer, type ServerOptions } from "../../src/server/server.js";
import { listenHttp } from "../../src/transports/http/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { memoryClient } from "../client/helpers.js";
import { readStream, requestBytes, streamBytes } from "../helpers/raw-peer.js";

const PYTHON = process.env.VGI_PYTHON ?? join(process.cwd(), ".venv-conformance/bin/python");

const P = defineProtocol(
  "test.Obs.v1",
  { version: "1.0.0" },
  {
    hello: unary({ name: t.utf8() }, t.utf8()),
    fail: unary({}, t.utf8()),
    two: producer({}, { output: { v: t.int64() }, state: { n: t.int64() } }),
  },
);

function serve(opts: Omit<ServerOptions, "protocols">) {
  const server = createServer({
    ...opts,
    protocols: [
      bind(P, {
        hello: ({ name }, ctx) => {
          ctx.logger.info({ greeted: name }, "greeting");
          return `hi ${name}`;
        },
        fail: () => {
          throw new ValueError("bad input");
        },
        two: {
          init: () => ({ state: { n: 0n } }),
          produce: (state, out) => {
            if (state.n === 2n) return out.finish();
            out.emit([{ v: state.n }]);
            state.n += 1n;
          },
        },
      }),
    ],
  });
  const pipe = memoryPipe("pipe");
  const served = server.serveConnection({ ...pipe.server, transportMetadata: { remote_addr: "127.0.0.1:9" } });
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  return { server, pipe, served, framer };
}

const req = (method: string, fields = {}, values = {}, extra: Record<string, string> = {}) =>
  requestBytes(method, fields, values, extra, "test.Obs.v1", "1.0.0");

test("access-log records validate against the reference's schema, one per call, with statistics", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "quiver-al-")), "access.jsonl");
  const log = createAccessLog({ path, serverVersion: "9.9.9" });
  const { pipe, served, framer } = serve({ onCallEnd: log.observer });
  await pipe.client.write(req("hello", { name: t.utf8() }, { name: ["ada"] }));
  await readStream(framer);
  await pipe.client.write(req("fail"));
  await readStream(framer);
  await pipe.client.write(req("two"));
  const tick = emptyBatch(EMPTY_SCHEMA);
  await pipe.client.write(streamBytes(EMPTY_SCHEMA, [tick, tick, tick]));
  await readStream(framer);
  pipe.client.close();
  await served;
  await log.close();

  const lines = readFileSync(path, "utf8").trim().split("\n");
  assert.equal(lines.length, 3);
  const [hello, fail, two] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(hello!.method, "hello");
  assert.equal(hello!.status, "ok");
  assert.equal(hello!.remote_addr, "127.0.0.1:9");
  assert.deepEqual(hello!.request_fields, [{ name: "name", type: "utf8" }]);
  assert.equal(hello!.request_rows, 1);
  assert.equal(fail!.status, "error");
  assert.equal(fail!.error_type, "ValueError");
  assert.equal(fail!.error_message, "bad input");
  assert.equal(fail!.error_code, "UNKNOWN");
  assert.equal(two!.method_type, "stream");
  assert.match(String(two!.stream_id), /^[0-9a-f]{32}$/);
  assert.equal(two!.output_batches, 2);
  assert.equal(two!.output_rows, 2);
  assert.equal(two!.output_bytes, 16);

  // The reference's own validator.
  const check = spawnSync(
    PYTHON,
    [
      "-c",
      [
        "import json, sys, importlib.resources as r, jsonschema",
        "schema = json.loads((r.files('vgi_rpc') / 'access_log.schema.json').read_text())",
        "v = jsonschema.Draft202012Validator(schema)",
        "bad = [e.message for line in open(sys.argv[1]) for e in v.iter_errors(json.loads(line))]",
        "print(json.dumps(bad))",
      ].join("\n"),
      path,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(check.status, 0, check.stderr);
  assert.deepEqual(JSON.parse(check.stdout), []);
});

test("ctx.logger is a pino child bound to the call's identity", async () => {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().trim().split("\n"));
      cb();
    },
  });
  const { pipe, served, framer, server } = serve({ logger: pino({ level: "info" }, dest) });
  await pipe.client.write(req("hello", { name: t.utf8() }, { name: ["bo"] }));
  await readStream(framer);
  pipe.client.close();
  await served;
  const rec = JSON.parse(lines.find((l) => l.includes("greeting"))!) as Record<string, unknown>;
  assert.equal(rec.msg, "greeting");
  assert.equal(rec.greeted, "bo");
  assert.equal(rec.server_id, server.serverId);
  assert.equal(rec.method, "hello");
  assert.match(String(rec.request_id), /^[0-9a-f]{16}$/);
  assert.equal(rec.remote_addr, "127.0.0.1:9");
  assert.equal(rec.transport, "pipe");
});

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();
after(() => provider.shutdown());

test("each call is a server span parented on the request's traceparent, with statistics", async () => {
  exporter.reset();
  const tracer = trace.getTracer("test-client");
  const client = tracer.startSpan("client call");
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), client), carrier);
  assert.match(carrier.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

  const path = join(mkdtempSync(join(tmpdir(), "quiver-al-")), "access.jsonl");
  const log = createAccessLog({ path });
  const { pipe, served, framer } = serve({ onCallEnd: log.observer });
  await pipe.client.write(req("hello", { name: t.utf8() }, { name: ["cy"] }, { traceparent: carrier.traceparent! }));
  await readStream(framer);
  await pipe.client.write(req("fail"));
  await readStream(framer);
  pipe.client.close();
  await served;
  await log.close();
  client.end();

  const spans = exporter.getFinishedSpans();
  const server = spans.find((s) => s.name === "vgi_rpc/hello")!;
  assert.ok(server, "server span recorded");
  assert.equal(server.spanContext().traceId, client.spanContext().traceId);
  assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
  assert.equal(server.attributes["rpc.system"], "vgi_rpc");
  assert.equal(server.attributes["rpc.service"], "test.Obs.v1");
  assert.equal(server.attributes["rpc.method"], "hello");
  assert.equal(server.attributes["rpc.vgi_rpc.output_rows"], 1);
  const failed = spans.find((s) => s.name === "vgi_rpc/fail")!;
  assert.equal(failed.status.code, 2 /* ERROR */);
  assert.equal(failed.attributes["rpc.vgi_rpc.error_type"], "ValueError");

  const rec = JSON.parse(readFileSync(path, "utf8").split("\n")[0]!) as Record<string, unknown>;
  assert.equal(rec.trace_id, client.spanContext().traceId);
  assert.equal(rec.span_id, server.spanContext().spanId);
});

test("our client's CLIENT span is the parent of the server span: one trace across both", async () => {
  exporter.reset();
  const server = createServer({
    protocols: [
      bind(P, {
        hello: ({ name }) => `hi ${name}`,
        fail: () => "",
        two: { init: () => ({ state: { n: 0n } }), produce: (_s, out) => out.finish() },
      }),
    ],
  });
  const { client } = memoryClient(server);
  const api = proxy(client, P);
  assert.equal(await api.hello({ name: "di" }), "hi di");
  await client.close();
  const spans = exporter.getFinishedSpans();
  const clientSpan = spans.find((s) => s.name === "vgi_rpc/hello" && s.kind === 2 /* CLIENT */);
  const serverSpan = spans.find((s) => s.name === "vgi_rpc/hello" && s.kind === 1 /* SERVER */);
  assert.ok(clientSpan && serverSpan, "both spans recorded");
  assert.equal(serverSpan.spanContext().traceId, clientSpan.spanContext().traceId);
  assert.equal(serverSpan.parentSpanContext?.spanId, clientSpan.spanContext().spanId);
});

test("a failing log destination drops records without failing calls, and reopen() follows rotation", async () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-al-"));
  const broken = createAccessLog({ path: join(dir, "missing-dir", "access.jsonl"), retryAfterMs: 60_000 });
  const { pipe, served, framer } = serve({ onCallEnd: broken.observer });
  for (let i = 0; i < 3; i++) {
    await pipe.client.write(req("hello", { name: t.utf8() }, { name: ["x"] }));
    const out = await readStream(framer);
    assert.equal(out!.batches.at(-1)!.getChildAt(0)!.get(0), "hi x", "the call is unaffected");
  }
  pipe.client.close();
  await served;
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(broken.dropped >= 2, `dropped ${broken.dropped}`);
  await broken.close();

  const path = join(dir, "access.jsonl");
  const log = createAccessLog({ path });
  const second = serve({ onCallEnd: log.observer });
  await second.pipe.client.write(req("hello", { name: t.utf8() }, { name: ["a"] }));
  await readStream(second.framer);
  for (let i = 0; i < 100 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
  renameSync(path, `${path}.1`); // rotation
  log.reopen();
  await second.pipe.client.write(req("hello", { name: t.utf8() }, { name: ["b"] }));
  await readStream(second.framer);
  second.pipe.client.close();
  await second.served;
  await log.close();
  assert.equal(readFileSync(`${path}.1`, "utf8").trim().split("\n").length, 1);
  assert.equal(readFileSync(path, "utf8").trim().split("\n").length, 1);
});

test("over HTTP the server span is parented on the traceparent header", async () => {
  exporter.reset();
  const server = createServer({
    protocols: [
      bind(P, {
        hello: ({ name }) => `hi ${name}`,
        fail: () => "",
        two: { init: () => ({ state: { n: 0n } }), produce: (_s, out) => out.finish() },
      }),
    ],
  });
  const http = await listenHttp(server, { port: 0 });
  try {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    const res = await fetch(`${http.url}/test.Obs.v1/hello`, {
      method: "POST",
      headers: { "content-type": "application/vnd.apache.arrow.stream", traceparent: `00-${traceId}-${parentId}-01` },
      body: concatBytes(req("hello", { name: t.utf8() }, { name: ["ed"] })) as Uint8Array<ArrayBuffer>,
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const span = exporter.getFinishedSpans().find((s) => s.name === "vgi_rpc/hello")!;
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanContext?.spanId, parentId);
  } finally {
    await http.close();
  }
});
