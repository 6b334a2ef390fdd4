// Observability: an access log (one JSON line per call, in the reference's format), a per-call
// hook counting usage per caller, and OpenTelemetry spans on both sides of a call. The spans go
// to an in-memory exporter here; in production register an OTLP exporter instead.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { bind, type CallRecord, createAccessLog, createServer, defineProtocol, proxy, t, unary } from "quiver-rpc";
import { connectHttp, listenHttp } from "quiver-rpc/http";

// quiver uses the global tracer provider of @opentelemetry/api: register one first.
const spans = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
provider.register();

const Stats = defineProtocol(
  "acme.Stats.v1",
  { version: "1.0.0" },
  {
    mean: unary({ values: t.list(t.float64()) }, t.float64()),
  },
);

const path = join(mkdtempSync(join(tmpdir(), "quiver-example-")), "access.jsonl");
const accessLog = createAccessLog({ path });
const bytesOut = new Map<string, number>();
const usage = (r: CallRecord) => {
  const who = r.auth.principal || "anonymous";
  bytesOut.set(who, (bytesOut.get(who) ?? 0) + r.stats.outputBytes);
};

const server = createServer({
  protocols: [
    bind(Stats, {
      mean: ({ values }, ctx) => {
        ctx.logger.info({ n: values.length }, "computing a mean"); // pino; silent unless you pass `logger`
        return values.reduce((a, b) => a + b, 0) / values.length;
      },
    }),
  ],
  onCallEnd: accessLog.observer,
});
server.observe(usage); // a second observer

const http = await listenHttp(server, { port: 0 });
const client = connectHttp(http.url);
console.log(`mean: ${await proxy(client, Stats).mean({ values: [1, 2, 3, 4] })}`);
await client.close();
await http.close();
await accessLog.close();

const record = JSON.parse(readFileSync(path, "utf8").trim().split("\n")[0] ?? "{}") as Record<string, unknown>;
console.log(`access log: method=${String(record.method)} status=${String(record.status)}`);
console.log(`usage: ${JSON.stringify(Object.fromEntries(bytesOut))}`);
for (const span of spans.getFinishedSpans()) {
  console.log(`span: ${span.name} ${SpanKind[span.kind]} trace=${span.spanContext().traceId.slice(0, 8)}…`);
}
await provider.shutdown();
