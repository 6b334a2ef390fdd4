/**
 * The bench service on the npm peer `@query-farm/vgi-rpc` (its own server, client and Arrow
 * build), for the quiver / peer figures over a pipe and HTTP.
 *
 *   node --import tsx bench/peers/npm.ts serve        # stdio worker (the peer's VgiRpcServer)
 *   node --import tsx bench/peers/npm.ts serve-http   # the peer's HTTP handler on node:http; prints READY <url>
 *
 * `npmPeerFigures` drives either with the peer's own client. The peer's client hands streams back
 * as decoded row objects only (no batch-level API), so its stream figures include that decoding.
 */
import { spawn } from "node:child_process";
import { createServer as createNodeServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type RecordBatch, Table, Utf8, vectorFromArray } from "@query-farm/apache-arrow";
import {
  createHttpHandler,
  float,
  httpConnect,
  int,
  Protocol,
  pipeConnect,
  type RpcClient,
  str,
  VgiRpcServer,
} from "@query-farm/vgi-rpc";
import { exchangeRate, producerRate, timed } from "../net.js";
import { benchScript } from "../paths.js";

/** Row k is (k, k / 2, "row-k"), as in bench/service.ts. */
function peerBatch(n: number): RecordBatch {
  const table = new Table({
    i: vectorFromArray(BigInt64Array.from({ length: n }, (_, k) => BigInt(k))),
    f: vectorFromArray(Float64Array.from({ length: n }, (_, k) => k * 0.5)),
    s: vectorFromArray(
      Array.from({ length: n }, (_, k) => `row-${k}`),
      new Utf8(),
    ),
  });
  if (table.batches.length !== 1) throw new Error(`peer batch of ${n} rows came out in ${table.batches.length} chunks`);
  return table.batches[0]!;
}

const built = new Map<number, RecordBatch>();
function batchOf(n: number): RecordBatch {
  let b = built.get(n);
  if (b === undefined) {
    b = peerBatch(n);
    built.set(n, b);
  }
  return b;
}

const ROW = { i: int, f: float, s: str };

function peerBenchProtocol(): Protocol {
  const p = new Protocol("bench.Bench.v1");
  p.unary("noop", { params: {}, result: {}, handler: () => ({}) });
  p.unary("three", { params: ROW, result: { result: str }, handler: ({ s }) => ({ result: s }) });
  p.producer<{ left: number; rows: number }>("rows", {
    params: { batches: int, rows: int },
    outputSchema: ROW,
    init: ({ batches, rows }) => ({ left: Number(batches), rows: Number(rows) }),
    produce: (s, out) => {
      if (s.left <= 0) {
        out.finish();
        return;
      }
      s.left--;
      out.emit(batchOf(s.rows));
    },
  });
  p.exchange<Record<string, never>>("echo", {
    params: {},
    inputSchema: ROW,
    outputSchema: ROW,
    init: () => ({}),
    exchange: (_s, input, out) => out.emit(input),
  });
  return p;
}

/** The peer's fetch-style handler behind node:http (bodies buffered, as the handler needs). */
async function servePeerHttp(): Promise<void> {
  const handler = createHttpHandler(peerBenchProtocol());
  const server = createNodeServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string") headers.set(k, v);
        else if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      }
      const body = chunks.length > 0 && req.method === "POST" ? Buffer.concat(chunks) : undefined;
      const response = await handler(
        new Request(`http://127.0.0.1${req.url ?? "/"}`, {
          method: req.method ?? "GET",
          headers,
          ...(body ? { body } : {}),
        }),
      );
      res.statusCode = response.status;
      response.headers.forEach((value, key) => {
        res.setHeader(key, value);
      });
      res.end(Buffer.from(await response.arrayBuffer()));
    })().catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Client side (run in the bench process)

const SELF = fileURLToPath(import.meta.url);

export interface PeerFigures {
  readonly noop: { rate: number; p50: number; p99: number };
  readonly three: { rate: number; p50: number; p99: number };
  /** Rows/s by `producer N` / `exchange N`. */
  readonly streams: ReadonlyMap<string, number>;
}

async function figures(client: RpcClient, seconds: number, sizes: readonly number[]) {
  const noop = await timed(() => client.call("noop"), seconds);
  const three = await timed(() => client.call("three", { i: 7n, f: 0.5, s: "row-7" }), seconds);
  const streams = new Map<string, number>();
  const streamSecs = seconds / 2;
  for (const n of sizes) {
    const drain = async (batches: number) => {
      let got = 0;
      const s = await client.stream("rows", { batches: BigInt(batches), rows: BigInt(n) });
      for await (const rows of s) got += rows.length;
      return got;
    };
    streams.set(`producer ${n}`, await producerRate(drain, streamSecs));

    const batch = batchOf(n);
    const session = await client.stream("echo", {});
    streams.set(`exchange ${n}`, await exchangeRate(async () => (await session.exchange(batch)).length, streamSecs));
    session.close();
  }
  return { noop, three, streams };
}

/** The peer's server and client on the same calls: over a stdio worker, or over HTTP. */
export async function npmPeerFigures(
  where: "pipe" | "http",
  seconds: number,
  sizes: readonly number[],
  timeoutMs: number,
): Promise<PeerFigures> {
  const child = spawn(process.execPath, [...benchScript("peers/npm"), where === "pipe" ? "serve" : "serve-http"], {
    stdio: ["pipe", "pipe", "inherit"],
    timeout: timeoutMs,
  });
  child.stdin.on("error", () => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let client: RpcClient;
  if (where === "pipe") {
    const stdout = child.stdout;
    const readable = new ReadableStream<Uint8Array>({
      async start(controller) {
        try {
          for await (const chunk of stdout) controller.enqueue(chunk as Uint8Array);
          controller.close();
        } catch (err) {
          controller.error(err);
        }
      },
    });
    client = pipeConnect(readable, {
      write: (bytes) => {
        child.stdin.write(bytes);
      },
      end: () => child.stdin.end(),
    });
  } else {
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => {
        out += d;
        const m = /READY (\S+)\n/.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then(() => reject(new Error("npm peer HTTP server exited before READY")));
    });
    client = httpConnect(url);
  }
  try {
    return await figures(client, seconds, sizes);
  } finally {
    client.close();
    child.stdin.end();
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(killer);
  }
}

if (process.argv[1] === SELF) {
  const mode = process.argv[2];
  if (mode === "serve") await new VgiRpcServer(peerBenchProtocol()).run();
  else if (mode === "serve-http") await servePeerHttp();
  else {
    process.stderr.write("usage: npm.ts serve|serve-http\n");
    process.exit(2);
  }
}
