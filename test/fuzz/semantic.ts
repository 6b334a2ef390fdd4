/**
 * Mutations above the byte level: a valid IPC stream decoded, its batch metadata rewritten, and
 * encoded again. The framing stays valid, so these reach dispatch (routing keys, versions, the
 * shared-memory keys, cancel markers, enormous or odd metadata) rather than the decoder.
 */
import type { RecordBatch, Schema } from "apache-arrow";
import { recordBatch } from "../../src/wire/batches.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { encodeStream, IpcStreamDecoder } from "../../src/wire/ipc.js";
import { concat, type Mutation } from "./mutators.js";
import type { Rng } from "./rng.js";

/** The first IPC stream of `bytes`, decoded, and where it ends; null when it does not decode. */
export async function firstStream(
  bytes: Uint8Array,
): Promise<{ schema: Schema; batches: RecordBatch[]; end: number } | null> {
  async function* once(): AsyncGenerator<Uint8Array> {
    yield bytes;
  }
  const framer = new MessageFramer(once());
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  let used = 0;
  try {
    for (;;) {
      const f = await framer.next();
      if (f === "end") return null;
      if (f === "eos") {
        used += 8;
        break;
      }
      used += f.wireBytes;
      const out = decoder.accept(f);
      if (out !== null && "numRows" in out) batches.push(out);
    }
  } catch {
    return null;
  }
  if (decoder.schema === null) return null;
  return { schema: decoder.schema, batches, end: used };
}

/** A stream's bytes with its batches' metadata replaced. */
export function reencode(
  schema: Schema,
  batches: readonly RecordBatch[],
  edit: (md: Map<string, string>, i: number) => void,
): Uint8Array {
  const out = batches.map((b, i) => {
    const md = new Map(b.metadata);
    edit(md, i);
    return recordBatch(b.schema, b.data, md);
  });
  return concat(encodeStream(schema, out));
}

/** Metadata edits for a request batch, by name. */
export const REQUEST_EDITS: readonly (readonly [string, (md: Map<string, string>, rng: Rng) => void])[] = [
  ["drop vgi_rpc.method", (md) => md.delete("vgi_rpc.method")],
  ["unknown method", (md) => md.set("vgi_rpc.method", "no_such_method")],
  ["empty method", (md) => md.set("vgi_rpc.method", "")],
  ["64 KiB method name", (md) => md.set("vgi_rpc.method", "m".repeat(65536))],
  [
    "method of another kind",
    (md, rng) =>
      md.set(
        "vgi_rpc.method",
        rng.pick(["produce_n", "exchange_scale", "echo_int", "void_noop", "__describe__", "__transport_options__"]),
      ),
  ],
  ["request_version 2", (md) => md.set("vgi_rpc.request_version", "2")],
  ["drop request_version", (md) => md.delete("vgi_rpc.request_version")],
  ["protocol_version 99.0.0", (md) => md.set("vgi_rpc.protocol_version", "99.0.0")],
  ["garbage protocol_version", (md) => md.set("vgi_rpc.protocol_version", "\u0000\uffff..")],
  ["unknown protocol", (md) => md.set("vgi_rpc.protocol", "no.Such.Protocol")],
  ["drop protocol", (md) => md.delete("vgi_rpc.protocol")],
  ["cancel marker on a request", (md) => md.set("vgi_rpc.cancel", "1")],
  ["log level on a request", (md) => md.set("vgi_rpc.log_level", "EXCEPTION")],
  ["stream state on a request", (md) => md.set("vgi_rpc.stream_state#b64", "AAAA")],
  [
    "shm segment path traversal",
    (md) => {
      md.set("vgi_rpc.shm_segment_name", "../../../../etc/passwd");
      md.set("vgi_rpc.shm_segment_size", "4096");
    },
  ],
  [
    "shm segment that does not exist",
    (md) => {
      md.set("vgi_rpc.shm_segment_name", "quiver_fuzz_missing_segment");
      md.set("vgi_rpc.shm_segment_size", "1048576");
    },
  ],
  [
    "shm segment of absurd size",
    (md) => {
      md.set("vgi_rpc.shm_segment_name", "quiver_fuzz_missing_segment");
      md.set("vgi_rpc.shm_segment_size", "99999999999999999999999");
    },
  ],
  [
    "shm pointer with no segment",
    (md) => {
      md.set("vgi_rpc.shm_offset", "65536");
      md.set("vgi_rpc.shm_length", "64");
    },
  ],
  [
    "shm pointer with garbage offsets",
    (md) => {
      md.set("vgi_rpc.shm_offset", "-1");
      md.set("vgi_rpc.shm_length", "1e308");
    },
  ],
  ["external location pointer", (md) => md.set("vgi_rpc.location", "http://127.0.0.1:9/x")],
  [
    "10 000 metadata entries",
    (md) => {
      for (let i = 0; i < 10_000; i++) md.set(`k${i}`, "v");
    },
  ],
  ["1 MiB metadata value", (md) => md.set("x-big", "v".repeat(1 << 20))],
  ["request id of 64 KiB", (md) => md.set("vgi_rpc.request_id", "r".repeat(65536))],
  ["malformed traceparent", (md) => md.set("traceparent", "00-zz-yy-01")],
  ["non-UTF-8-looking key", (md) => md.set("\ud800", "\udfff")],
];

/**
 * Rewrites the request batch's metadata of a session conversation (the rest of the bytes kept),
 * or null when the first stream does not decode.
 */
export async function metadataRewrite(rng: Rng, conversation: Uint8Array): Promise<Mutation | null> {
  const first = await firstStream(conversation);
  if (first === null || first.batches.length === 0) return null;
  const [name, edit] = rng.pick(REQUEST_EDITS);
  const head = reencode(first.schema, first.batches, (md) => edit(md, rng));
  return {
    bytes: concat([head, conversation.subarray(first.end)]),
    mutator: "metadata-rewrite",
    desc: name,
  };
}
