/**
 * zstd compression of large response bodies on a worker thread. The compressor (zstd compiled
 * to WebAssembly) is synchronous and costs 50-100 ms per MiB at level 1 on incompressible data:
 * on the event loop, one client asking for a 16 MiB zstd answer would stall every other
 * connection for over a second. One thread, started on first use and not keeping the process
 * alive, compresses one body at a time; small bodies stay on the event loop (cheaper than the hop).
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** The worker's code: loads the compressor once, then answers one job per message. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { pathToFileURL } = require("node:url");
import(pathToFileURL(workerData.module).href).then(async ({ Zstd }) => {
  const zstd = await Zstd.load();
  parentPort.on("message", ({ id, body, level }) => {
    try {
      const out = zstd.compress(body, level);
      const own = out.byteOffset === 0 && out.buffer.byteLength === out.byteLength ? out : out.slice();
      parentPort.postMessage({ id, out: own }, [own.buffer]);
    } catch (err) {
      parentPort.postMessage({ id, error: String(err && err.message || err) });
    }
  });
}).catch((err) => { throw err; });
`;

interface Job {
  resolve(out: Uint8Array | null): void;
}

interface Reply {
  readonly id: number;
  readonly out?: Uint8Array;
  readonly error?: string;
}

let worker: Worker | null = null;
let failed = false;
let nextId = 0;
const jobs = new Map<number, Job>();

/** Fails every job in flight (resolved null: the body then goes out uncompressed). */
function abandon(): void {
  for (const job of jobs.values()) job.resolve(null);
  jobs.clear();
}

function start(): Worker | null {
  if (worker !== null || failed) return worker;
  try {
    const module = createRequire(import.meta.url).resolve("@hpcc-js/wasm-zstd");
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module } });
    w.unref();
    w.on("message", (reply: Reply) => {
      const job = jobs.get(reply.id);
      if (job === undefined) return;
      jobs.delete(reply.id);
      job.resolve(reply.out ?? null);
      if (jobs.size === 0) w.unref();
    });
    w.on("error", () => {
      failed = true;
      worker = null;
      abandon();
    });
    w.on("exit", () => {
      worker = null;
      abandon();
    });
    worker = w;
  } catch {
    failed = true;
  }
  return worker;
}

/**
 * `body` compressed at `level` on the worker thread (one frame carrying its content size, as the
 * event-loop compressor writes it), or null when the thread is unavailable. `body` is copied to
 * the thread; the caller's buffer is left alone.
 */
export function compressOnThread(body: Uint8Array, level: number): Promise<Uint8Array | null> {
  const w = start();
  if (w === null) return Promise.resolve(null);
  const id = nextId++;
  return new Promise<Uint8Array | null>((resolve) => {
    jobs.set(id, { resolve });
    // Referenced while a job is in flight, so a process awaiting the answer does not exit under it.
    w.ref();
    w.postMessage({ id, body, level });
  });
}
