/**
 * A byte-level peer for a spawned worker: writes raw bytes to its stdin and reads whole IPC
 * streams from its stdout with the wire framer. Tests use it to send exactly what they mean,
 * malformed input included. Every spawned process has a timeout.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import type { RecordBatch, Schema } from "apache-arrow";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import type { FieldSpecs } from "../../src/protocol/types.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";

export const WORKER = new URL("../../src/bin/quiver-conformance.ts", import.meta.url).pathname;

export interface ReadStream {
  readonly schema: Schema;
  readonly batches: RecordBatch[];
}

/** Reads one whole IPC stream from a framer; null if the source ended first. */
export async function readStream(framer: MessageFramer): Promise<ReadStream | null> {
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  for (;;) {
    const f = await framer.next();
    if (f === "end") return null;
    if (f === "eos") return { schema: decoder.schema!, batches };
    const r = decoder.accept(f);
    if (r !== null && "numRows" in r) batches.push(r);
  }
}

/** A stream of `batches` on `fields`, as bytes. */
export function streamBytes(schema: Schema, batches: readonly RecordBatch[]): Uint8Array[] {
  return encodeStream(schema, batches);
}

export class RawPeer {
  readonly framer: MessageFramer;
  private readonly timer: NodeJS.Timeout;
  stderr = "";

  private constructor(
    readonly child: ChildProcessWithoutNullStreams,
    timeoutMs: number,
  ) {
    this.framer = new MessageFramer(child.stdout[Symbol.asyncIterator]());
    child.stderr.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  }

  /** Spawns the conformance worker under tsx. */
  static spawnWorker(timeoutMs = 20_000): RawPeer {
    const child = spawn(process.execPath, ["--import", "tsx", WORKER], { stdio: ["pipe", "pipe", "pipe"] });
    return new RawPeer(child, timeoutMs);
  }

  write(bytes: Uint8Array | readonly Uint8Array[]): void {
    this.child.stdin.write(bytes instanceof Uint8Array ? bytes : concatBytes(bytes));
  }

  /** Reads one whole IPC stream; null if the worker closed stdout first. */
  readStream(): Promise<ReadStream | null> {
    return readStream(this.framer);
  }

  private open: IpcStreamDecoder | null = null;

  /** Reads the next batch of the current (or next) stream; "eos" at its end, null at EOF. */
  async nextBatch(): Promise<RecordBatch | "eos" | null> {
    this.open ??= new IpcStreamDecoder();
    for (;;) {
      const f = await this.framer.next();
      if (f === "end") return null;
      if (f === "eos") {
        this.open = null;
        return "eos";
      }
      const r = this.open.accept(f);
      if (r !== null && "numRows" in r) return r;
    }
  }

  /** Closes stdin and waits for the exit code. */
  async close(): Promise<number | null> {
    this.child.stdin.end();
    const [code] = (this.child.exitCode !== null ? [this.child.exitCode] : await once(this.child, "exit")) as [
      number | null,
    ];
    clearTimeout(this.timer);
    return code;
  }
}

/** The bytes of a request stream: one batch of `values`, with routing metadata. */
export function requestBytes<F extends FieldSpecs>(
  method: string,
  fields: F,
  values: Readonly<Record<string, readonly unknown[]>>,
  extra: Readonly<Record<string, string>> = {},
  protocol = "ConformanceService",
  version: string | null = "2.0.0",
): Uint8Array[] {
  const md = new Map<string, string>([
    ["vgi_rpc.method", method],
    ["vgi_rpc.request_version", "1"],
    ["vgi_rpc.protocol", protocol],
  ]);
  if (version !== null) md.set("vgi_rpc.protocol_version", version);
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  const batch = batchFromColumns(fields, values as never, md);
  return encodeStream(schemaOf(fields), [batch]);
}
