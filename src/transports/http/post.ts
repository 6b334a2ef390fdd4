/**
 * How the HTTP client sends one POST: through `fetch` (any runtime, or the `fetch` option), or,
 * under Node with its own `fetch` left in place, straight through `node:http` with a keep-alive
 * agent. Node's `fetch` (undici) costs several times the rest of a small call on the client —
 * WHATWG `Headers`, `Request`, `Response` and a body stream per request — and most of a
 * 16-way unary load's CPU went there.
 *
 * No static `node:` import: the modules come from `process.getBuiltinModule` (Node 20.16+), so this
 * file, like the client, bundles for browsers, where it always takes the `fetch` path.
 */
import type * as Http from "node:http";
import type * as Https from "node:https";
import { RpcError } from "../../errors.js";
import { concatBytes, totalBytes } from "../../wire/ipc.js";
import { ByteQueue } from "../byte-queue.js";
import { endWithPieces } from "./outgoing.js";

/** Unread response bytes past which the socket is paused (a large body fills in place meanwhile). */
const BODY_HIGH_WATER_MARK = 4 * 1024 * 1024;

/** How many leading bytes of a body `PostAnswer.head` keeps. */
const HEAD_BYTES = 200;

/** One POST's answer: status and headers once they arrive, then the body as it arrives. */
export interface PostAnswer {
  readonly status: number;
  /** A response header by lower-case name, or null (repeated headers joined with `, `). */
  header(name: string): string | null;
  /** The response's header names, in lower case. */
  headerNames(): readonly string[];
  /**
   * The body as it arrives; under Node a `DirectByteSource`, so a large message body is filled in
   * place from the socket's chunks. It fails as the request does (network failure, abort, a body
   * past `maxBytes`). Read it to its end: the connection is reused once it is.
   */
  readonly body: AsyncIterator<Uint8Array>;
  /** The error the body failed with, if it did (to tell it from a failure to decode the bytes). */
  failure(): unknown;
  /** Up to the first 200 bytes of the body received so far (for error messages). */
  head(): Uint8Array;
}

/**
 * How a POST learns that its request was given up (the client closed, or the request timed out).
 * Lighter than an `AbortSignal`, which costs an `AbortController`, an event target and listener
 * bookkeeping per request: the client makes one of these per request and the `node:http` path
 * watches it directly (the `fetch` path links an `AbortController` to it).
 */
export interface Cancellation {
  readonly aborted: boolean;
  /** Why the request was given up (the `cause` of the resulting `AbortError`). */
  readonly reason: unknown;
  /** Sets the one function run when the request is given up (`null`: none); not run when already aborted. */
  onAbort(fn: (() => void) | null): void;
}

/**
 * Sends a POST (or `method`: the sticky-session `DELETE`, the capabilities `OPTIONS`) of `body`'s pieces in order; resolves
 * once the answer's status and headers are in, rejects on network failure or abort.
 */
export type Post = (
  url: string,
  headers: Readonly<Record<string, string>>,
  body: readonly Uint8Array[],
  cancel: Cancellation,
  maxBytes: number | null,
  method?: "POST" | "DELETE" | "OPTIONS",
) => Promise<PostAnswer>;

/** The error a given-up request fails with, as `fetch` names it. */
function abortError(cancel: Cancellation): Error {
  const err = new Error("This operation was aborted", { cause: cancel.reason });
  err.name = "AbortError";
  return err;
}

/** Reads an answer's whole body (an error page, a short answer). */
export async function readAll(answer: PostAnswer): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const r = await answer.body.next();
    if (r.done) return chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
    chunks.push(r.value);
  }
}

/**
 * The body length an answer declares, when that is its decoded length (no content coding), else 0:
 * a body past the budget is refused before it is read.
 */
function declaredLength(contentLength: string | null, contentEncoding: string | null): number {
  if (contentLength === null || (contentEncoding !== null && contentEncoding !== "identity")) return 0;
  const n = Number(contentLength);
  return Number.isSafeInteger(n) ? n : 0;
}

/**
 * Keeps the first `HEAD_BYTES` of a body as chunks arrive: a view of the first chunk when it holds
 * them (answers usually arrive whole; a copy per answer cost an allocation), else a copy.
 */
class Head {
  bytes: Uint8Array = new Uint8Array(0);
  see(chunk: Uint8Array): void {
    const have = this.bytes.byteLength;
    if (have >= HEAD_BYTES) return;
    const part = chunk.subarray(0, HEAD_BYTES - have);
    this.bytes = have === 0 ? part : concatBytes([this.bytes, part]);
  }
}

/** The error for a body past the client's `maxResponseBytes` (decoded bytes, as the reference counts). */
export function tooLarge(total: number, max: number): RpcError {
  return new RpcError(`Decoded HTTP response exceeds accepted_max_response_bytes (${total} > ${max})`, {
    type: "ResponseTooLargeError",
    code: "RESOURCE_EXHAUSTED",
    kind: "message_too_large",
  });
}

/** A `Post` over a `fetch` implementation (headers go as a `Headers`, as they always did). */
export function fetchPost(fetchImpl: typeof fetch): Post {
  return async (url, headers, body, cancel, maxBytes, method = "POST") => {
    const controller = new AbortController();
    if (cancel.aborted) controller.abort(abortError(cancel));
    else cancel.onAbort(() => controller.abort(abortError(cancel)));
    const signal = controller.signal;
    const res = await fetchImpl(url, {
      method,
      headers: new Headers(headers),
      ...(body.length === 0
        ? {}
        : { body: (body.length === 1 ? body[0]! : concatBytes(body)) as Uint8Array<ArrayBuffer> }),
      signal,
    });
    const declared = declaredLength(res.headers.get("content-length"), res.headers.get("content-encoding"));
    if (maxBytes !== null && declared > maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge(declared, maxBytes);
    }
    const reader = res.body?.getReader() ?? null;
    const head = new Head();
    let failed: unknown = null;
    let total = 0;
    const next = async (): Promise<IteratorResult<Uint8Array>> => {
      if (reader === null) return { done: true, value: undefined };
      try {
        const r = await reader.read();
        if (r.done) return { done: true, value: undefined };
        total += r.value.byteLength;
        if (maxBytes !== null && total > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge(total, maxBytes);
        }
        head.see(r.value);
        return { done: false, value: r.value };
      } catch (err) {
        failed ??= err;
        throw err;
      }
    };
    return {
      status: res.status,
      header: (name) => res.headers.get(name),
      headerNames: () => {
        const names: string[] = [];
        res.headers.forEach((_value, name) => {
          names.push(name);
        });
        return names;
      },
      body: { next },
      failure: () => failed,
      head: () => head.bytes,
    };
  };
}

interface NodeModules {
  readonly http: typeof Http;
  readonly https: typeof Https;
}

type BuiltinLoader = (name: string) => unknown;

function nodeModules(): NodeModules | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: BuiltinLoader } }).process;
  const load = proc?.getBuiltinModule;
  if (typeof load !== "function") return null;
  try {
    return { http: load("node:http") as typeof Http, https: load("node:https") as typeof Https };
  } catch {
    return null;
  }
}

/** Node's own `fetch` as this module first saw it: a replaced global means the caller wants theirs. */
const builtinFetch: unknown = (globalThis as { fetch?: unknown }).fetch;

/**
 * A `Post` over `node:http`/`node:https` with a keep-alive agent per client, when running under
 * Node 20.16+ with Node's own global `fetch`; otherwise null (the caller uses `fetch`). Answers are
 * requested uncompressed (no `Accept-Encoding`): gzip on a small Arrow answer costs the server
 * more CPU than the call and saves no time on a local network; pass `fetch` to have it negotiate.
 * `destroy` closes the agent's idle connections.
 */
export function nodePost(): { readonly post: Post; destroy(): void } | null {
  if (globalThis.fetch !== builtinFetch) return null;
  const mods = nodeModules();
  if (mods === null) return null;
  const agents: { http?: Http.Agent; https?: Https.Agent } = {};
  const join = pooledJoin();
  const post: Post = (url, headers, body, cancel, maxBytes, method = "POST") =>
    new Promise<PostAnswer>((resolve, reject) => {
      // Cancellation (client close, timeout) is handled here, so the failure is the same AbortError
      // whether it lands before the response (a rejection) or during its body (the body fails).
      let res: Http.IncomingMessage | null = null;
      let queue: ByteQueue | null = null;
      let failed: unknown = null;
      const fail = (err: unknown) => {
        cancel.onAbort(null);
        if (queue === null) reject(err);
        else if (failed === null) {
          const e = err instanceof Error ? err : new Error(String(err));
          failed = e;
          queue.end(e);
        }
      };
      const onAbort = () => {
        req.destroy();
        res?.destroy();
        fail(abortError(cancel));
      };
      const secure = url.startsWith("https:");
      if (secure) agents.https ??= new mods.https.Agent({ keepAlive: true });
      else agents.http ??= new mods.http.Agent({ keepAlive: true });
      const agent = secure ? agents.https : agents.http;
      const request = (secure ? mods.https : mods.http).request;
      const t = target(url);
      const req = request({
        hostname: t.hostname,
        port: t.port,
        path: t.path,
        method,
        agent,
        headers: headerList(headers, totalBytes(body), t.host),
      });
      if (cancel.aborted) {
        onAbort();
        return;
      }
      cancel.onAbort(onAbort);
      req.on("error", fail);
      req.on("response", (response: Http.IncomingMessage) => {
        res = response;
        const raw = response.headers;
        const declared = declaredLength(raw["content-length"] ?? null, raw["content-encoding"] ?? null);
        if (maxBytes !== null && declared > maxBytes) {
          response.destroy();
          fail(tooLarge(declared, maxBytes));
          return;
        }
        const q = new ByteQueue(
          BODY_HIGH_WATER_MARK,
          () => response.pause(),
          () => response.resume(),
        );
        queue = q;
        const head = new Head();
        let total = 0;
        response.on("data", (chunk: Uint8Array) => {
          total += chunk.byteLength;
          if (maxBytes !== null && total > maxBytes) {
            response.destroy();
            fail(tooLarge(total, maxBytes));
            return;
          }
          const bytes = plain(chunk);
          head.see(bytes);
          q.push(bytes);
        });
        response.on("error", fail);
        response.on("close", () => {
          if (!response.complete) fail(new Error("the connection closed before the response body ended"));
        });
        response.on("end", () => {
          cancel.onAbort(null);
          q.end(null);
        });
        resolve({
          status: response.statusCode ?? 0,
          header: (name) => {
            const v = raw[name.toLowerCase()];
            return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
          },
          headerNames: () => Object.keys(raw),
          body: q[Symbol.asyncIterator](),
          failure: () => failed,
          head: () => head.bytes,
        });
      });
      endWithPieces(req, body, join);
    });
  return {
    post,
    destroy() {
      agents.http?.destroy();
      agents.https?.destroy();
    },
  };
}

/**
 * A request's headers as the flat `[name, value, ...]` list `node:http` also takes: `headers` in
 * order, then `content-length` and `Host` (unless `headers` has one), the bytes Node writes for
 * the same headers given as an object. Given as an object, each goes through `setHeader` (and
 * `getHeader` for the defaults) into a header map that is walked again at `end()`; the list is
 * written as it is (names and values still validated), which saved some 8 us of a no-op call's
 * ~45 us on the client.
 */
function headerList(headers: Readonly<Record<string, string>>, contentLength: number, host: string): string[] {
  const list: string[] = [];
  let hasHost = false;
  for (const name in headers) {
    // The body's length is ours to state (as `setHeader` replaced a caller's, whatever its case).
    if (name.length === 14 && name.toLowerCase() === "content-length") continue;
    list.push(name, headers[name]!);
    if (name.length === 4 && name.toLowerCase() === "host") hasHost = true;
  }
  list.push("content-length", String(contentLength));
  if (!hasHost) list.push("Host", host);
  return list;
}

/** Where a request goes: `node:http`'s target options, and the `Host` header Node would send. */
interface Target {
  readonly hostname: string;
  readonly port: string;
  readonly path: string;
  /** The host, bracketed when IPv6, with the port unless it is the scheme's default (`URL.host`). */
  readonly host: string;
}

/**
 * Joins a request's small pieces with Node's `Buffer.concat`, whose small allocations come from
 * its pooled memory: a fresh `ArrayBuffer` per request (`concatBytes`) is a zeroed allocation and
 * a backing store for the collector to sweep, per call.
 */
function pooledJoin(): (run: readonly Uint8Array[]) => Uint8Array {
  const NodeBuffer = (globalThis as { Buffer?: { concat(list: readonly Uint8Array[]): Uint8Array } }).Buffer;
  return NodeBuffer === undefined ? concatBytes : (run) => NodeBuffer.concat(run);
}

/** Request targets by URL: a client posts to a few routes, and parsing a URL per call adds up. */
const targets = new Map<string, Target>();

function target(url: string): Target {
  let t = targets.get(url);
  if (t === undefined) {
    const u = new URL(url);
    // As fetch does: credentials belong in headers, not in the URL.
    if (u.username !== "" || u.password !== "") throw new TypeError(`the URL ${url} includes credentials`);
    // IPv6 literals arrive bracketed; node:http wants the bare address.
    const hostname = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    t = { hostname, port: u.port, path: `${u.pathname}${u.search}`, host: u.host };
    if (targets.size >= 1024) targets.clear();
    targets.set(url, t);
  }
  return t;
}

/** A plain Uint8Array view of a Node Buffer (whose `slice` differs from Uint8Array's). */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
