/**
 * One test protocol, `interop.Peer.v1` 1.0.0, declared twice: with our DSL (served by our
 * server, called through our typed proxy) and with the npm peer `@query-farm/vgi-rpc`'s
 * `Protocol` builder (served by its server). Both declarations describe the same wire surface,
 * so both servers must report the same `protocol_hash` for it, and each client can call either
 * server. The handlers behave identically on both sides.
 */
import { createServer as createNodeServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Binary, Field, Float32, Float64, Int64, List, Utf8 } from "@query-farm/apache-arrow";
import { bool, createHttpHandler, float, int, int32, Protocol, str } from "@query-farm/vgi-rpc";
import { ValueError } from "../../src/errors.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";

export const PROTOCOL_NAME = "interop.Peer.v1";
export const PROTOCOL_VERSION = "1.0.0";

/** Our declaration. */
export const Interop = defineProtocol(
  PROTOCOL_NAME,
  { version: PROTOCOL_VERSION },
  {
    add: unary({ a: t.int64(), b: t.int64() }, t.int64()),
    greet: unary({ name: t.utf8(), title: t.utf8().optional() }, t.utf8()),
    sum: unary({ xs: t.list(t.float64()) }, t.float64()),
    reverse: unary({ xs: t.list(t.int64()) }, t.list(t.int64())),
    maybe_double: unary({ x: t.int64().optional() }, t.int64().optional()),
    mixed: unary({ i32: t.int32(), f32: t.float32(), flag: t.bool(), data: t.binary() }, t.utf8()),
    noop: unary({}, null),
    fail: unary({ msg: t.utf8() }, t.utf8()),
    count: producer(
      { n: t.int64() },
      {
        output: { i: t.int64(), sq: t.int64() },
        header: { total: t.int64() },
        state: { i: t.int64(), n: t.int64() },
      },
    ),
    ticker: producer({}, { output: { i: t.int64() }, state: { i: t.int64() } }),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { x: t.float64() }, state: { factor: t.float64() } },
    ),
  },
);

/** `mixed`'s answer, the same on both sides. */
export function mixedText(i32: number, f32: number, flag: boolean, data: Uint8Array): string {
  return `${i32}|${f32}|${flag}|${Buffer.from(data).toString("hex")}`;
}

/** Cancellations observed by the in-process servers (`ticker`'s and `scale`'s onCancel). */
export const cancels = { quiver: 0, peer: 0 };

/** Our server hosting `Interop`. */
export function quiverServer(): RpcServer {
  return createServer({
    protocols: [
      bind(Interop, {
        add: ({ a, b }) => a + b,
        greet: ({ name, title }, ctx) => {
          ctx.clientLog("INFO", `greeting ${name}`, { who: name });
          return title === null ? `hello ${name}` : `hello ${title} ${name}`;
        },
        sum: ({ xs }) => xs.reduce((s, x) => s + x, 0),
        reverse: ({ xs }) => [...xs].reverse(),
        maybe_double: ({ x }) => (x === null ? null : x * 2n),
        mixed: ({ i32, f32, flag, data }) => mixedText(i32, f32, flag, data),
        noop: () => {},
        fail: ({ msg }) => {
          throw new ValueError(msg);
        },
        count: {
          init: ({ n }) => {
            if (n < 0n) throw new ValueError(`n must be >= 0, got ${n}`);
            return { state: { i: 0n, n }, header: { total: n } };
          },
          produce: (s, out) => {
            if (s.i === 1n) out.clientLog("INFO", "tick 1", { at: "1" });
            if (s.n === 99n && s.i === 2n) throw new ValueError("boom at 2");
            if (s.i >= s.n) {
              out.finish();
              return;
            }
            out.emit([{ i: s.i, sq: s.i * s.i }]);
            s.i++;
          },
        },
        ticker: {
          init: () => ({ state: { i: 0n } }),
          produce: (s, out) => out.emit([{ i: s.i++ }]),
          onCancel: () => {
            cancels.quiver++;
          },
        },
        scale: {
          init: ({ factor }) => {
            if (factor < 0) throw new ValueError(`factor must be >= 0, got ${factor}`);
            return { state: { factor } };
          },
          process: (s, input, out) => {
            const xs = input.column("x");
            if (xs.some((x) => x < 0)) throw new ValueError("negative input");
            out.emitColumns({ x: xs.map((x) => x * s.factor) });
          },
          onCancel: () => {
            cancels.quiver++;
          },
        },
      }),
    ],
  });
}

// The peer's server hands int64 parameters to handlers as numbers when they fit in a double and
// as bigints otherwise, so its handlers normalise with BigInt().
class PeerValueError extends Error {
  override readonly name = "ValueError";
}

const nullable = (name: string, type: Utf8 | Int64): Field => new Field(name, type, true);
const listOf = (name: string, item: Float64 | Int64): Field =>
  new Field(name, new List(new Field("item", item, true)), false);

/** The same protocol in the peer's DSL. */
export function peerProtocol(): Protocol {
  const p = new Protocol(PROTOCOL_NAME, { protocolVersion: PROTOCOL_VERSION });
  p.unary("add", {
    params: { a: int, b: int },
    result: { result: int },
    handler: ({ a, b }) => ({ result: BigInt(a) + BigInt(b) }),
  });
  p.unary("greet", {
    params: { name: str, title: nullable("title", new Utf8()) },
    result: { result: str },
    handler: ({ name, title }, ctx) => {
      ctx.clientLog("INFO", `greeting ${name}`, { who: name });
      return { result: title === null ? `hello ${name}` : `hello ${title} ${name}` };
    },
  });
  p.unary("sum", {
    params: { xs: listOf("xs", new Float64()) },
    result: { result: float },
    handler: ({ xs }) => ({ result: [...xs].reduce((s: number, x: number) => s + x, 0) }),
  });
  p.unary("reverse", {
    params: { xs: listOf("xs", new Int64()) },
    result: { result: listOf("result", new Int64()) },
    handler: ({ xs }) => ({ result: [...xs].reverse() }),
  });
  p.unary("maybe_double", {
    params: { x: nullable("x", new Int64()) },
    result: { result: nullable("result", new Int64()) },
    handler: ({ x }) => ({ result: x === null ? null : BigInt(x) * 2n }),
  });
  p.unary("mixed", {
    params: { i32: int32, f32: new Float32(), flag: bool, data: new Binary() },
    result: { result: str },
    handler: ({ i32, f32, flag, data }) => ({ result: mixedText(i32, f32, flag, data) }),
  });
  p.unary("noop", { params: {}, result: {}, handler: () => ({}) });
  p.unary("fail", {
    params: { msg: str },
    result: { result: str },
    handler: ({ msg }) => {
      throw new PeerValueError(msg);
    },
  });
  p.producer<{ i: bigint; n: bigint }>("count", {
    params: { n: int },
    outputSchema: { i: int, sq: int },
    headerSchema: { total: int },
    headerInit: ({ n }) => ({ total: BigInt(n) }),
    init: ({ n }) => {
      if (n < 0) throw new PeerValueError(`n must be >= 0, got ${n}`);
      return { i: 0n, n: BigInt(n) };
    },
    produce: (s, out) => {
      if (s.i === 1n) out.clientLog("INFO", "tick 1", { at: "1" });
      if (s.n === 99n && s.i === 2n) throw new PeerValueError("boom at 2");
      if (s.i >= s.n) {
        out.finish();
        return;
      }
      out.emitRow({ i: s.i, sq: s.i * s.i });
      s.i++;
    },
  });
  p.producer<{ i: bigint }>("ticker", {
    params: {},
    outputSchema: { i: int },
    init: () => ({ i: 0n }),
    produce: (s, out) => {
      out.emitRow({ i: s.i });
      s.i++;
    },
    onCancel: () => {
      cancels.peer++;
    },
  });
  p.exchange<{ factor: number }>("scale", {
    params: { factor: float },
    inputSchema: { x: float },
    outputSchema: { x: float },
    init: ({ factor }) => {
      if (factor < 0) throw new PeerValueError(`factor must be >= 0, got ${factor}`);
      return { factor };
    },
    exchange: (s, input, out) => {
      const column = input.getChild("x");
      const xs: number[] = [];
      for (let i = 0; i < input.numRows; i++) xs.push(Number(column?.get(i)));
      if (xs.some((x) => x < 0)) throw new PeerValueError("negative input");
      out.emit({ x: xs.map((x) => x * s.factor) });
    },
    onCancel: () => {
      cancels.peer++;
    },
  });
  return p;
}

/** The peer's fetch-style HTTP handler served by node:http on 127.0.0.1 (port 0). */
export async function listenPeerHttp(): Promise<{ url: string; close(): Promise<void> }> {
  const handler = createHttpHandler(peerProtocol());
  const server: Server = createNodeServer((req: IncomingMessage, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string") headers.set(k, v);
        else if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      }
      const hasBody = req.method !== "GET" && req.method !== "HEAD" && chunks.length > 0;
      const request = new Request(`http://127.0.0.1${req.url ?? "/"}`, {
        method: req.method ?? "GET",
        headers,
        ...(hasBody ? { body: Buffer.concat(chunks) } : {}),
      });
      const response = await handler(request);
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
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
