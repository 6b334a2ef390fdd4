/**
 * The distinct failures the first fuzz campaign found on main (issue #21), each as one fixed,
 * minimal case made from a real client request: run by `npm run fuzz` after the two known
 * reproductions, so a fix can be checked against exactly the bytes that failed.
 */
import type { FuzzCase, TransportName } from "./cases.js";
import { ARROW } from "./http-cases.js";
import { allPoints, type PointKind, splitIpc } from "./ipc-walk.js";
import { concat, writeInt } from "./mutators.js";
import { loadSessionSeeds } from "./seeds.js";

export interface Finding {
  readonly name: string;
  readonly desc: string;
  /** The seed the bytes came from. */
  readonly seedName: string;
  readonly bytes: Uint8Array;
  /** The HTTP route when the bytes are one request (a body); null for a conversation. */
  readonly path: string | null;
}

/** `bytes` with the first `kind` point labelled `label` (at or after `after`) set to `value`. */
function setPoint(
  bytes: Uint8Array,
  kind: PointKind,
  label: string,
  value: number | bigint,
  after = 0,
): { bytes: Uint8Array; at: number; was: number } {
  const p = allPoints(bytes).find((q) => q.kind === kind && q.label === label && q.at >= after);
  if (p === undefined) throw new Error(`no ${kind} ${label} in the seed`);
  const out = bytes.slice();
  writeInt(out, p.at, p.width, value);
  return { bytes: out, at: p.at, was: p.value };
}

/** The findings, built from the session seeds. */
export async function findings(): Promise<Finding[]> {
  const seeds = await loadSessionSeeds();
  const seed = (name: string) => {
    const s = seeds.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no seed ${name}`);
    return s.bytes;
  };
  const echo = seed("unary.echo_string");
  const decimal = seed("unary.echo_decimal");
  const scale = seed("exchange.exchange_scale");
  const producer = seed("producer.cancellable_producer");
  const out: Finding[] = [];
  const add = (
    name: string,
    seedName: string,
    path: string | null,
    r: { bytes: Uint8Array; at: number; was: number },
    what: string,
  ) =>
    out.push({
      name,
      seedName,
      path,
      bytes: r.bytes,
      desc: `${what} (@${r.at}, was ${r.was})`,
    });

  add(
    "schema-fields-count",
    "unary.echo_string",
    "/ConformanceService/echo_string",
    setPoint(echo, "vector-length", "Schema.fields", 0x7fffffff),
    "Schema.fields count -> 2147483647",
  );
  add(
    "record-batch-nodes-count",
    "unary.echo_string",
    "/ConformanceService/echo_string",
    setPoint(echo, "vector-length", "RecordBatch.nodes", 0x7fffffff),
    "RecordBatch.nodes count -> 2147483647",
  );
  add(
    "record-batch-buffers-count",
    "unary.echo_string",
    "/ConformanceService/echo_string",
    setPoint(echo, "vector-length", "RecordBatch.buffers", 0xffffff),
    "RecordBatch.buffers count -> 16777215",
  );
  add(
    "decimal-field-typed-as-map",
    "unary.echo_decimal",
    "/ConformanceService/echo_decimal",
    setPoint(decimal, "union-type", "Schema.fields[0].type_type", 17),
    "field type tag Decimal(7) -> 17",
  );

  // Conversations: [request schema, request batch, EOS, input schema, inputs..., EOS].
  const parts = splitIpc(scale);
  const inputSchema = parts[3]!;
  out.push({
    name: "input-stream-without-schema",
    seedName: "exchange.exchange_scale",
    path: null,
    bytes: concat([scale.subarray(0, inputSchema.start), scale.subarray(inputSchema.end)]),
    desc: `exchange_scale with its input stream's schema message (bytes ${inputSchema.start}..${inputSchema.end}) removed`,
  });
  add(
    "input-int64-overflow",
    "exchange.exchange_scale",
    null,
    setPoint(scale, "int64", "RecordBatch.nodes[0].length", (1n << 63n) - 1n, inputSchema.end),
    "first input's nodes[0].length -> 2^63-1",
  );
  const tick = splitIpc(producer)[4]!;
  const tickLength = producer.slice();
  const lengthAt = tick.eos ? tick.start : tick.lengthAt;
  writeInt(tickLength, lengthAt, 4, 0x7fffffff);
  out.push({
    name: "tick-length-prefix-overflow",
    seedName: "producer.cancellable_producer",
    path: null,
    bytes: tickLength,
    desc: `cancellable_producer with its first tick's message length (@${lengthAt}) -> 2147483647`,
  });
  return out;
}

/** The findings as cases of `transport` (HTTP: those that are one request), indexed from -3 down. */
export async function findingCases(transport: TransportName, runSeed: number): Promise<FuzzCase[]> {
  const all = await findings();
  const out: FuzzCase[] = [];
  all.forEach((f, i) => {
    const base = {
      transport,
      index: -3 - i,
      runSeed,
      seedName: f.seedName,
      mutator: `finding-${f.name}`,
      desc: f.desc,
    };
    if (transport === "http") {
      if (f.path !== null) {
        out.push({
          ...base,
          input: { kind: "http", method: "POST", path: f.path, headers: [["content-type", ARROW]], body: f.bytes },
        });
      }
    } else {
      out.push({ ...base, input: { kind: "session", writes: [f.bytes] } });
    }
  });
  return out;
}
