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
import { concatBytes } from "../../wire/ipc.js";

/** One answered POST: status, a header lookup and the whole body. */
export interface PostAnswer {
  readonly status: number;
  /** A response header by lower-case name, or null (repeated headers joined with `, `). */
  header(name: string): string | null;
  readonly body: Uint8Array;
}

/** Sends a POST; rejects on network failure, abort, or a body past `maxBytes` (an `RpcError`). */
export type Post = (
  url: string,
  headers: Readonly<Record<string, string>>,
  body: Uint8Array,
  signal: AbortSignal,
  maxBytes: number | null,
) => Promise<PostAnswer>;

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
  return async (url, headers, body, signal, maxBytes) => {
    const res = await fetchImpl(url, {
      method: "POST",
      headers: new Headers(headers),
      body: body as Uint8Array<ArrayBuffer>,
      signal,
    });
    const chunks: Uint8Array[] = [];
    if (res.body !== null) {
      const reader = res.body.getReader();
      let total = 0;
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        total += r.value.byteLength;
        if (maxBytes !== null && total > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge(total, maxBytes);
        }
        chunks.push(r.value);
      }
    }
    return { status: res.status, header: (name) => res.headers.get(name), body: concatBytes(chunks) };
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
  const post: Post = (url, headers, body, signal, maxBytes) =>
    new Promise<PostAnswer>((resolve, reject) => {
      // The signal (client close, timeout) is handled here, so the rejection is the same
      // AbortError whether it lands before the response or during its body.
      let res: Http.IncomingMessage | null = null;
      const onAbort = () => {
        const err = new Error("This operation was aborted", { cause: signal.reason });
        err.name = "AbortError";
        req.destroy();
        res?.destroy();
        reject(err);
      };
      const fail = (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      };
      const secure = url.startsWith("https:");
      if (secure) agents.https ??= new mods.https.Agent({ keepAlive: true });
      else agents.http ??= new mods.http.Agent({ keepAlive: true });
      const agent = secure ? agents.https : agents.http;
      const request = (secure ? mods.https : mods.http).request;
      const req = request({
        ...target(url),
        method: "POST",
        agent,
        headers: { ...headers, "content-length": String(body.byteLength) },
      });
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      req.on("error", fail);
      req.on("response", (response: Http.IncomingMessage) => {
        res = response;
        const chunks: Uint8Array[] = [];
        let total = 0;
        response.on("data", (chunk: Uint8Array) => {
          total += chunk.byteLength;
          if (maxBytes !== null && total > maxBytes) {
            response.destroy();
            fail(tooLarge(total, maxBytes));
            return;
          }
          chunks.push(chunk);
        });
        response.on("error", fail);
        response.on("end", () => {
          signal.removeEventListener("abort", onAbort);
          const raw = response.headers;
          resolve({
            status: response.statusCode ?? 0,
            header: (name) => {
              const v = raw[name.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
            },
            body: chunks.length === 1 ? plain(chunks[0]!) : concatBytes(chunks),
          });
        });
      });
      req.end(body);
    });
  return {
    post,
    destroy() {
      agents.http?.destroy();
      agents.https?.destroy();
    },
  };
}

/** Request targets by URL: a client posts to a few routes, and parsing a URL per call adds up. */
const targets = new Map<string, { hostname: string; port: string; path: string }>();

function target(url: string): { hostname: string; port: string; path: string } {
  let t = targets.get(url);
  if (t === undefined) {
    const u = new URL(url);
    // As fetch does: credentials belong in headers, not in the URL.
    if (u.username !== "" || u.password !== "") throw new TypeError(`the URL ${url} includes credentials`);
    // IPv6 literals arrive bracketed; node:http wants the bare address.
    const hostname = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    t = { hostname, port: u.port, path: `${u.pathname}${u.search}` };
    if (targets.size >= 1024) targets.clear();
    targets.set(url, t);
  }
  return t;
}

/** A plain Uint8Array view of a Node Buffer (whose `slice` differs from Uint8Array's). */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
