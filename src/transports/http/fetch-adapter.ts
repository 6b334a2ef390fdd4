/**
 * The fetch-style adapter: a WHATWG `Request` made a `UniversalRequest`, the core's response made a
 * `Response`. No backpressure gate: the runtime that owns the connection decides when to read the
 * next request.
 */
import { readCapped } from "./body.js";
import type { HttpCore } from "./core.js";
import type { UniversalRequest } from "./universal.js";

/** The core as a fetch-style handler. */
export function fetchHandler(core: HttpCore): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    const declared = request.headers.get("content-length");
    const universal: UniversalRequest = {
      method: request.method.toUpperCase(),
      path: url.pathname,
      headers: request.headers,
      remoteAddr: "",
      peerCertificate: null,
      // The runtime aborts a request's signal when its client goes away (where it tracks that).
      signal: request.signal,
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
    };
    const out = await core.handle(universal);
    const headers = new Headers();
    for (const [k, v] of out.headers) headers.append(k, v);
    const bodyless = request.method === "HEAD" || out.status === 204 || out.status === 304;
    return new Response(bodyless ? null : new Blob(out.body as Uint8Array<ArrayBuffer>[]), {
      status: out.status,
      headers,
    });
  };
}
