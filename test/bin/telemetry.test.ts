/**
 * The executables configure OpenTelemetry from the standard variables: the conformance worker
 * with `OTEL_METRICS_EXPORTER=console` prints the call's metrics (on stderr, stdout being the
 * pipe's IPC) when it shuts down, and runs no trace exporter nobody asked for.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { connectSubprocess } from "../../src/transports/stdio/index.js";
import { WORKER } from "../helpers/raw-peer.js";

test("the conformance worker with OTEL_METRICS_EXPORTER=console prints rpc.server.* for the calls it served", async () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));
  const client = await connectSubprocess(process.execPath, ["--import", "tsx", WORKER, "--pipe"], {
    env: { ...env, OTEL_METRICS_EXPORTER: "console" },
    stderr: "pipe",
    exitTimeoutMs: 20_000,
  });
  let stderr = "";
  client.process.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => client.process.once("exit", (code) => resolve(code)));
  const svc = proxy(client, ConformanceService);
  assert.equal(await svc.echo_string({ value: "hi" }), "hi");
  assert.equal(await svc.echo_int({ value: 7n }), 7n);
  await client.close();
  assert.equal(await exited, 0, stderr);
  for (const name of [
    "rpc.server.requests",
    "rpc.server.duration",
    "rpc.vgi_rpc.server.batches",
    "rpc.vgi_rpc.server.rows",
    "rpc.vgi_rpc.server.bytes",
  ]) {
    assert.match(stderr, new RegExp(`name: '${name.replaceAll(".", "\\.")}'`), `${name} printed:\n${stderr}`);
  }
  assert.match(stderr, /'rpc\.method': 'echo_string'/);
  assert.match(stderr, /'rpc\.vgi_rpc\.transport': 'pipe'/);
  // Traces were not asked for: no span is printed, and no OTLP exporter complains of a missing collector.
  assert.doesNotMatch(stderr, /traceId|ECONNREFUSED/);
});
