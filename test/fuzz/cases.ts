/**
 * Fuzz cases: what is sent, on which transport, made how. A case is a pure function of (run seed,
 * transport, index) and the seeds; the regression cases are fixed. Cases serialise to JSON (bytes
 * as base64) so a failing one can be replayed exactly.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { type ByteSeed, hugeMetadataCount, mutate, prefixSplice } from "./mutators.js";
import { Rng } from "./rng.js";
import { metadataRewrite } from "./semantic.js";

export type TransportName = "stdio" | "unix" | "tcp" | "ws" | "http" | "shm";

export const TRANSPORTS: readonly TransportName[] = ["stdio", "unix", "tcp", "ws", "http", "shm"];

/** Bytes for a session transport: written in these pieces (WebSocket: one message each). */
export interface SessionInput {
  readonly kind: "session";
  readonly writes: readonly Uint8Array[];
}

/** One HTTP request. */
export interface HttpInput {
  readonly kind: "http";
  readonly method: string;
  readonly path: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
  /**
   * Send only this many body bytes and keep the connection open (a Content-Length the body never
   * reaches). Absent: the whole body.
   */
  readonly sendBytes?: number;
}

/** A shared-memory segment as the case leaves it, plus the bytes on the pipe. */
export interface ShmInput {
  readonly kind: "shm";
  readonly writes: readonly Uint8Array[];
  readonly segment: {
    readonly name: string;
    /** The size advertised and mapped. */
    readonly size: number;
    /** The segment's whole content. */
    readonly image: Uint8Array;
    /** When set, the file is truncated to this many bytes before the case is sent. */
    readonly truncateTo?: number;
  };
}

export type CaseInput = SessionInput | HttpInput | ShmInput;

export interface FuzzCase {
  readonly transport: TransportName;
  /** Index in the run (-1, -2 for the regression cases). */
  readonly index: number;
  readonly runSeed: number;
  readonly seedName: string;
  readonly mutator: string;
  readonly desc: string;
  readonly input: CaseInput;
}

// ---------------------------------------------------------------------------------------------
// Serialisation

interface Json {
  readonly [k: string]: unknown;
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

/** The case as JSON text (shared-memory images gzipped). */
export function caseToJson(c: FuzzCase): string {
  const input = c.input;
  let i: Json;
  if (input.kind === "session") i = { kind: "session", writes: input.writes.map(b64) };
  else if (input.kind === "http") {
    i = {
      kind: "http",
      method: input.method,
      path: input.path,
      headers: input.headers,
      body: b64(input.body),
      ...(input.sendBytes === undefined ? {} : { sendBytes: input.sendBytes }),
    };
  } else {
    i = {
      kind: "shm",
      writes: input.writes.map(b64),
      segment: {
        name: input.segment.name,
        size: input.segment.size,
        imageGz: b64(gzipSync(input.segment.image)),
        ...(input.segment.truncateTo === undefined ? {} : { truncateTo: input.segment.truncateTo }),
      },
    };
  }
  return JSON.stringify({ ...c, input: i }, null, 1);
}

/** A case read back from `caseToJson` text. */
export function caseFromJson(text: string): FuzzCase {
  const j = JSON.parse(text) as Json & { input: Json };
  const i = j.input;
  let input: CaseInput;
  if (i.kind === "session") input = { kind: "session", writes: (i.writes as string[]).map(unb64) };
  else if (i.kind === "http") {
    input = {
      kind: "http",
      method: String(i.method),
      path: String(i.path),
      headers: i.headers as [string, string][],
      body: unb64(String(i.body)),
      ...(typeof i.sendBytes === "number" ? { sendBytes: i.sendBytes } : {}),
    };
  } else if (i.kind === "shm") {
    const s = i.segment as Json;
    input = {
      kind: "shm",
      writes: (i.writes as string[]).map(unb64),
      segment: {
        name: String(s.name),
        size: Number(s.size),
        image: new Uint8Array(gunzipSync(unb64(String(s.imageGz)))),
        ...(typeof s.truncateTo === "number" ? { truncateTo: s.truncateTo } : {}),
      },
    };
  } else {
    throw new Error(`unknown case input kind ${String(i.kind)}`);
  }
  return {
    transport: j.transport as TransportName,
    index: Number(j.index),
    runSeed: Number(j.runSeed),
    seedName: String(j.seedName),
    mutator: String(j.mutator),
    desc: String(j.desc),
    input,
  };
}

// ---------------------------------------------------------------------------------------------
// Session cases

/** `bytes` as one to three writes, split at random points. */
export function splitWrites(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  // At most one piece per byte: the cuts are distinct offsets in 1..length-1.
  const pieces =
    bytes.byteLength < 2
      ? 1
      : Math.min(
          bytes.byteLength,
          rng.weighted([
            [1, 6],
            [2, 3],
            [3, 1],
          ] as const),
        );
  const cuts = new Set<number>();
  while (cuts.size < pieces - 1) cuts.add(rng.range(1, bytes.byteLength - 1));
  const at = [0, ...[...cuts].sort((a, b) => a - b), bytes.byteLength];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < at.length; i++) out.push(bytes.subarray(at[i]!, at[i + 1]!));
  return out;
}

/** The random generator of case `index` of `transport` in run `runSeed`. */
export function caseRng(runSeed: number, transport: TransportName, index: number): Rng {
  return new Rng(runSeed, transport, index);
}

/** Case `index` for a session transport (stdio, Unix, TCP, WebSocket). */
export async function sessionCase(
  runSeed: number,
  transport: TransportName,
  index: number,
  seeds: readonly ByteSeed[],
): Promise<FuzzCase> {
  const rng = caseRng(runSeed, transport, index);
  const seed = rng.pick(seeds);
  const m = (rng.chance(0.1) ? await metadataRewrite(rng, seed.bytes) : null) ?? mutate(rng, seed.bytes, seeds);
  return {
    transport,
    index,
    runSeed,
    seedName: seed.name,
    mutator: m.mutator,
    desc: m.desc,
    input: { kind: "session", writes: splitWrites(rng, m.bytes) },
  };
}

/** The two known reproductions (issue #21) as cases of a session transport. */
export function sessionRegressions(transport: TransportName, echoString: Uint8Array, runSeed: number): FuzzCase[] {
  return [hugeMetadataCount(echoString), prefixSplice(echoString, 111)].map((m, i) => ({
    transport,
    index: -1 - i,
    runSeed,
    seedName: "unary.echo_string",
    mutator: m.mutator,
    desc: m.desc,
    input: { kind: "session", writes: [m.bytes] },
  }));
}
