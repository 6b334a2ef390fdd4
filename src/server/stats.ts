/**
 * CallStatistics: batches, rows and bytes in each direction, counted as the reference counts
 * them — bytes are the logical Arrow buffer total (validity, offsets, data, children and
 * dictionaries), excluding IPC framing.
 */
import { type Data, type Dictionary, type RecordBatch, Type, type Union, UnionMode } from "apache-arrow";

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

/**
 * Logical bytes of one array: what its buffers must hold for `length` values, whatever the
 * allocation behind them (builders over-allocate; IPC pads to 8). Validity counts only when
 * there are nulls, as an IPC writer omits it otherwise.
 */
function dataBytes(data: Data, seen: Set<Data>): number {
  if (seen.has(data)) return 0;
  seen.add(data);
  const { type, length } = data;
  let n = data.nullCount > 0 ? Math.ceil(length / 8) : 0;
  switch (type.typeId) {
    case Type.Null:
      n = 0;
      break;
    case Type.Bool:
      n += Math.ceil(length / 8);
      break;
    case Type.Utf8:
    case Type.Binary:
    case Type.LargeUtf8:
    case Type.LargeBinary: {
      const large = type.typeId === Type.LargeUtf8 || type.typeId === Type.LargeBinary;
      const offsets = data.valueOffsets as Int32Array | BigInt64Array;
      if (length > 0) n += Number(offsets[length]!) - Number(offsets[0]!);
      n += (length + 1) * (large ? 8 : 4);
      break;
    }
    case Type.List:
    case Type.Map:
      n += (length + 1) * 4;
      break;
    case Type.LargeList:
      n += (length + 1) * 8;
      break;
    case Type.Struct:
    case Type.FixedSizeList:
      break;
    case Type.Union:
      n += length * ((type as Union).mode === UnionMode.Dense ? 5 : 1);
      break;
    case Type.Dictionary:
      n += length * ((type as Dictionary).indices.bitWidth / 8);
      break;
    default: {
      // Fixed-width: ints, floats, decimals, dates, times, timestamps, durations, intervals, fixed binary.
      const values = data.values as ArrayBufferView | undefined;
      const stride = data.stride;
      if (values && "BYTES_PER_ELEMENT" in values) {
        n += length * stride * (values as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      }
    }
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
