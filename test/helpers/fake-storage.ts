/**
 * The reference's fake storage protocol (vgi_rpc/conformance/fake_storage.py) served from the test
 * process on loopback: POST /alloc, PUT /upload/<id>, GET|HEAD /download/<id> (Range honoured),
 * /redirect/<id>, /redirect-localhost/<id>, /redirect-loop/<id>, GET /_stats; plus `put()` to
 * place an object directly and per-request counters.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeStorageServer {
  readonly baseUrl: string;
  /** Stores `data` (served with `encoding` as Content-Encoding); returns its download URL. */
  put(data: Uint8Array, encoding?: string): string;
  /** Requests seen, by `METHOD route` (`GET download`, `HEAD download`, `GET range`, ...). */
  readonly hits: Map<string, number>;
  readonly objects: Map<string, { data: Uint8Array; encoding: string | null }>;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) parts.push(c);
  return new Uint8Array(Buffer.concat(parts));
}

export async function serveFakeStorage(): Promise<FakeStorageServer> {
  const objects = new Map<string, { data: Uint8Array; encoding: string | null }>();
  const hits = new Map<string, number>();
  const hit = (k: string) => hits.set(k, (hits.get(k) ?? 0) + 1);
  let baseUrl = "";
  const server = createServer(async (req, res: ServerResponse) => {
    const data = await body(req);
    const url = new URL(req.url ?? "/", baseUrl);
    const [, route = "", id = ""] = url.pathname.split("/");
    const method = req.method ?? "GET";
    if (method === "POST" && route === "alloc") {
      const blob = randomUUID().replace(/-/g, "");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          object_url: `${baseUrl}/blob/${blob}`,
          upload_url: `${baseUrl}/upload/${blob}`,
          download_url: `${baseUrl}/download/${blob}`,
        }),
      );
      return;
    }
    if (route === "_stats") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object_count: objects.size }));
      return;
    }
    if (route === "redirect" || route === "redirect-localhost" || route === "redirect-loop") {
      hit(`${method} ${route}`);
      const target =
        route === "redirect-loop"
          ? `${baseUrl}/redirect-loop/${id}`
          : `${route === "redirect" ? baseUrl : baseUrl.replace("127.0.0.1", "localhost")}/download/${id}`;
      res.writeHead(302, { location: target, "content-length": "0" });
      res.end();
      return;
    }
    if (route === "upload" && method === "PUT") {
      const enc = req.headers["content-encoding"];
      objects.set(id, { data, encoding: typeof enc === "string" ? enc : null });
      res.writeHead(204);
      res.end();
      return;
    }
    if (route === "download" && (method === "GET" || method === "HEAD")) {
      const obj = objects.get(id);
      const range = req.headers.range;
      hit(`${method} ${range === undefined ? "download" : "range"}`);
      if (obj === undefined) {
        res.writeHead(404, { "content-length": "0" });
        res.end();
        return;
      }
      const headers: Record<string, string> = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
      if (obj.encoding !== null) headers["content-encoding"] = obj.encoding;
      const m = range === undefined ? null : /^bytes=(\d+)-(\d+)$/.exec(range);
      if (m !== null) {
        const start = Number(m[1]);
        const end = Math.min(Number(m[2]), obj.data.byteLength - 1);
        const chunk = obj.data.subarray(start, end + 1);
        headers["content-range"] = `bytes ${start}-${end}/${obj.data.byteLength}`;
        headers["content-length"] = String(chunk.byteLength);
        res.writeHead(206, headers);
        res.end(method === "HEAD" ? undefined : chunk);
        return;
      }
      headers["content-length"] = String(obj.data.byteLength);
      res.writeHead(200, headers);
      res.end(method === "HEAD" ? undefined : obj.data);
      return;
    }
    res.writeHead(404, { "content-length": "0" });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    hits,
    objects,
    put(data, encoding) {
      const id = randomUUID().replace(/-/g, "");
      objects.set(id, { data, encoding: encoding ?? null });
      return `${baseUrl}/download/${id}`;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
