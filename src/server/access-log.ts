/**
 * The access log: one JSON line per call on the `vgi_rpc.access` logger, in the reference's
 * record format (its JSON schema ships in the pinned package as `access_log.schema.json`).
 * Records never carry request or response values — only their shape and sizes — and claims are
 * redacted by key (or by the operator's redactor). Writing never blocks or fails a call: a full
 * queue or a failing disk drops records and counts them (`dropped_records` on the next record
 * that gets through). Successes may be sampled (`sampleRate`); errors never are.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { CallObserver, CallRecord } from "./records.js";

/** Claim names whose values are replaced by `[redacted]` (the reference's default list). */
const REDACT = new RegExp(
  "password|token|secret|key|authorization|email|phone|address|birthdate|gender" +
    "|^name$|given_name|family_name|middle_name|nickname|preferred_username|picture|profile|website",
  "i",
);

/** What the access log writes for a call's claims, given them all (see `AccessLogOptions.redactClaims`). */
export type ClaimRedactor = (claims: Readonly<Record<string, unknown>>) => Record<string, unknown>;

/** The default claim redactor: sensitive values replaced, keys kept. */
export function redactClaims(claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) out[k] = REDACT.test(k) ? "[redacted]" : v;
  return out;
}

/** A redactor that keeps every claim as it is (the reference's `no_redaction`). */
export function noRedaction(claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return { ...claims };
}

/** FNV-1a over a string's UTF-16 units: a cheap, stable 32-bit hash for the sampling decision. */
function hash32(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Whether a record is kept at sampling rate `rate` (0 to 1): errors always; successes by a
 * decision keyed on the stream id, else the request id, so every record of one stream (an HTTP
 * stream's requests) shares one fate — the reference's `AccessLogSampler`.
 */
export function sampled(r: Pick<CallRecord, "status" | "streamId" | "requestId">, rate: number): boolean {
  if (rate >= 1 || r.status === "error") return true;
  if (rate <= 0) return false;
  const key = r.streamId || r.requestId;
  if (!key) return Math.random() < rate;
  return hash32(key) <= Math.floor(rate * 0xffffffff);
}

/**
 * One access-log record as a JSON-ready object (the reference's field names). Claims go through
 * `redact`; a redactor that throws drops them (never logs them unredacted).
 */
export function accessRecord(
  r: CallRecord,
  serverVersion: string,
  redact: ClaimRedactor = redactClaims,
): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    timestamp: new Date(r.startedAt.getTime() + r.durationMs).toISOString(),
    level: "INFO",
    logger: "vgi_rpc.access",
    message: `${r.protocol}.${r.method || "<unknown>"} ${r.status}`,
    server_id: r.serverId,
    protocol: r.protocol,
    protocol_hash: r.protocolHash,
    method: r.method || "<unknown>",
    method_type: r.methodType,
    principal: r.auth.principal,
    auth_domain: r.auth.domain,
    authenticated: r.auth.authenticated,
    remote_addr: r.transportMetadata.remote_addr ?? "",
    duration_ms: Math.round(r.durationMs * 100) / 100,
    status: r.status,
    error_type: r.errorType,
  };
  if (r.cancelled) rec.cancelled = true;
  if (r.errorMessage) rec.error_message = r.errorMessage;
  else if (r.status === "error") rec.error_message = r.errorType || "error";
  if (r.status === "error" && r.errorCode) rec.error_code = r.errorCode;
  if (r.errorKind) rec.error_kind = r.errorKind;
  if (serverVersion) rec.server_version = serverVersion;
  if (r.requestId) rec.request_id = r.requestId;
  if (r.traceId) {
    rec.trace_id = r.traceId;
    rec.span_id = r.spanId;
  }
  if (r.requestFields !== null) {
    rec.request_fields = r.requestFields;
    rec.request_rows = r.requestRows;
  }
  if (r.streamId) rec.stream_id = r.streamId;
  if (r.sessionId) rec.session_id = r.sessionId;
  if (r.sessionAction) rec.session_action = r.sessionAction;
  if (Object.keys(r.auth.claims).length > 0) {
    try {
      rec.claims = redact(r.auth.claims);
    } catch {
      // Fail closed: the record goes out without its claims.
    }
  }
  rec.transport = r.transport;
  rec.input_batches = r.stats.inputBatches;
  rec.output_batches = r.stats.outputBatches;
  rec.input_rows = r.stats.inputRows;
  rec.output_rows = r.stats.outputRows;
  rec.input_bytes = r.stats.inputBytes;
  rec.output_bytes = r.stats.outputBytes;
  return rec;
}

export interface AccessLogOptions {
  /** File to append JSONL records to. */
  readonly path: string;
  /** Reported as `server_version`. Default: none. */
  readonly serverVersion?: string;
  /** Most bytes waiting to be written before records are dropped. Default: 8 MiB. */
  readonly maxQueueBytes?: number;
  /** After a write error, how long to wait before reopening the file, in ms. Default: 1000. */
  readonly retryAfterMs?: number;
  /**
   * Fraction of successful calls to log, 0 to 1; errors are always logged, and every kept record
   * of a sampled log carries `sample_rate` (divide counts by it). Default: 1 (every call).
   */
  readonly sampleRate?: number;
  /** What to write for a call's claims (`noRedaction` keeps them all). Default: `redactClaims`. */
  readonly redactClaims?: ClaimRedactor;
}

export interface AccessLog {
  /** The per-call observer to hand to `createServer({ onCallEnd })` or `server.observe()`. */
  readonly observer: CallObserver;
  /** Reopens the file (after rotation). */
  reopen(): void;
  /** Records dropped so far (full queue or failing disk). */
  readonly dropped: number;
  /** Flushes and closes the file. */
  close(): Promise<void>;
}

/** Opens an access log appending to `opts.path`. */
export function createAccessLog(opts: AccessLogOptions): AccessLog {
  const maxQueue = opts.maxQueueBytes ?? 8 * 1024 * 1024;
  const retryAfter = opts.retryAfterMs ?? 1000;
  const rate = opts.sampleRate ?? 1;
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`sampleRate must be between 0 and 1, got ${rate}`);
  const redact = opts.redactClaims ?? redactClaims;
  let stream: WriteStream | null = null;
  let brokenUntil = 0;
  let droppedSinceLast = 0;
  let droppedTotal = 0;

  const open = (): WriteStream => {
    const s = createWriteStream(opts.path, { flags: "a" });
    s.on("error", () => {
      // ENOSPC, EACCES, a vanished directory: drop until the retry window passes, then reopen.
      if (stream === s) stream = null;
      brokenUntil = Date.now() + retryAfter;
      s.destroy();
    });
    return s;
  };

  const drop = () => {
    droppedSinceLast += 1;
    droppedTotal += 1;
  };

  const observer: CallObserver = (record) => {
    if (rate < 1 && !sampled(record, rate)) return;
    if (stream === null) {
      if (Date.now() < brokenUntil) return drop();
      stream = open();
    }
    if (stream.writableLength > maxQueue) return drop();
    const rec = accessRecord(record, opts.serverVersion ?? "", redact);
    if (rate < 1) rec.sample_rate = rate;
    if (droppedSinceLast > 0) {
      rec.dropped_records = droppedSinceLast;
      droppedSinceLast = 0;
    }
    // A record the destination then fails to take (open or write error) is counted as dropped.
    stream.write(`${JSON.stringify(rec)}\n`, (err) => {
      if (err) drop();
    });
  };

  return {
    observer,
    get dropped() {
      return droppedTotal;
    },
    reopen() {
      const old = stream;
      stream = open();
      old?.end();
    },
    close: () =>
      new Promise<void>((resolve) => {
        const s = stream;
        stream = null;
        if (s === null || s.destroyed) resolve();
        else s.end(() => resolve());
      }),
  };
}
