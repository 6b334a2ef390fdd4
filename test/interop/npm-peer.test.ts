/**
 * Interop with the npm peer `@query-farm/vgi-rpc@0.25.4` (pinned exactly in package.json), both
 * directions, over the transports both sides have on Node 20:
 *
 * - its client (`pipeConnect`, `httpConnect`) against our server: in-process pipe (our memory
 *   transport), our stdio worker in a child process, and HTTP (`listenHttp`);
 * - our client (through `proxy`) against its server: in-process Node streams (its
 *   `serveStream`), its stdio worker (`VgiRpcServer.run`) via our `connectSubprocess`, and HTTP.
 *
 * Both servers host `interop.Peer.v1` (test/interop/npm-peer-protocols.ts), declared in each
 * side's DSL; both must report the same protocol hash for it. Our HTTP client (`connectHttp`)
 * calls its fetch-style `createHttpHandler` served on node:http; a raw POST built from our
 * request encoding checks that handler below any client. One peer-client defect (pipe transports only, an init
 * error of a header-bearing stream) is a `todo` test asserting the reference behaviour.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { Dictionary, Field, Int16, Utf8 } from "@query-farm/apache-arrow";
import {
  httpConnect,
  type LogMessage,
  type RpcClient as PeerRpcClient,
  RpcError as PeerRpcError,
  type StreamSession as PeerStreamSession,
  Protocol,
  pipeConnect as peerPipeConnect,
  serveStream,
  str,
} from "@query-farm/vgi-rpc";
import { RpcClient, requestBatch } from "../../src/client/client.js";
import type { ProtocolListing, ServiceDescription } from "../../src/client/describe.js";
import type { CallChannel } from "../../src/client/transport.js";
import { paramsBatch, proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { decodeIpcBody, encodeIpcBody } from "../../src/transports/http/ipc-body.js";
import { listenHttp } from "../../src/transports/http/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { connectSubprocess, pipeConnect } from "../../src/transports/stdio/client.js";
import { errorFromMetadata, type LogRecord } from "../../src/wire/messages.js";
import {
  cancels,
  Interop,
  listenPeerHttp,
  PROTOCOL_NAME,
  PROTOCOL_VERSION,
  peerProtocol,
  quiverServer,
} from "./npm-peer-protocols.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const WORKER = new URL("./npm-peer-worker.ts", import.meta.url).pathname;
const TEST_TIMEOUT = { timeout: 20_000 };
/** The hash both servers must report for `interop.Peer.v1` (ours, computed from our declaration). */
const EXPECTED_HASH = quiverServer().protocols.get(PROTOCOL_NAME)!.hash;

/** Resolves `p`, or rejects after `ms` (so a hung peer fails the test instead of stalling it). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A web ReadableStream over an async iterable of byte chunks. */
function webStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      try {
        for await (const chunk of source) controller.enqueue(chunk);
        controller.close();
      } catch (err) {
        controller.error(err);
      }
    },
  });
}

function isPeerError(type: string, message: string | RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof PeerRpcError, `expected the peer's RpcError, got ${String(e)}`);
    assert.equal(e.errorType, type);
    if (typeof message === "string") assert.equal(e.errorMessage, message);
    else assert.match(e.errorMessage, message);
    return true;
  };
}

function isOurError(type: string, message: string | RegExp, kind = ""): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof RpcError, `expected RpcError, got ${String(e)}`);
    assert.equal(e.type, type);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.equal(e.kind, kind);
    return true;
  };
}

async function collect(session: PeerStreamSession): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const batch of session) rows.push(...batch);
  return rows;
}

// =============================================================================================
// The peer's client against our server

interface PeerConnection {
  readonly client: PeerRpcClient;
  readonly logs: LogMessage[];
  /** Our server's id when it is in this process (else null). */
  readonly serverId: string | null;
  /** Cancellation is observable (our server runs in this process). */
  readonly observesCancel: boolean;
  close(): Promise<void>;
}

const peerClientTransports: {
  readonly name: string;
  /** See the header-bearing init-error test. */
  readonly headerInitErrorHangs: boolean;
  open(): Promise<PeerConnection>;
}[] = [
  {
    name: "in-process pipe",
    headerInitErrorHangs: true,
    open: async () => {
      const server = quiverServer();
      const pipe = memoryPipe();
      const served = server.serveConnection(pipe.server);
      const logs: LogMessage[] = [];
      const client = peerPipeConnect(
        webStream(pipe.client.input),
        {
          write: (bytes) => {
            void pipe.client.write([bytes]);
          },
          end: () => pipe.client.close(),
        },
        { onLog: (m) => logs.push(m) },
      );
      return {
        client,
        logs,
        serverId: server.serverId,
        observesCancel: true,
        close: async () => {
          client.close();
          await within(served, 5_000, "our server session end");
        },
      };
    },
  },
  {
    name: "stdio worker (child process)",
    headerInitErrorHangs: true,
    open: async () => {
      const child = spawn(process.execPath, ["--import", "tsx", WORKER, "quiver"], {
        cwd: ROOT,
        stdio: ["pipe", "pipe", "inherit"],
      });
      const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      killer.unref();
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const logs: LogMessage[] = [];
      const client = peerPipeConnect(
        webStream(child.stdout! as AsyncIterable<Uint8Array>),
        {
          write: (bytes) => {
            child.stdin!.write(bytes);
          },
          end: () => child.stdin!.end(),
        },
        { onLog: (m) => logs.push(m) },
      );
      return {
        client,
        logs,
        serverId: null,
        observesCancel: false,
        close: async () => {
          client.close();
          try {
            assert.equal(await within(exited, 5_000, "our worker exit"), 0);
          } finally {
            clearTimeout(killer);
            child.kill("SIGKILL");
          }
        },
      };
    },
  },
  {
    name: "HTTP",
    headerInitErrorHangs: false,
    open: async () => {
      const server = quiverServer();
      const listener = await listenHttp(server, { port: 0 });
      const logs: LogMessage[] = [];
      const client = httpConnect(listener.url, { onLog: (m) => logs.push(m) });
      return {
        client,
        logs,
        serverId: server.serverId,
        observesCancel: true,
        close: async () => {
          client.close();
          await within(listener.close(), 5_000, "HTTP listener close");
        },
      };
    },
  },
];

for (const transport of peerClientTransports) {
  describe(`npm peer client → quiver server over ${transport.name}`, () => {
    async function withPeer(fn: (c: PeerConnection) => Promise<void>): Promise<void> {
      const c = await transport.open();
      try {
        await within(fn(c), 15_000, "test body");
      } finally {
        await c.close();
      }
    }

    test("describe: reflection reports our protocol, version, hash and method shapes", TEST_TIMEOUT, () =>
      withPeer(async ({ client, serverId }) => {
        const d = await client.describe();
        assert.equal(d.protocolName, PROTOCOL_NAME);
        assert.equal(d.protocolVersion, PROTOCOL_VERSION);
        assert.equal(d.protocolHash, EXPECTED_HASH);
        assert.deepEqual(d.hostedProtocols, [PROTOCOL_NAME, "vgi_rpc.Reflection.v1"]);
        assert.equal(d.requestVersion, "1");
        if (serverId !== null) assert.equal(d.serverId, serverId);
        else assert.match(d.serverId ?? "", /^[0-9a-f]{12}$/);
        const methods = new Map(d.methods.map((m) => [m.name, m]));
        assert.deepEqual([...methods.keys()].sort(), [
          "add",
          "count",
          "fail",
          "greet",
          "maybe_double",
          "mixed",
          "noop",
          "reverse",
          "scale",
          "sum",
          "ticker",
        ]);
        const add = methods.get("add")!;
        assert.equal(add.type, "unary");
        assert.equal(add.hasReturn, true);
        assert.deepEqual(
          add.paramsSchema.fields.map((f) => [f.name, String(f.type), f.nullable]),
          [
            ["a", "Int64", false],
            ["b", "Int64", false],
          ],
        );
        assert.deepEqual(
          add.resultSchema.fields.map((f) => [f.name, String(f.type)]),
          [["result", "Int64"]],
        );
        assert.equal(methods.get("noop")!.hasReturn, false);
        assert.deepEqual(
          methods.get("greet")!.paramsSchema.fields.map((f) => [f.name, f.nullable]),
          [
            ["name", false],
            ["title", true],
          ],
        );
        const count = methods.get("count")!;
        assert.equal(count.type, "stream");
        assert.equal(count.streamKind, "producer");
        assert.deepEqual(
          count.headerSchema?.fields.map((f) => [f.name, String(f.type)]),
          [["total", "Int64"]],
        );
        assert.equal(methods.get("scale")!.streamKind, "exchange");
        assert.equal(methods.get("scale")!.headerSchema, undefined);
      }),
    );

    test(
      "unary: int64 (safe and beyond 2^53), utf8, null/optional, list, int32/float32/bool/binary, void",
      TEST_TIMEOUT,
      () =>
        withPeer(async ({ client, logs }) => {
          assert.deepEqual(await client.call("add", { a: 2n, b: 40n }), { result: 42 });
          assert.deepEqual(await client.call("add", { a: 9007199254740993n, b: 1n }), { result: 9007199254740994n });
          assert.deepEqual(await client.call("add", { a: -5, b: 3 }), { result: -2 });
          assert.deepEqual(await client.call("greet", { name: "Zoë 🚀", title: null }), { result: "hello Zoë 🚀" });
          assert.deepEqual(await client.call("greet", { name: "ada", title: "dr" }), { result: "hello dr ada" });
          assert.deepEqual(
            logs.map((l) => [l.level, l.message, l.extra?.who]),
            [
              ["INFO", "greeting Zoë 🚀", "Zoë 🚀"],
              ["INFO", "greeting ada", "ada"],
            ],
          );
          assert.deepEqual(await client.call("sum", { xs: [1, 2, 3.5] }), { result: 6.5 });
          assert.deepEqual(await client.call("sum", { xs: [] }), { result: 0 });
          const reversed = await client.call("reverse", { xs: [1n, 2n, 3n] });
          assert.deepEqual(Array.from(reversed?.result as Iterable<bigint>), [3n, 2n, 1n]);
          assert.deepEqual(await client.call("maybe_double", { x: 21n }), { result: 42 });
          assert.deepEqual(await client.call("maybe_double", { x: null }), { result: null });
          assert.deepEqual(
            await client.call("mixed", { i32: -7, f32: 1.5, flag: true, data: new Uint8Array([1, 2, 255]) }),
            { result: "-7|1.5|true|0102ff" },
          );
          assert.equal(await client.call("noop"), null);
        }),
    );

    test(
      "errors: a handler error and a header-less stream's init error arrive with type and message; the connection stays usable",
      TEST_TIMEOUT,
      () =>
        withPeer(async ({ client }) => {
          await assert.rejects(client.call("fail", { msg: "nope" }), isPeerError("ValueError", "nope"));
          assert.deepEqual(await client.call("add", { a: 1n, b: 1n }), { result: 2 });
          // A header-less stream's init error: over a pipe it surfaces on the first turn, over HTTP
          // on the init request.
          await assert.rejects(
            (async () => (await client.stream("scale", { factor: -1 })).exchange([{ x: 1 }]))(),
            isPeerError("ValueError", "factor must be >= 0, got -1"),
          );
          assert.deepEqual(await client.call("add", { a: 2n, b: 2n }), { result: 4 });
        }),
    );

    // The reference (vgi_rpc 0.52.2, rpc/_server.py `_serve_stream`) answers an init error of a
    // header-bearing stream with ONE error stream in the header's place, then drains the client's
    // input stream; its client (rpc/_client.py, the `except RpcError` branch of the stream
    // caller) writes the empty input stream and raises without reading anything more. The peer's
    // pipe client (src/client/pipe.ts `stream()`, catch block) writes the empty input stream and
    // then waits for a second output stream that neither the reference, our server, nor the
    // peer's own server sends, so it never settles. Its HTTP client has no such step.
    test(
      "errors: a header-bearing stream's init error arrives with type and message; the connection stays usable",
      transport.headerInitErrorHangs
        ? {
            ...TEST_TIMEOUT,
            todo: "peer pipe client bug: after a header-stream init error it waits for a second output stream (src/client/pipe.ts stream() catch)",
          }
        : TEST_TIMEOUT,
      () =>
        withPeer(async ({ client }) => {
          await assert.rejects(
            within(client.stream("count", { n: -1n }), 3_000, "peer stream() after an init error"),
            isPeerError("ValueError", "n must be >= 0, got -1"),
          );
          assert.deepEqual(await client.call("add", { a: 2n, b: 2n }), { result: 4 });
        }),
    );

    test("producer with header: header, rows, a log mid-stream, then an error mid-stream", TEST_TIMEOUT, () =>
      withPeer(async ({ client, logs }) => {
        const s = await client.stream("count", { n: 4n });
        assert.deepEqual(s.header, { total: 4 });
        assert.deepEqual(await collect(s), [
          { i: 0, sq: 0 },
          { i: 1, sq: 1 },
          { i: 2, sq: 4 },
          { i: 3, sq: 9 },
        ]);
        assert.deepEqual(
          logs.map((l) => [l.level, l.message, l.extra?.at]),
          [["INFO", "tick 1", "1"]],
        );
        const failing = await client.stream("count", { n: 99n });
        const seen: Record<string, unknown>[] = [];
        await assert.rejects(
          (async () => {
            for await (const rows of failing) seen.push(...rows);
          })(),
          isPeerError("ValueError", "boom at 2"),
        );
        assert.deepEqual(seen, [
          { i: 0, sq: 0 },
          { i: 1, sq: 1 },
        ]);
        assert.deepEqual(await client.call("add", { a: 3n, b: 4n }), { result: 7 });
        // A longer stream (over HTTP: several continuation round trips).
        const long = await collect(await client.stream("count", { n: 300n }));
        assert.equal(long.length, 300);
        assert.deepEqual(long[299], { i: 299, sq: 89401 });
      }),
    );

    test("exchange: lockstep turns, close, an error on a turn, and the connection stays usable", TEST_TIMEOUT, () =>
      withPeer(async ({ client }) => {
        const s = await client.stream("scale", { factor: 2.5 });
        assert.equal(s.header, null);
        assert.deepEqual(await s.exchange([{ x: 1 }, { x: 2 }]), [{ x: 2.5 }, { x: 5 }]);
        assert.deepEqual(await s.exchange([{ x: 4 }]), [{ x: 10 }]);
        s.close();
        const bad = await client.stream("scale", { factor: 1 });
        assert.deepEqual(await bad.exchange([{ x: 1 }]), [{ x: 1 }]);
        await assert.rejects(bad.exchange([{ x: -1 }]), isPeerError("ValueError", "negative input"));
        assert.deepEqual(await client.call("add", { a: 5n, b: 5n }), { result: 10 });
      }),
    );

    test("cancel: the peer's cancel() stops an endless producer; the connection stays usable", TEST_TIMEOUT, () =>
      withPeer(async ({ client, observesCancel }) => {
        const before = cancels.quiver;
        const s = await client.stream("ticker");
        assert.deepEqual(await s.tick(), [{ i: 0 }]);
        assert.deepEqual(await s.tick(), [{ i: 1 }]);
        const cancellable = s as PeerStreamSession & { cancel(): Promise<void> };
        assert.equal(typeof cancellable.cancel, "function");
        await cancellable.cancel();
        if (observesCancel) assert.equal(cancels.quiver, before + 1);
        assert.deepEqual(await client.call("add", { a: 6n, b: 7n }), { result: 13 });
      }),
    );
  });
}

// =============================================================================================
// Our client against the peer's server

/** What the tests use of a client: `RpcClient` (pipes) and `HttpClient` both offer it. */
type QuiverClient = CallChannel & {
  describe(protocol?: string): Promise<ServiceDescription>;
  listProtocols(): Promise<ProtocolListing>;
};

interface QuiverConnection {
  readonly client: QuiverClient;
  readonly logs: LogRecord[];
  readonly observesCancel: boolean;
  close(): Promise<void>;
}

const quiverClientTransports: { readonly name: string; open(): Promise<QuiverConnection> }[] = [
  {
    name: "in-process pipe (its serveStream)",
    open: async () => {
      const toServer = new PassThrough();
      const toClient = new PassThrough();
      const served = serveStream(peerProtocol(), {
        readable: toServer,
        writable: {
          write: (bytes: Uint8Array) => {
            toClient.write(bytes);
          },
        },
      }).finally(() => toClient.end());
      const logs: LogRecord[] = [];
      const client = pipeConnect(toClient, toServer, { onLog: (r) => logs.push(r), timeoutMs: 10_000 });
      return {
        client,
        logs,
        observesCancel: true,
        close: async () => {
          await client.close();
          await within(served, 5_000, "peer server session end");
        },
      };
    },
  },
  {
    name: "stdio worker (child process, its VgiRpcServer.run)",
    open: async () => {
      const logs: LogRecord[] = [];
      const client = await connectSubprocess(process.execPath, ["--import", "tsx", WORKER, "peer"], {
        cwd: ROOT,
        onLog: (r) => logs.push(r),
        timeoutMs: 10_000,
        exitTimeoutMs: 3_000,
      });
      return {
        client,
        logs,
        observesCancel: false,
        close: async () => {
          await within(client.close(), 15_000, "peer worker close");
          assert.equal(client.process.exitCode, 0);
        },
      };
    },
  },
  {
    name: "HTTP (its createHttpHandler on node:http, our connectHttp)",
    open: async () => {
      const peer = await listenPeerHttp();
      const logs: LogRecord[] = [];
      const client = connectHttp(peer.url, { onLog: (r) => logs.push(r), timeoutMs: 10_000 });
      return {
        client,
        logs,
        observesCancel: true,
        close: async () => {
          await client.close();
          await within(peer.close(), 5_000, "peer HTTP server close");
        },
      };
    },
  },
];

for (const transport of quiverClientTransports) {
  describe(`quiver client → npm peer server over ${transport.name}`, () => {
    async function withQuiver(fn: (c: QuiverConnection) => Promise<void>): Promise<void> {
      const c = await transport.open();
      try {
        await within(fn(c), 15_000, "test body");
      } finally {
        await c.close();
      }
    }

    test(
      "list_protocols and describe: the peer reports the same protocol hash and method shapes as ours",
      TEST_TIMEOUT,
      () =>
        withQuiver(async ({ client }) => {
          const listing = await client.listProtocols();
          assert.equal(listing.requestVersion, "1");
          assert.match(listing.serverId, /^[0-9a-f]{12}$/);
          assert.deepEqual(
            listing.protocols.map((p) => [p.name, p.version]),
            [
              [PROTOCOL_NAME, PROTOCOL_VERSION],
              ["vgi_rpc.Reflection.v1", ""],
            ],
          );
          assert.equal(listing.protocols[0]!.hash, EXPECTED_HASH);
          const d = await client.describe();
          assert.equal(d.protocolName, PROTOCOL_NAME);
          assert.equal(d.protocolVersion, PROTOCOL_VERSION);
          assert.equal(d.protocolHash, EXPECTED_HASH);
          assert.equal(d.describeVersion, "5");
          assert.equal(d.serverId, listing.serverId);
          // Method by method, the peer's description equals our server's description of our declaration.
          const ours = await ourDescription();
          assert.deepEqual([...d.methods.keys()], [...ours.keys()]);
          for (const [name, m] of d.methods) assert.deepEqual(shape(m), ours.get(name), `method ${name}`);
        }),
    );

    test(
      "unary through the typed proxy: int64/bigint, utf8, optional/null, list, int32/float32/bool/binary, void, logs",
      TEST_TIMEOUT,
      () =>
        withQuiver(async ({ client, logs }) => {
          const p = proxy(client, Interop);
          assert.equal(await p.add({ a: 2n, b: 40n }), 42n);
          assert.equal(await p.add({ a: 9007199254740993n, b: 1n }), 9007199254740994n);
          assert.equal(await p.add({ a: -5n, b: 3n }), -2n);
          assert.equal(await p.greet({ name: "Zoë 🚀", title: null }), "hello Zoë 🚀");
          assert.equal(await p.greet({ name: "ada", title: "dr" }), "hello dr ada");
          assert.deepEqual(
            logs.map((l) => [l.level, l.message, l.extra.who]),
            [
              ["INFO", "greeting Zoë 🚀", "Zoë 🚀"],
              ["INFO", "greeting ada", "ada"],
            ],
          );
          assert.equal(await p.sum({ xs: [1, 2, 3.5] }), 6.5);
          assert.equal(await p.sum({ xs: [] }), 0);
          assert.deepEqual(await p.reverse({ xs: [1n, 2n, 3n] }), [3n, 2n, 1n]);
          assert.equal(await p.maybe_double({ x: 21n }), 42n);
          assert.equal(await p.maybe_double({ x: null }), null);
          assert.equal(
            await p.mixed({ i32: -7, f32: 1.5, flag: true, data: new Uint8Array([1, 2, 255]) }),
            "-7|1.5|true|0102ff",
          );
          assert.equal(await p.noop(), undefined);
        }),
    );

    test(
      "errors: handler and init errors with type and message; routing errors carry the reference's error_kind",
      TEST_TIMEOUT,
      () =>
        withQuiver(async ({ client }) => {
          const p = proxy(client, Interop);
          await assert.rejects(p.fail({ msg: "nope" }), isOurError("ValueError", "nope"));
          await assert.rejects(p.count({ n: -1n }), isOurError("ValueError", "n must be >= 0, got -1"));
          // A header-less stream's init error: on a pipe at the first turn, over HTTP at /init.
          await assert.rejects(
            (async () => (await p.scale({ factor: -1 })).exchange([{ x: 1 }]))(),
            isOurError("ValueError", "factor must be >= 0, got -1"),
          );
          const target = { protocol: PROTOCOL_NAME, protocolVersion: PROTOCOL_VERSION };
          const empty = paramsBatch("noop", {}, {});
          await assert.rejects(
            client.unaryBatch({ ...target, method: "nope" }, empty),
            isOurError("MethodNotImplementedError", /has no method 'nope'/, "method_not_implemented"),
          );
          await assert.rejects(
            client.unaryBatch({ ...target, protocolVersion: "2.0.0", method: "noop" }, empty),
            isOurError("ProtocolVersionError", /protocol_version mismatch/, "protocol_version_mismatch"),
          );
          await assert.rejects(
            client.unaryBatch({ protocol: "other.Proto.v1", method: "noop" }, empty),
            isOurError(
              "ProtocolNotSupportedError",
              /does not host protocol 'other.Proto.v1'/,
              "protocol_not_supported",
            ),
          );
          assert.equal(await p.add({ a: 1n, b: 1n }), 2n);
        }),
    );

    test("producer with header: header, typed rows, a log mid-stream, then an error mid-stream", TEST_TIMEOUT, () =>
      withQuiver(async ({ client, logs }) => {
        const p = proxy(client, Interop);
        const s = await p.count({ n: 4n });
        assert.deepEqual(s.header, { total: 4n });
        assert.deepEqual(await s.toArray(), [
          { i: 0n, sq: 0n },
          { i: 1n, sq: 1n },
          { i: 2n, sq: 4n },
          { i: 3n, sq: 9n },
        ]);
        assert.deepEqual(
          logs.map((l) => [l.level, l.message, l.extra.at]),
          [["INFO", "tick 1", "1"]],
        );
        const failing = await p.count({ n: 99n });
        const seen: unknown[] = [];
        await assert.rejects(
          (async () => {
            for await (const row of failing) seen.push(row);
          })(),
          isOurError("ValueError", "boom at 2"),
        );
        assert.deepEqual(seen, [
          { i: 0n, sq: 0n },
          { i: 1n, sq: 1n },
        ]);
        assert.equal(await p.add({ a: 3n, b: 4n }), 7n);
      }),
    );

    test("exchange: lockstep turns, close, an error on a turn, and the connection stays usable", TEST_TIMEOUT, () =>
      withQuiver(async ({ client }) => {
        const p = proxy(client, Interop);
        const s = await p.scale({ factor: 2.5 });
        assert.equal(s.header, null);
        assert.deepEqual(await s.exchange([{ x: 1 }, { x: 2 }]), [{ x: 2.5 }, { x: 5 }]);
        assert.deepEqual(await s.exchange([{ x: 4 }]), [{ x: 10 }]);
        await s.close();
        const bad = await p.scale({ factor: 1 });
        assert.deepEqual(await bad.exchange([{ x: 1 }]), [{ x: 1 }]);
        await assert.rejects(bad.exchange([{ x: -1 }]), isOurError("ValueError", "negative input"));
        assert.equal(await p.add({ a: 5n, b: 5n }), 10n);
      }),
    );

    test(
      "cancel: an AbortSignal cancels an endless producer with the protocol's cancel; the connection stays usable",
      TEST_TIMEOUT,
      () =>
        withQuiver(async ({ client, observesCancel }) => {
          const p = proxy(client, Interop);
          const before = cancels.peer;
          const abort = new AbortController();
          const s = await p.ticker({}, { signal: abort.signal });
          const seen: bigint[] = [];
          await assert.rejects(
            (async () => {
              for await (const row of s) {
                seen.push(row.i);
                if (row.i === 2n) abort.abort();
              }
            })(),
            (e: unknown) => e instanceof Error && e.name === "AbortError",
          );
          assert.deepEqual(seen, [0n, 1n, 2n]);
          if (observesCancel) assert.equal(cancels.peer, before + 1);
          assert.equal(await p.add({ a: 6n, b: 7n }), 13n);
        }),
    );
  });
}

// Our request encoding to the peer's HTTP handler by hand, below any client: the route, the
// request batch (routing key, versions) and the answer, including the error status convention.
test(
  "quiver request encoding → npm peer HTTP handler (raw POST): a unary result and an error",
  TEST_TIMEOUT,
  async () => {
    const peer = await listenPeerHttp();
    try {
      const post = async (method: "add" | "fail", params: Readonly<Record<string, unknown>>) => {
        const batch = requestBatch(paramsBatch(method, Interop.methods[method].params, params), {
          protocol: PROTOCOL_NAME,
          protocolVersion: PROTOCOL_VERSION,
          method,
        });
        const res = await within(
          fetch(`${peer.url}/${PROTOCOL_NAME}/${method}`, {
            method: "POST",
            headers: { "Content-Type": "application/vnd.apache.arrow.stream" },
            body: Buffer.from(encodeIpcBody(batch.schema, [batch])),
          }),
          5_000,
          `POST ${method}`,
        );
        return {
          status: res.status,
          errorHeader: res.headers.get("X-VGI-RPC-Error"),
          body: await decodeIpcBody(new Uint8Array(await res.arrayBuffer())),
        };
      };
      const ok = await post("add", { a: 9007199254740993n, b: 1n });
      assert.equal(ok.status, 200);
      assert.equal(ok.errorHeader, null);
      assert.equal(ok.body.batches.length, 1);
      assert.equal(ok.body.batches[0]!.getChild("result")?.get(0), 9007199254740994n);
      const bad = await post("fail", { msg: "nope" });
      // As the reference (http/server/_responses.py `_set_http_status`): 200 with X-VGI-RPC-Error.
      assert.equal(bad.status, 200);
      assert.equal(bad.errorHeader, "true");
      const err = errorFromMetadata(bad.body.batches[0]!.metadata);
      assert.equal(err.type, "ValueError");
      assert.equal(err.message, "nope");
    } finally {
      await peer.close();
    }
  },
);

// =============================================================================================
// Helpers comparing described shapes

type Shape = readonly unknown[];

function shape(m: {
  methodType: string;
  hasReturn: boolean;
  paramsSchema: { fields: readonly { name: string; type: unknown; nullable: boolean }[] };
  resultSchema: { fields: readonly { name: string; type: unknown; nullable: boolean }[] };
  hasHeader: boolean;
  headerSchema: { fields: readonly { name: string; type: unknown; nullable: boolean }[] } | null;
  isExchange: boolean | null;
}): Shape {
  const fields = (s: { fields: readonly { name: string; type: unknown; nullable: boolean }[] } | null) =>
    s === null ? null : s.fields.map((f) => [f.name, String(f.type), f.nullable]);
  return [
    m.methodType,
    m.hasReturn,
    fields(m.paramsSchema),
    fields(m.resultSchema),
    m.hasHeader,
    fields(m.headerSchema),
    m.isExchange,
  ];
}

/** Our server's description of our declaration, method by method, as shapes. */
async function ourDescription(): Promise<Map<string, Shape>> {
  const server = quiverServer();
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server);
  const client = new RpcClient({
    name: "memory",
    input: pipe.client.input,
    write: pipe.client.write,
    close: async () => pipe.client.close(),
  });
  try {
    const d = await client.describe();
    return new Map([...d.methods].map(([name, m]) => [name, shape(m)]));
  } finally {
    await client.close();
    await within(served, 5_000, "our server session end");
  }
}

// =============================================================================================
// Where the peer deviates from the reference (our client against its in-process server)

/** Serves `protocol` with the peer's `serveStream` and connects our pipe client to it. */
async function withPeerServer(protocol: Protocol, fn: (client: RpcClient) => Promise<void>): Promise<void> {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const served = serveStream(protocol, {
    readable: toServer,
    writable: {
      write: (bytes: Uint8Array) => {
        toClient.write(bytes);
      },
    },
  }).finally(() => toClient.end());
  const client = pipeConnect(toClient, toServer, { timeoutMs: 5_000 });
  try {
    await within(fn(client), 10_000, "test body");
  } finally {
    await client.close();
    await within(served, 5_000, "peer server session end");
  }
}

function orderProtocol(): Protocol {
  const p = new Protocol("zz.Order.v1");
  p.unary("ping", { params: {}, result: { result: str }, handler: () => ({ result: "pong" }) });
  return p;
}

test(
  "quiver client → npm peer server: describe() finds the application protocol whatever the listing order",
  TEST_TIMEOUT,
  () =>
    withPeerServer(orderProtocol(), async (client) => {
      const d = await client.describe();
      assert.equal(d.protocolName, "zz.Order.v1");
      assert.deepEqual([...d.methods.keys()], ["ping"]);
    }),
);

// The reference lists hosted protocols in registration order, primary first (vgi_rpc 0.52.2
// rpc/_reflection.py `list_protocols`: `for binding in server.bindings.values()`); the peer sorts
// them by name (src/reflection.ts `list_protocols`: `[...all.keys()].sort()`), so a protocol
// named after `vgi_rpc.` is listed behind reflection.
test(
  "npm peer server lists hosted protocols in registration order (primary first)",
  { ...TEST_TIMEOUT, todo: "peer sorts list_protocols by name (src/reflection.ts)" },
  () =>
    withPeerServer(orderProtocol(), async (client) => {
      const listing = await client.listProtocols();
      assert.deepEqual(
        listing.protocols.map((p) => p.name),
        ["zz.Order.v1", "vgi_rpc.Reflection.v1"],
      );
    }),
);

// Our dictionary<int16, utf8> parameter decodes to 'red' in pyarrow, apache-arrow and the peer's
// own @query-farm/apache-arrow; the peer's server hands its handler an arrow `Data` object
// instead of the value, from its own client's requests too (src/wire/request.ts param extraction).
test("npm peer server decodes a dictionary-encoded parameter to its value", {
  ...TEST_TIMEOUT,
  todo: "peer server passes dictionary params to handlers as arrow Data objects",
}, () => {
  const p = new Protocol("x.Dict.v1");
  p.unary("color", {
    params: { color: new Field("color", new Dictionary(new Utf8(), new Int16()), false) },
    result: { result: str },
    handler: ({ color }) => ({ result: typeof color === "string" ? color : `not a string: ${typeof color}` }),
  });
  const Dict = defineProtocol("x.Dict.v1", {}, { color: unary({ color: t.dictUtf8() }, t.utf8()) });
  return withPeerServer(p, async (client) => {
    assert.equal(await proxy(client, Dict).color({ color: "red" }), "red");
  });
});
