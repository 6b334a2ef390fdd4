/**
 * CallStatistics: batches, rows and bytes in each direction, counted as the reference counts
 * them — bytes are the logical Arrow buffer total (validity, offsets, data, children and
 * dictionaries), excluding IPC framing.
 */
import type { Data, RecordBatch } from "apache-arrow";

export interface CallStatistics {
  inputBatches: number;
  inputRows: number;
  inputBytes: number;
  outputBatches: number;
  outputRows: number;
  outputBytes: number;
}

export function newStatistics(): CallStatistics {
  return { inputBatches: 0, inputRows: 0, inputBytes: 0, outputBatches: 0, outputRows: 0, outputBytes: 0 };
}

function dataBytes(data: Data, seen: Set<Data>): number {
  if (seen.has(data)) return 0;
  seen.add(data);
  let n = 0;
  for (const buf of [data.valueOffsets, data.values, data.nullBitmap, data.typeIds]) {
    if (buf) n += buf.byteLength;
  }
  for (const child of data.children) n += dataBytes(child, seen);
  if (data.dictionary) for (const d of data.dictionary.data) n += dataBytes(d, seen);
  return n;
}

/** The logical buffer size of a batch. */
export function batchBytes(batch: RecordBatch): number {
  const seen = new Set<Data>();
  let n = 0;
  for (const child of batch.data.children) n += dataBytes(child, seen);
  return n;
}

export function recordInput(stats: CallStatistics, batch: RecordBatch): void {
  stats.inputBatches += 1;
  stats.inputRows += batch.numRows;
  stats.inputBytes += batchBytes(batch);
}

export function recordOutput(stats: CallStatistics, batch: RecordBatch): void {
  stats.outputBatches += 1;
  stats.outputRows += batch.numRows;
  stats.outputBytes += batchBytes(batch);
}
