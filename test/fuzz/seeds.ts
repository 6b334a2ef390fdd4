/**
 * Seeds: real valid requests and stream turns, as quiver's own client writes them. Nothing is
 * stored as a binary blob; each seed is produced here by running the client against the
 * conformance service and recording the bytes it writes, so seeds follow the protocol as it
 * changes.
 *
 * - Session seeds (pipe, Unix, TCP, WebSocket): one connection's whole conversation, captured
 *   in process over an in-memory pipe (the same bytes the client writes on any session transport).
 * - HTTP seeds: each request (route, headers, body) the HTTP client sends to a live worker,
 *   captured through a recording `fetch`; stream turns carry that worker's real tokens.
 * - Shared-memory seeds: requests advertising a segment and batches moved into it as pointer
 *   batches, built with the client's own request and pointer functions.
 */
import type { RecordBatch } from "apache-arrow";
import { type CallTarget, RpcClient, requestBatch } from "../../src/client/client.js";
import type { ClientTransport } from "../../src/client/transport.js";
import { proxy } from "../../src/client/typed.js";
import { createSecondaryImplementation, SecondaryProtocol } from "../../src/conformance/secondary.js";
import { ConformanceService, createConformanceImplementation } from "../../src/conformance/service.js";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { connectHttp } from "../../src/transports/http/client.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { type SegmentAccess, segmentMetadata, toPointer } from "../../src/transports/shm/pointer.js";
import { recordBatch } from "../../src/wire/batches.js";
import { IpcStreamEncoder } from "../../src/wire/ipc.js";
import { concat } from "./mutators.js";

/** A whole conversation on one session connection. */
export interface SessionSeed {
  readonly name: string;
  readonly bytes: Uint8Array;
}

type Api = ReturnType<typeof proxy<typeof ConformanceService>>;

let inProcess: RpcServer | null = null;

function server(): RpcServer {
  inProcess ??= createServer({
    protocols: [
      bind(ConformanceService, createConformanceImplementation()),
      bind(SecondaryProtocol, createSecondaryImplementation()),
    ],
  });
  return inProcess;
}

/** Runs `fn` with a client on a fresh in-memory connection; returns every byte the client wrote. */
export async function captureSession(fn: (api: Api, client: RpcClient) => Promise<void>): Promise<Uint8Array> {
  const pipe = memoryPipe("pipe");
  const served = server().serveConnection(pipe.server);
  const written: Uint8Array[] = [];
  const transport: ClientTransport = {
    input: pipe.client.input,
    write: (chunks) => {
      for (const c of chunks) written.push(Uint8Array.prototype.slice.call(c));
      return pipe.client.write(chunks);
    },
    close: () => pipe.client.close(),
    name: "pipe",
  };
  const client = new RpcClient(transport, { timeoutMs: 10_000 });
  try {
    await fn(proxy(client, ConformanceService), client);
  } finally {
    await client.close();
    await served.catch(() => {});
  }
  return concat(written);
}

/** The session seeds, in a fixed order. */
export const SESSION_SEED_SCRIPTS: readonly (readonly [string, (api: Api) => Promise<unknown>])[] = [
  ["unary.echo_string", (api) => api.echo_string({ value: "hello, fuzz" })],
  ["unary.echo_int", (api) => api.echo_int({ value: 42n })],
  ["unary.echo_bytes", (api) => api.echo_bytes({ data: Uint8Array.from({ length: 32 }, (_, i) => i) })],
  ["unary.echo_list", (api) => api.echo_list({ values: ["a", "bc", ""] })],
  [
    "unary.echo_dict",
    (api) =>
      api.echo_dict({
        mapping: new Map([
          ["a", 1n],
          ["b", 2n],
        ]),
      }),
  ],
  ["unary.echo_nested_list", (api) => api.echo_nested_list({ matrix: [[1n, 2n], [3n], []] })],
  ["unary.echo_enum", (api) => api.echo_enum({ status: "ACTIVE" })],
  ["unary.echo_optional_string", (api) => api.echo_optional_string({ value: null })],
  ["unary.echo_decimal", (api) => api.echo_decimal({ value: 12345678n })],
  ["unary.echo_dict_encoded_string", (api) => api.echo_dict_encoded_string({ value: "dictionary" })],
  ["unary.echo_fixed_binary", (api) => api.echo_fixed_binary({ value: new Uint8Array(8).fill(7) })],
  ["unary.echo_timestamp_utc", (api) => api.echo_timestamp_utc({ value: 1_700_000_000_000_000n })],
  ["unary.echo_large_string", (api) => api.echo_large_string({ value: "large utf8" })],
  ["unary.void_noop", (api) => api.void_noop()],
  ["unary.concatenate", (api) => api.concatenate({ prefix: "a", suffix: "b", separator: "+" })],
  ["unary.raise_value_error", (api) => api.raise_value_error({ message: "boom" }).catch(() => {})],
  [
    "session.two_calls",
    async (api) => {
      await api.echo_string({ value: "first" });
      await api.echo_int({ value: 7n });
    },
  ],
  ["producer.produce_n", async (api) => (await api.produce_n({ count: 3n })).toArray()],
  ["producer.produce_with_header", async (api) => (await api.produce_with_header({ count: 2n })).toArray()],
  [
    "producer.cancellable_producer",
    async (api) => {
      const s = await api.cancellable_producer();
      for await (const _ of s) break;
    },
  ],
  [
    "exchange.exchange_scale",
    async (api) => {
      const x = await api.exchange_scale({ factor: 2 });
      await x.exchange([{ value: 1.5 }]);
      await x.exchange([{ value: 2 }, { value: null }]);
      await x.close();
    },
  ],
  [
    "exchange.exchange_accumulate",
    async (api) => {
      const x = await api.exchange_accumulate();
      await x.exchange([{ value: 1 }]);
      await x.close();
    },
  ],
  [
    "exchange.cancellable_exchange",
    async (api) => {
      const x = await api.cancellable_exchange();
      await x.exchange([{ value: 1 }]);
      await x.cancel();
    },
  ],
  [
    "exchange.exchange_zero_columns",
    async (api) => {
      const x = await api.exchange_zero_columns();
      await x.close();
    },
  ],
];

let sessionSeeds: Promise<SessionSeed[]> | null = null;

/** Every session seed (captured once per process). */
export function loadSessionSeeds(): Promise<SessionSeed[]> {
  sessionSeeds ??= (async () => {
    const out: SessionSeed[] = [];
    for (const [name, script] of SESSION_SEED_SCRIPTS) {
      out.push({ name, bytes: await captureSession((api) => script(api).then(() => {})) });
    }
    return out;
  })();
  return sessionSeeds;
}

/** The valid `echo_string` request the two regression cases start from. */
export async function echoStringRequest(value = "hello, fuzz"): Promise<Uint8Array> {
  return captureSession(async (api) => {
    await api.echo_string({ value });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** One HTTP request as the client sent it. */
export interface HttpSeed {
  readonly name: string;
  /** Path and query, e.g. `/ConformanceService/produce_n/init`. */
  readonly path: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
}

/** Runs `fn` with an HTTP client on `baseUrl`; returns the requests it sent, in order. */
export async function captureHttp(
  baseUrl: string,
  fn: (api: Api) => Promise<void>,
): Promise<{ path: string; headers: [string, string][]; body: Uint8Array }[]> {
  const sent: { path: string; headers: [string, string][]; body: Uint8Array }[] = [];
  const recording: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const headers: [string, string][] = [];
    new Headers(init?.headers).forEach((v, k) => {
      headers.push([k, v]);
    });
    const body = init?.body instanceof Uint8Array ? Uint8Array.prototype.slice.call(init.body) : new Uint8Array(0);
    sent.push({ path: url.pathname + url.search, headers, body });
    return fetch(input, init);
  };
  const client = connectHttp(baseUrl, { fetch: recording, timeoutMs: 10_000 });
  await fn(proxy(client, ConformanceService));
  return sent;
}

/** The HTTP seeds against a live worker at `baseUrl`: unary calls, stream inits and turns. */
export async function loadHttpSeeds(baseUrl: string): Promise<HttpSeed[]> {
  const out: HttpSeed[] = [];
  const record = async (name: string, fn: (api: Api) => Promise<unknown>) => {
    const sent = await captureHttp(baseUrl, async (api) => {
      await fn(api);
    });
    sent.forEach((r, i) => {
      const kind = r.path.endsWith("/init") ? "init" : r.path.endsWith("/exchange") ? `exchange${i}` : "unary";
      out.push({ name: `${name}.${kind}`, path: r.path, headers: r.headers, body: r.body });
    });
  };
  await record("echo_string", (api) => api.echo_string({ value: "hello, fuzz" }));
  await record("echo_int", (api) => api.echo_int({ value: 42n }));
  await record("echo_list", (api) => api.echo_list({ values: ["a", "bc"] }));
  await record("echo_dict_encoded_string", (api) => api.echo_dict_encoded_string({ value: "dictionary" }));
  await record("void_noop", (api) => api.void_noop());
  await record("produce_n", async (api) => (await api.produce_n({ count: 3n })).toArray());
  await record("exchange_scale", async (api) => {
    const x = await api.exchange_scale({ factor: 2 });
    await x.exchange([{ value: 1.5 }]);
    await x.exchange([{ value: 3 }]);
    await x.close();
  });
  await record("cancellable_producer", async (api) => {
    const s = await api.cancellable_producer();
    for await (const _ of s) break;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared memory

/** What a shared-memory seed is made of (its batches may be replaced before encoding). */
export type ShmSeedKind = "advertise" | "pointer-request" | "exchange-pointers" | "large-pointer-request";

export const SHM_SEED_KINDS: readonly ShmSeedKind[] = [
  "advertise",
  "pointer-request",
  "exchange-pointers",
  "large-pointer-request",
];

function target(method: string): CallTarget {
  return { protocol: ConformanceService.name, protocolVersion: ConformanceService.version, method };
}

/** Hooks a case uses to change the metadata of a batch before it is encoded. */
export interface ShmSeedHooks {
  /** Rewrites the metadata of the request batch (segment name and size, pointer keys). */
  readonly request?: (md: Map<string, string>) => void;
  /** Rewrites the metadata of the `index`th input pointer batch. */
  readonly input?: (index: number, md: Map<string, string>) => void;
}

function withMetadata(batch: RecordBatch, edit: ((md: Map<string, string>) => void) | undefined): RecordBatch {
  if (edit === undefined) return batch;
  const md = new Map(batch.metadata);
  edit(md);
  return recordBatch(batch.schema, batch.data, md);
}

/**
 * Builds one shared-memory conversation against `segment` (allocations are written into it) and
 * returns the bytes for the pipe. Built with the client's own `requestBatch`, `segmentMetadata`
 * and `toPointer` (threshold 0, so small batches become pointers too, except for the large kind,
 * which uses the client's real threshold).
 */
export function buildShmSeed(kind: ShmSeedKind, segment: SegmentAccess, hooks: ShmSeedHooks = {}): Uint8Array {
  const advertise = new Map(segmentMetadata(segment));
  const stream = (batch: RecordBatch): Uint8Array[] => {
    const enc = new IpcStreamEncoder(batch.schema);
    return [...enc.batch(batch), ...enc.end()];
  };
  if (kind === "advertise" || kind === "pointer-request" || kind === "large-pointer-request") {
    const fields = { value: t.utf8() };
    const value = kind === "large-pointer-request" ? "x".repeat(200 * 1024) : "through shared memory";
    let request = requestBatch(batchFromColumns(fields, { value: [value] }), target("echo_string"), advertise);
    if (kind === "pointer-request") request = toPointer(request, segment, 0);
    if (kind === "large-pointer-request") request = toPointer(request, segment);
    return concat(stream(withMetadata(request, hooks.request)));
  }
  const params = batchFromColumns({ factor: t.float64() }, { factor: [2] });
  const request = requestBatch(params, target("exchange_scale"), advertise);
  const chunks = stream(withMetadata(request, hooks.request));
  const inputFields = { value: t.float64().optional() };
  const enc = new IpcStreamEncoder(schemaOf(inputFields));
  chunks.push(...enc.begin());
  for (let i = 0; i < 2; i++) {
    const input = batchFromColumns(inputFields, { value: Array.from({ length: 64 }, (_, k) => k * (i + 1) + 0.5) });
    chunks.push(...enc.batch(withMetadata(toPointer(input, segment, 0), (md) => hooks.input?.(i, md))));
  }
  chunks.push(...enc.end());
  return concat(chunks);
}
