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
function dataBytes(data: Data, seen: Set<Data> | null): number {
  if (seen !== null) {
    if (seen.has(data)) return 0;
    seen.add(data);
  }
  const { type, length } = data;
  let n = data.nullCount > 0 ? Math.ceil(length / 8) : 0;
  const id = type.typeId;
  // The usual columns first, without the switch's many comparisons: none has children.
  if (id === Type.Int || id === Type.Float)
    return n + length * data.stride * (data.values as Int32Array).BYTES_PER_ELEMENT;
  if (id === Type.Utf8 || id === Type.Binary) {
    const offsets = data.valueOffsets as Int32Array;
    return n + (length > 0 ? offsets[length]! - offsets[0]! : 0) + (length + 1) * 4;
  }
  switch (id) {
    case Type.Null:
      n = 0;
      break;
    case Type.Bool:
      n += Math.ceil(length / 8);
      break;
    case Type.LargeUtf8:
    case Type.LargeBinary: {
      const offsets = data.valueOffsets as unknown as BigInt64Array;
      if (length > 0) n += Number(offsets[length]!) - Number(offsets[0]!);
      n += (length + 1) * 8;
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
      const width = (data.values as { BYTES_PER_ELEMENT?: number } | undefined)?.BYTES_PER_ELEMENT;
      if (width !== undefined) n += length * data.stride * width;
    }
  }
  const children = data.children;
  for (let i = 0; i < children.length; i++) n += dataBytes(children[i]!, seen);
  const dictionary = data.dictionary;
  if (dictionary) for (const d of dictionary.data) n += dataBytes(d, seen);
  return n;
}

/** Batches of at most this many columns may be counted without a set of arrays already counted. */
const FLAT_COLUMNS = 16;

/**
 * Whether `columns` are few, without children or dictionaries, and distinct objects: no array
 * among them can be counted twice, so no set of those seen is needed (most batches).
 */
function flatAndDistinct(columns: readonly Data[]): boolean {
  if (columns.length > FLAT_COLUMNS) return false;
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!;
    if (c.children.length > 0 || c.dictionary !== undefined) return false;
    for (let j = 0; j < i; j++) if (columns[j] === c) return false;
  }
  return true;
}

/** The logical buffer size of a batch; an array shared by two columns or dictionaries counts once. */
export function batchBytes(batch: RecordBatch): number {
  const columns = batch.data.children;
  const seen = flatAndDistinct(columns) ? null : new Set<Data>();
  let n = 0;
  for (let i = 0; i < columns.length; i++) n += dataBytes(columns[i]!, seen);
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
