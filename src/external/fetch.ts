/**
 * Fetching an externalized object, as the reference's `external_fetch.py` does: the URL (and
 * every redirect target) passes the URL validator before it is requested; a HEAD probe (a
 * `Range: bytes=0-0` GET for pre-signed URLs, whose signatures are method-bound) learns the size;
 * objects at or above `parallelThresholdBytes` on a server that accepts ranges are fetched as
 * parallel Range requests (a straggling one hedged by a second request for the same range),
 * smaller ones with one GET; what arrives is held to `maxFetchBytes` (encoded) and
 * `maxDecompressedBytes` (after the `Content-Encoding`, zstd or gzip, is decoded).
 *
 * Requests go through node:http / node:https rather than `fetch`, which would decode gzip
 * itself (and so escape the decoded-size cap).
 */
import * as http from "node:http";
import * as https from "node:https";
import { DEFAULT_MAX_ZSTD_WINDOW_BYTES, inflateBody } from "../codec/inflate.js";
import { RpcError } from "../errors.js";
import { concatBytes } from "../wire/ipc.js";
import { redactUrl } from "./pointer.js";

/** Throws (any error) to refuse a URL before it is requested. */
export type UrlValidator = (url: string) => void;

/** The default validator: https URLs only (the reference's `https_only_validator`). */
export function httpsOnly(url: string): void {
  const scheme = schemeOf(url);
  if (scheme !== "https") throw new Error(`URL scheme '${scheme}' not allowed (only 'https' is permitted)`);
}

/**
 * http or https to a loopback host only (127.0.0.1, ::1, localhost): the reference conformance
 * worker's policy for fake storage, and the one to use in tests.
 */
export function loopbackOnly(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`refusing unparseable external location URL: ${redactUrl(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`refusing non-HTTP external location URL: ${redactUrl(url)}`);
  }
  if (!["127.0.0.1", "[::1]", "localhost"].includes(u.hostname)) {
    throw new Error(`refusing non-loopback external location URL: ${redactUrl(url)}`);
  }
}

function schemeOf(url: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url);
  return m === null ? "" : m[1]!.toLowerCase();
}

/** How pointers are fetched (client side; a server resolving inbound pointers takes the same). */
export interface FetchOptions {
  /** Called on the URL and every redirect target before it is requested. Default: `httpsOnly`. */
  readonly urlValidator?: UrlValidator | null;
  /** Objects this large or larger are fetched as parallel Range requests. Default 64 MiB. */
  readonly parallelThresholdBytes?: number;
  /** Size of each Range request. Default 8 MiB. */
  readonly chunkSizeBytes?: number;
  /** Range requests in flight at once, per object (hedges included). Default 8. */
  readonly maxParallelRequests?: number;
  /**
   * A Range request still running after this many times the median time of the ranges done so far
   * (once two are done) is hedged: the same range is requested again and the first answer wins.
   * Default 2 (the reference's); 0 turns hedging off.
   */
  readonly speculativeRetryMultiplier?: number;
  /** Hedge requests per object at most; 0 for no limit but one per range. Default 4 (the reference's). */
  readonly maxSpeculativeHedges?: number;
  /** Deadline for one fetch (all its requests), in ms. Default 60 000. */
  readonly timeoutMs?: number;
  /** Cap on the encoded (on-the-wire) object size. Default 256 MiB. */
  readonly maxFetchBytes?: number;
  /** Cap after content decoding. Default 16 x `maxFetchBytes`. */
  readonly maxDecompressedBytes?: number;
  /** Redirects followed per request. Default 5 (0 refuses any). */
  readonly maxRedirects?: number;
  /** Retries after a failed fetch (at most 2, 3 attempts in all). Default 2. */
  readonly maxRetries?: number;
  /** Delay between attempts, in ms. Default 500. */
  readonly retryDelayMs?: number;
  /** Resolutions in flight at once on one client (further ones wait). Default 4. */
  readonly maxConcurrentFetches?: number;
}

/** `FetchOptions` with every default filled in. */
export type FetchConfig = Required<Omit<FetchOptions, "urlValidator">> & { readonly urlValidator: UrlValidator | null };

/** Fills in the defaults (and checks the numbers). */
export function fetchConfig(opts: FetchOptions = {}): FetchConfig {
  const maxFetchBytes = opts.maxFetchBytes ?? 256 * 1024 * 1024;
  const cfg: FetchConfig = {
    urlValidator: opts.urlValidator === undefined ? httpsOnly : opts.urlValidator,
    parallelThresholdBytes: opts.parallelThresholdBytes ?? 64 * 1024 * 1024,
    chunkSizeBytes: opts.chunkSizeBytes ?? 8 * 1024 * 1024,
    maxParallelRequests: opts.maxParallelRequests ?? 8,
    speculativeRetryMultiplier: opts.speculativeRetryMultiplier ?? 2,
    maxSpeculativeHedges: opts.maxSpeculativeHedges ?? 4,
    timeoutMs: opts.timeoutMs ?? 60_000,
    maxFetchBytes,
    maxDecompressedBytes: opts.maxDecompressedBytes ?? maxFetchBytes * 16,
    maxRedirects: opts.maxRedirects ?? 5,
    maxRetries: Math.min(opts.maxRetries ?? 2, 2),
    retryDelayMs: opts.retryDelayMs ?? 500,
    maxConcurrentFetches: opts.maxConcurrentFetches ?? 4,
  };
  for (const [name, v] of Object.entries(cfg)) {
    if (typeof v === "number" && (!Number.isFinite(v) || v < 0)) {
      throw new RangeError(`external fetch option ${name} must be a non-negative number, got ${v}`);
    }
  }
  for (const name of ["chunkSizeBytes", "maxParallelRequests", "maxConcurrentFetches"] as const) {
    if (cfg[name] < 1) throw new RangeError(`external fetch option ${name} must be at least 1`);
  }
  return cfg;
}

/**
 * Resolving an external-location pointer failed: the URL was refused, the object could not be
 * fetched (an HTTP status, a connection failure, a timeout), was too large, failed its SHA-256
 * check, or did not hold what a pointer must name. `url` is redacted (no query, no userinfo).
 */
export class ExternalFetchError extends RpcError {
  /** The object's URL, redacted. */
  readonly url: string;
  /** The HTTP status that failed the fetch, when one did. */
  readonly status: number | null;

  constructor(message: string, url: string, opts: { status?: number | null; cause?: unknown } = {}) {
    super(message, {
      type: "RuntimeError",
      code: "UNAVAILABLE",
      kind: "external_fetch_failed",
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.name = "ExternalFetchError";
    this.url = redactUrl(url);
    this.status = opts.status ?? null;
  }
}

/**
 * A failure that retrying cannot mend, as the reference does not retry it: a refused URL, a cap, a
 * digest mismatch, a redirect without a usable target, a Range answer that is not 206 or not the
 * range's size.
 */
export class PermanentFetchError extends Error {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly res: http.IncomingMessage;
}

/** Validates `url` with the configured validator, the message secret-safe. */
function validate(url: string, cfg: FetchConfig): void {
  if (cfg.urlValidator === null) return;
  try {
    cfg.urlValidator(url);
  } catch (err) {
    let message = err instanceof Error ? err.message : String(err);
    message = message.split(url).join(redactUrl(url));
    try {
      const u = new URL(url);
      for (const secret of [u.username, u.password, ...u.searchParams.values()]) {
        if (secret) message = message.split(secret).join("<redacted>");
      }
    } catch {
      // unparseable: nothing more to hide
    }
    throw new PermanentFetchError(`ExternalLocation URL rejected: ${message}`);
  }
}

/** One request, no redirects followed. */
function request(method: string, url: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new PermanentFetchError(`ExternalLocation URL is invalid: ${redactUrl(url)}`));
      return;
    }
    const mod = u.protocol === "https:" ? https : u.protocol === "http:" ? http : null;
    if (mod === null) {
      reject(new PermanentFetchError(`ExternalLocation URL scheme '${u.protocol}' cannot be fetched`));
      return;
    }
    const req = mod.request(u, { method, headers: { "accept-encoding": "identity", ...headers }, signal }, (res) =>
      resolve({ status: res.statusCode ?? 0, headers: res.headers, res }),
    );
    req.on("error", () => reject(new Error(`ExternalLocation ${method} failed for ${redactUrl(url)}`)));
    req.end();
  });
}

/** A request following (and validating, and bounding) redirects. */
async function follow(
  method: string,
  url: string,
  cfg: FetchConfig,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<Response> {
  let current = url;
  for (let hop = 0; ; hop++) {
    validate(current, cfg);
    const r = await request(method, current, headers, signal);
    if (!REDIRECTS.has(r.status)) return r;
    r.res.resume();
    if (hop >= cfg.maxRedirects) {
      throw new PermanentFetchError(
        `ExternalLocation redirect limit exceeded (max_redirects=${cfg.maxRedirects}) at ${redactUrl(current)}`,
      );
    }
    const location = r.headers.location;
    if (!location)
      throw new PermanentFetchError(`ExternalLocation redirect had no Location header at ${redactUrl(current)}`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new PermanentFetchError(`ExternalLocation redirect target is invalid at ${redactUrl(current)}`);
    }
    current = next.href;
  }
}

/** Fails on a non-2xx status (the body discarded), the URL redacted. */
function checkStatus(r: Response, url: string): void {
  if (r.status >= 200 && r.status < 300) return;
  r.res.resume();
  throw new StatusError(r.status, url);
}

class StatusError extends Error {
  constructor(
    readonly status: number,
    url: string,
  ) {
    super(`ExternalLocation fetch of ${redactUrl(url)} answered HTTP ${status}`);
  }
}

/** Reads a body, failing past `cap` bytes (and past `exact`, when given, or short of it). */
async function readBody(r: Response, cap: number, what: string, exact?: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of r.res as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > cap) {
      r.res.destroy();
      throw new PermanentFetchError(`ExternalLocation ${what} exceeded max_fetch_bytes (${cap} bytes)`);
    }
    if (exact !== undefined && total > exact) {
      r.res.destroy();
      throw new PermanentFetchError(`Range chunk size mismatch: expected ${exact} bytes, got at least ${total}`);
    }
    parts.push(chunk);
  }
  if (exact !== undefined && total !== exact) {
    throw new PermanentFetchError(`Range chunk size mismatch: expected ${exact} bytes, got ${total}`);
  }
  return concatBytes(parts);
}

/**
 * True for URLs that look pre-signed, by the reference's rule: SigV4 (`X-Amz-Signature` and
 * `X-Amz-Credential`, or their `X-Goog-` twins) or SigV2 (`Signature` with `AWSAccessKeyId` or
 * `GoogleAccessId`) in the query. Their signatures are method-bound, so HEAD would be refused.
 */
function isPresigned(url: string): boolean {
  let keys: Set<string>;
  try {
    keys = new Set(new URL(url).searchParams.keys());
  } catch {
    return false;
  }
  const sigv4 =
    (keys.has("X-Amz-Signature") && keys.has("X-Amz-Credential")) ||
    (keys.has("X-Goog-Signature") && keys.has("X-Goog-Credential"));
  const sigv2 = keys.has("Signature") && (keys.has("AWSAccessKeyId") || keys.has("GoogleAccessId"));
  return sigv4 || sigv2;
}

interface Probe {
  readonly length: number | null;
  readonly ranges: boolean;
  readonly encoding: string;
}

const header = (h: http.IncomingHttpHeaders, name: string): string => {
  const v = h[name];
  return Array.isArray(v) ? (v[0] ?? "") : (v ?? "");
};

async function probe(url: string, cfg: FetchConfig, signal: AbortSignal): Promise<Probe> {
  if (isPresigned(url)) {
    const r = await follow("GET", url, cfg, signal, { range: "bytes=0-0" });
    const encoding = header(r.headers, "content-encoding");
    if (r.status === 206) {
      const m = /^\s*bytes\s+\d+-\d+\/(\d+)\s*$/.exec(header(r.headers, "content-range"));
      // One byte was asked for: read it, and fail on more (an origin ignoring the range's size).
      await readBody(r, cfg.maxFetchBytes, "range probe", 1);
      return { length: m ? Number(m[1]) : null, ranges: true, encoding };
    }
    r.res.resume();
    // A signature bound to the method and headers may refuse the probe and still allow a plain GET.
    if (r.status === 403 || r.status === 405 || r.status === 501) return { length: null, ranges: false, encoding: "" };
    checkStatus(r, url);
    return { length: null, ranges: false, encoding };
  }
  const r = await follow("HEAD", url, cfg, signal);
  r.res.resume();
  if (r.status === 403 || r.status === 405 || r.status === 501) return { length: null, ranges: false, encoding: "" };
  checkStatus(r, url);
  const raw = header(r.headers, "content-length");
  const length = /^\d+$/.test(raw) ? Number(raw) : null;
  return {
    length,
    ranges: header(r.headers, "accept-ranges").toLowerCase().includes("bytes"),
    encoding: header(r.headers, "content-encoding"),
  };
}

/** One Range request's body: exactly `end - start + 1` bytes from a 206. */
async function fetchRange(
  url: string,
  start: number,
  end: number,
  cfg: FetchConfig,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const r = await follow("GET", url, cfg, signal, { range: `bytes=${start}-${end}` });
  if (r.status !== 206) {
    checkStatus(r, url);
    r.res.resume();
    throw new PermanentFetchError(
      `Expected HTTP 206 for Range request, got ${r.status} (bytes=${start}-${end} of ${redactUrl(url)})`,
    );
  }
  return readBody(r, cfg.maxFetchBytes, "range fetch", end - start + 1);
}

/** The median the reference takes: the upper one of an even count. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Fetches `length` bytes as Range requests of `chunkSizeBytes`, at most `maxParallelRequests` in
 * flight, with the reference's time-based hedging: once two ranges are done, a range whose request
 * has run longer than `speculativeRetryMultiplier` x their median time is requested again (at most
 * `maxSpeculativeHedges` times per object), and the first answer wins. Unlike the reference, the
 * time counts from when a request starts rather than from when it was queued, a timer notices a
 * straggler even when no other range finishes after it, a hedge goes ahead of ranges not yet
 * started, and the losing request is aborted at once. Any failure of a range not yet fetched fails
 * the fetch (the attempt is retried whole, as the reference's).
 */
async function fetchRanges(url: string, length: number, cfg: FetchConfig, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const ranges: [number, number][] = [];
  for (let start = 0; start < length; start += cfg.chunkSizeBytes) {
    ranges.push([start, Math.min(start + cfg.chunkSizeBytes, length) - 1]);
  }
  const hedging = cfg.speculativeRetryMultiplier > 0;
  const hedgeCap = cfg.maxSpeculativeHedges === 0 ? ranges.length : cfg.maxSpeculativeHedges;
  /** Requests in flight, by range: their abort controllers and start times. */
  const running = new Map<number, { ctl: AbortController; started: number }[]>();
  const fetched = new Set<number>();
  const hedged = new Set<number>();
  const durations: number[] = [];
  const pending = ranges.map((_, i) => i);
  const hedges: number[] = [];
  let active = 0;
  let timer: NodeJS.Timeout | undefined;

  return new Promise<Uint8Array>((resolve, reject) => {
    let settled = false;
    const finish = (err: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      for (const reqs of running.values()) for (const r of reqs) r.ctl.abort();
      if (err === null) resolve(out);
      else reject(err);
    };
    const onAbort = (): void => finish(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });

    /** Queues a hedge for each straggler, and sets a timer for the next range that may become one. */
    const considerHedges = (): void => {
      clearTimeout(timer);
      if (!hedging || settled || durations.length < 2 || hedged.size >= hedgeCap) return;
      const threshold = median(durations) * cfg.speculativeRetryMultiplier;
      const now = performance.now();
      let nextDue = Number.POSITIVE_INFINITY;
      for (const [i, reqs] of running) {
        if (hedged.has(i) || fetched.has(i) || reqs.length === 0) continue;
        const due = reqs[0]!.started + threshold;
        if (due <= now) {
          if (hedged.size >= hedgeCap) break;
          hedged.add(i);
          hedges.push(i);
        } else nextDue = Math.min(nextDue, due);
      }
      if (nextDue !== Number.POSITIVE_INFINITY && hedged.size < hedgeCap) {
        timer = setTimeout(
          () => {
            considerHedges();
            pump();
          },
          Math.max(1, Math.ceil(nextDue - now)),
        );
        timer.unref();
      }
    };

    const launch = (i: number): void => {
      const [start, end] = ranges[i]!;
      const ctl = new AbortController();
      const req = { ctl, started: performance.now() };
      const reqs = running.get(i) ?? [];
      reqs.push(req);
      running.set(i, reqs);
      active++;
      fetchRange(url, start, end, cfg, AbortSignal.any([signal, ctl.signal])).then(
        (bytes) => {
          active--;
          reqs.splice(reqs.indexOf(req), 1);
          if (settled || fetched.has(i)) return;
          fetched.add(i);
          out.set(bytes, start);
          durations.push(performance.now() - req.started);
          for (const loser of reqs) loser.ctl.abort();
          running.delete(i);
          if (fetched.size === ranges.length) {
            finish(null);
            return;
          }
          considerHedges();
          pump();
        },
        (err: unknown) => {
          active--;
          reqs.splice(reqs.indexOf(req), 1);
          // A request aborted because its twin won, or failing after its range arrived, is no failure.
          if (settled || fetched.has(i) || ctl.signal.aborted) {
            pump();
            return;
          }
          finish(err);
        },
      );
    };

    const pump = (): void => {
      while (!settled && active < cfg.maxParallelRequests) {
        const i = hedges.shift() ?? pending.shift();
        if (i === undefined) return;
        if (!fetched.has(i)) launch(i);
      }
    };
    pump();
  });
}

/** The decoded bytes of the object at `url` (one attempt). */
export async function fetchObject(url: string, cfg: FetchConfig, signal: AbortSignal): Promise<Uint8Array> {
  const p = await probe(url, cfg, signal);
  if (p.length !== null && p.length > cfg.maxFetchBytes) {
    throw new PermanentFetchError(
      `ExternalLocation fetch rejected: Content-Length ${p.length} exceeds max_fetch_bytes (${cfg.maxFetchBytes})`,
    );
  }
  let data: Uint8Array;
  let encoding = p.encoding;
  if (p.length !== null && p.ranges && p.length >= cfg.parallelThresholdBytes && p.length > 0) {
    data = await fetchRanges(url, p.length, cfg, signal);
  } else {
    const r = await follow("GET", url, cfg, signal);
    checkStatus(r, url);
    encoding = header(r.headers, "content-encoding") || encoding;
    data = await readBody(r, cfg.maxFetchBytes, "fetch");
  }
  const ce = encoding.split(";", 1)[0]!.trim().toLowerCase();
  if (ce === "zstd" || ce === "gzip") {
    try {
      data = await inflateBody(ce, data, {
        maxBytes: cfg.maxDecompressedBytes,
        maxZstdWindowBytes: DEFAULT_MAX_ZSTD_WINDOW_BYTES,
      });
    } catch {
      throw new PermanentFetchError(
        `Failed to decompress ${ce} data (${data.byteLength} encoded bytes) without exceeding max_decompressed_bytes=${cfg.maxDecompressedBytes} from ${redactUrl(url)}`,
      );
    }
  }
  if (data.byteLength > cfg.maxDecompressedBytes) {
    throw new PermanentFetchError(
      `ExternalLocation decoded body exceeded max_decompressed_bytes (${data.byteLength} > ${cfg.maxDecompressedBytes}) from ${redactUrl(url)}`,
    );
  }
  return data;
}

/**
 * Runs `attempt` up to `maxRetries + 1` times (a `PermanentFetchError` is not retried), under the
 * fetch deadline; any failure becomes an `ExternalFetchError` naming the redacted URL.
 */
export async function withRetries<T>(
  url: string,
  cfg: FetchConfig,
  attempt: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const attempts = cfg.maxRetries + 1;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, cfg.retryDelayMs));
    const signal = AbortSignal.timeout(cfg.timeoutMs);
    try {
      return await attempt(signal);
    } catch (err) {
      last = err;
      if (err instanceof PermanentFetchError) break;
    }
  }
  const status = last instanceof StatusError ? last.status : null;
  const reason = last instanceof Error ? last.message : String(last);
  throw new ExternalFetchError(
    `Failed to resolve ExternalLocation ${redactUrl(url)}: ${reason.split(url).join(redactUrl(url))}`,
    url,
    { status, cause: last },
  );
}
