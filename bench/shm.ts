/**
 * Shared-memory hand-off: one 64 MiB Arrow batch (int64 + float64 columns, 4 Mi rows) from this
 * process to a child, until the child holds the decoded batch and says so, three ways in one run:
 * - `pipe`: the IPC stream written to the child's stdin (a socketpair, as Node spawns stdio) and
 *   framed and decoded there — what the stdio transport does without shm;
 * - `pipe-raw`: the same number of plain bytes through the same kind of pipe, only counted by the
 *   child (the transport's ceiling, without Arrow framing or decoding);
 * - `shm`: the batch encoded into a segment allocation (one copy), a pointer line on the pipe, the
 *   child decoding in place (zero-copy, mmap backing) and freeing — what the shm side channel does;
 * - `shm-file`: the same through the file-I/O fallback backing (when asked for);
 * against the same-run baseline of copying 64 MiB into a reused buffer (`memcpy`).
 *
 *   node --import tsx bench/shm.ts [--iterations N] [--file]
 *
 * or from a harness: `const figures = await runShmBench({ iterations: 10 })`.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { cpus } from "node:os";
import type { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Field, Float64, Int64, makeData, RecordBatch, Schema, Struct } from "apache-arrow";
import { HEADER_SIZE, ShmSegment, shmSupport, writeBatchToShm } from "../src/transports/shm/index.js";
import { encodeStream } from "../src/wire/ipc.js";
import { benchScript } from "./paths.js";
import type { Figure } from "./report.js";

/** Options for `runShmBench`. */
export interface ShmBenchOptions {
  /** Timed hand-offs per path (after 2 untimed warm-ups); the median is reported. Default: 10. */
  readonly iterations?: number;
  /** Batch size in bytes (rounded down to whole 16-byte rows). Default: 64 MiB. */
  readonly batchBytes?: number;
  /** Also measure the file-I/O fallback backing. Default: false. */
  readonly fileBacking?: boolean;
  /** Each child is killed after this long, whatever happens. Default: 120000 ms. */
  readonly childTimeoutMs?: number;
}

/** The bench batch's schema (bench/shm-peer.ts decodes with it). */
export const BENCH_SCHEMA = new Schema([new Field("id", new Int64(), false), new Field("x", new Float64(), false)]);

const WARMUP = 2;
const FIGURE = "64 MiB Arrow batch hand-off to a child";

function makeBatch(bytes: number): RecordBatch {
  const rows = Math.floor(bytes / 16);
  const ids = new BigInt64Array(rows);
  const xs = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    ids[i] = BigInt(i);
    xs[i] = i * 0.5;
  }
  const children = [
    makeData({ type: BENCH_SCHEMA.fields[0]!.type, length: rows, nullCount: 0, data: ids }),
    makeData({ type: BENCH_SCHEMA.fields[1]!.type, length: rows, nullCount: 0, data: xs }),
  ];
  return new RecordBatch(
    BENCH_SCHEMA,
    makeData({ type: new Struct(BENCH_SCHEMA.fields), length: rows, nullCount: 0, children }),
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A child peer and a way to wait for its next answer line. */
function startPeer(args: string[], timeoutMs: number) {
  const child: ChildProcessByStdio<Writable, Readable, null> = spawn(
    process.execPath,
    [...benchScript("shm-peer"), ...args],
    { stdio: ["pipe", "pipe", "inherit"], timeout: timeoutMs },
  );
  child.stdin.on("error", () => {});
  let buffered = "";
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  let exited = false;
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      lines.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
    wake?.();
  });
  const done = new Promise<void>((resolve) =>
    child.on("exit", () => {
      exited = true;
      wake?.();
      resolve();
    }),
  );
  return {
    child,
    async line(): Promise<string> {
      while (lines.length === 0) {
        if (exited) throw new Error(`bench peer ${args.join(" ")} exited early`);
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
      return lines.shift()!;
    },
    async stop(): Promise<void> {
      child.stdin.end();
      await done;
    },
  };
}

function write(stream: Writable, chunk: Uint8Array): Promise<void> | null {
  return stream.write(chunk) ? null : new Promise((resolve) => stream.once("drain", () => resolve()));
}

/** Times `iterations` hand-offs (after warm-ups); checks every answer names the whole batch. */
async function timeHandOffs(iterations: number, expected: string, handOff: () => Promise<string>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + iterations; i++) {
    const t0 = performance.now();
    const answer = await handOff();
    const ms = performance.now() - t0;
    if (answer !== expected) throw new Error(`bench peer answered '${answer}', expected '${expected}'`);
    if (i >= WARMUP) times.push(ms);
  }
  return median(times);
}

async function viaPipe(batch: RecordBatch, iterations: number, timeoutMs: number, expected: string): Promise<number> {
  const peer = startPeer(["pipe"], timeoutMs);
  try {
    return await timeHandOffs(iterations, expected, async () => {
      for (const chunk of encodeStream(batch.schema, [batch])) await write(peer.child.stdin, chunk);
      return peer.line();
    });
  } finally {
    await peer.stop();
  }
}

async function viaShm(
  batch: RecordBatch,
  backing: "mmap" | "file",
  iterations: number,
  timeoutMs: number,
  expected: string,
): Promise<number> {
  // Room for the batch and its IPC framing, rounded up to whole MiB.
  const size =
    HEADER_SIZE + Math.ceil((batch.data.children.length * batch.numRows * 8 + (1 << 20)) / (1 << 20)) * (1 << 20);
  const segment = ShmSegment.create(size, { backing });
  const peer = startPeer(["shm", segment.name, String(segment.size), backing], timeoutMs);
  try {
    return await timeHandOffs(iterations, expected, async () => {
      const at = writeBatchToShm(segment, batch, { minBatchBytes: 0 });
      if (at === null) throw new Error("bench batch does not fit the segment");
      await write(peer.child.stdin, new TextEncoder().encode(`${at.offset} ${at.length}\n`));
      return peer.line();
    });
  } finally {
    await peer.stop();
    segment.close();
    segment.unlink();
  }
}

async function viaRawPipe(bytes: number, iterations: number, timeoutMs: number): Promise<number> {
  const peer = startPeer(["raw", String(bytes)], timeoutMs);
  const payload = new Uint8Array(bytes).fill(7);
  try {
    return await timeHandOffs(iterations, String(bytes), async () => {
      await write(peer.child.stdin, payload);
      return peer.line();
    });
  } finally {
    await peer.stop();
  }
}

function memcpy(bytes: number, iterations: number): number {
  const src = new Uint8Array(bytes).fill(1);
  const dst = new Uint8Array(bytes);
  const times: number[] = [];
  for (let i = 0; i < WARMUP + iterations; i++) {
    const t0 = performance.now();
    dst.set(src);
    const ms = performance.now() - t0;
    if (i >= WARMUP) times.push(ms);
  }
  return median(times);
}

/**
 * Runs the hand-off figures. Needs /dev/shm; the `shm` figure uses the mmap backing when the addon
 * is built and says `shm-file` (with the reason in `limit`) when it is not.
 */
export async function runShmBench(opts: ShmBenchOptions = {}): Promise<Figure[]> {
  const iterations = opts.iterations ?? 10;
  const timeoutMs = opts.childTimeoutMs ?? 120_000;
  const batch = makeBatch(opts.batchBytes ?? 64 * 1024 * 1024);
  const bytes = batch.numRows * 16;
  const expected = `${batch.numRows} ${batch.numRows - 1}`;
  const support = shmSupport();
  if (!support.available) throw new Error(`shared memory unavailable: ${support.reason}`);

  const copyMs = memcpy(bytes, iterations);
  const pipeMs = await viaPipe(batch, iterations, timeoutMs, expected);
  const rawMs = await viaRawPipe(bytes, iterations, timeoutMs);
  const shmMs = await viaShm(batch, support.backing, iterations, timeoutMs, expected);
  const figures: Figure[] = [
    {
      figure: `memcpy ${bytes >> 20} MiB into a reused buffer`,
      transport: "memcpy",
      value: copyMs,
      unit: "ms",
      limit: "baseline",
      ratio: 1,
    },
    {
      figure: FIGURE,
      transport: "pipe",
      value: pipeMs,
      unit: "ms",
      limit: "memcpy (same run): ratio = memcpy ms / pipe ms",
      ratio: copyMs / pipeMs,
    },
    {
      figure: `${bytes >> 20} MiB of plain bytes to a child`,
      transport: "pipe-raw",
      value: rawMs,
      unit: "ms",
      limit: "memcpy (same run): ratio = memcpy ms / raw pipe ms",
      ratio: copyMs / rawMs,
    },
    {
      figure: FIGURE,
      transport: support.backing === "mmap" ? "shm" : "shm-file",
      value: shmMs,
      unit: "ms",
      limit:
        support.backing === "mmap"
          ? `target >= 4x pipe (same run): ratio = pipe ms / shm ms; ${(rawMs / shmMs).toFixed(2)}x the raw pipe`
          : `addon unavailable (${support.reason}): ratio = pipe ms / shm ms`,
      ratio: pipeMs / shmMs,
    },
  ];
  if (opts.fileBacking === true && support.backing === "mmap") {
    const fileMs = await viaShm(batch, "file", iterations, timeoutMs, expected);
    figures.push({
      figure: FIGURE,
      transport: "shm-file",
      value: fileMs,
      unit: "ms",
      limit: "file-I/O fallback (same run): ratio = pipe ms / shm-file ms",
      ratio: pipeMs / fileMs,
    });
  }
  return figures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { iterations: { type: "string" }, file: { type: "boolean" } } });
  const figures = await runShmBench({
    iterations: values.iterations === undefined ? 10 : Number(values.iterations),
    fileBacking: values.file ?? false,
  });
  process.stdout.write(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? "unknown CPU"}\n`);
  for (const f of figures) {
    process.stdout.write(
      `${f.figure.padEnd(42)} ${f.transport.padEnd(8)} ${f.value.toFixed(2).padStart(9)} ${f.unit}  ratio ${f.ratio.toFixed(2)} (${f.limit})\n`,
    );
  }
}
