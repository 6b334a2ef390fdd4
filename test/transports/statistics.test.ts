/**
 * CallStatistics on every transport, proven end to end: the reference's own CLI calls a producer
 * of 5 batches of 100 rows on the conformance worker, and the worker's access log must account
 * for exactly those rows and bytes — whether the stream ran on one connection or across HTTP
 * requests continued by tokens.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { WORKER } from "../helpers/raw-peer.js";
import { PYTHON } from "../helpers/reference.js";

const CLI = join(dirname(PYTHON), "vgi-rpc");
/** Two nullable int64 columns: 16 logical bytes a row. */
const ROWS = 500;
const BYTES = ROWS * 16;

function startWorker(args: string[], prefix: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  child.on("exit", () => clearTimeout(timer));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith(prefix));
      if (line) resolve({ child, address: line.slice(prefix.length).trim() });
    });
    child.on("exit", (code) => reject(new Error(`worker exited (${code}) before printing ${prefix}`)));
  });
}

function callProducer(target: string[]): string[] {
  const r = spawnSync(
    CLI,
    [...target, "--format", "json", "call", "produce_large_batches", "rows_per_batch=100", "batch_count=5"],
    // stdin closed (not an empty pipe): the reference CLI reads a piped stdin as call input.
    { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split("\n");
}

interface Totals {
  records: number;
  outputBatches: number;
  outputRows: number;
  outputBytes: number;
  streamIds: Set<string>;
}

function totals(logPath: string): Totals {
  const t: Totals = { records: 0, outputBatches: 0, outputRows: 0, outputBytes: 0, streamIds: new Set() };
  for (const line of readFileSync(logPath, "utf8").trim().split("\n")) {
    const rec = JSON.parse(line) as Record<string, unknown>;
    if (rec.method !== "produce_large_batches") continue;
    t.records += 1;
    t.outputBatches += Number(rec.output_batches);
    t.outputRows += Number(rec.output_rows);
    t.outputBytes += Number(rec.output_bytes);
    t.streamIds.add(String(rec.stream_id));
  }
  return t;
}

const logIn = () => join(mkdtempSync(join(tmpdir(), "quiver-stats-")), "access.jsonl");

async function waitForLog(path: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      if (readFileSync(path, "utf8").includes("produce_large_batches")) return;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("pipe: a producer of 5 x 100 rows is one record of 5 batches, 500 rows, 8000 bytes", async () => {
  const log = logIn();
  const rows = callProducer(["--cmd", `${process.execPath} --import tsx ${WORKER} --access-log ${log}`]);
  assert.equal(rows.length, ROWS);
  await waitForLog(log);
  const t = totals(log);
  assert.deepEqual([t.records, t.outputBatches, t.outputRows, t.outputBytes], [1, 5, ROWS, BYTES]);
});

test("unix socket: the same call is accounted the same way", async () => {
  const log = logIn();
  const sock = join(mkdtempSync(join(tmpdir(), "quiver-stats-")), "w.sock");
  const { child } = await startWorker(["--unix", sock, "--access-log", log], "UNIX:");
  try {
    assert.equal(callProducer(["--unix", sock]).length, ROWS);
    await waitForLog(log);
    const t = totals(log);
    assert.deepEqual([t.records, t.outputBatches, t.outputRows, t.outputBytes], [1, 5, ROWS, BYTES]);
  } finally {
    child.kill("SIGTERM");
  }
});

test("http: the stream's requests share one stream_id and add up to 500 rows and 8000 bytes", async () => {
  const log = logIn();
  const { child, address } = await startWorker(["--http", "--access-log", log], "PORT:");
  try {
    assert.equal(callProducer(["--url", `http://127.0.0.1:${address}`]).length, ROWS);
    await waitForLog(log);
    const t = totals(log);
    assert.ok(t.records >= 1);
    assert.equal(t.streamIds.size, 1, "one stream id across the continuation requests");
    assert.equal(t.outputRows, ROWS);
    assert.equal(t.outputBytes, BYTES);
    // Data batches plus zero-row continuation sentinels.
    assert.ok(t.outputBatches >= 5);
  } finally {
    child.kill("SIGTERM");
  }
});
