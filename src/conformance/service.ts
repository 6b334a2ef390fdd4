/**
 * The conformance service: the TypeScript port of the reference's `ConformanceService`
 * (`vgi_rpc/conformance/_protocol.py`, 90 methods) and of its implementation (`_impl.py` plus the
 * stream states of `_types.py`). Strings, log messages, counters and header values are the
 * reference's, formatted as Python formats them.
 *
 * Declarations follow the reference's wire types exactly (checked against
 * `test/fixtures/reference-protocols.json`). Stream output and input schemas are the reference's
 * `pa.schema([pa.field(...)])` schemas, whose fields are nullable.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { type Data, type Float64, Int64, makeData } from "apache-arrow";
import { RpcError, RuntimeError, ValueError } from "../errors.js";
import { type ExternalCompression, type ExternalRef, publishExternal } from "../external/externalize.js";
import type { ExternalStorage } from "../external/storage.js";
import { batchFromData, batchFromRows, schemaOf } from "../protocol/batch.js";
import type { LogLevel } from "../protocol/context.js";
import {
  defineProtocol,
  exchange,
  type Implementation,
  type InputBatch,
  type OutputCollector,
  producer,
  unary,
} from "../protocol/methods.js";
import { type FieldSpecs, type RowOf, t } from "../protocol/types.js";
import { add, nanResultBits } from "./float-ops.js";
import { compareCodePoints, pyFloatRepr, pyMod } from "./pyrepr.js";
import {
  ConformanceHeaderFields,
  DATACLASSES,
  dataclassBatch,
  decodeDataclass,
  encodeDataclass,
  type NestedContainers,
  type Point,
  pointStruct,
  type RichHeader,
  RichHeaderFields,
  recordBatchToIPC,
  STATUS_MEMBERS,
  type Status,
  status,
  toStatus,
} from "./types.js";

// ---------------------------------------------------------------------------------------------
// Stream schemas (reference `_types.py` / `_impl.py`)

/** `_COUNTER_SCHEMA`: `{index, value}` int64. */
const CounterOut = { index: t.int64().optional(), value: t.int64().optional() };
/** `produce_tick_metadata`'s output. */
const TickOut = { index: t.int64().optional(), seen: t.utf8().optional() };
/** `_ANNOTATED_SCHEMA`. */
const AnnotatedOut = { value: t.int64().optional() };
/** `_SCALE_INPUT_SCHEMA` / `_SCALE_OUTPUT_SCHEMA` (also `_LOGGING_EXCHANGE_*`, `_ACCUM_INPUT_SCHEMA`). */
const ScaleIO = { value: t.float64().optional() };
/** `_ACCUM_OUTPUT_SCHEMA`. */
const AccumOut = { running_sum: t.float64().optional(), exchange_count: t.int64().optional() };
/** `_INPUT_METADATA_OUTPUT_SCHEMA`. */
const InputMetadataOut = { seen: t.utf8().optional(), keys: t.utf8().optional() };
/** `_SESSION_COUNTER_OUTPUT_SCHEMA`. */
const SessionCounterOut = { value: t.int64().optional() };
/** `_SESSION_COUNTER_EXCHANGE_INPUT_SCHEMA`. */
const SessionCounterIn = { by: t.int64().optional() };
const Empty = {};

// Stream states: the reference's state dataclasses (`_types.py`), less the fields no turn reads
// (`_placeholder`, `ZeroColumnExchangeState.call_count`); streams with none are stateless. What a
// stream keeps between turns; over HTTP it travels in the continuation token, so turns read
// everything they need from it (and the output schema from `out.schema`).

/** `CounterState`, `HeaderProducerState`, `LoggingProducerState`, `TickMetadataState`, `SessionCounterProducerState`. */
const CounterState = { count: t.int64(), current: t.int64() };
/** `SingleProducerState`. */
const SingleState = { emitted: t.bool() };
/** `LargeProducerState`. */
const LargeState = { rows_per_batch: t.int64(), batch_count: t.int64(), current: t.int64() };
/** `AnnotatedProducerState`. */
const AnnotatedState = { count: t.int64(), rows_per_batch: t.int64(), current: t.int64() };
/** `OversizedBatchState`. */
const OversizedBatchState = { rows_per_batch: t.int64(), emitted: t.bool() };
/** `ErrorAfterNState`. */
const ErrorAfterNState = { emit_before_error: t.int64(), current: t.int64() };
/** `CancellableProducerState`. */
const CancellableState = { current: t.int64() };
/** `DynamicProducerState`. */
const DynamicState = { count: t.int64(), include_strings: t.bool(), include_floats: t.bool(), current: t.int64() };
/** `ScaleExchangeState`. */
const ScaleState = { factor: t.float64() };
/** `AccumulatingExchangeState`. */
const AccumState = { running_sum: t.float64(), exchange_count: t.int64() };
/** `FailOnExchangeNState`. */
const FailOnState = { fail_on: t.int64(), exchange_count: t.int64() };
/** `OversizedExchangeState`. */
const OversizedExchangeState = { rows_per_batch: t.int64() };

/** The application metadata key `produce_tick_metadata` reports (`TickMetadataState`). */
export const TICK_METADATA_KEY = "vgi.conformance.tick";
/** The application metadata key `exchange_input_metadata` reports (`INPUT_METADATA_KEY`). */
export const INPUT_METADATA_KEY = "vgi.conformance.input";
/** `ANNOTATED_EMIT_LABEL`: deliberately non-ASCII. */
export const ANNOTATED_EMIT_LABEL = "\u00fcn\u00efcode-\u03bb";

// ---------------------------------------------------------------------------------------------
// Declarations

export const ConformanceService = defineProtocol(
  "ConformanceService",
  { version: "2.0.0" },
  {
    // Unary: scalar echo
    echo_string: unary({ value: t.utf8() }, t.utf8()),
    echo_bytes: unary({ data: t.binary() }, t.binary()),
    oversized_unary: unary({ target_bytes: t.int64() }, t.binary()),
    published_string: unary({ value: t.utf8(), include_sha256: t.bool() }, t.utf8()),
    echo_int: unary({ value: t.int64() }, t.int64()),
    echo_float: unary({ value: t.float64() }, t.float64()),
    echo_bool: unary({ value: t.bool() }, t.bool()),

    // Unary: void returns
    void_noop: unary({}, null),
    void_with_param: unary({ value: t.int64() }, null),

    // Unary: complex type echo
    echo_enum: unary({ status: status() }, status()),
    echo_list: unary({ values: t.list(t.utf8()) }, t.list(t.utf8())),
    echo_dict: unary({ mapping: t.map(t.utf8(), t.int64()) }, t.map(t.utf8(), t.int64())),
    echo_nested_list: unary({ matrix: t.list(t.list(t.int64())) }, t.list(t.list(t.int64()))),

    // Unary: optional / nullable
    echo_optional_string: unary({ value: t.utf8().optional() }, t.utf8().optional()),
    echo_optional_int: unary({ value: t.int64().optional() }, t.int64().optional()),
    echo_optional_point: unary({ point: t.binary().optional() }, t.binary().optional()),
    echo_annotated_optional_int: unary({ value: t.int32().optional() }, t.int32().optional()),
    // `Annotated[int, ArrowType(pa.int32(), nullable=False)] | None`: the explicit override wins.
    echo_outer_optional_non_null: unary({ value: t.int32() }, t.int32()),

    // Unary: dataclass round trip (dataclasses travel as IPC bytes)
    echo_point: unary({ point: t.binary() }, t.binary()),
    echo_all_types: unary({ data: t.binary() }, t.binary()),
    echo_bounding_box: unary({ box: t.binary() }, t.binary()),

    // Unary: dataclass as parameter
    inspect_point: unary({ point: t.binary() }, t.utf8()),

    // Unary: annotated types
    echo_int32: unary({ value: t.int32() }, t.int32()),
    echo_float32: unary({ value: t.float32() }, t.float32()),

    // Unary: wide Arrow types
    echo_int8: unary({ value: t.int8() }, t.int8()),
    echo_int16: unary({ value: t.int16() }, t.int16()),
    echo_uint8: unary({ value: t.uint8() }, t.uint8()),
    echo_uint16: unary({ value: t.uint16() }, t.uint16()),
    echo_uint32: unary({ value: t.uint32() }, t.uint32()),
    echo_uint64: unary({ value: t.uint64() }, t.uint64()),
    echo_date: unary({ value: t.date32() }, t.date32()),
    echo_timestamp: unary({ value: t.timestampUs() }, t.timestampUs()),
    echo_timestamp_utc: unary({ value: t.timestampUs("UTC") }, t.timestampUs("UTC")),
    echo_time: unary({ value: t.time64Us() }, t.time64Us()),
    echo_duration: unary({ value: t.durationUs() }, t.durationUs()),
    echo_decimal: unary({ value: t.decimal128(20, 4) }, t.decimal128(20, 4)),
    echo_large_string: unary({ value: t.largeUtf8() }, t.largeUtf8()),
    echo_large_binary: unary({ value: t.largeBinary() }, t.largeBinary()),
    echo_fixed_binary: unary({ value: t.fixedBinary(8) }, t.fixedBinary(8)),
    echo_wide_types: unary({ data: t.binary() }, t.binary()),
    echo_container_wide_types: unary({ data: t.binary() }, t.binary()),
    echo_embedded_arrow: unary({ data: t.binary() }, t.binary()),
    echo_deep_nested: unary({ data: t.binary() }, t.binary()),
    pack_nested_containers: unary(
      {
        statuses: t.list(status()),
        points: t.list(pointStruct()),
        status_by_name: t.map(t.utf8(), status()),
      },
      t.binary(),
    ),
    echo_status_list: unary({ statuses: t.list(status()) }, t.list(status())),
    echo_dict_encoded_string: unary({ value: t.dictUtf8() }, t.dictUtf8()),

    // Unary: multi-param and defaults
    add_floats: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    concatenate: unary({ prefix: t.utf8(), suffix: t.utf8(), separator: t.utf8().default("-") }, t.utf8()),
    with_defaults: unary(
      { required: t.int64(), optional_str: t.utf8().default("default"), optional_int: t.int64().default(42n) },
      t.utf8(),
    ),

    // Unary: error propagation
    raise_value_error: unary({ message: t.utf8() }, t.utf8()),
    raise_runtime_error: unary({ message: t.utf8() }, t.utf8()),
    raise_type_error: unary({ message: t.utf8() }, t.utf8()),

    // Unary: client-directed logging
    echo_with_info_log: unary({ value: t.utf8() }, t.utf8()),
    echo_with_multi_logs: unary({ value: t.utf8() }, t.utf8()),
    echo_with_log_extras: unary({ value: t.utf8() }, t.utf8()),
    echo_with_all_log_levels: unary({ value: t.utf8() }, t.utf8()),

    // Producer streams
    produce_n: producer({ count: t.int64() }, { output: CounterOut, state: CounterState }),
    produce_tick_metadata: producer({ count: t.int64() }, { output: TickOut, state: CounterState }),
    produce_empty: producer({}, { output: CounterOut }),
    produce_single: producer({}, { output: CounterOut, state: SingleState }),
    produce_large_batches: producer(
      { rows_per_batch: t.int64(), batch_count: t.int64() },
      { output: CounterOut, state: LargeState },
    ),
    produce_annotated_batches: producer(
      { count: t.int64(), rows_per_batch: t.int64() },
      { output: AnnotatedOut, state: AnnotatedState },
    ),
    produce_with_logs: producer({ count: t.int64() }, { output: CounterOut, state: CounterState }),
    produce_error_mid_stream: producer(
      { emit_before_error: t.int64() },
      { output: CounterOut, state: ErrorAfterNState },
    ),
    produce_error_on_init: producer({}, { output: CounterOut }),
    produce_oversized_batch: producer(
      { rows_per_batch: t.int64() },
      { output: CounterOut, state: OversizedBatchState },
    ),

    // Producer streams with headers
    produce_with_header: producer(
      { count: t.int64() },
      { output: CounterOut, header: ConformanceHeaderFields, state: CounterState },
    ),
    produce_with_header_and_logs: producer(
      { count: t.int64() },
      { output: CounterOut, header: ConformanceHeaderFields, state: CounterState },
    ),

    // Exchange streams
    exchange_scale: exchange({ factor: t.float64() }, { input: ScaleIO, output: ScaleIO, state: ScaleState }),
    exchange_accumulate: exchange({}, { input: ScaleIO, output: AccumOut, state: AccumState }),
    exchange_with_logs: exchange({}, { input: ScaleIO, output: ScaleIO }),
    exchange_error_on_nth: exchange({ fail_on: t.int64() }, { input: ScaleIO, output: ScaleIO, state: FailOnState }),
    exchange_zero_columns: exchange({}, { input: Empty, output: Empty }),
    exchange_input_metadata: exchange({}, { input: ScaleIO, output: InputMetadataOut }),
    exchange_error_on_init: exchange({}, { input: ScaleIO, output: ScaleIO }),
    exchange_oversized: exchange(
      { rows_per_batch: t.int64() },
      { input: ScaleIO, output: CounterOut, state: OversizedExchangeState },
    ),

    // Exchange streams with headers
    exchange_with_header: exchange(
      { factor: t.float64() },
      { input: ScaleIO, output: ScaleIO, header: ConformanceHeaderFields, state: ScaleState },
    ),

    // Cancellation
    cancellable_producer: producer({}, { output: CounterOut, state: CancellableState }),
    cancellable_exchange: exchange({}, { input: ScaleIO, output: ScaleIO }),
    cancel_probe_counters: unary({}, t.list(t.int64())),
    reset_cancel_probe: unary({}, null),

    // Dynamic streams with rich multi-type headers
    produce_with_rich_header: producer(
      { seed: t.int64(), count: t.int64() },
      { output: CounterOut, header: RichHeaderFields, state: CounterState },
    ),
    produce_dynamic_schema: producer(
      { seed: t.int64(), count: t.int64(), include_strings: t.bool(), include_floats: t.bool() },
      { output: "dynamic", header: RichHeaderFields, state: DynamicState },
    ),
    exchange_cast_compatible: exchange({}, { input: ScaleIO, output: ScaleIO, state: ScaleState }),
    exchange_with_rich_header: exchange(
      { seed: t.int64(), factor: t.float64() },
      { input: ScaleIO, output: ScaleIO, header: RichHeaderFields, state: ScaleState },
    ),

    // Sticky sessions (HTTP with sticky sessions on)
    open_counter: unary({ initial: t.int64() }, t.int64()),
    increment_counter: unary({ by: t.int64() }, t.int64()),
    close_counter: unary({}, t.int64()),
    stream_session_counter: producer({ count: t.int64() }, { output: SessionCounterOut, state: CounterState }),
    exchange_session_counter: exchange({}, { input: SessionCounterIn, output: SessionCounterOut }),
  },
);

export type ConformanceServiceDecl = typeof ConformanceService;

// ---------------------------------------------------------------------------------------------
// Cancel probe (`_CancelProbe`): process-wide, or shared through a file when
// VGI_RPC_CONFORMANCE_PROBE_FILE names one (several server processes, one counter set).

const PROBE_FIELDS = ["produce_calls", "exchange_calls", "on_cancel_calls"] as const;
type ProbeField = (typeof PROBE_FIELDS)[number];
type ProbeCounts = Record<ProbeField, number>;

const probeMemory: ProbeCounts = { produce_calls: 0, exchange_calls: 0, on_cancel_calls: 0 };

function probePath(): string | null {
  const path = process.env.VGI_RPC_CONFORMANCE_PROBE_FILE;
  return path ? path : null;
}

function parseProbe(raw: string): ProbeCounts {
  const out: ProbeCounts = { produce_calls: 0, exchange_calls: 0, on_cancel_calls: 0 };
  if (raw === "") return out;
  const parsed: unknown = JSON.parse(raw);
  if (typeof parsed === "object" && parsed !== null) {
    for (const field of PROBE_FIELDS) {
      const v: unknown = Reflect.get(parsed, field);
      if (typeof v === "number") out[field] = v;
    }
  }
  return out;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Runs `fn` holding an exclusive lock file beside `path` (between processes of this port). */
function withProbeLock<T>(path: string, fn: () => T): T {
  const lock = `${path}.lock`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx"));
      break;
    } catch (err) {
      if (!(err instanceof Error) || Reflect.get(err, "code") !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10_000) unlinkSync(lock); // stale
      } catch {
        // raced with the holder releasing it
      }
      if (Date.now() > deadline) throw new RuntimeError(`cancel probe lock ${lock} is held`);
      Atomics.wait(sleeper, 0, 0, 5);
    }
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  }
}

/** The cancel-probe counters the cancellation tests read back over the wire. */
export const cancelProbe = {
  bump(field: ProbeField): void {
    const path = probePath();
    if (path === null) {
      probeMemory[field] += 1;
      return;
    }
    withProbeLock(path, () => {
      const data = parseProbe(existsSync(path) ? readFileSync(path, "utf8") : "");
      data[field] += 1;
      writeFileSync(path, JSON.stringify(data));
    });
  },
  /** `[produce_calls, exchange_calls, on_cancel_calls]`. */
  snapshot(): [number, number, number] {
    const path = probePath();
    if (path === null) return [probeMemory.produce_calls, probeMemory.exchange_calls, probeMemory.on_cancel_calls];
    if (!existsSync(path)) return [0, 0, 0];
    const data = withProbeLock(path, () => parseProbe(readFileSync(path, "utf8")));
    return [data.produce_calls, data.exchange_calls, data.on_cancel_calls];
  },
  reset(): void {
    for (const field of PROBE_FIELDS) probeMemory[field] = 0;
    const path = probePath();
    if (path !== null) {
      withProbeLock(path, () => writeFileSync(path, JSON.stringify(parseProbe(""))));
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Helpers

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * What the reference raises when a header it builds holds an int past int64: pyarrow converting
 * the Python int (CPython's own message, not one naming the field as quiver's typed layer would).
 */
function refuseLikePyarrow(values: readonly bigint[]): void {
  if (values.some((v) => v < INT64_MIN || v > INT64_MAX)) {
    throw new RpcError("Python int too large to convert to C long", { type: "OverflowError" });
  }
}

/** `build_rich_header(seed)`: the reference specification of every header field. */
export function buildRichHeader(seed: bigint): RichHeader {
  const s = Number(seed);
  const odd = pyMod(seed, 2n) === 1n;
  refuseLikePyarrow([seed * 7n, seed, seed + 1n, seed + 2n, ...(odd ? [seed * 3n] : [])]);
  return {
    str_field: `seed-${seed}`,
    bytes_field: Uint8Array.of(
      Number(pyMod(seed, 256n)),
      Number(pyMod(seed + 1n, 256n)),
      Number(pyMod(seed + 2n, 256n)),
    ),
    int_field: seed * 7n,
    float_field: s * 1.5,
    bool_field: !odd,
    list_of_int: [seed, seed + 1n, seed + 2n],
    list_of_str: [`item-${seed}`, `item-${seed + 1n}`],
    dict_field: new Map([
      ["a", seed],
      ["b", seed + 1n],
    ]),
    enum_field: STATUS_MEMBERS[Number(pyMod(seed, 3n))] ?? "PENDING",
    nested_point: { x: s, y: Number(seed * 2n) },
    optional_str: odd ? null : `opt-${seed}`,
    optional_int: odd ? seed * 3n : null,
    optional_nested: pyMod(seed, 3n) === 0n ? { x: s, y: 0 } : null,
    list_of_nested: [{ x: s, y: Number(seed + 1n) }],
    nested_list: [[seed, seed + 1n], [seed + 2n]],
    annotated_int32: Number(pyMod(seed, 1000n)),
    annotated_float32: s / 3.0,
    dict_str_str: new Map([["key", `val-${seed}`]]),
  };
}

/** `build_dynamic_schema`: `index`, then `label` and `score` when asked for. */
function dynamicFields(includeStrings: boolean, includeFloats: boolean): FieldSpecs {
  const fields: Record<string, FieldSpecs[string]> = { index: t.int64().optional() };
  if (includeStrings) fields.label = t.utf8().optional();
  if (includeFloats) fields.score = t.float64().optional();
  return fields;
}

function int64Column(values: BigInt64Array): Data {
  return makeData({ type: new Int64(), length: values.length, nullCount: 0, data: values });
}

/** Emits `{index: start.., value: index * 10}` for `count` rows (`range(...)`, so never negative). */
function emitCounterRows(out: OutputCollector<typeof CounterOut>, start: bigint, count: bigint): void {
  const n = count > 0n ? Number(count) : 0;
  const index = new BigInt64Array(n);
  const value = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const v = start + BigInt(i);
    index[i] = v;
    value[i] = v * 10n;
  }
  out.emitBatch(batchFromData(out.schema, [int64Column(index), int64Column(value)], n));
}

/** Re-emits an input batch as the reference's `out.emit(input.batch)` does (without its metadata). */
function echoInput(input: InputBatch, out: OutputCollector): void {
  out.emitBatch(batchFromData(out.schema, input.batch.data.children, input.batch.numRows));
}

/**
 * `pc.sum` of a float64 column: Arrow's non-recursive pairwise summation (blocks of 16, over the
 * runs of valid values), or `null` when no value is valid (`min_count=1`). Which of two NaNs
 * survives an addition follows the reference's compiled code (float-ops' `add` keeps its first
 * operand's): a block's running sum keeps its own, combining sums keeps the newer one.
 */
export function arrowSumFloat64(values: readonly (number | null)[]): number | null {
  let valid = 0;
  for (const v of values) if (v !== null) valid++;
  if (valid === 0) return null;
  const BLOCK = 16;
  const sum = new Float64Array(64);
  let mask = 0n;
  let rootLevel = 0;
  const reduce = (blockSumIn: number): void => {
    let blockSum = blockSumIn;
    let level = 0;
    let levelMask = 1n;
    // Arrow's compiled `sum[level] += block_sum` keeps the block sum's NaN when both are NaN.
    sum[level] = add(blockSum, sum[level]!);
    mask ^= levelMask;
    while ((mask & levelMask) === 0n) {
      blockSum = sum[level]!;
      sum[level] = 0;
      level++;
      levelMask <<= 1n;
      sum[level] = add(blockSum, sum[level]!);
      mask ^= levelMask;
    }
    rootLevel = Math.max(rootLevel, level);
  };
  const visitRun = (start: number, length: number): void => {
    let pos = start;
    const blocks = Math.floor(length / BLOCK);
    const remains = length % BLOCK;
    for (let b = 0; b < blocks; b++) {
      let blockSum = 0;
      for (let j = 0; j < BLOCK; j++) blockSum = add(blockSum, values[pos + j] as number);
      reduce(blockSum);
      pos += BLOCK;
    }
    if (remains > 0) {
      let blockSum = 0;
      for (let j = 0; j < remains; j++) blockSum = add(blockSum, values[pos + j] as number);
      reduce(blockSum);
    }
  };
  let runStart = -1;
  for (let i = 0; i <= values.length; i++) {
    const isValid = i < values.length && values[i] !== null;
    if (isValid && runStart < 0) runStart = i;
    else if (!isValid && runStart >= 0) {
      visitRun(runStart, i - runStart);
      runStart = -1;
    }
  }
  for (let i = 1; i <= rootLevel; i++) sum[i] = add(sum[i - 1]!, sum[i]!);
  return sum[rootLevel]!;
}

/** `f"{x}"` of a float field that a lenient client may have sent as null. */
function pyFloatOrNone(x: unknown): string {
  return typeof x === "number" ? pyFloatRepr(x) : "None";
}

const NO_STICKY_COUNTER = "no sticky counter bound to this request";

/** `_StickyCounter`: the state the sticky-session methods keep; `close()` runs when its session ends. */
export class StickyCounter {
  closed = false;
  constructor(public value: bigint) {}
  close(): void {
    this.closed = true;
  }
}

/** The request's sticky counter, or the reference's RuntimeError when none is bound. */
function stickyCounter(session: unknown): StickyCounter {
  if (!(session instanceof StickyCounter)) throw new RuntimeError(NO_STICKY_COUNTER);
  return session;
}

function statusesOrThrow(values: readonly (string | null)[], message: string): Status[] {
  return values.map((v) => {
    if (v === null) throw new TypeError(message);
    return toStatus(v);
  });
}

const ALL_LOG_LEVELS: readonly LogLevel[] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

// ---------------------------------------------------------------------------------------------
// Stream turns shared by several methods

/** A counter stream's first state (`CounterState(count=count)`). */
function counterInit(count: bigint): RowOf<typeof CounterState> {
  return { count, current: 0n };
}

/** `CounterState.produce` / `HeaderProducerState.produce`: `{index: i, value: i * 10}` for i < count. */
function counterTurn(state: RowOf<typeof CounterState>, out: OutputCollector<typeof CounterOut>): void {
  if (state.current >= state.count) {
    out.finish();
    return;
  }
  out.emit([{ index: state.current, value: state.current * 10n }]);
  state.current += 1n;
}

/**
 * `ScaleExchangeState.exchange`: `pc.multiply(value, factor)`. Every slot is multiplied (as the
 * kernel does, nulls' slots included) and a NaN result gets the bits x86 gives it (see float-ops).
 */
function scaleTurn(
  state: RowOf<typeof ScaleState>,
  input: InputBatch<typeof ScaleIO>,
  out: OutputCollector<typeof ScaleIO>,
): void {
  const { factor } = state;
  const batch = input.batch;
  const column = batch.data.children[batch.schema.fields.findIndex((f) => f.name === "value")]!;
  const length = column.length;
  const values = column.values as Float64Array;
  const result = new Float64Array(length);
  const resultBits = new BigUint64Array(result.buffer);
  for (let i = 0; i < length; i++) {
    const v = values[i]!;
    const r = v * factor;
    if (Number.isNaN(r)) resultBits[i] = nanResultBits(v, factor);
    else result[i] = r;
  }
  let nullBitmap: Uint8Array | undefined;
  if (column.nullCount > 0) {
    nullBitmap = new Uint8Array((length + 7) >> 3);
    for (let i = 0; i < length; i++) if (column.getValid(i)) nullBitmap[i >> 3]! |= 1 << (i & 7);
  }
  const type = out.schema.fields[0]!.type as Float64;
  out.emitBatch(
    batchFromData(
      out.schema,
      [makeData({ type, length, nullCount: column.nullCount, nullBitmap, data: result })],
      length,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Implementation

/** The reference implementation's behaviour, method by method. */
/** What the worker's `published_string` publishes through (its `--fake-storage`), if anything. */
export interface ConformanceExternal {
  readonly storage: ExternalStorage;
  readonly compression?: ExternalCompression;
}

export function createConformanceImplementation(
  external: ConformanceExternal | null = null,
): Implementation<typeof ConformanceService> {
  // published_string's refs, published once per (value, include_sha256), as the reference caches them.
  const published = new Map<string, Promise<ExternalRef>>();
  return {
    // Unary: scalar echo
    echo_string: ({ value }) => value,
    echo_bytes: ({ data }) => data,
    oversized_unary: ({ target_bytes }) => {
      if (target_bytes < 0n) throw new ValueError("target_bytes must be non-negative");
      return new Uint8Array(Number(target_bytes));
    },
    published_string: async ({ value, include_sha256 }) => {
      // Without external storage: the reference's answer without `--fake-storage`.
      if (external === null) throw new RuntimeError("published_string requires external storage");
      const key = JSON.stringify([value, include_sha256]);
      let ref = published.get(key);
      if (ref === undefined) {
        const fields = { result: t.utf8() };
        const batch = batchFromRows(fields, [{ result: value }], undefined, schemaOf(fields));
        ref = publishExternal(batch, external.storage, external.compression, { includeSha256: include_sha256 });
        published.set(key, ref);
        ref.catch(() => published.delete(key));
      }
      // The server answers an ExternalRef with its pointer batch in place of a value.
      return (await ref) as unknown as string;
    },
    echo_int: ({ value }) => value,
    echo_float: ({ value }) => value,
    echo_bool: ({ value }) => value,

    // Unary: void returns
    void_noop: () => undefined,
    void_with_param: () => undefined,

    // Unary: complex type echo
    echo_enum: ({ status: s }) => toStatus(s),
    echo_list: ({ values }) => values,
    echo_dict: ({ mapping }) => mapping,
    echo_nested_list: ({ matrix }) => matrix,

    // Unary: optional / nullable
    echo_optional_string: ({ value }) => value,
    echo_optional_int: ({ value }) => value,
    echo_optional_point: ({ point }) => {
      if (point !== null) dataclassBatch(DATACLASSES.Point, point);
      return point;
    },
    echo_annotated_optional_int: ({ value }) => value,
    echo_outer_optional_non_null: ({ value }) => value,

    // Unary: dataclass round trip. The payload is checked as the reference's deserializer checks
    // it, then returned as received: the client decodes it by field name.
    echo_point: ({ point }) => {
      dataclassBatch(DATACLASSES.Point, point);
      return point;
    },
    echo_all_types: ({ data }) => {
      dataclassBatch(DATACLASSES.AllTypes, data);
      return data;
    },
    echo_bounding_box: ({ box }) => {
      dataclassBatch(DATACLASSES.BoundingBox, box);
      return box;
    },

    // Unary: dataclass as parameter
    inspect_point: ({ point }) => {
      const p = decodeDataclass(DATACLASSES.Point, point);
      return `Point(${pyFloatOrNone(p.x)}, ${pyFloatOrNone(p.y)})`;
    },

    // Unary: annotated and wide types
    echo_int32: ({ value }) => value,
    echo_float32: ({ value }) => value,
    echo_int8: ({ value }) => value,
    echo_int16: ({ value }) => value,
    echo_uint8: ({ value }) => value,
    echo_uint16: ({ value }) => value,
    echo_uint32: ({ value }) => value,
    echo_uint64: ({ value }) => value,
    echo_date: ({ value }) => value,
    echo_timestamp: ({ value }) => value,
    echo_timestamp_utc: ({ value }) => value,
    echo_time: ({ value }) => value,
    echo_duration: ({ value }) => value,
    echo_decimal: ({ value }) => value,
    echo_large_string: ({ value }) => value,
    echo_large_binary: ({ value }) => value,
    echo_fixed_binary: ({ value }) => value,
    echo_wide_types: ({ data }) => {
      dataclassBatch(DATACLASSES.WideTypes, data);
      return data;
    },
    echo_container_wide_types: ({ data }) => {
      dataclassBatch(DATACLASSES.ContainerWideTypes, data);
      return data;
    },
    echo_embedded_arrow: ({ data }) => {
      dataclassBatch(DATACLASSES.EmbeddedArrow, data);
      return data;
    },
    echo_deep_nested: ({ data }) => {
      dataclassBatch(DATACLASSES.DeepNested, data);
      return data;
    },
    pack_nested_containers: ({ statuses, points, status_by_name }) => {
      const members = statusesOrThrow(statuses, "statuses were not reconstructed as Status members");
      const pts: Point[] = points.map((p) => {
        if (p === null) throw new TypeError("points were not reconstructed as Point instances");
        return p;
      });
      const byName = new Map<string, Status>();
      for (const [name, v] of status_by_name) {
        if (v === null) throw new TypeError("status_by_name values were not reconstructed as Status members");
        byName.set(name, toStatus(v));
      }
      const tagged = batchFromRows({ value: t.int64().optional() }, [{ value: 1n }, { value: 2n }]);
      const value: NestedContainers = {
        statuses: members,
        points: pts,
        status_by_name: byName,
        // A frozenset: members once each (Python's iteration order is hash order; clients compare sets).
        frozen_statuses: [...new Set(members)],
        tagged_status: members[0] ?? null,
        tagged_point: pts[0] ?? null,
        tagged_batch: recordBatchToIPC(tagged),
      };
      return encodeDataclass(DATACLASSES.NestedContainers, value);
    },
    echo_status_list: ({ statuses }) => statusesOrThrow(statuses, "statuses were not reconstructed as Status members"),
    echo_dict_encoded_string: ({ value }) => value,

    // Unary: multi-param and defaults
    add_floats: ({ a, b }) => add(a, b),
    concatenate: ({ prefix, suffix, separator }) => `${prefix}${separator}${suffix}`,
    with_defaults: ({ required, optional_str, optional_int }) =>
      `required=${required}, optional_str=${optional_str}, optional_int=${optional_int}`,

    // Unary: error propagation
    raise_value_error: ({ message }) => {
      throw new ValueError(message);
    },
    raise_runtime_error: ({ message }) => {
      throw new RuntimeError(message);
    },
    raise_type_error: ({ message }) => {
      throw new TypeError(message);
    },

    // Unary: client-directed logging
    echo_with_info_log: ({ value }, ctx) => {
      ctx.clientLog("INFO", `info: ${value}`);
      return value;
    },
    echo_with_multi_logs: ({ value }, ctx) => {
      ctx.clientLog("DEBUG", `debug: ${value}`);
      ctx.clientLog("INFO", `info: ${value}`);
      ctx.clientLog("WARN", `warn: ${value}`);
      return value;
    },
    echo_with_log_extras: ({ value }, ctx) => {
      ctx.clientLog("INFO", `info: ${value}`, { source: "conformance", detail: value });
      return value;
    },
    echo_with_all_log_levels: ({ value }, ctx) => {
      for (const level of ALL_LOG_LEVELS) ctx.clientLog(level, `${level.toLowerCase()}: ${value}`);
      return value;
    },

    // Producer streams
    produce_n: {
      init: ({ count }) => ({ state: counterInit(count) }),
      produce: counterTurn,
    },
    produce_tick_metadata: {
      // `TickMetadataState`: reports each tick's metadata; emits, then finishes once count is reached.
      init: ({ count }) => ({ state: counterInit(count) }),
      produce(state, out) {
        const seen = out.inputMetadata.get(TICK_METADATA_KEY) ?? "";
        out.emit([{ index: state.current, seen }]);
        state.current += 1n;
        if (state.current >= state.count) out.finish();
      },
    },
    produce_empty: {
      init: () => ({}),
      produce(_state, out) {
        out.finish();
      },
    },
    produce_single: {
      init: () => ({ state: { emitted: false } }),
      produce(state, out) {
        if (state.emitted) {
          out.finish();
          return;
        }
        state.emitted = true;
        out.emit([{ index: 0n, value: 0n }]);
      },
    },
    produce_large_batches: {
      init: ({ rows_per_batch, batch_count }) => ({ state: { rows_per_batch, batch_count, current: 0n } }),
      produce(state, out) {
        if (state.current >= state.batch_count) {
          out.finish();
          return;
        }
        emitCounterRows(out, state.current * state.rows_per_batch, state.rows_per_batch);
        state.current += 1n;
      },
    },
    produce_annotated_batches: {
      init: ({ count, rows_per_batch }) => ({ state: { count, rows_per_batch, current: 0n } }),
      produce(state, out) {
        const { count, rows_per_batch, current } = state;
        if (current >= count) {
          out.finish();
          return;
        }
        const base = current * 1_000_000n;
        const n = rows_per_batch > 0n ? Number(rows_per_batch) : 0;
        const rows = Array.from({ length: n }, (_, row) => ({ value: base + BigInt(row) }));
        out.emit(
          rows,
          new Map([
            ["conformance.batch_index", String(current)],
            ["conformance.batch_total", String(count)],
            ["conformance.emit_label", ANNOTATED_EMIT_LABEL],
          ]),
        );
        state.current += 1n;
      },
    },
    produce_with_logs: {
      init: ({ count }) => ({ state: counterInit(count) }),
      produce(state, out) {
        if (state.current >= state.count) {
          out.finish();
          return;
        }
        out.clientLog("INFO", `producing batch ${state.current}`);
        out.emit([{ index: state.current, value: state.current * 10n }]);
        state.current += 1n;
      },
    },
    produce_error_mid_stream: {
      init: ({ emit_before_error }) => ({ state: { emit_before_error, current: 0n } }),
      produce(state, out) {
        if (state.current >= state.emit_before_error) {
          throw new RuntimeError(`intentional error after ${state.emit_before_error} batches`);
        }
        out.emit([{ index: state.current, value: state.current * 10n }]);
        state.current += 1n;
      },
    },
    produce_error_on_init: {
      init: () => {
        throw new RuntimeError("intentional init error");
      },
      produce(_state, out) {
        out.finish(); // never reached: init always raises
      },
    },
    produce_oversized_batch: {
      init: ({ rows_per_batch }) => ({ state: { rows_per_batch, emitted: false } }),
      produce(state, out) {
        if (state.emitted) {
          out.finish();
          return;
        }
        emitCounterRows(out, 0n, state.rows_per_batch);
        state.emitted = true;
      },
    },

    // Producer streams with headers
    produce_with_header: {
      init: ({ count }) => ({
        state: counterInit(count),
        header: { total_expected: count, description: `producing ${count} batches` },
      }),
      produce: counterTurn,
    },
    produce_with_header_and_logs: {
      init: ({ count }, ctx) => {
        ctx.clientLog("INFO", "stream init log");
        return {
          state: counterInit(count),
          header: { total_expected: count, description: `producing ${count} with logs` },
        };
      },
      produce: counterTurn,
    },

    // Exchange streams
    exchange_scale: {
      init: ({ factor }) => ({ state: { factor } }),
      process: scaleTurn,
    },
    exchange_accumulate: {
      init: () => ({ state: { running_sum: 0.0, exchange_count: 0n } }),
      process(state, input, out) {
        const colSum = arrowSumFloat64(input.column("value"));
        if (colSum === null) {
          // `self.running_sum += None` in the reference.
          throw new TypeError("unsupported operand type(s) for +=: 'float' and 'NoneType'");
        }
        state.running_sum = add(state.running_sum, colSum);
        state.exchange_count += 1n;
        out.emit([{ running_sum: state.running_sum, exchange_count: state.exchange_count }]);
      },
    },
    exchange_with_logs: {
      init: () => ({}),
      process(_state, input, out) {
        out.clientLog("INFO", "exchange processing");
        out.clientLog("DEBUG", "exchange debug");
        echoInput(input, out);
      },
    },
    exchange_error_on_nth: {
      init: ({ fail_on }) => ({ state: { fail_on, exchange_count: 0n } }),
      process(state, input, out) {
        state.exchange_count += 1n;
        if (state.exchange_count >= state.fail_on) {
          throw new RuntimeError(`intentional error on exchange ${state.exchange_count}`);
        }
        echoInput(input, out);
      },
    },
    exchange_zero_columns: {
      init: () => ({}),
      process(_state, _input, out) {
        out.emit([]);
      },
    },
    exchange_input_metadata: {
      init: () => ({}),
      process(_state, input, out) {
        const metadata = input.metadata;
        const seen = metadata.get(INPUT_METADATA_KEY) ?? "";
        const keys = [...metadata.keys()].sort(compareCodePoints).join(",");
        out.emit([{ seen, keys }]);
      },
    },
    exchange_error_on_init: {
      init: () => {
        throw new RuntimeError("intentional exchange init error");
      },
      process(_state, input, out) {
        echoInput(input, out); // never reached: init always raises
      },
    },
    exchange_oversized: {
      init: ({ rows_per_batch }) => ({ state: { rows_per_batch } }),
      process(state, _input, out) {
        emitCounterRows(out, 0n, state.rows_per_batch);
      },
    },

    // Exchange streams with headers
    exchange_with_header: {
      init: ({ factor }) => ({
        state: { factor },
        header: { total_expected: 0n, description: `scale by ${pyFloatRepr(factor)}` },
      }),
      process: scaleTurn,
    },

    // Cancellation (the probe is process-wide, or file-backed: never per call)
    cancellable_producer: {
      init: () => ({ state: { current: 0n } }),
      produce(state, out) {
        cancelProbe.bump("produce_calls");
        out.emit([{ index: state.current, value: state.current * 10n }]);
        state.current += 1n;
      },
      onCancel() {
        cancelProbe.bump("on_cancel_calls");
      },
    },
    cancellable_exchange: {
      init: () => ({}),
      process(_state, input, out) {
        cancelProbe.bump("exchange_calls");
        echoInput(input, out);
      },
      onCancel() {
        cancelProbe.bump("on_cancel_calls");
      },
    },
    cancel_probe_counters: () => cancelProbe.snapshot().map((n) => BigInt(n)),
    reset_cancel_probe: () => {
      cancelProbe.reset();
    },

    // Dynamic streams with rich multi-type headers
    produce_with_rich_header: {
      init: ({ seed, count }) => ({ state: counterInit(count), header: buildRichHeader(seed) }),
      produce: counterTurn,
    },
    produce_dynamic_schema: {
      init: ({ seed, count, include_strings, include_floats }) => ({
        state: { count, include_strings, include_floats, current: 0n },
        header: buildRichHeader(seed),
        outputSchema: schemaOf(dynamicFields(include_strings, include_floats)),
      }),
      produce(state, out) {
        if (state.current >= state.count) {
          out.finish();
          return;
        }
        const row: Record<string, unknown> = { index: state.current };
        if (state.include_strings) row.label = `row-${state.current}`;
        if (state.include_floats) row.score = Number(state.current) * 1.5;
        const fields = dynamicFields(state.include_strings, state.include_floats);
        // The schema init chose, as the server persists it (`out.schema`).
        out.emitBatch(batchFromRows(fields, [row], undefined, out.schema));
        state.current += 1n;
      },
    },
    exchange_cast_compatible: {
      // `ScaleExchangeState(factor=1.0)`: echoes the (cast) values.
      init: () => ({ state: { factor: 1.0 } }),
      process: scaleTurn,
    },
    exchange_with_rich_header: {
      init: ({ seed, factor }) => ({ state: { factor }, header: buildRichHeader(seed) }),
      process: scaleTurn,
    },

    // Sticky sessions: this server has no sticky-session support, so these fail exactly as the
    // reference does on a transport without it (`ctx.session` is None, `open_session` refuses).
    // Sticky sessions: real over HTTP with sticky sessions on; elsewhere `ctx.openSession` refuses
    // (the reference's RuntimeError) and no session is ever bound.
    open_counter: ({ initial }, ctx) => {
      ctx.openSession(new StickyCounter(initial));
      return initial;
    },
    increment_counter: ({ by }, ctx) => {
      const counter = stickyCounter(ctx.session);
      counter.value += by;
      return counter.value;
    },
    close_counter: (_params, ctx) => {
      const counter = stickyCounter(ctx.session);
      const final = counter.value;
      ctx.closeSession();
      return final;
    },
    stream_session_counter: {
      // `SessionCounterProducerState`: each turn (an HTTP request of its own) finds the counter
      // again through the session and emits its next value.
      init: ({ count }) => ({ state: counterInit(count) }),
      produce(state, out, ctx) {
        if (state.current >= state.count) {
          out.finish();
          return;
        }
        const counter = stickyCounter(ctx.session);
        counter.value += 1n;
        out.emit([{ value: counter.value }]);
        state.current += 1n;
      },
    },
    exchange_session_counter: {
      init: () => ({}),
      process(_state, input, out, ctx) {
        const counter = stickyCounter(ctx.session);
        let sum: bigint | null = null;
        for (const v of input.column("by")) if (v !== null) sum = (sum ?? 0n) + v;
        // `counter.value += pc.sum(...)`: the sum of no values is None.
        if (sum === null) throw new TypeError("unsupported operand type(s) for +=: 'int' and 'NoneType'");
        counter.value += sum;
        out.emit([{ value: counter.value }]);
      },
    },
  };
}
