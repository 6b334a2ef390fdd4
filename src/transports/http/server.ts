/**
 * The HTTP transport, server side, as the reference lays it out:
 *
 *   POST {prefix}/{protocol}/{method}            unary call
 *   POST {prefix}/{protocol}/{method}/init       open a stream (a producer's first turn runs here)
 *   POST {prefix}/{protocol}/{method}/exchange   one more turn of a stream, or its cancel
 *   POST {prefix}/{__reserved__}                 server-level reserved methods
 *   GET | HEAD | OPTIONS {prefix}/health         health and capability discovery (no auth)
 *
 * Bodies are Arrow IPC streams (`application/vnd.apache.arrow.stream`). Streams are continued
 * statelessly from two sealed tokens (see tokens.ts), so any instance sharing `tokenKey` can serve
 * any turn. Method errors answer 200 with `X-VGI-RPC-Error: true` and an error batch; malformed
 * requests 400; unknown routes 404; other methods than POST on RPC routes 405 (GET on an unhosted
 * protocol's method 404, as the reference); oversized bodies 413; wrong content type or coding 415;
 * refused credentials 401. Calls run through the transport-agnostic dispatch core.
 */

import { randomBytes } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { RecordBatch, Schema } from "apache-arrow";
import { headersOf, peerCertificateOf } from "../../auth/node.js";
import { type Authenticator, type AuthRequest, authReasonOf, type PeerCertificate } from "../../auth/types.js";
import { frameworkError, RpcError } from "../../errors.js";
import { ANONYMOUS, type AuthContext } from "../../protocol/context.js";
import {
  type Admission,
  type Answer,
  admit,
  Call,
  type CallEnv,
  type CookieJar,
  newRequestId,
  type OpenStream,
  openStream,
  runTurn,
  runUnary,
} from "../../server/dispatch.js";
import { securityRefusal } from "../../server/security.js";
import type { ResolvedMethod, RpcServer } from "../../server/server.js";
import { EMPTY_SCHEMA, emptyBatch, withMetadata } from "../../wire/batches.js";
import { concatBytes, encodeStream, totalBytes } from "../../wire/ipc.js";
import {
  CALL_STATE_KEY,
  CANCEL_KEY,
  METHOD_KEY,
  PROTOCOL_KEY,
  STREAM_STATE_KEY,
  TRANSPORT_OPTIONS_METHOD,
} from "../../wire/keys.js";
import { classifyBatch, errorBatch } from "../../wire/messages.js";
import { STATE_TOKEN_KEY_BYTES } from "../../wire/state-token.js";
import { bodyBuffer, joinBuffers, POOLED_MIN_BYTES } from "../buffer-pool.js";
import { createNodeHttpServer, type NodeHttpTimeouts } from "../node-http.js";
import { createRequestGate, DEFAULT_WRITE_HIGH_WATER_MARK } from "./backpressure.js";
import {
  DECODABLE_ENCODINGS,
  type Encoding,
  encodeBody,
  loadZstd,
  pickResponseEncoding,
  producibleEncodings,
} from "./compression.js";
import { formatSetCookie, parseCookieHeader } from "./cookies.js";
import { DEFAULT_MAX_ZSTD_WINDOW_BYTES, DecompressionLimitExceeded, inflateBody } from "./inflate.js";
import { decodeIpcBody } from "./ipc-body.js";
import { endWithPieces } from "./outgoing.js";
import { openCallToken, openCursorToken, sealCallToken, sealCursorToken, type TokenKeyring } from "./tokens.js";

/** The Arrow IPC stream media type every RPC body uses. */
export const ARROW_CONTENT_TYPE = "application/vnd.apache.arrow.stream";
export const RPC_ERROR_HEADER = "X-VGI-RPC-Error";
export const REQUEST_ID_HEADER = "X-Request-ID";
export const MAX_REQUEST_BYTES_HEADER = "VGI-Max-Request-Bytes";
export const MAX_RESPONSE_BYTES_HEADER = "VGI-Max-Response-Bytes";
export const ACCEPT_MAX_RESPONSE_BYTES_HEADER = "VGI-Accept-Max-Response-Bytes";
export const ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER = "VGI-Accept-Max-Response-Bytes-Support";
export const SUPPORTED_ENCODINGS_HEADER = "VGI-Supported-Encodings";
export const EXTERNALIZATION_ENABLED_HEADER = "VGI-Externalization-Enabled";
export const AUTH_REASON_HEADER = "VGI-Auth-Reason";

const MIN_BUDGET_BYTES = 65536;
const MAX_BUDGET_BYTES = 2 ** 53 - 1;
/** Default `callTokenCacheEntries`. */
export const DEFAULT_CALL_TOKEN_CACHE_ENTRIES = 1024;
/** Default `maxRequestBytes`: 256 MiB. */
export const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024;

/** Options of `createHttpHandler` / `listenHttp`. */
export interface HttpServerOptions {
  /** URL prefix of every route, e.g. `/vgi`. Default: `""` (the root). */
  readonly prefix?: string;
  /** 32-byte XChaCha20-Poly1305 key sealing stream tokens; share it so instances can continue each other's streams. Default: random per handler. */
  readonly tokenKey?: Uint8Array;
  /** Stream token lifetime in seconds (0: never expire). Default: 3600. */
  readonly tokenTtlSeconds?: number;
  /**
   * Call tokens kept opened (decrypted, schemas decoded) for the streams' next turns; each is
   * checked against its lifetime again when used. 0 opens every turn's afresh. Default: 1024.
   */
  readonly callTokenCacheEntries?: number;
  /**
   * Largest request body accepted, before and after content decoding, in bytes (null: no cap, not
   * advertised); a compressed body is refused as soon as its decoded size passes it. Default: 256 MiB.
   */
  readonly maxRequestBytes?: number | null;
  /** Largest window a zstd request body's frame may declare, in bytes (larger: 400). Default: 8 MiB. */
  readonly maxZstdWindowBytes?: number;
  /** Largest response body (decoded Arrow bytes) a call may produce; larger ones answer `ResponseTooLargeError`. Min 65536. Default: null (only the client's `VGI-Accept-Max-Response-Bytes` applies). */
  readonly maxResponseBytes?: number | null;
  /** Resolves each request's caller; throwing answers 401. `/health` and `OPTIONS` are exempt. Default: every caller anonymous. */
  readonly authenticate?: Authenticator;
  /** Compress responses with the client's preferred coding (zstd or gzip); false advertises and produces none. Default: true. */
  readonly compressResponses?: boolean;
  /** gzip level for responses (1-9). Default: 6. */
  readonly gzipLevel?: number;
  /** zstd level for responses. Default: 1 (the reference's default). */
  readonly zstdLevel?: number;
  /** `Cache-Control: max-age` on `OPTIONS` capability answers, in seconds. Default: 300. */
  readonly capabilitiesMaxAgeSeconds?: number;
  /**
   * Unwritten answer bytes on one connection (node:http adapter) above which its next request,
   * pipelined or not, waits before it is read or run. Default: 1 MiB.
   */
  readonly writeHighWaterMark?: number;
}

/** A request as the transport core sees it (built by the node:http and fetch adapters). */
interface CoreRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Headers;
  readonly remoteAddr: string;
  readonly peerCertificate: PeerCertificate | null;
  /** Reads the whole body, failing with `BodyTooLarge` past `limit` bytes. */
  readBody(limit: number | null): Promise<Uint8Array>;
}

/** A complete response. */
interface CoreResponse {
  status: number;
  readonly headers: [string, string][];
  /** The body's pieces, in order (an Arrow answer's large column buffers go out as the views they are). */
  body: readonly Uint8Array[];
  contentType: string;
}

class BodyTooLarge extends Error {
  constructor(readonly size: number) {
    super(`request body of at least ${size} bytes`);
  }
}

/** An error answered as an Arrow error stream with an HTTP status. */
class HttpRpcError extends Error {
  constructor(
    readonly status: number,
    readonly error: RpcError,
    readonly schema: Schema = EMPTY_SCHEMA,
  ) {
    super(error.message);
  }
}

/** An error answered as a JSON body (the reference's framework-level errors). */
class HttpJsonError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly description: string,
  ) {
    super(description);
  }
}

const utf8 = new TextEncoder();

function jsonResponse(status: number, value: unknown): CoreResponse {
  return { status, headers: [], body: [utf8.encode(JSON.stringify(value))], contentType: "application/json" };
}

function typeError(message: string): RpcError {
  return new RpcError(message, { type: "TypeError", code: "INVALID_ARGUMENT" });
}

function isErrorAnswer(batches: readonly RecordBatch[]): boolean {
  const last = batches[batches.length - 1];
  return last !== undefined && classifyBatch(last) === "error";
}

function parseBudgetHeader(raw: string | null): number | null {
  if (raw === null) return null;
  if (!/^[1-9][0-9]*$/.test(raw)) {
    throw new HttpRpcError(
      400,
      typeError(`${ACCEPT_MAX_RESPONSE_BYTES_HEADER} must be one canonical positive decimal integer`),
    );
  }
  const value = Number(raw);
  if (value < MIN_BUDGET_BYTES) {
    throw new HttpRpcError(400, typeError(`${ACCEPT_MAX_RESPONSE_BYTES_HEADER} must be at least ${MIN_BUDGET_BYTES}`));
  }
  if (value > MAX_BUDGET_BYTES) {
    throw new HttpRpcError(400, typeError(`${ACCEPT_MAX_RESPONSE_BYTES_HEADER} exceeds ${MAX_BUDGET_BYTES}`));
  }
  return value;
}

function minPresent(...values: (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : Math.min(...present);
}

function tooLarge(limit: number, size: number, method: string): RpcError {
  return new RpcError(`HTTP body exceeds max_response_bytes (${size} > ${limit}) for method '${method}'`, {
    type: "ResponseTooLargeError",
    code: "RESOURCE_EXHAUSTED",
  });
}

const NOT_FOUND_HTML = (prefix: string) =>
  utf8.encode(
    `<!DOCTYPE html><html><head><meta charset="utf-8"><title>404 Not Found</title></head><body><h1>404 Not Found</h1><p>This is a vgi-rpc service. RPC endpoints live under <code>${prefix.replace(/[<>&"]/g, "")}/{protocol}/{method}</code>.</p></body></html>`,
  );

/** Collects `Set-Cookie` headers queued by a unary handler. */
class HeaderCookieJar implements CookieJar {
  readonly headers: string[] = [];
  set(name: string, value: string, options: Parameters<CookieJar["set"]>[2]): void {
    this.headers.push(formatSetCookie(name, value, options, false));
  }
  delete(name: string, options: Parameters<CookieJar["delete"]>[1]): void {
    this.headers.push(formatSetCookie(name, "", options, true));
  }
}

type RouteKind = "unary" | "init" | "exchange" | "reserved";

/** The HTTP transport for one `RpcServer`. */
class HttpTransport {
  readonly prefix: string;
  private readonly keys: TokenKeyring;
  private readonly maxRequestBytes: number | null;
  private readonly maxZstdWindowBytes: number;
  private readonly maxResponseBytes: number | null;
  private readonly encodings: readonly Encoding[];
  private readonly capabilityHeaders: [string, string][];
  private readonly healthBody: Uint8Array;

  constructor(
    readonly server: RpcServer,
    readonly options: HttpServerOptions,
  ) {
    this.prefix = (options.prefix ?? "").replace(/\/+$/, "");
    const key = options.tokenKey ?? randomBytes(STATE_TOKEN_KEY_BYTES);
    if (key.byteLength !== STATE_TOKEN_KEY_BYTES) {
      throw new TypeError(`tokenKey must be ${STATE_TOKEN_KEY_BYTES} bytes, got ${key.byteLength}`);
    }
    const cached = options.callTokenCacheEntries ?? DEFAULT_CALL_TOKEN_CACHE_ENTRIES;
    if (!Number.isInteger(cached) || cached < 0) {
      throw new RangeError(`callTokenCacheEntries must be an integer >= 0, got ${cached}`);
    }
    this.keys = {
      key: new Uint8Array(key),
      ttlSeconds: options.tokenTtlSeconds ?? 3600,
      ...(cached > 0 ? { openedCalls: new Map(), callTokenCacheEntries: cached } : {}),
    };
    this.maxRequestBytes = options.maxRequestBytes === undefined ? DEFAULT_MAX_REQUEST_BYTES : options.maxRequestBytes;
    this.maxZstdWindowBytes = options.maxZstdWindowBytes ?? DEFAULT_MAX_ZSTD_WINDOW_BYTES;
    if (!Number.isSafeInteger(this.maxZstdWindowBytes) || this.maxZstdWindowBytes < 0) {
      throw new RangeError(`maxZstdWindowBytes must be an integer >= 0, got ${this.maxZstdWindowBytes}`);
    }
    this.maxResponseBytes = options.maxResponseBytes ?? null;
    if (this.maxResponseBytes !== null && this.maxResponseBytes < MIN_BUDGET_BYTES) {
      throw new TypeError(`maxResponseBytes must be at least ${MIN_BUDGET_BYTES}`);
    }
    this.encodings = options.compressResponses === false ? [] : producibleEncodings();
    if (this.encodings.includes("zstd")) void loadZstd();
    const caps: [string, string][] = [];
    if (this.maxRequestBytes !== null) caps.push([MAX_REQUEST_BYTES_HEADER, String(this.maxRequestBytes)]);
    if (this.maxResponseBytes !== null) caps.push([MAX_RESPONSE_BYTES_HEADER, String(this.maxResponseBytes)]);
    caps.push([ACCEPT_MAX_RESPONSE_BYTES_SUPPORT_HEADER, "true"]);
    caps.push([EXTERNALIZATION_ENABLED_HEADER, "false"]);
    caps.push([SUPPORTED_ENCODINGS_HEADER, this.encodings.join(", ")]);
    this.capabilityHeaders = caps;
    const primary = [...server.protocols.keys()][0] ?? "";
    this.healthBody = utf8.encode(JSON.stringify({ status: "ok", server_id: server.serverId, protocol: primary }));
  }

  /** Serves one request; never throws. */
  async handle(req: CoreRequest): Promise<CoreResponse> {
    const requestId = req.headers.get(REQUEST_ID_HEADER) || newRequestId();
    let res: CoreResponse;
    let encoding: { encoding: Encoding | null; custom: boolean } = { encoding: null, custom: false };
    try {
      encoding = pickResponseEncoding(
        req.headers.get("accept-encoding"),
        req.headers.get("x-vgi-accept-encoding"),
        this.encodings,
      );
      res = await this.route(req, requestId);
    } catch (err) {
      res = this.errorResponse(err);
    }
    res.headers.push([REQUEST_ID_HEADER, requestId]);
    for (const h of this.capabilityHeaders) res.headers.push(h);
    if (req.method === "OPTIONS") {
      res.headers.push(["Cache-Control", `public, max-age=${this.options.capabilitiesMaxAgeSeconds ?? 300}`]);
    }
    if (encoding.encoding !== null && res.contentType === ARROW_CONTENT_TYPE && totalBytes(res.body) > 0) {
      const whole = res.body.length === 1 ? res.body[0]! : concatBytes(res.body);
      const encoded = await encodeBody(encoding.encoding, whole, {
        gzip: this.options.gzipLevel ?? 6,
        zstd: this.options.zstdLevel ?? 1,
      });
      if (encoded !== null) {
        res.body = [encoded];
        res.headers.push([encoding.custom ? "X-VGI-Content-Encoding" : "Content-Encoding", encoding.encoding]);
      }
    }
    return res;
  }

  private errorResponse(err: unknown): CoreResponse {
    if (err instanceof Answered) return err.response;
    if (err instanceof HttpRpcError) {
      const batch = errorBatch(
        err.schema,
        err.error,
        { serverId: this.server.serverId, requestId: "" },
        this.server.includeTracebacks,
      );
      return this.arrow(err.status, err.schema, [batch]);
    }
    if (err instanceof HttpJsonError)
      return jsonResponse(err.status, { title: err.title, description: err.description });
    const e = RpcError.from(err);
    this.server.logger.error({ err: e }, "HTTP transport failure");
    return jsonResponse(500, { title: "500 Internal Server Error", description: e.message });
  }

  private arrow(status: number, schema: Schema, batches: readonly RecordBatch[]): CoreResponse {
    return this.arrowBytes(status, encodeStream(schema, batches));
  }

  private arrowBytes(status: number, body: readonly Uint8Array[]): CoreResponse {
    const headers: [string, string][] = [];
    if (status === 500) {
      headers.push([RPC_ERROR_HEADER, "true"]);
      status = 200;
    }
    return { status, headers, body, contentType: ARROW_CONTENT_TYPE };
  }

  private notFound(): CoreResponse {
    return { status: 404, headers: [], body: [NOT_FOUND_HTML(this.prefix)], contentType: "text/html; charset=utf-8" };
  }

  private async route(req: CoreRequest, requestId: string): Promise<CoreResponse> {
    const p = this.prefix;
    if (p !== "" && req.path !== p && !req.path.startsWith(`${p}/`)) return this.notFound();
    const rest = req.path.slice(p.length);
    const segments = rest.split("/").slice(1);
    if (segments.length === 1 && segments[0] === "health") {
      if (req.method === "GET" || req.method === "HEAD") {
        return {
          status: 200,
          headers: req.method === "HEAD" ? [["Content-Length", String(this.healthBody.byteLength)]] : [],
          body: req.method === "HEAD" ? [] : [this.healthBody],
          contentType: "application/json",
        };
      }
      if (req.method === "OPTIONS") return this.allow("GET, HEAD, OPTIONS");
      return this.methodNotAllowed("GET, HEAD, OPTIONS");
    }
    let kind: RouteKind;
    let protocol: string;
    let method: string;
    if (segments.length === 1 && segments[0] !== "") {
      kind = "reserved";
      protocol = "";
      method = segments[0]!;
    } else if (segments.length === 2) {
      kind = "unary";
      [protocol, method] = segments as [string, string];
    } else if (segments.length === 3 && (segments[2] === "init" || segments[2] === "exchange")) {
      kind = segments[2];
      [protocol, method] = segments as [string, string];
    } else return this.notFound();
    if (protocol === "" && kind !== "reserved") return this.notFound();
    if (method === "") return this.notFound();
    if (req.method === "OPTIONS") return this.allow("POST, OPTIONS");
    if (req.method !== "POST") {
      // As the reference's router answers: GET on {protocol}/{method} is 404 unless the protocol is
      // hosted (405 then); any other method there, and any non-POST on a one-segment, /init or
      // /exchange path, is 405 whatever the names.
      if (kind !== "unary") return this.methodNotAllowed("POST, OPTIONS");
      if (req.method !== "GET") return this.methodNotAllowed("GET, POST, OPTIONS");
      return this.server.protocols.has(protocol) ? this.methodNotAllowed("POST") : this.notFound();
    }
    if (kind === "reserved" && !(method.startsWith("__") && method.endsWith("__"))) return this.notFound();

    const auth = await this.authenticate(req);
    const body = await this.readBody(req);
    const budget = minPresent(
      this.maxResponseBytes,
      parseBudgetHeader(req.headers.get(ACCEPT_MAX_RESPONSE_BYTES_HEADER)),
    );
    const cookies = parseCookieHeader(req.headers.get("cookie"));
    const transportMetadata: Record<string, string> = {};
    if (req.remoteAddr) transportMetadata.remote_addr = req.remoteAddr;
    const ua = req.headers.get("user-agent");
    if (ua) transportMetadata.user_agent = ua;
    const traceContext: Record<string, string> = {};
    for (const h of ["traceparent", "tracestate"]) {
      const v = req.headers.get(h);
      if (v) traceContext[h] = v;
    }
    const idempotencyKey = req.headers.get("idempotency-key") ?? undefined;
    const env: CallEnv = {
      server: this.server,
      transport: "http",
      transportMetadata,
      auth,
      cookies,
      traceContext,
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    };

    if (kind === "reserved") {
      if (method !== TRANSPORT_OPTIONS_METHOD) {
        throw new HttpRpcError(
          404,
          frameworkError("method_not_implemented", `This server does not implement the reserved method '${method}'.`),
        );
      }
      this.checkContentType(req);
      return this.server.track(this.unary(env, null, method, body, requestId, budget));
    }
    const resolved = this.resolve(protocol, method);
    if (kind === "unary" && resolved.decl.kind !== "unary") {
      throw new HttpRpcError(400, typeError(`Stream method '${method}' requires /init and /exchange endpoints`));
    }
    if (kind === "init" && resolved.decl.kind === "unary") {
      throw new HttpRpcError(400, typeError(`Method '${method}' is not a stream`));
    }
    if (kind === "exchange" && resolved.decl.kind === "unary") {
      throw new HttpRpcError(400, typeError(`Method '${method}' does not support /exchange`));
    }
    this.checkContentType(req);
    if (kind === "unary") return this.server.track(this.unary(env, resolved, method, body, requestId, budget));
    if (kind === "init") return this.server.track(this.init(env, resolved, body, requestId, budget));
    return this.server.track(this.exchange(env, resolved, body, requestId, budget));
  }

  private allow(methods: string): CoreResponse {
    return { status: 200, headers: [["Allow", methods]], body: [], contentType: "" };
  }

  private methodNotAllowed(methods: string): CoreResponse {
    const res = jsonResponse(405, { title: "405 Method Not Allowed" });
    res.headers.push(["Allow", methods]);
    return res;
  }

  private async authenticate(req: CoreRequest): Promise<AuthContext> {
    const authenticate = this.options.authenticate;
    if (authenticate === undefined) return ANONYMOUS;
    const request: AuthRequest = {
      method: req.method,
      path: req.path,
      headers: req.headers,
      remoteAddr: req.remoteAddr,
      peerCertificate: req.peerCertificate,
    };
    try {
      return await authenticate(request);
    } catch (err) {
      const reason = authReasonOf(err);
      const detail = `authentication rejected: ${(err as Error)?.message ?? String(err)}`;
      this.server.logger.warn({ remote_addr: req.remoteAddr, auth_reason: reason }, "Auth failure");
      const res = jsonResponse(401, { error: "unauthorized", reason, detail });
      res.headers.push([AUTH_REASON_HEADER, reason], ["Cache-Control", "no-store"], ["WWW-Authenticate", "Bearer"]);
      throw new Answered(res);
    }
  }

  private async readBody(req: CoreRequest): Promise<Uint8Array> {
    const cap = this.maxRequestBytes;
    let raw: Uint8Array;
    try {
      raw = await req.readBody(cap);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        throw new HttpJsonError(
          413,
          "Request body exceeds max_request_bytes",
          `Request body of at least ${err.size} bytes exceeds the server's advertised max_request_bytes=${cap}.`,
        );
      }
      throw new HttpJsonError(400, "Bad Request", `Failed to read the request body: ${(err as Error).message}`);
    }
    const coding = (req.headers.get("content-encoding") ?? "").trim().toLowerCase();
    if (coding === "" || coding === "identity") return raw;
    if (!(DECODABLE_ENCODINGS as readonly string[]).includes(coding)) {
      throw new HttpJsonError(
        415,
        "Unsupported Content-Encoding",
        `Content-Encoding '${coding}' is not supported by this server; supported: ${DECODABLE_ENCODINGS.join(", ")}`,
      );
    }
    try {
      return await inflateBody(coding as Encoding, raw, {
        maxBytes: cap,
        maxZstdWindowBytes: this.maxZstdWindowBytes,
      });
    } catch (err) {
      if (err instanceof DecompressionLimitExceeded) {
        throw new HttpJsonError(
          413,
          "Request body exceeds max_request_bytes after decompression",
          `Decompressed ${coding} request body exceeds the server's advertised max_request_bytes=${cap}: ${err.message}.`,
        );
      }
      throw new HttpJsonError(
        400,
        "Decompression Error",
        `Failed to decompress ${coding} request body: ${(err as Error).message}`,
      );
    }
  }

  private checkContentType(req: CoreRequest): void {
    const ct = req.headers.get("content-type") ?? "";
    if (ct !== ARROW_CONTENT_TYPE) {
      throw new HttpRpcError(
        415,
        typeError(
          `Expected Content-Type: '${ARROW_CONTENT_TYPE}', got '${ct}'. All vgi-rpc HTTP requests must use Content-Type: ${ARROW_CONTENT_TYPE}`,
        ),
      );
    }
  }

  private resolve(protocol: string, method: string): ResolvedMethod {
    if (protocol.includes("%")) {
      throw new HttpRpcError(
        404,
        frameworkError(
          "protocol_not_specified",
          `Protocol path segment '${protocol}' contains a percent sign. The protocol charset never requires encoding, so this is rejected rather than decoded.`,
        ),
      );
    }
    // Routing errors (bad name, unhosted protocol, no such method) are the dispatch core's, as 404s.
    try {
      return this.server.resolve(protocol, method);
    } catch (err) {
      throw new HttpRpcError(404, RpcError.from(err));
    }
  }

  /** Decodes the request stream's first batch (400 when the body is not a readable request). */
  private async requestBatch(body: Uint8Array): Promise<RecordBatch | null> {
    try {
      const decoded = await decodeIpcBody(body, this.server.maxMessageBytes);
      return decoded.batches[0] ?? null;
    } catch (err) {
      throw new HttpRpcError(400, RpcError.from(err));
    }
  }

  /**
   * Checks the path against the request metadata (method must match; protocol must agree when
   * present, and is filled in from the path when absent) and admits the call.
   */
  private prepareRequest(request: RecordBatch | null, resolved: ResolvedMethod | null, method: string) {
    if (request === null) return null;
    const md = request.metadata;
    const ipcMethod = md.get(METHOD_KEY);
    if (ipcMethod !== undefined && ipcMethod !== method) {
      throw new HttpRpcError(
        400,
        typeError(
          `Method name mismatch: URL path has '${method}' but Arrow IPC custom_metadata 'vgi_rpc.method' has '${ipcMethod}'. These must match.`,
        ),
      );
    }
    if (resolved === null) return request;
    const declared = md.get(PROTOCOL_KEY);
    if (declared === undefined || declared === "") {
      const patched = new Map(md);
      patched.set(PROTOCOL_KEY, resolved.protocol.name);
      return withMetadata(request, patched);
    }
    if (declared !== resolved.protocol.name) {
      throw new HttpRpcError(
        400,
        frameworkError(
          "protocol_not_supported",
          `Protocol mismatch: the request path resolved to '${resolved.protocol.name}' but the Arrow IPC custom_metadata 'vgi_rpc.protocol' says '${declared}'. These must agree.`,
        ),
      );
    }
    return request;
  }

  /** Runs admission; a failed admission answers 400 with its error stream. */
  private admitCall(
    call: Call,
    request: RecordBatch | null,
  ): { readonly done: CoreResponse } | { readonly admission: Exclude<Admission, { kind: "answer" }> } {
    const admission = admit(call, request);
    if (admission.kind === "answer") {
      call.end();
      const refused = this.refusal(call);
      if (refused !== null) return { done: refused };
      const failed = isErrorAnswer(admission.answer.batches);
      return { done: this.arrow(failed ? 400 : 200, admission.answer.schema, admission.answer.batches) };
    }
    return { admission };
  }

  /**
   * A call the method's security requirements refused, as HTTP says it: an anonymous caller gets
   * the standard 401 envelope (what the reference's clients parse for any 401); an identified one
   * a 403 carrying the error stream. Null for any other outcome.
   */
  private refusal(call: Call): CoreResponse | null {
    const e = call.error;
    if (e?.kind === "unauthenticated") {
      const res = jsonResponse(401, {
        error: "unauthorized",
        reason: "missing_credential",
        detail: e.message,
        error_kind: e.kind,
      });
      res.headers.push(
        [AUTH_REASON_HEADER, "missing_credential"],
        ["Cache-Control", "no-store"],
        ["WWW-Authenticate", "Bearer"],
      );
      return res;
    }
    if (e?.kind === "permission_denied") {
      const batch = errorBatch(EMPTY_SCHEMA, e, call.origin, this.server.includeTracebacks);
      return this.arrow(403, EMPTY_SCHEMA, [batch]);
    }
    return null;
  }

  /** Applies the response cap to a successful body, replacing it with a `ResponseTooLargeError`. */
  private capped(
    call: Call,
    status: number,
    body: readonly Uint8Array[],
    limit: number | null,
    schema: Schema,
  ): CoreResponse {
    const size = totalBytes(body);
    if (status === 200 && limit !== null && size > limit) {
      const answer = call.errorAnswer(schema, tooLarge(limit, size, call.methodName));
      return this.arrow(500, answer.schema, answer.batches);
    }
    return this.arrowBytes(status, body);
  }

  private async unary(
    baseEnv: CallEnv,
    resolved: ResolvedMethod | null,
    method: string,
    body: Uint8Array,
    requestId: string,
    budget: number | null,
  ): Promise<CoreResponse> {
    const jar = new HeaderCookieJar();
    const env: CallEnv = { ...baseEnv, cookieJar: jar };
    const request = this.prepareRequest(await this.requestBatch(body), resolved, method);
    const call = new Call(env, requestId);
    const admitted = this.admitCall(call, request);
    if ("done" in admitted) return admitted.done;
    const { admission } = admitted;
    if (admission.kind !== "unary") {
      call.end();
      throw new HttpRpcError(400, typeError(`Stream method '${method}' requires /init and /exchange endpoints`));
    }
    let answer: Answer;
    try {
      answer = await runUnary(call, admission.method, admission.params);
    } catch (err) {
      answer = call.errorAnswer(admission.method.schemas.result, err);
    }
    const failed = isErrorAnswer(answer.batches);
    const res = this.capped(
      call,
      failed ? 500 : 200,
      encodeStream(answer.schema, answer.batches),
      budget,
      answer.schema,
    );
    call.end();
    for (const c of jar.headers) res.headers.push(["Set-Cookie", c]);
    return res;
  }

  private async init(
    env: CallEnv,
    resolved: ResolvedMethod,
    body: Uint8Array,
    requestId: string,
    budget: number | null,
  ): Promise<CoreResponse> {
    const request = this.prepareRequest(await this.requestBatch(body), resolved, resolved.name);
    const call = new Call(env, requestId);
    const admitted = this.admitCall(call, request);
    if ("done" in admitted) return admitted.done;
    const { admission } = admitted;
    if (admission.kind !== "stream") {
      call.end();
      throw new HttpRpcError(400, typeError(`Method '${resolved.name}' is not a stream`));
    }
    const opening = await openStream(call, admission.method, admission.params);
    if (!opening.ok) {
      call.end();
      return this.arrow(500, opening.answer.schema, opening.answer.batches);
    }
    const { stream } = opening;
    const parts: Uint8Array[] = [];
    if (opening.header !== null) parts.push(...encodeStream(opening.header.schema, opening.header.batches));
    const callId = randomBytes(16);
    let callToken: string;
    let cursor: string;
    try {
      callToken = sealCallToken(
        {
          callId,
          streamId: call.streamId,
          outputSchema: stream.outputSchema,
          inputSchema: stream.inputSchema,
          responseLimit: budget,
        },
        stream.method,
        env.auth,
        this.keys,
      );
      cursor = sealCursorToken(callId, stream.state, stream.method, env.auth, this.keys);
    } catch (err) {
      const answer = call.errorAnswer(EMPTY_SCHEMA, err);
      call.end();
      return this.arrow(500, answer.schema, answer.batches);
    }
    const out: RecordBatch[] = [...opening.initLogs];
    let failed = false;
    let cancelled = false;
    if (stream.inputSchema.fields.length === 0) {
      // A producer's first turn runs inside /init, ticked with the init request's metadata.
      const tickMd = new Map(request?.metadata ?? []);
      for (const k of [STREAM_STATE_KEY, CALL_STATE_KEY, CANCEL_KEY]) tickMd.delete(k);
      const turn = await runTurn(call, stream, emptyBatch(EMPTY_SCHEMA, tickMd));
      out.push(...turn.batches);
      failed = isErrorAnswer(turn.batches);
      cancelled = turn.cancelled;
      if (!turn.done) {
        const next = this.resealCursor(callId, stream, env);
        if (next instanceof RpcError) failed = true;
        out.push(
          next instanceof RpcError
            ? call.errorAnswer(stream.outputSchema, next).batches[0]!
            : emptyBatch(
                stream.outputSchema,
                new Map([
                  [STREAM_STATE_KEY, next],
                  [CALL_STATE_KEY, callToken],
                ]),
              ),
        );
      }
    } else {
      const tokens = emptyBatch(
        stream.outputSchema,
        new Map([
          [STREAM_STATE_KEY, cursor],
          [CALL_STATE_KEY, callToken],
        ]),
      );
      call.wrote([tokens]);
      out.push(tokens);
    }
    parts.push(...encodeStream(stream.outputSchema, out));
    const res = this.capped(call, failed ? 500 : 200, parts, budget, EMPTY_SCHEMA);
    call.end(cancelled);
    return res;
  }

  /** Seals the stream's current state, or records the failure and returns null. */
  /** The next cursor token, or the error sealing the state failed with (a value outside its type). */
  private resealCursor(callId: Uint8Array, stream: OpenStream, env: CallEnv): string | RpcError {
    try {
      return sealCursorToken(callId, stream.state, stream.method, env.auth, this.keys);
    } catch (err) {
      return RpcError.from(err);
    }
  }

  private async exchange(
    env: CallEnv,
    resolved: ResolvedMethod,
    body: Uint8Array,
    requestId: string,
    budget: number | null,
  ): Promise<CoreResponse> {
    const input = await this.requestBatch(body);
    if (input === null) {
      throw new HttpRpcError(400, typeError("Exchange request carries no batch; expected one input batch."));
    }
    const md = input.metadata;
    const cursorText = md.get(STREAM_STATE_KEY);
    if (cursorText === undefined) {
      throw new HttpRpcError(400, new RpcError("Missing state token in exchange request", { type: "RuntimeError" }));
    }
    let cursor: Awaited<ReturnType<typeof openCursorToken>>;
    let callData: Awaited<ReturnType<typeof openCallToken>>;
    try {
      cursor = await openCursorToken(cursorText, resolved, env.auth, this.keys);
      const callText = md.get(CALL_STATE_KEY);
      if (callText === undefined) {
        throw new RpcError("Missing call token in exchange request", { type: "RuntimeError" });
      }
      callData = await openCallToken(callText, resolved, env.auth, this.keys);
    } catch (err) {
      throw new HttpRpcError(400, RpcError.from(err));
    }
    if (!equalBytes(cursor.callId, callData.callId)) {
      throw new HttpRpcError(
        400,
        new RpcError("State token does not belong to the supplied call token", { type: "RuntimeError" }),
      );
    }
    const limit = minPresent(budget, callData.responseLimit);
    const call = new Call(env, requestId);
    call.method = resolved;
    call.methodName = resolved.name;
    call.streamId = callData.streamId;
    call.received(input);
    call.startSpan();
    // Each continuation is authenticated afresh: a credential that lost its scope mid-stream stops here.
    const refusal = securityRefusal(resolved.name, resolved.decl.security ?? null, env.auth);
    if (refusal !== null) {
      call.failed(refusal);
      call.end();
      return this.refusal(call)!;
    }
    const stream: OpenStream = {
      method: resolved,
      state: cursor.state,
      outputSchema: callData.outputSchema,
      inputSchema: callData.inputSchema,
    };
    const producer = stream.inputSchema.fields.length === 0;
    // A stream whose input schema is empty continues as a producer, as the reference's HTTP server
    // runs it: its turn processes a tick carrying this request's metadata, whatever columns came.
    const turn = await runTurn(call, stream, producer ? emptyBatch(EMPTY_SCHEMA, input.metadata) : input);
    if (turn.cancelled) {
      call.end(true);
      return this.arrow(200, stream.outputSchema, []);
    }
    let failed = isErrorAnswer(turn.batches);
    let batches: RecordBatch[] = [...turn.batches];
    if (!failed) {
      if (producer) {
        if (!turn.done) {
          const next = this.resealCursor(callData.callId, stream, env);
          if (next instanceof RpcError) {
            batches = call.errorAnswer(stream.outputSchema, next).batches.slice();
            failed = true;
          } else {
            const tokenBatch = emptyBatch(stream.outputSchema, new Map([[STREAM_STATE_KEY, next]]));
            call.wrote([tokenBatch]);
            batches.push(tokenBatch);
          }
        }
      } else {
        const idx = batches.findIndex((b) => classifyBatch(b) === "data");
        const next =
          idx < 0
            ? new RpcError("No data batch was emitted", { type: "RuntimeError" })
            : this.resealCursor(callData.callId, stream, env);
        if (next instanceof RpcError) {
          batches = call.errorAnswer(stream.outputSchema, next).batches.slice();
          failed = true;
        } else {
          const data = batches[idx]!;
          const merged = new Map(data.metadata);
          merged.set(STREAM_STATE_KEY, next);
          batches[idx] = withMetadata(data, merged);
        }
      }
    }
    const res = this.capped(call, failed ? 500 : 200, encodeStream(stream.outputSchema, batches), limit, EMPTY_SCHEMA);
    call.end(false);
    return res;
  }
}

/** Thrown to short-circuit routing with a ready response (401). */
class Answered extends Error {
  constructor(readonly response: CoreResponse) {
    super("answered");
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

// ---------------------------------------------------------------------------------------------
// Adapters

/**
 * Reads a whole body, refusing it past `limit`. The iterator is pulled by hand and never
 * `return()`ed on refusal: ending a `for await` early would destroy the request (and with it the
 * socket) before the 413 could be written.
 */
async function readCapped(
  source: AsyncIterable<Uint8Array>,
  declared: number | null,
  limit: number | null,
): Promise<Uint8Array> {
  if (limit !== null && declared !== null && declared > limit) throw new BodyTooLarge(declared);
  const it = source[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    total += r.value.byteLength;
    if (limit !== null && total > limit) throw new BodyTooLarge(total);
    chunks.push(r.value);
  }
  return concatBytes(chunks);
}

/**
 * `readCapped` for a `node:http` request, on its events: an async iterator per request (and a
 * promise per chunk) costs more than a small call's body. Same limits and errors; a refused body
 * is left paused and unread, as the iterator left it.
 */
function readNodeBody(req: IncomingMessage, declared: number | null, limit: number | null): Promise<Uint8Array> {
  if (limit !== null && declared !== null && declared > limit) return Promise.reject(new BodyTooLarge(declared));
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Uint8Array) => {
      total += chunk.byteLength;
      if (limit !== null && total > limit) {
        done();
        req.pause();
        reject(new BodyTooLarge(total));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      // A large body is joined into pooled memory: its batch's buffers are views of it.
      resolve(concatBytes(chunks, total >= POOLED_MIN_BYTES ? bodyBuffer : undefined));
    };
    const onError = (err: unknown) => {
      done();
      reject(err);
    };
    const onClose = () => {
      // Closed before its end: the connection went away mid-body.
      if (req.complete) return;
      done();
      reject(new Error("the request body ended prematurely"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** A `node:http` request listener that also offers the fetch-style form as `.fetch`. */
export interface HttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** The same transport as a fetch-style handler (`Request` in, `Response` out). */
  fetch(request: Request): Promise<Response>;
  readonly server: RpcServer;
  readonly options: HttpServerOptions;
  /**
   * Requests read by the node:http listener that wait for their connection's earlier answers to
   * be written (see `writeHighWaterMark`); dropped when their connection closes.
   */
  readonly waitingRequests: number;
}

/** Creates the HTTP transport for `server` as a `node:http` listener with a `.fetch` form. */
export function createHttpHandler(server: RpcServer, options: HttpServerOptions = {}): HttpHandler {
  const transport = new HttpTransport(server, options);
  const run = async (req: CoreRequest): Promise<CoreResponse> => {
    try {
      return await transport.handle(req);
    } catch (err) {
      if (err instanceof Answered) return err.response;
      throw err;
    }
  };
  const gate = createRequestGate(options.writeHighWaterMark ?? DEFAULT_WRITE_HIGH_WATER_MARK);
  const serveNode = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const declared = req.headers["content-length"];
    let consumed = false;
    const core: CoreRequest = {
      method: (req.method ?? "GET").toUpperCase(),
      path: q < 0 ? url : url.slice(0, q),
      headers: headersOf(req),
      remoteAddr: req.socket.remoteAddress ?? "",
      peerCertificate: peerCertificateOf(req),
      readBody: (limit) => {
        consumed = true;
        return readNodeBody(req, declared === undefined ? null : Number(declared), limit);
      },
    };
    let out: CoreResponse;
    try {
      out = await run(core);
    } catch (err) {
      server.logger.error({ err }, "HTTP handler failure");
      out = jsonResponse(500, { title: "500 Internal Server Error" });
    }
    const headers: [string, string][] = [...out.headers];
    if (out.contentType) headers.push(["Content-Type", out.contentType]);
    if (!out.headers.some(([k]) => k.toLowerCase() === "content-length")) {
      headers.push(["Content-Length", String(totalBytes(out.body))]);
    }
    // A body left unread (refused before or while reading it) cannot be skipped safely.
    const hasBody = (declared !== undefined && declared !== "0") || req.headers["transfer-encoding"] !== undefined;
    if (hasBody && !req.complete) headers.push(["Connection", "close"]);
    res.writeHead(out.status, headers.flat());
    if (core.method === "HEAD") res.end();
    else endWithPieces(res, out.body, joinBuffers);
    if (!consumed && !req.complete) req.resume();
  };
  // Each request waits its turn on its connection (see backpressure.ts).
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    gate.enter(res, () =>
      serveNode(req, res).catch((err: unknown) => {
        // Writing the answer failed half-way: the connection's framing is unknown, so it goes.
        server.logger.error({ err }, "HTTP response failure");
        res.destroy();
      }),
    );
  };
  const fetchForm = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const declared = request.headers.get("content-length");
    const out = await run({
      method: request.method.toUpperCase(),
      path: url.pathname,
      headers: request.headers,
      remoteAddr: "",
      peerCertificate: null,
      readBody: async (limit) => {
        if (request.body === null) return new Uint8Array(0);
        const reader = request.body.getReader();
        const source = {
          async *[Symbol.asyncIterator]() {
            for (;;) {
              const r = await reader.read();
              if (r.done) return;
              yield r.value;
            }
          },
        };
        try {
          return await readCapped(source, declared === null ? null : Number(declared), limit);
        } finally {
          await reader.cancel().catch(() => {});
        }
      },
    });
    const headers = new Headers();
    for (const [k, v] of out.headers) headers.append(k, v);
    if (out.contentType) headers.set("Content-Type", out.contentType);
    const bodyless = request.method === "HEAD" || out.status === 204 || out.status === 304;
    return new Response(bodyless ? null : new Blob(out.body as Uint8Array<ArrayBuffer>[]), {
      status: out.status,
      headers,
    });
  };
  const handler = Object.assign(listener, { fetch: fetchForm, server, options });
  return Object.defineProperty(handler, "waitingRequests", {
    get: () => gate.waiting,
    enumerable: true,
  }) as HttpHandler;
}

/** A listening HTTP server. */
export interface HttpListener {
  readonly server: Server;
  /** The request listener serving it (`waitingRequests` and the fetch-style form). */
  readonly handler: HttpHandler;
  readonly host: string;
  readonly port: number;
  /** The base URL, e.g. `http://127.0.0.1:8080` (the prefix not included). */
  readonly url: string;
  /** Stops accepting connections and closes idle ones. */
  close(): Promise<void>;
}

/** Options of `listenHttp`: the transport's, and the time limits of the `node:http` server it creates. */
export interface HttpListenOptions extends HttpServerOptions, NodeHttpTimeouts {
  /** Host to bind. Default: 127.0.0.1. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default: 0. */
  readonly port?: number;
}

/** Serves `server` over HTTP on `host:port` (port 0 picks a free port). */
export async function listenHttp(server: RpcServer, options: HttpListenOptions = {}): Promise<HttpListener> {
  const handler = createHttpHandler(server, options);
  const http = createNodeHttpServer(handler, options);
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, host, () => {
      http.off("error", reject);
      resolve();
    });
  });
  const addr = http.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : (options.port ?? 0);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    server: http,
    handler,
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
      }),
  };
}
