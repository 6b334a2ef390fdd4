/**
 * stdout belongs to IPC in a stdio worker: what its code prints through `process.stdout` goes to
 * stderr while it serves, stdout is its own again afterwards, and a passed `output` leaves
 * `process.stdout` alone. Workers are real subprocesses (`test/fixtures/chatty-worker.ts`).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { NonIpcBytesError, RpcError } from "../../src/errors.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { serveStdio } from "../../src/transports/stdio/server.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes } from "../../src/wire/ipc.js";
import { Chatty } from "../fixtures/chatty-protocol.js";
import { readStream, requestBytes } from "../helpers/raw-peer.js";

const WORKER = new URL("../fixtures/chatty-worker.ts", import.meta.url).pathname;
const PRINTED = [
  /console\.log from add\(2n?, 3n?\)\n/,
  /console\.info from add\n/,
  /process\.stdout\.write from add\n/,
  /piped into process\.stdout from add\n/,
];

/** Collects a stream's text as it arrives. */
function collect(stream: NodeJS.ReadableStream): { text: () => string; ended: Promise<unknown> } {
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (d: string) => {
    text += d;
  });
  return { text: () => text, ended: once(stream, "end") };
}

test("a worker's console.log and process.stdout.write reach its stderr while it serves, and its calls are answered", async () => {
  const client = await connectSubprocess(process.execPath, ["--import", "tsx", WORKER], {
    stderr: "pipe",
    timeoutMs: 20_000,
  });
  const timer = setTimeout(() => client.process.kill("SIGKILL"), 20_000);
  try {
    const stderr = collect(client.process.stderr!);
    const api = proxy(client, Chatty);
    assert.equal(await api.add({ a: 2n, b: 3n }), 5n);
    const rows = await (await api.count({ n: 3n })).toArray();
    assert.deepEqual(
      rows.map((r) => r.i),
      [0n, 1n, 2n],
    );
    assert.equal(await api.add({ a: 40n, b: 2n }), 42n);
    await client.close();
    await stderr.ended;
    for (const line of PRINTED) assert.match(stderr.text(), line);
    assert.match(stderr.text(), /console\.log from count, tick 3\n/);
  } finally {
    clearTimeout(timer);
    client.process.kill("SIGKILL");
  }
});

test("stdout carries nothing but IPC while the worker serves, and is its own again when serving ends", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER], { stdio: ["pipe", "pipe", "pipe"] });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const chunks: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    const stderr = collect(child.stderr);
    const exited = once(child, "exit");
    child.stdin.end(
      concatBytes(
        requestBytes("add", { a: t.int64(), b: t.int64() }, { a: [2n], b: [3n] }, {}, Chatty.name, Chatty.version),
      ),
    );
    const [code] = await exited;
    await stderr.ended;
    assert.equal(code, 0, stderr.text());
    const stdout = Buffer.concat(chunks);
    const after = "written to stdout after serving ended\n";
    // The answer, then (after the session) the worker's own line, and nothing else.
    assert.equal(stdout.subarray(stdout.length - after.length).toString(), after);
    const ipc = stdout.subarray(0, stdout.length - after.length);
    async function* bytes() {
      yield new Uint8Array(ipc);
    }
    const framer = new MessageFramer(bytes());
    const answer = await readStream(framer);
    assert.equal(answer?.batches.at(-1)?.getChildAt(0)?.get(0), 5n);
    assert.equal(await framer.next(), "end");
    for (const line of PRINTED) {
      assert.match(stderr.text(), line);
      assert.doesNotMatch(stdout.toString("latin1"), line);
    }
  } finally {
    clearTimeout(timer);
    child.kill("SIGKILL");
  }
});

test("a client whose worker prints to stdout before serving says the worker wrote non-IPC bytes, and shows them", async () => {
  const client = await connectSubprocess(process.execPath, ["--import", "tsx", WORKER, "--print-before-serving"], {
    stderr: "ignore",
    timeoutMs: 20_000,
  });
  const timer = setTimeout(() => client.process.kill("SIGKILL"), 20_000);
  try {
    const err = await proxy(client, Chatty)
      .add({ a: 1n, b: 1n })
      .then(
        () => assert.fail("expected the call to fail"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof RpcError);
    assert.equal(err.kind, "transport_error");
    assert.ok(
      err.message.startsWith('worker wrote non-IPC bytes to stdout: "hello world, this worker is starting up\\n'),
      err.message,
    );
    assert.match(err.message, /stdout carries the IPC stream only/);
    assert.match(err.message, /stderr/);
    assert.ok(err.cause instanceof NonIpcBytesError);
    assert.equal(err.cause.kind, "protocol_error");
    // The connection is unusable after that; later calls fail with the same error.
    await assert.rejects(proxy(client, Chatty).add({ a: 1n, b: 1n }), (e: unknown) => e === err);
  } finally {
    clearTimeout(timer);
    await client.close();
  }
});

test("serveStdio leaves process.stdout alone when it is given an output stream", async () => {
  const server = createServer({
    protocols: [
      bind(Chatty, {
        add: ({ a, b }) => a + b,
        count: { init: () => ({ state: { i: 0n, n: 0n } }), produce: (_s, out) => out.finish() },
      }),
    ],
  });
  const write = process.stdout.write;
  const input = new PassThrough();
  const output = new PassThrough();
  const served = serveStdio(server, { input, output, sharedMemory: false });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(process.stdout.write, write);
  assert.equal(Object.hasOwn(process.stdout, "write"), false);
  input.end();
  await served;
  assert.equal(process.stdout.write, write);
});
