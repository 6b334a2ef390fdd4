/**
 * `serveCluster` with real processes: two workers share one port, a stream begun on one process
 * continues on the other (one token key), a killed worker is replaced and the new one continues
 * the others' streams, WebSocket sessions are served, and closing the primary ends every worker.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { proxy } from "../../src/client/typed.js";
import { connectHttp } from "../../src/transports/http/index.js";
import { connectWebSocketClient } from "../../src/transports/ws/index.js";
import { Where } from "../fixtures/cluster-server.js";
import { alive, until } from "../helpers/processes.js";

const SERVER = fileURLToPath(new URL("../fixtures/cluster-server.ts", import.meta.url));
const T = { timeout: 30_000 };

let primary: ChildProcessWithoutNullStreams;
let port = 0;
let pids: number[] = [];

before(async () => {
  primary = spawn(process.execPath, ["--import", "tsx", SERVER], { stdio: "pipe", timeout: 120_000 });
  primary.stderr.pipe(process.stderr);
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    primary.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    primary.once("exit", (code) => reject(new Error(`cluster primary exited (${code})`)));
  });
  const m = /^PORT:(\d+) PIDS:(\d+),(\d+)$/.exec(line);
  assert.ok(m, line);
  port = Number(m[1]);
  pids = [Number(m[2]), Number(m[3])];
});
after(() => {
  if (primary.exitCode === null) primary.kill("SIGKILL");
  for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
});

/** An HTTP client opening a new connection per request, so the primary deals requests out in turn. */
function client() {
  return connectHttp(`http://127.0.0.1:${port}`, {
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set("connection", "close");
      return fetch(input, { ...init, headers });
    },
  });
}

test("both workers answer on the one port, and a stream begun on one continues on the other", T, async () => {
  const c = client();
  try {
    const where = proxy(c, Where);
    const seen = new Set<bigint>();
    for (let i = 0; i < 6; i++) seen.add(await where.pid({}));
    assert.deepEqual([...seen].map(Number).sort(), [...pids].sort());
    const rows: Array<{ i: bigint; pid: bigint }> = [];
    for await (const row of await where.walk({ n: 8n })) rows.push(row);
    assert.deepEqual(
      rows.map((r) => r.i),
      [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n],
    );
    assert.equal(new Set(rows.map((r) => r.pid)).size, 2, "the turns were served by both processes");
  } finally {
    await c.close();
  }
});

test("WebSocket sessions are served by the cluster's workers", T, async () => {
  const ws = await connectWebSocketClient(`ws://127.0.0.1:${port}/ws`);
  try {
    assert.ok(pids.includes(Number(await proxy(ws, Where).pid({}))));
  } finally {
    await ws.close();
  }
});

test("a killed worker is replaced, and the replacement continues the survivor's streams", T, async () => {
  const [victim, survivor] = pids as [number, number];
  process.kill(victim, "SIGKILL");
  await until("the worker to die", () => !alive(victim));
  const c = client();
  try {
    const where = proxy(c, Where);
    let replacement = 0;
    const end = performance.now() + 20_000;
    while (replacement === 0 && performance.now() < end) {
      const pid = Number(await where.pid({}));
      if (pid !== survivor) replacement = pid;
    }
    assert.ok(replacement !== 0 && replacement !== victim, "a new worker answers");
    pids = [survivor, replacement];
    const rows: Array<{ i: bigint; pid: bigint }> = [];
    for await (const row of await where.walk({ n: 6n })) rows.push(row);
    assert.equal(rows.length, 6);
    assert.deepEqual(new Set(rows.map((r) => Number(r.pid))), new Set(pids));
  } finally {
    await c.close();
  }
});

test("SIGTERM to the primary closes every worker, then the primary exits 0", T, async () => {
  const exited = new Promise<number | null>((resolve) => primary.once("exit", (code) => resolve(code)));
  primary.kill("SIGTERM");
  assert.equal(await exited, 0);
  for (const pid of pids) assert.equal(alive(pid), false);
});
