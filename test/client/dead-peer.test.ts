/**
 * A server that dies or hangs mid-call gives the client a typed `transport_error` within a
 * bounded time, never a hang; the client stays failed (not desynced) afterwards.
 */
import assert from "node:assert/strict";
import { createServer as createNetServer } from "node:net";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { RpcError } from "../../src/errors.js";
import { connectUnix } from "../../src/transports/socket/client.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { referenceWorker, socketPath, within } from "./helpers.js";

const isTransportError = (e: unknown) => {
  assert.ok(e instanceof RpcError, `expected RpcError, got ${String(e)}`);
  assert.equal(e.kind, "transport_error");
  assert.equal(e.type, "TransportError");
  assert.equal(e.code, "UNAVAILABLE");
  return true;
};

test("reference worker killed (SIGKILL) mid-stream: the next turn fails with transport_error at once", async () => {
  const [cmd, args] = referenceWorker("--pipe");
  const client = await connectSubprocess(cmd, args, { timeoutMs: 30_000, stderr: "ignore" });
  const svc = proxy(client, ConformanceService);
  const s = await svc.cancellable_producer();
  const it = s[Symbol.asyncIterator]();
  assert.equal((await it.next()).done, false);
  client.process.kill("SIGKILL");
  const started = Date.now();
  await within(assert.rejects(it.next(), isTransportError), 5_000, "the turn after the kill");
  assert.ok(Date.now() - started < 5_000);
  await within(assert.rejects(svc.echo_string({ value: "x" }), isTransportError), 2_000, "a later call");
  await within(client.close(), 5_000, "close");
});

test("reference worker killed while a call waits for its answer: transport_error, not a hang", async () => {
  const [cmd, args] = referenceWorker("--pipe");
  const client = await connectSubprocess(cmd, args, { timeoutMs: 30_000, stderr: "ignore" });
  const svc = proxy(client, ConformanceService);
  assert.equal(await svc.echo_string({ value: "warm" }), "warm");
  // A call in flight when the process dies.
  const pending = svc.produce_large_batches({ rows_per_batch: 200_000n, batch_count: 50n }).then((s) => s.toArray());
  setTimeout(() => client.process.kill("SIGKILL"), 50);
  await within(assert.rejects(pending, isTransportError), 5_000, "the call in flight");
  await within(client.close(), 5_000, "close");
});

test("a server that never answers: transport_error when the timeout expires", async () => {
  const client = await connectSubprocess("sleep", ["30"], { timeoutMs: 400, exitTimeoutMs: 200, stderr: "ignore" });
  const started = Date.now();
  await within(
    assert.rejects(proxy(client, ConformanceService).echo_string({ value: "hello?" }), (e: unknown) => {
      isTransportError(e);
      assert.match((e as Error).message, /within 400 ms/);
      return true;
    }),
    3_000,
    "the unanswered call",
  );
  assert.ok(Date.now() - started >= 350);
  await within(client.close(), 3_000, "close");
});

test("a worker that exits while a grandchild holds its stdout: transport_error after the exit grace", async () => {
  // The grandchild inherits both pipes and keeps them open, so only the worker's exit tells.
  const script =
    "require('node:child_process').spawn('sleep', ['20'], { stdio: 'inherit', detached: true }).unref(); setTimeout(() => process.exit(0), 100);";
  const client = await connectSubprocess(process.execPath, ["-e", script], {
    timeoutMs: 60_000,
    exitGraceMs: 300,
    stderr: "ignore",
  });
  const started = Date.now();
  await within(
    assert.rejects(proxy(client, ConformanceService).echo_string({ value: "x" }), isTransportError),
    3_000,
    "the call after the worker exited",
  );
  assert.ok(Date.now() - started >= 200, "failed before the exit grace: not the path under test");
  await within(client.close(), 3_000, "close");
});

test("a socket server that drops the connection mid-call: transport_error", async () => {
  const path = socketPath("drop.sock");
  const net = createNetServer((sock) => {
    sock.once("data", () => sock.destroy());
  });
  await new Promise<void>((r) => net.listen(path, r));
  try {
    const client = await connectUnix(path, { timeoutMs: 30_000 });
    await within(
      assert.rejects(proxy(client, ConformanceService).echo_string({ value: "x" }), isTransportError),
      3_000,
      "the dropped call",
    );
    await client.close();
  } finally {
    await new Promise<void>((r) => net.close(() => r()));
  }
});

test("spawning a missing program fails with transport_error", async () => {
  await assert.rejects(connectSubprocess("/nonexistent/quiver-worker", [], { stderr: "ignore" }), isTransportError);
});
