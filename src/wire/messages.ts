/**
 * The framework's batches: requests, log records, errors; and how a receiver classifies what it
 * reads. Pure functions over Arrow objects and metadata maps.
 */

import type { RecordBatch, Schema } from "apache-arrow";
import { parse as parseLossless } from "lossless-json";
import { type ErrorDetail, parseErrorCode, RpcError } from "../errors.js";
import type { LogExtra, WireLogLevel } from "../protocol/context.js";
import { COMPACT_STRICT, PYTHON_DEFAULT, pyJsonDumps } from "../protocol/python-text.js";
import { emptyBatch } from "./batches.js";
import {
  CANCEL_KEY,
  ERROR_CODE_KEY,
  ERROR_DETAILS_KEY,
  ERROR_KIND_KEY,
  LOCATION_KEY,
  LOG_EXTRA_KEY,
  LOG_LEVEL_KEY,
  LOG_MESSAGE_KEY,
  REQUEST_ID_KEY,
  SERVER_ID_KEY,
  SHM_OFFSET_KEY,
  STREAM_STATE_KEY,
} from "./keys.js";

/** Identity stamped on every log and error batch a server writes. */
export interface Origin {
  readonly serverId: string;
  readonly requestId: string;
}

/** The metadata of a zero-row log batch. */
export function logMetadata(
  level: WireLogLevel,
  message: string,
  extra: LogExtra | undefined,
  origin: Origin,
): Map<string, string> {
  const md = new Map<string, string>();
  md.set(LOG_LEVEL_KEY, level);
  md.set(LOG_MESSAGE_KEY, message);
  if (extra !== undefined && Object.keys(extra).length > 0) md.set(LOG_EXTRA_KEY, jsonExtra(extra));
  if (origin.serverId) md.set(SERVER_ID_KEY, origin.serverId);
  if (origin.requestId) md.set(REQUEST_ID_KEY, origin.requestId);
  return md;
}

/** `json.dumps(extra)` as the reference writes it (integers exact, bigints as numbers). */
function jsonExtra(extra: LogExtra): string {
  return pyJsonDumps(extra, PYTHON_DEFAULT);
}

/** Most traceback text an error batch carries. */
export const MAX_TRACEBACK_CHARS = 16_000;
const MAX_FRAMES = 5;
const MAX_ERROR_DETAILS_BYTES = 4096;

interface StackFrame {
  readonly file: string;
  readonly line: number;
  readonly function: string;
  readonly code: string;
}

function stackFrames(stack: string): StackFrame[] {
  const frames: StackFrame[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s*at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/.exec(line);
    if (m) frames.push({ file: m[2] ?? "", line: Number(m[3]), function: m[1] ?? "<anonymous>", code: "" });
  }
  // Innermost last, as Python's traceback module orders frames.
  return frames.reverse().slice(-MAX_FRAMES);
}

/** Encodes error details, or returns undefined when they break the catalog rules or the size cap. */
export function encodeErrorDetails(details: readonly ErrorDetail[]): string | undefined {
  if (details.length === 0) return undefined;
  const seen = new Set<string>();
  for (const d of details) {
    const type = d["@type"];
    if (typeof type !== "string" || type === "" || seen.has(type)) return undefined;
    seen.add(type);
  }
  let text: string;
  try {
    // The reference's encoder byte for byte: a non-finite number drops the whole array.
    text = pyJsonDumps(details, COMPACT_STRICT);
  } catch {
    return undefined;
  }
  return new TextEncoder().encode(text).byteLength > MAX_ERROR_DETAILS_BYTES ? undefined : text;
}

/** The metadata of an EXCEPTION batch describing `err`. */
export function errorMetadata(err: unknown, origin: Origin, includeTraceback = true): Map<string, string> {
  const e = RpcError.from(err);
  const original = e.cause instanceof Error && !(err instanceof RpcError) ? e.cause : e;
  const extra: Record<string, unknown> = {
    exception_type: e.type,
    exception_message: e.message,
    error_code: e.code,
  };
  if (e.kind) extra.error_kind = e.kind;
  const details = encodeErrorDetails(e.details);
  if (details !== undefined) extra.error_details = e.details;
  if (includeTraceback) {
    const stack = original.stack ?? `${e.type}: ${e.message}`;
    extra.traceback =
      stack.length > MAX_TRACEBACK_CHARS ? `${stack.slice(0, MAX_TRACEBACK_CHARS)}\n… <traceback truncated>` : stack;
    extra.frames = stackFrames(stack);
    if (original.cause instanceof Error && original.cause.stack)
      extra.cause = original.cause.stack.slice(0, MAX_TRACEBACK_CHARS);
  }
  const md = logMetadata("EXCEPTION", `${e.type}: ${e.message}`, extra, origin);
  if (e.kind) md.set(ERROR_KIND_KEY, e.kind);
  md.set(ERROR_CODE_KEY, e.code);
  if (details !== undefined) md.set(ERROR_DETAILS_KEY, details);
  return md;
}

/** A zero-row EXCEPTION batch on `schema`. */
export function errorBatch(schema: Schema, err: unknown, origin: Origin, includeTraceback = true): RecordBatch {
  return emptyBatch(schema, errorMetadata(err, origin, includeTraceback));
}

/** A zero-row log batch on `schema`. */
export function logBatch(
  schema: Schema,
  level: WireLogLevel,
  message: string,
  extra: LogExtra | undefined,
  origin: Origin,
): RecordBatch {
  return emptyBatch(schema, logMetadata(level, message, extra, origin));
}

// ---------------------------------------------------------------------------------------------
// Classification

/** What a received batch is, by the reference's rules. */
export type BatchClass = "data" | "log" | "error" | "external_pointer" | "shm_pointer" | "state_token";

/** Classifies a batch: rows > 0 or no metadata is data; zero-row batches are told apart by keys. */
export function classifyBatch(batch: RecordBatch): BatchClass {
  const md = batch.metadata;
  if (batch.numRows > 0 || md.size === 0) return "data";
  if (md.has(LOG_LEVEL_KEY) && md.has(LOG_MESSAGE_KEY)) return md.get(LOG_LEVEL_KEY) === "EXCEPTION" ? "error" : "log";
  if (md.has(LOCATION_KEY)) return "external_pointer";
  if (md.has(SHM_OFFSET_KEY)) return "shm_pointer";
  if (md.has(STREAM_STATE_KEY)) return "state_token";
  return "data";
}

/** True for a cancel batch (presence of the key is the signal). */
export function isCancelBatch(batch: RecordBatch): boolean {
  return batch.metadata.has(CANCEL_KEY);
}

/** A log record as a client surfaces it. */
export interface LogRecord {
  readonly level: WireLogLevel;
  readonly message: string;
  readonly extra: Readonly<Record<string, unknown>>;
  readonly serverId: string;
  readonly requestId: string;
}

/**
 * JSON a peer wrote (log extras, error details) with integers kept exact at any magnitude: one
 * past 2^53 is read as a bigint (the reference writes Python ints whole), every other number as a
 * number.
 */
function parseExact(raw: string): unknown {
  return parseLossless(raw, undefined, (literal) => {
    const n = Number(literal);
    return Number.isSafeInteger(n) || !/^-?\d+$/.test(literal) ? n : BigInt(literal);
  });
}

function parseExtra(raw: string | undefined): Record<string, unknown> {
  if (raw === undefined) return {};
  try {
    const v: unknown = parseExact(raw);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Reads a log or error batch's metadata. */
export function readLogRecord(md: ReadonlyMap<string, string>): LogRecord {
  return {
    level: (md.get(LOG_LEVEL_KEY) ?? "INFO") as WireLogLevel,
    message: md.get(LOG_MESSAGE_KEY) ?? "",
    extra: parseExtra(md.get(LOG_EXTRA_KEY)),
    serverId: md.get(SERVER_ID_KEY) ?? "",
    requestId: md.get(REQUEST_ID_KEY) ?? "",
  };
}

/** Rebuilds the `RpcError` an EXCEPTION batch describes. */
export function errorFromMetadata(md: ReadonlyMap<string, string>): RpcError {
  const rec = readLogRecord(md);
  const extra = rec.extra;
  const type = typeof extra.exception_type === "string" ? extra.exception_type : "RpcError";
  const message = typeof extra.exception_message === "string" ? extra.exception_message : rec.message;
  let details: ErrorDetail[] = [];
  const rawDetails = md.get(ERROR_DETAILS_KEY);
  if (rawDetails !== undefined) {
    try {
      const parsed: unknown = parseExact(rawDetails);
      if (Array.isArray(parsed)) details = parsed as ErrorDetail[];
    } catch {
      details = [];
    }
  }
  return new RpcError(message, {
    type,
    code: parseErrorCode(md.get(ERROR_CODE_KEY) ?? extra.error_code),
    kind: md.get(ERROR_KIND_KEY) ?? (typeof extra.error_kind === "string" ? extra.error_kind : ""),
    details,
    remoteTraceback: typeof extra.traceback === "string" ? extra.traceback : "",
  });
}
