/**
 * The receiving process of bench/shm.ts. Reads batches from stdin and answers one line per batch
 * ("<rows> <last int64>") once it holds the decoded batch.
 *
 *   shm-peer.ts pipe                          IPC streams back to back on stdin
 *   shm-peer.ts raw <bytes>                   plain bytes; one line per <bytes> received
 *   shm-peer.ts shm <name> <size> <backing>   lines "<offset> <length>" naming regions of the
 *                                             segment; each is decoded (zero-copy with mmap)
 *                                             and freed, as a worker resolves a pointer batch
 *
 * Exits when stdin ends, or after TIMEOUT_MS whatever happens.
 */
import { createInterface } from "node:readline";
import type { RecordBatch } from "apache-arrow";
import { readBatchFromShm, ShmSegment } from "../src/transports/shm/index.js";
import { MessageFramer } from "../src/wire/framer.js";
import { IpcStreamDecoder } from "../src/wire/ipc.js";
import { BENCH_SCHEMA } from "./shm.js";

const TIMEOUT_MS = 10 * 60 * 1000;
setTimeout(() => process.exit(3), TIMEOUT_MS).unref();

function summary(batch: RecordBatch): string {
  const ids = batch.getChild("id")!;
  return `${batch.numRows} ${String(ids.get(batch.numRows - 1))}\n`;
}

async function pipe(): Promise<void> {
  const framer = new MessageFramer(process.stdin[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>, {
    maxMessageBytes: 1024 * 1024 * 1024,
  });
  let decoder = new IpcStreamDecoder();
  for (;;) {
    const f = await framer.next();
    if (f === "end") return;
    if (f === "eos") {
      decoder = new IpcStreamDecoder();
      continue;
    }
    const out = decoder.accept(f);
    if (out !== null && "numRows" in out) process.stdout.write(summary(out));
  }
}

async function raw(each: number): Promise<void> {
  let got = 0;
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array>) {
    got += chunk.byteLength;
    while (got >= each) {
      got -= each;
      process.stdout.write(`${each}\n`);
    }
  }
}

async function shm(name: string, size: number, backing: "mmap" | "file"): Promise<void> {
  const segment = ShmSegment.attach(name, size, { backing });
  for await (const line of createInterface({ input: process.stdin })) {
    const [offset, length] = line.split(" ").map(Number) as [number, number];
    const batch = readBatchFromShm(segment, offset, length, BENCH_SCHEMA);
    const answer = summary(batch); // done with the batch: only now may its region be reused
    segment.free(offset);
    process.stdout.write(answer);
  }
  segment.close();
}

const [mode, name, size, backing] = process.argv.slice(2);
if (mode === "pipe") await pipe();
else if (mode === "raw" && name) await raw(Number(name));
else if (mode === "shm" && name && size && (backing === "mmap" || backing === "file")) {
  await shm(name, Number(size), backing);
} else {
  process.stderr.write("usage: shm-peer.ts pipe | raw <bytes> | shm <name> <size> <mmap|file>\n");
  process.exit(2);
}
