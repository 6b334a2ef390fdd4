/**
 * HTTP content codings as the reference negotiates them: request bodies may arrive as `gzip` or
 * `zstd` (decoded under a cap against decompression bombs: see inflate.ts); responses are encoded
 * with the first coding the client lists (`X-VGI-Accept-Encoding` before `Accept-Encoding`) that
 * this runtime can produce: gzip (node:zlib) and zstd (WebAssembly zstd; Node 20's zlib has none).
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { Zstd } from "@hpcc-js/wasm-zstd";
import { compressOnThread } from "./zstd-thread.js";

/** A content coding vgi-rpc speaks. */
export type Encoding = "zstd" | "gzip";

let zstd: Zstd | null = null;
let zstdLoading: Promise<Zstd | null> | null = null;

/**
 * Loads the zstd compressor (zstd compiled to WebAssembly, shipped inside `@hpcc-js/wasm-zstd`)
 * once per process. Resolves null if it cannot load; responses then go out uncompressed.
 */
export function loadZstd(): Promise<Zstd | null> {
  zstdLoading ??= Zstd.load().then(
    (z) => {
      zstd = z;
      return z;
    },
    () => null,
  );
  return zstdLoading;
}

/** Codings this transport produces for responses, in the server's preference order. */
export function producibleEncodings(): Encoding[] {
  return ["zstd", "gzip"];
}

/** Codings accepted on request bodies. */
export const DECODABLE_ENCODINGS: readonly Encoding[] = ["zstd", "gzip"];

/** Parses an `Accept-Encoding`-style list, keeping order and dropping q-values and unknown tokens. */
export function parseEncodingList(header: string | null | undefined): ("zstd" | "gzip" | "identity")[] {
  const out: ("zstd" | "gzip" | "identity")[] = [];
  for (const raw of (header ?? "").split(",")) {
    const token = raw.split(";", 1)[0]!.trim().toLowerCase();
    if ((token === "zstd" || token === "gzip" || token === "identity") && !out.includes(token)) out.push(token);
  }
  return out;
}

/** The response coding a client's headers ask for (see `pickResponseEncoding`). */
export interface ResponseEncoding {
  readonly encoding: Encoding | null;
  readonly custom: boolean;
}

/** Recent answers of `pickResponseEncoding` per `enabled` list: clients send a few header values, over and over. */
const picked = new WeakMap<readonly Encoding[], Map<string, ResponseEncoding>>();
const PICKED_MAX = 64;

/**
 * Picks the response coding: the first the client lists that `enabled` holds, the VGI header's
 * list first. Returns null for no overlap or an explicit `identity` before any match; `custom` says
 * the answer must be stamped on `X-VGI-Content-Encoding` rather than `Content-Encoding`.
 */
export function pickResponseEncoding(
  acceptEncoding: string | null,
  vgiAcceptEncoding: string | null,
  enabled: readonly Encoding[],
): ResponseEncoding {
  let memo = picked.get(enabled);
  if (memo === undefined) {
    memo = new Map();
    picked.set(enabled, memo);
  }
  const key = `${acceptEncoding ?? "\u0000"}\n${vgiAcceptEncoding ?? "\u0000"}`;
  let answer = memo.get(key);
  if (answer === undefined) {
    answer = Object.freeze(pick(acceptEncoding, vgiAcceptEncoding, enabled));
    if (memo.size >= PICKED_MAX) memo.clear();
    memo.set(key, answer);
  }
  return answer;
}

function pick(
  acceptEncoding: string | null,
  vgiAcceptEncoding: string | null,
  enabled: readonly Encoding[],
): ResponseEncoding {
  const standard = parseEncodingList(acceptEncoding);
  const custom = parseEncodingList(vgiAcceptEncoding);
  for (const enc of [...custom, ...standard.filter((e) => !custom.includes(e))]) {
    if (enc === "identity") return { encoding: null, custom: false };
    if (enabled.includes(enc)) return { encoding: enc, custom: custom.includes(enc) && !standard.includes(enc) };
  }
  return { encoding: null, custom: custom.length > 0 };
}

/**
 * Bodies from this size up are compressed off the event loop (gzip on libuv's thread pool, zstd on
 * a worker thread): compressing costs 20-100 ms per MiB, which would stall every other
 * connection; smaller ones cost less than the hop.
 */
const ASYNC_GZIP_MIN_BYTES = 256 * 1024;

const gzipAsync = promisify(zlib.gzip);

/**
 * Encodes a response body (zstd frames carry their content size, which eager decoders need).
 * Returns null when the coding is unavailable (zstd failed to load), so the body goes out as is.
 */
export async function encodeBody(
  encoding: Encoding,
  body: Uint8Array,
  levels: { readonly gzip?: number; readonly zstd?: number } = {},
): Promise<Uint8Array | null> {
  if (encoding === "gzip") {
    const options = { level: levels.gzip ?? 6 };
    return body.byteLength < ASYNC_GZIP_MIN_BYTES ? zlib.gzipSync(body, options) : gzipAsync(body, options);
  }
  const level = levels.zstd ?? 1;
  // Without the thread a large body goes out uncompressed rather than stall every connection.
  if (body.byteLength >= ASYNC_GZIP_MIN_BYTES) return compressOnThread(body, level);
  const z = zstd ?? (await loadZstd());
  return z === null ? null : z.compress(body, level);
}
