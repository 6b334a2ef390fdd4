/**
 * HTTP cases: mutated request bodies (the byte mutators, on bodies the HTTP client really sent),
 * request headers (content type and coding lies, a body shorter than its Content-Length, odd
 * negotiation headers), compressed bodies (gzip and zstd, valid, corrupt, truncated, bombs),
 * state tokens (garbled, truncated, swapped, forged, expired, and re-sealed around hostile
 * plaintext with the worker's own key), sticky-session tokens (garbled, random, sealed around
 * hostile frames with the worker's key, on calls and on `DELETE /__session__`) and routes.
 */
import { gzipSync } from "node:zlib";
import { ANONYMOUS } from "../../src/protocol/context.js";
import { tokenCipher } from "../../src/transports/http/aead.js";
import { sealSessionToken, sessionAad } from "../../src/transports/http/session-token.js";
import { openStateTokenWithTime, type StateTokenKind, sealStateToken } from "../../src/wire/state-token.js";
import type { FuzzCase, HttpInput } from "./cases.js";
import { caseRng } from "./cases.js";
import { type ByteSeed, concat, hugeMetadataCount, mutate, prefixSplice } from "./mutators.js";
import type { Rng } from "./rng.js";
import type { HttpSeed } from "./seeds.js";
import { firstStream, metadataRewrite, reencode } from "./semantic.js";

export const ARROW = "application/vnd.apache.arrow.stream";
const CURSOR_KEY = "vgi_rpc.stream_state#b64";
const CALL_KEY = "vgi_rpc.call_state#b64";

export interface HttpCaseContext {
  readonly seeds: readonly HttpSeed[];
  /** The worker's `--token-key`. */
  readonly tokenKey: Uint8Array;
  /** The tokens of every `/exchange` seed. */
  readonly tokens: readonly SeedTokens[];
}

/** The context for `httpCase`: the seeds, the key, and the tokens the `/exchange` seeds carry. */
export async function httpCaseContext(seeds: readonly HttpSeed[], tokenKey: Uint8Array): Promise<HttpCaseContext> {
  const tokens: SeedTokens[] = [];
  for (const s of seeds) {
    if (!s.path.endsWith("/exchange")) continue;
    const md = (await firstStream(s.body))?.batches[0]?.metadata;
    if (md === undefined) continue;
    const cursor = md.get(CURSOR_KEY);
    const call = md.get(CALL_KEY);
    tokens.push({ path: s.path, ...(cursor === undefined ? {} : { cursor }), ...(call === undefined ? {} : { call }) });
  }
  return { seeds, tokenKey, tokens };
}

function withHeader(headers: readonly (readonly [string, string])[], name: string, value: string | null) {
  const out: [string, string][] = headers
    .filter(([k]) => k.toLowerCase() !== name.toLowerCase())
    .map(([k, v]) => [k, v]);
  if (value !== null) out.push([name, value]);
  return out;
}

function baseInput(seed: HttpSeed): HttpInput {
  return {
    kind: "http",
    method: "POST",
    path: seed.path,
    headers: withHeader(seed.headers, "content-type", ARROW),
    body: seed.body,
  };
}

// ---------------------------------------------------------------------------------------------
// Compression, by hand where it matters

/** zstd frame magic. */
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
/** Frame header: no content size, no checksum, window 128 KiB (exponent 7). */
const ZSTD_HEADER = [...ZSTD_MAGIC, 0x00, 0x38];
const ZSTD_BLOCK_MAX = 128 * 1024;

function blockHeader(last: boolean, type: 0 | 1 | 2, size: number): number[] {
  const v = (last ? 1 : 0) | (type << 1) | (size << 3);
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff];
}

/** A valid zstd frame of raw (stored) blocks holding `data`. */
export function zstdStored(data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from(ZSTD_HEADER)];
  if (data.byteLength === 0) parts.push(Uint8Array.from(blockHeader(true, 0, 0)));
  for (let at = 0; at < data.byteLength; at += ZSTD_BLOCK_MAX) {
    const chunk = data.subarray(at, Math.min(data.byteLength, at + ZSTD_BLOCK_MAX));
    parts.push(Uint8Array.from(blockHeader(at + ZSTD_BLOCK_MAX >= data.byteLength, 0, chunk.byteLength)), chunk);
  }
  return concat(parts);
}

/** A zstd frame of RLE blocks: `totalBytes` zero bytes in 4 bytes per 128 KiB. */
export function zstdBomb(totalBytes: number): Uint8Array {
  const blocks = Math.ceil(totalBytes / ZSTD_BLOCK_MAX);
  const out = new Uint8Array(ZSTD_HEADER.length + blocks * 4);
  out.set(ZSTD_HEADER, 0);
  for (let i = 0; i < blocks; i++) {
    out.set([...blockHeader(i === blocks - 1, 1, ZSTD_BLOCK_MAX), 0], ZSTD_HEADER.length + i * 4);
  }
  return out;
}

/** A zstd frame declaring a content size of `declared` bytes, holding one small raw block. */
export function zstdHugeContentSize(declared: bigint): Uint8Array {
  const fcs = new Uint8Array(8);
  new DataView(fcs.buffer).setBigUint64(0, declared, true);
  // FHD: content-size field of 8 bytes (flag 3), single segment (no window descriptor).
  return concat([
    Uint8Array.from([...ZSTD_MAGIC, 0xe0]),
    fcs,
    Uint8Array.from(blockHeader(true, 0, 4)),
    Uint8Array.from([1, 2, 3, 4]),
  ]);
}

let gzipBombMember: Uint8Array | null = null;

/** `mib` MiB of zeros as concatenated gzip members (a few hundred bytes per MiB). */
export function gzipBomb(mib: number): Uint8Array {
  gzipBombMember ??= new Uint8Array(gzipSync(new Uint8Array(1 << 20), { level: 9 }));
  const member = gzipBombMember;
  const out = new Uint8Array(member.byteLength * mib);
  for (let i = 0; i < mib; i++) out.set(member, i * member.byteLength);
  return out;
}

function gzip(data: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(data));
}

function flip(rng: Rng, data: Uint8Array, from = 0): Uint8Array {
  const out = Uint8Array.prototype.slice.call(data);
  const k = rng.range(1, 8);
  for (let i = 0; i < k && out.byteLength > from; i++) {
    const at = rng.range(from, out.byteLength - 1);
    out[at] = out[at]! ^ (1 << rng.int(8));
  }
  return out;
}

const COMPRESSIONS: readonly (readonly [
  string,
  (rng: Rng, body: Uint8Array, others: readonly ByteSeed[]) => { coding: string; body: Uint8Array },
])[] = [
  ["gzip of the body", (_r, b) => ({ coding: "gzip", body: gzip(b) })],
  ["gzip of a mutated body", (r, b, o) => ({ coding: "gzip", body: gzip(mutate(r, b, o).bytes) })],
  ["gzip with bit flips", (r, b) => ({ coding: "gzip", body: flip(r, gzip(b)) })],
  [
    "gzip truncated",
    (r, b) => {
      const z = gzip(b);
      return { coding: "gzip", body: z.subarray(0, r.range(1, z.byteLength - 1)) };
    },
  ],
  ["gzip of gzip, declared once", (_r, b) => ({ coding: "gzip", body: gzip(gzip(b)) })],
  ["gzip bomb: 320 MiB of zeros (over the 256 MiB cap)", () => ({ coding: "gzip", body: gzipBomb(320) })],
  ["gzip bomb: 200 MiB of zeros (under the cap)", () => ({ coding: "gzip", body: gzipBomb(200) })],
  ["gzip body after a valid member", (_r, b) => ({ coding: "gzip", body: concat([gzip(b), gzip(b)]) })],
  ["zstd of the body (stored blocks)", (_r, b) => ({ coding: "zstd", body: zstdStored(b) })],
  ["zstd of a mutated body", (r, b, o) => ({ coding: "zstd", body: zstdStored(mutate(r, b, o).bytes) })],
  ["zstd with bit flips", (r, b) => ({ coding: "zstd", body: flip(r, zstdStored(b)) })],
  [
    "zstd truncated",
    (r, b) => {
      const z = zstdStored(b);
      return { coding: "zstd", body: z.subarray(0, r.range(1, z.byteLength - 1)) };
    },
  ],
  ["zstd bomb: 4 GiB of zeros in RLE blocks", () => ({ coding: "zstd", body: zstdBomb(4 * 1024 ** 3) })],
  ["zstd bomb: 320 MiB of zeros in RLE blocks", () => ({ coding: "zstd", body: zstdBomb(320 * 1024 ** 2) })],
  ["zstd declaring 2^40 bytes of content", () => ({ coding: "zstd", body: zstdHugeContentSize(1n << 40n) })],
  ["zstd declaring 2^64-1 bytes of content", () => ({ coding: "zstd", body: zstdHugeContentSize((1n << 64n) - 1n) })],
  ["zstd header on a plain body", (_r, b) => ({ coding: "zstd", body: b })],
  ["gzip header on a plain body", (_r, b) => ({ coding: "gzip", body: b })],
];

// ---------------------------------------------------------------------------------------------
// Tokens

function aad(kind: StateTokenKind, protocol: string, method: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(["quiver-rpc/http-stream", kind, protocol, method, "", ""]));
}

function fromB64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

function toB64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** The protocol and method of a stream route (`/P/M/init` or `/P/M/exchange`). */
function routeOf(path: string): { protocol: string; method: string } {
  const parts = path
    .split("?")[0]!
    .split("/")
    .filter((p) => p.length > 0);
  return { protocol: parts[0] ?? "", method: parts[1] ?? "" };
}

/** The tokens an `/exchange` seed carries. */
export interface SeedTokens {
  readonly path: string;
  readonly cursor?: string;
  readonly call?: string;
}

interface TokenEnv {
  readonly key: Uint8Array;
  readonly protocol: string;
  readonly method: string;
  /** Tokens of the other streams' seeds. */
  readonly others: readonly SeedTokens[];
}

/** Opens `text` as `kind` (ignoring its age) and seals `fields` again, `at` seconds since the epoch. */
function reseal(
  env: TokenEnv,
  kind: StateTokenKind,
  asKind: StateTokenKind,
  text: string,
  edit: (fields: Uint8Array[]) => Uint8Array[],
  at?: number,
): string {
  const opened = openStateTokenWithTime(kind, fromB64(text), {
    key: env.key,
    aad: aad(kind, env.protocol, env.method),
    ttlSeconds: 0,
  });
  const fields = edit(opened.fields.map((f) => Uint8Array.prototype.slice.call(f)));
  return toB64(
    sealStateToken(asKind, fields, {
      key: env.key,
      aad: aad(asKind, env.protocol, env.method),
      now: at ?? opened.issuedAt,
      nonce: new Uint8Array(24).fill(7),
    }),
  );
}

type TokenEdit = (rng: Rng, md: Map<string, string>, env: TokenEnv) => void;

function editToken(md: Map<string, string>, rng: Rng, fn: (text: string, key: string) => string | null): string {
  const keys = [CURSOR_KEY, CALL_KEY].filter((k) => md.has(k));
  if (keys.length === 0) return "no token";
  const key = rng.pick(keys);
  const next = fn(md.get(key)!, key);
  if (next === null) md.delete(key);
  else md.set(key, next);
  return key === CURSOR_KEY ? "cursor" : "call";
}

const TOKEN_EDITS: readonly (readonly [string, TokenEdit])[] = [
  [
    "garbled base64",
    (r, md) =>
      editToken(md, r, (t) => {
        const chars = t.split("");
        for (let i = 0; i < r.range(1, 4); i++) chars[r.int(chars.length)] = r.pick(["!", "*", " ", "\u00e9", "="]);
        return chars.join("");
      }),
  ],
  ["truncated", (r, md) => editToken(md, r, (t) => t.slice(0, r.int(t.length)))],
  ["empty", (r, md) => editToken(md, r, () => "")],
  ["dropped", (r, md) => editToken(md, r, () => null)],
  ["1 MiB of base64", (r, md) => editToken(md, r, () => "A".repeat(1 << 20))],
  ["bit flips in the sealed bytes", (r, md) => editToken(md, r, (t) => toB64(flip(r, fromB64(t))))],
  [
    "version byte changed",
    (r, md) =>
      editToken(md, r, (t) => {
        const b = fromB64(t);
        b[0] = r.pick([0, 2, 255]);
        return toB64(b);
      }),
  ],
  [
    "cursor and call tokens swapped",
    (_r, md) => {
      const c = md.get(CURSOR_KEY);
      const k = md.get(CALL_KEY);
      if (c !== undefined && k !== undefined) {
        md.set(CURSOR_KEY, k);
        md.set(CALL_KEY, c);
      }
    },
  ],
  [
    "tokens of another stream",
    (r, md, env) => {
      if (env.others.length === 0) return;
      const other = r.pick(env.others);
      if (other.cursor !== undefined) md.set(CURSOR_KEY, other.cursor);
      if (other.call !== undefined && r.chance(0.7)) md.set(CALL_KEY, other.call);
    },
  ],
  [
    "expired (re-sealed two hours old)",
    (r, md, env) =>
      editToken(md, r, (t, key) => {
        const kind: StateTokenKind = key === CURSOR_KEY ? "cursor" : "call";
        return reseal(env, kind, kind, t, (f) => f, Math.floor(Date.now() / 1000) - 7200);
      }),
  ],
  [
    "issued far in the future",
    (r, md, env) =>
      editToken(md, r, (t, key) => {
        const kind: StateTokenKind = key === CURSOR_KEY ? "cursor" : "call";
        return reseal(env, kind, kind, t, (f) => f, 4_000_000_000);
      }),
  ],
  [
    "wrong kind (re-sealed as the other kind)",
    (r, md, env) =>
      editToken(md, r, (t, key) => {
        const kind: StateTokenKind = key === CURSOR_KEY ? "cursor" : "call";
        return reseal(env, kind, kind === "cursor" ? "call" : "cursor", t, (f) => f);
      }),
  ],
  [
    "re-sealed with a mutated field",
    (r, md, env) =>
      editToken(md, r, (t, key) => {
        const kind: StateTokenKind = key === CURSOR_KEY ? "cursor" : "call";
        return reseal(env, kind, kind, t, (fields) => {
          const i = r.int(fields.length);
          fields[i] = mutate(r, fields[i]!, []).bytes;
          return fields;
        });
      }),
  ],
  [
    "re-sealed with a field dropped or added",
    (r, md, env) =>
      editToken(md, r, (t, key) => {
        const kind: StateTokenKind = key === CURSOR_KEY ? "cursor" : "call";
        return reseal(env, kind, kind, t, (fields) => {
          if (r.chance(0.5)) fields.pop();
          else fields.push(r.bytes(r.range(0, 64)));
          return fields;
        });
      }),
  ],
];

// ---------------------------------------------------------------------------------------------
// Headers and routes

const HEADER_EDITS: readonly (readonly [string, (r: Rng, i: HttpInput) => HttpInput])[] = [
  ["no content type", (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-type", null) })],
  ["content type text/plain", (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-type", "text/plain") })],
  [
    "content type with parameters",
    (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-type", `${ARROW}; charset=binary`) }),
  ],
  [
    "content type in capitals",
    (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-type", ARROW.toUpperCase()) }),
  ],
  [
    "8 KiB content type",
    (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-type", `${ARROW};${"x".repeat(8192)}`) }),
  ],
  ["content encoding br", (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-encoding", "br") })],
  ["content encoding deflate", (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-encoding", "deflate") })],
  [
    "content encoding 'gzip, zstd'",
    (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-encoding", "gzip, zstd") }),
  ],
  ["content encoding identity", (_r, i) => ({ ...i, headers: withHeader(i.headers, "content-encoding", "identity") })],
  ["body shorter than its Content-Length", (r, i) => ({ ...i, sendBytes: r.int(Math.max(1, i.body.byteLength)) })],
  ["response cap -1", (_r, i) => ({ ...i, headers: withHeader(i.headers, "vgi-accept-max-response-bytes", "-1") })],
  ["response cap 0", (_r, i) => ({ ...i, headers: withHeader(i.headers, "vgi-accept-max-response-bytes", "0") })],
  [
    "response cap 10^30",
    (_r, i) => ({
      ...i,
      headers: withHeader(i.headers, "vgi-accept-max-response-bytes", "1000000000000000000000000000000"),
    }),
  ],
  [
    "response cap not a number",
    (_r, i) => ({ ...i, headers: withHeader(i.headers, "vgi-accept-max-response-bytes", "lots") }),
  ],
  [
    "odd accept-encoding lists",
    (_r, i) => ({
      ...i,
      headers: withHeader(
        withHeader(i.headers, "accept-encoding", "zstd;q=0, gzip;q=0, identity;q=0, *"),
        "x-vgi-accept-encoding",
        "zstd, zstd, gzip, br",
      ),
    }),
  ],
  ["64 KiB request id", (_r, i) => ({ ...i, headers: withHeader(i.headers, "x-request-id", "r".repeat(65536)) })],
  [
    "10 000 cookies",
    (_r, i) => ({
      ...i,
      headers: withHeader(i.headers, "cookie", Array.from({ length: 10000 }, (_, k) => `c${k}=v`).join("; ")),
    }),
  ],
];

const ROUTE_EDITS: readonly (readonly [string, (r: Rng, i: HttpInput) => HttpInput])[] = [
  ["unary body on /init", (_r, i) => ({ ...i, path: `${i.path.replace(/\/(init|exchange)$/, "")}/init` })],
  ["stream body on the unary route", (_r, i) => ({ ...i, path: i.path.replace(/\/(init|exchange)$/, "") })],
  ["body on /exchange", (_r, i) => ({ ...i, path: `${i.path.replace(/\/(init|exchange)$/, "")}/exchange` })],
  ["unknown method", (_r, i) => ({ ...i, path: "/ConformanceService/no_such_method" })],
  [
    "another method than the body names",
    (r, i) => ({
      ...i,
      path: `/ConformanceService/${r.pick(["echo_int", "produce_n", "exchange_scale", "void_noop"])}`,
    }),
  ],
  [
    "percent in the protocol",
    (_r, i) => ({ ...i, path: i.path.replace("ConformanceService", "Conformance%53ervice") }),
  ],
  ["64 KiB path", (_r, i) => ({ ...i, path: `/${"p".repeat(65536)}` })],
  ["doubled slashes", (_r, i) => ({ ...i, path: i.path.replace(/\//g, "//") })],
  ["GET with a body", (_r, i) => ({ ...i, method: "GET" })],
  ["PUT", (_r, i) => ({ ...i, method: "PUT" })],
  ["health with a hostile body", (_r, i) => ({ ...i, path: "/health" })],
];

// ---------------------------------------------------------------------------------------------
// Sticky-session tokens (the worker runs with --sticky)

const SESSION_HEADER = "vgi-session";

/** A session-token envelope (version 1, the anonymous caller's AAD) sealing `plain` under `key`. */
function sessionEnvelope(r: Rng, key: Uint8Array, plain: Uint8Array): string {
  const nonce = r.bytes(24);
  const sealed = tokenCipher.seal(key, nonce, sessionAad(ANONYMOUS), plain);
  return Buffer.from(concat([Uint8Array.of(1), nonce, sealed])).toString("base64url");
}

/** A session frame whose server-id length byte is `length`, followed by `rest` bytes. */
function lyingFrame(r: Rng, length: number, rest: number): Uint8Array {
  return concat([r.bytes(8), Uint8Array.of(length), r.bytes(rest)]);
}

const SESSION_EDITS: readonly (readonly [string, (r: Rng, i: HttpInput, key: Uint8Array) => string])[] = [
  [
    "garbled session token",
    (r) =>
      Array.from({ length: r.range(1, 160) }, () => r.pick(["A", "z", "0", "-", "_", "=", "+", "/", " ", "é"])).join(
        "",
      ),
  ],
  ["session token of random bytes", (r) => Buffer.from(r.bytes(r.range(0, 200))).toString("base64url")],
  ["8 KiB session token", () => "A".repeat(8192)],
  ["session token sealed around random plaintext", (r, _i, key) => sessionEnvelope(r, key, r.bytes(r.range(0, 96)))],
  [
    "session token whose server-id length runs past its frame",
    (r, _i, key) => sessionEnvelope(r, key, lyingFrame(r, r.range(21, 255), r.range(0, 40))),
  ],
  [
    "session token whose frame is longer than it says",
    (r, _i, key) => sessionEnvelope(r, key, lyingFrame(r, r.range(0, 12), r.range(40, 300))),
  ],
  [
    "session token for an unknown session of another worker",
    (r, _i, key) =>
      sealSessionToken(
        {
          serverId: Buffer.from(r.bytes(6)).toString("hex"),
          sessionId: r.bytes(12),
          expiresAt: r.pick([0, 1_900_000_000, Number.MAX_SAFE_INTEGER]),
        },
        key,
        sessionAad(ANONYMOUS),
      ),
  ],
];

/** Case `index` of the HTTP transport. */
export async function httpCase(runSeed: number, index: number, ctx: HttpCaseContext): Promise<FuzzCase> {
  const rng = caseRng(runSeed, "http", index);
  const seed = rng.pick(ctx.seeds);
  const others: ByteSeed[] = ctx.seeds.map((s) => ({ name: s.name, bytes: s.body }));
  const base = baseInput(seed);
  const hasTokens = seed.path.endsWith("/exchange");
  const cls = rng.weighted([
    ["body", 5],
    ["metadata", 1],
    ["headers", 1.5],
    ["compression", 2],
    ["tokens", hasTokens ? 3 : 0],
    ["route", 1],
    ["session", 1],
  ] as const);
  const made = (mutator: string, desc: string, input: HttpInput): FuzzCase => ({
    transport: "http",
    index,
    runSeed,
    seedName: seed.name,
    mutator,
    desc,
    input,
  });
  if (cls === "metadata") {
    const m = await metadataRewrite(rng, seed.body);
    if (m !== null) return made(m.mutator, m.desc, { ...base, body: m.bytes });
  }
  if (cls === "headers") {
    const [name, edit] = rng.pick(HEADER_EDITS);
    return made("http-headers", name, edit(rng, base));
  }
  if (cls === "route") {
    const [name, edit] = rng.pick(ROUTE_EDITS);
    return made("http-route", name, edit(rng, base));
  }
  if (cls === "session") {
    const [name, edit] = rng.pick(SESSION_EDITS);
    const token = edit(rng, base, ctx.tokenKey);
    let input: HttpInput = { ...base, headers: withHeader(base.headers, SESSION_HEADER, token) };
    let desc = name;
    const where = rng.weighted([
      ["call", 3],
      ["delete", 2],
      ["opted-in call with a mutated body", 1],
      ["doubled header", 1],
    ] as const);
    if (where === "delete") {
      input = {
        ...input,
        method: "DELETE",
        path: "/__session__",
        body: rng.chance(0.5) ? new Uint8Array(0) : base.body,
      };
      desc = `DELETE /__session__: ${name}`;
    } else if (where === "opted-in call with a mutated body") {
      const m = mutate(rng, seed.body, others);
      input = { ...input, headers: withHeader(input.headers, "vgi-session-accept", "true"), body: m.bytes };
      desc = `${name}, opted in, body ${m.desc}`;
    } else if (where === "doubled header") {
      input = { ...input, headers: [...input.headers, [SESSION_HEADER, token]] };
      desc = `${name}, sent twice`;
    }
    return made("http-session", desc, input);
  }
  if (cls === "compression") {
    const [name, fn] = rng.pick(COMPRESSIONS);
    const { coding, body } = fn(rng, seed.body, others);
    return made("http-compression", name, {
      ...base,
      headers: withHeader(base.headers, "content-encoding", coding),
      body,
    });
  }
  if (cls === "tokens") {
    const first = await firstStream(seed.body);
    if (first !== null) {
      const [name, edit] = rng.pick(TOKEN_EDITS);
      const { protocol, method } = routeOf(seed.path);
      const env: TokenEnv = {
        key: ctx.tokenKey,
        protocol,
        method,
        others: ctx.tokens.filter((t) => !t.path.startsWith(`/${protocol}/${method}/`)),
      };
      let desc = name;
      try {
        const body = reencode(first.schema, first.batches, (md) => {
          const which = edit(rng, md, env);
          if (typeof which === "string") desc = `${name} (${which} token)`;
        });
        return made("http-token", desc, { ...base, body });
      } catch (err) {
        // A token that does not open under our key (it should): mutate the body instead.
        desc = `${name}: ${(err as Error).message}`;
      }
    }
  }
  const m = mutate(rng, seed.body, others);
  return made(m.mutator, m.desc, { ...base, body: m.bytes });
}

/** The two known reproductions as HTTP bodies (of the client's `echo_string` request). */
export function httpRegressions(echo: HttpSeed, runSeed: number): FuzzCase[] {
  return [hugeMetadataCount(echo.body), prefixSplice(echo.body, 111)].map((m, i) => ({
    transport: "http",
    index: -1 - i,
    runSeed,
    seedName: echo.name,
    mutator: m.mutator,
    desc: m.desc,
    input: { ...baseInput(echo), body: m.bytes },
  }));
}
