/**
 * Bench server child: `node --import tsx bench/servers.ts KIND TIMEOUT_SECONDS`.
 *
 * Prints one line `READY {json}` with its addresses once listening. When its stdin ends it closes
 * its servers, prints `RSS <peak resident set size in bytes>` and exits; it also exits by itself
 * after TIMEOUT_SECONDS, so a parent that dies cannot leave it behind.
 *
 * KIND is one of:
 * - `quiver`: the bench service over TCP, a Unix socket, HTTP and WebSocket at once (unary figures);
 * - `quiver-tcp`, `quiver-unix`, `quiver-http`, `quiver-ws`: the bench service on one transport
 *   (stream figures, each with its own peak RSS);
 * - `raw`: the baselines with no Arrow and no RPC: a `node:net` echo on TCP and on a Unix socket,
 *   a `node:http` server answering tiny POSTs, a `ws` echo;
 * - `raw-source`: byte sources on TCP, a Unix socket, `node:http` and `ws`: each sends as many
 *   bytes as the client asks for (see `byteSource`; `GET /bytes/N` over HTTP, an 8-byte count over
 *   `ws`), in 1 MiB writes / messages unless a TCP or Unix client asks for larger ones, as fast as
 *   the transport takes them;
 * - `storage`: the reference's fake storage protocol (test/helpers/fake-storage.ts: objects held in
 *   memory) on HTTP, for the external-storage figures;
 * - `quiver-http-external STORAGE_URL`: the bench service over HTTP, externalizing batches of
 *   1 MiB and more (the default threshold) into the fake storage at STORAGE_URL (a third argument).
 */
import { existsSync, unlinkSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type WebSocket, WebSocketServer } from "ws";
import { loopbackOnly } from "../src/external/fetch.js";
import { FakeStorage } from "../src/external/storage.js";
import type { ServerOptions } from "../src/server/server.js";
import { listenHttp } from "../src/transports/http/server.js";
import { listenSocket } from "../src/transports/socket/server.js";
import { listenWebSocket } from "../src/transports/ws/server.js";
import { serveFakeStorage } from "../test/helpers/fake-storage.js";
import { benchServer } from "./service.js";

const kind = process.argv[2] ?? "";
const timeoutSeconds = Number(process.argv[3] ?? "300");
/** `quiver-http-external`: the fake storage's base URL. */
const storageUrl = process.argv[4];

const closers: Array<() => Promise<void>> = [];
const ready: Record<string, unknown> = {};

function listenNet(net: NetServer, where: { path: string } | { port: 0; host: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    net.once("error", reject);
    if ("path" in where) net.listen(where.path, resolve);
    else net.listen(where.port, where.host, resolve);
  });
}

function portOf(server: NetServer | HttpServer): number {
  const a = server.address();
  return typeof a === "object" && a !== null ? a.port : 0;
}

function closeNet(server: NetServer | HttpServer, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}

function unixPath(tag: string): string {
  const p = join(tmpdir(), `quiver-bench-${tag}-${process.pid}.sock`);
  if (existsSync(p)) unlinkSync(p);
  return p;
}

/** A net server tracking its sockets so close() does not wait on idle keep-alives. */
function trackedNet(onSocket: (s: Socket) => void): { server: NetServer; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.setNoDelay(true);
    onSocket(s);
  });
  return { server, sockets };
}

async function rawEcho(): Promise<void> {
  for (const where of ["tcp", "unix"] as const) {
    const { server, sockets } = trackedNet((s) => s.on("data", (d) => s.write(d)));
    if (where === "tcp") {
      await listenNet(server, { port: 0, host: "127.0.0.1" });
      ready.tcp = { host: "127.0.0.1", port: portOf(server) };
    } else {
      const path = unixPath("echo");
      await listenNet(server, { path });
      ready.unix = { path };
    }
    closers.push(() => closeNet(server, sockets));
  }

  const reply = Buffer.alloc(100, 7);
  const http = createHttpServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": reply.length });
      res.end(reply);
    });
  });
  http.keepAliveTimeout = 30_000;
  await listenNet(http, { port: 0, host: "127.0.0.1" });
  ready.http = `http://127.0.0.1:${portOf(http)}`;
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  );

  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws: WebSocket) => ws.on("message", (d, isBinary) => ws.send(d, { binary: isBinary })));
  const addr = wss.address();
  ready.ws = `ws://127.0.0.1:${typeof addr === "object" && addr !== null ? addr.port : 0}`;
  closers.push(() => closeWss(wss));
}

function closeWss(wss: WebSocketServer): Promise<void> {
  return new Promise((resolve) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => resolve());
  });
}

const CHUNK = Buffer.alloc(1 << 20, 1);
/** Source regions by size (see `byteSource`), filled once so their pages are in memory. */
const regions = new Map<number, Buffer>();

/** The bytes a write of up to `span` comes from: the 1 MiB chunk, or a region of `span` bytes. */
function region(span: number): Buffer {
  if (span <= CHUNK.length) return CHUNK;
  let r = regions.get(span);
  if (r === undefined) {
    r = Buffer.alloc(span, 1);
    regions.set(span, r);
  }
  return r;
}

/**
 * Sends as many bytes as each 16-byte request asks for (two little-endian u64: the count, and the
 * span of each write). A span up to 1 MiB writes the 1 MiB chunk; a larger one writes from a region
 * of that size, as a server writes a batch that large from its own memory, too big to stay in the
 * caches.
 */
function byteSource(s: Socket): void {
  let asked = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    asked = Buffer.concat([asked, d]);
    if (asked.length < 16) return;
    let left = Number(asked.readBigUInt64LE(0));
    const from = region(Number(asked.readBigUInt64LE(8)));
    asked = asked.subarray(16);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, from.length);
        left -= n;
        if (!s.write(n === from.length ? from : from.subarray(0, n))) {
          s.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

async function rawSocketSources(): Promise<void> {
  for (const where of ["tcp", "unix"] as const) {
    const { server, sockets } = trackedNet(byteSource);
    if (where === "tcp") {
      await listenNet(server, { port: 0, host: "127.0.0.1" });
      ready.tcp = { host: "127.0.0.1", port: portOf(server) };
    } else {
      const path = unixPath("source");
      await listenNet(server, { path });
      ready.unix = { path };
    }
    closers.push(() => closeNet(server, sockets));
  }
}

/** `GET /bytes/N` answers N bytes in 1 MiB writes (Content-Length set), as fast as the socket takes them. */
async function rawHttpSource(): Promise<void> {
  const http = createHttpServer((req, res) => {
    let left = Number(/^\/bytes\/(\d+)$/.exec(req.url ?? "")?.[1] ?? "0");
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": left });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  http.keepAliveTimeout = 30_000;
  await listenNet(http, { port: 0, host: "127.0.0.1" });
  ready.http = `http://127.0.0.1:${portOf(http)}`;
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  );
}

async function rawWsSource(): Promise<void> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws: WebSocket) => {
    ws.on("message", (d: Buffer) => {
      let left = Number(Buffer.from(d).readBigUInt64LE(0));
      let inFlight = 0;
      const pump = () => {
        // Keep at most 4 MiB queued (quiver's server uses the same write high-water mark).
        while (left > 0 && inFlight < 4) {
          const n = Math.min(left, CHUNK.length);
          left -= n;
          inFlight++;
          ws.send(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n), { binary: true }, () => {
            inFlight--;
            pump();
          });
        }
      };
      pump();
    });
  });
  const addr = wss.address();
  ready.ws = `ws://127.0.0.1:${typeof addr === "object" && addr !== null ? addr.port : 0}`;
  closers.push(() => closeWss(wss));
}

async function quiver(which: ReadonlySet<string>, opts: Omit<ServerOptions, "protocols"> = {}): Promise<void> {
  const rpc = benchServer(opts);
  if (which.has("tcp")) {
    const s = await listenSocket(rpc, { host: "127.0.0.1", port: 0 });
    ready.tcp = s.address;
    closers.push(() => s.close());
  }
  if (which.has("unix")) {
    const s = await listenSocket(rpc, { path: unixPath("quiver") });
    ready.unix = s.address;
    closers.push(() => s.close());
  }
  if (which.has("http")) {
    const s = await listenHttp(rpc, { compressResponses: false });
    ready.http = s.url;
    closers.push(() => s.close());
  }
  if (which.has("ws")) {
    const s = await listenWebSocket(rpc, { pingIntervalMs: 0 });
    ready.ws = s.url;
    closers.push(() => s.close());
  }
}

const hardStop = setTimeout(() => {
  process.stderr.write(`bench server ${kind}: timed out after ${timeoutSeconds} s\n`);
  process.exit(2);
}, timeoutSeconds * 1000);

switch (kind) {
  case "quiver":
    await quiver(new Set(["tcp", "unix", "http", "ws"]));
    break;
  case "quiver-tcp":
  case "quiver-unix":
  case "quiver-http":
  case "quiver-ws":
    await quiver(new Set([kind.slice("quiver-".length)]));
    break;
  case "quiver-http-external":
    if (storageUrl === undefined) {
      process.stderr.write("quiver-http-external wants the storage URL as its third argument\n");
      process.exit(2);
    }
    await quiver(new Set(["http"]), {
      external: { storage: new FakeStorage(storageUrl), fetch: { urlValidator: loopbackOnly } },
    });
    break;
  case "storage": {
    const storage = await serveFakeStorage();
    ready.http = storage.baseUrl;
    closers.push(() => storage.close());
    break;
  }
  case "raw":
    await rawEcho();
    break;
  case "raw-source":
    await rawSocketSources();
    await rawHttpSource();
    await rawWsSource();
    break;
  default:
    process.stderr.write(`unknown bench server kind '${kind}'\n`);
    process.exit(2);
}

process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
process.stdin.resume();
process.stdin.on("end", async () => {
  // Bounded: a close that hangs must not keep the child alive.
  await Promise.race([Promise.all(closers.map((c) => c())), new Promise((r) => setTimeout(r, 3000))]);
  process.stdout.write(`RSS ${process.resourceUsage().maxRSS * 1024}\n`);
  clearTimeout(hardStop);
  process.exit(0);
});
