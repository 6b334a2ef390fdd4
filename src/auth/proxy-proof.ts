/**
 * Proxy proof, as the reference specifies it (`docs/proxy-proof-spec.md`, `vgi_rpc/http/_proof.py`):
 * an HMAC-SHA256 proof a trusted reverse proxy adds to each request (`VGI-Proxy-Proof`), over a
 * timestamp, a nonce and the destination worker's own identifier, keyed by a secret shared only
 * with that worker. The worker recomputes it and compares in constant time. The proof establishes
 * the hop, never the caller: it is a precondition gate ANDed with whatever authenticates the user
 * (`requireAll`), never an alternative credential.
 *
 * Token: `v1.{kid}.{ts}.{nonce}.{mac}`, base64url without padding; the MAC covers
 * `vgi.proxy.proof.v1 \0 kid \0 ts \0 nonce \0 origin_id`. Every refusal looks the same to the
 * caller (401 `proxy_required`, one detail); the reason code goes to the log only.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type Authenticator, AuthFailure, type AuthRequest, authenticated } from "./types.js";

/** The request header carrying the proof. */
export const PROOF_HEADER = "VGI-Proxy-Proof";
/** Advertised (`true`) by a worker that requires proofs. */
export const PROOF_REQUIRED_HEADER = "VGI-Proxy-Proof-Required";
/** The claims key the verified proof is recorded under (`ctx.auth.claims.vgi_proxy_proof`). */
export const PROOF_CLAIMS_KEY = "vgi_proxy_proof";

const DOMAIN_PREFIX = "vgi.proxy.proof.v1";
const DERIVE_LABEL = "vgi.proxy.proof.v1/";
const MAX_HEADER_BYTES = 512;
const SECRET_BYTES = 32;
const KID = /^[A-Za-z0-9_-]{1,64}$/;
const TS = /^[0-9]{1,20}$/;
const NONCE = /^[A-Za-z0-9_-]{22}$/;
const ORIGIN = /^[A-Za-z0-9._:/-]{1,255}$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;
/** Default `replayCapacity`. */
export const DEFAULT_REPLAY_CAPACITY = 100_000;

/** Why a proof was refused: logged, never told to the caller. */
export type ProofReason =
  | "no_proof"
  | "malformed"
  | "unknown_kid"
  | "expired"
  | "not_yet_valid"
  | "bad_mac"
  | "replayed";

/** A refused proof: 401 `proxy_required` with one detail whatever the `reason`. */
export class ProofError extends AuthFailure {
  constructor(
    readonly proofReason: ProofReason,
    readonly diagnosis: string,
  ) {
    super("proxy_required", "proxy proof required");
    this.name = "ProofError";
  }
}

/** The claims a verified (or, in `allow` mode, unverified) proof records. */
export interface ProofClaims {
  readonly verified: "true" | "false";
  /** The label of the proxy that minted it (`""` when unverified). */
  readonly proxy: string;
  readonly kid: string;
  readonly origin_id: string;
  readonly reason: "ok" | ProofReason;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");

function mac(secret: Uint8Array, kid: string, ts: string, nonce: string, originId: string): Buffer {
  return createHmac("sha256", secret).update(`${DOMAIN_PREFIX}\0${kid}\0${ts}\0${nonce}\0${originId}`).digest();
}

function checkId(what: string, value: string, pattern: RegExp): void {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new TypeError(`${what} must match ${pattern}, got ${JSON.stringify(value)}`);
  }
}

/** The secret one proxy shares with one worker, from the proxy's 32-byte base key. */
export function deriveProofSecret(baseKey: Uint8Array, proxyId: string, originId: string): Uint8Array {
  if (baseKey.byteLength !== SECRET_BYTES) throw new RangeError(`baseKey must be ${SECRET_BYTES} bytes`);
  checkId("proxyId", proxyId, ORIGIN);
  checkId("originId", originId, ORIGIN);
  return new Uint8Array(createHmac("sha256", baseKey).update(`${DERIVE_LABEL}${proxyId}\0${originId}`).digest());
}

/** Mints a `VGI-Proxy-Proof` value (what a proxy adds; for proxies written in Node, and tests). */
export function mintProof(
  secret: Uint8Array,
  kid: string,
  originId: string,
  opts: { readonly now?: number; readonly nonce?: string } = {},
): string {
  checkId("kid", kid, KID);
  checkId("originId", originId, ORIGIN);
  const ts = String(opts.now ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? b64(randomBytes(16));
  return `v1.${kid}.${ts}.${nonce}.${b64(mac(secret, kid, ts, nonce, originId))}`;
}

/**
 * Nonces seen within the acceptance window: bounded by time (entries expire after `ttlMs`, in
 * insertion order) and by count (past `capacity` the oldest is dropped, so a flood of distinct
 * nonces costs bounded memory; the timestamp window still bounds a dropped nonce's replay).
 */
export class NonceCache {
  private readonly entries = new Map<string, number>();
  /** Entries dropped for room. */
  evicted = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number = DEFAULT_REPLAY_CAPACITY,
    private readonly clock: () => number = () => performance.now(),
  ) {
    if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
    if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError(`capacity must be a positive integer`);
  }

  /** True when `nonce` is new (and remembers it); false for a replay. */
  checkAndAdd(nonce: string): boolean {
    const now = this.clock();
    for (const [n, at] of this.entries) {
      if (now - at < this.ttlMs) break;
      this.entries.delete(n);
    }
    if (this.entries.has(nonce)) return false;
    while (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
    this.entries.set(nonce, now);
    return true;
  }
}

/** A worker's proof secrets: kid → secret (its label is the kid) or `{ secret, label }`. */
export type ProofSecrets = Readonly<
  Record<string, Uint8Array | { readonly secret: Uint8Array; readonly label: string }>
>;

/**
 * Verifies a proof for `originId`; the claims, or a `ProofError` naming why not. Cheap checks
 * (length, fields, charsets) come before any MAC is computed.
 */
export function verifyProof(
  token: string,
  opts: {
    readonly secrets: ProofSecrets;
    readonly originId: string;
    readonly skewSeconds?: number;
    readonly nonceCache?: NonceCache | null;
    readonly now?: number;
  },
): ProofClaims {
  if (token.length > MAX_HEADER_BYTES) throw new ProofError("malformed", "proof header too long");
  const parts = token.split(".");
  if (parts.length !== 5) throw new ProofError("malformed", `expected 5 fields, got ${parts.length}`);
  const [version, kid, ts, nonce, macText] = parts as [string, string, string, string, string];
  if (version !== "v1") throw new ProofError("malformed", `unsupported version ${JSON.stringify(version)}`);
  if (!KID.test(kid)) throw new ProofError("malformed", "kid charset");
  if (!TS.test(ts)) throw new ProofError("malformed", "ts charset");
  if (!NONCE.test(nonce)) throw new ProofError("malformed", "nonce charset");
  if (!MAC.test(macText)) throw new ProofError("malformed", "mac charset");
  const entry = Object.hasOwn(opts.secrets, kid) ? opts.secrets[kid] : undefined;
  if (entry === undefined) throw new ProofError("unknown_kid", `no secret for kid ${JSON.stringify(kid)}`);
  const { secret, label } = entry instanceof Uint8Array ? { secret: entry, label: kid } : entry;
  const skew = opts.skewSeconds ?? 30;
  const age = (opts.now ?? Math.floor(Date.now() / 1000)) - Number(ts);
  if (age > skew) throw new ProofError("expired", `age=${age}s skew=${skew}s`);
  if (-age > skew) throw new ProofError("not_yet_valid", `age=${age}s skew=${skew}s`);
  const expected = mac(secret, kid, ts, nonce, opts.originId);
  if (!timingSafeEqual(Buffer.from(macText, "base64url"), expected))
    throw new ProofError("bad_mac", "signature mismatch");
  if (opts.nonceCache && !opts.nonceCache.checkAndAdd(nonce)) throw new ProofError("replayed", "nonce already seen");
  return { verified: "true", proxy: label, kid, origin_id: opts.originId, reason: "ok" };
}

/** Parses `kid:hex,kid:hex` (each secret 32 bytes); throws on any malformed entry, never a partial parse. */
export function parseProofSecrets(raw: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const chunk of raw.split(",")) {
    const item = chunk.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    if (colon < 0) throw new TypeError(`expected 'kid:hex', got ${JSON.stringify(item)}`);
    const kid = item.slice(0, colon);
    const hex = item.slice(colon + 1);
    checkId("kid", kid, KID);
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex))
      throw new TypeError(`secret for kid ${JSON.stringify(kid)} is not valid hex`);
    const secret = new Uint8Array(Buffer.from(hex, "hex"));
    if (secret.byteLength !== SECRET_BYTES) {
      throw new RangeError(
        `secret for kid ${JSON.stringify(kid)} must be ${SECRET_BYTES} bytes, got ${secret.byteLength}`,
      );
    }
    out[kid] = secret;
  }
  if (Object.keys(out).length === 0) throw new TypeError("no secrets parsed");
  return out;
}

/**
 * A requirement a request must meet before it is authenticated at all (did it come through the
 * trusted proxy?): no identity of its own, so it is ANDed with a credential (`requireAll`), never
 * offered beside one in a chain.
 */
export interface PreconditionGate {
  readonly name: string;
  /** Where `requireAll` records the gate's claims in the caller's. */
  readonly claimsKey: string;
  /** Headers a trusted proxy must add for the gate to pass (named in 401s). */
  readonly proxyHeaders: readonly string[];
  /** The gate's claims, or throws an `AuthFailure`. */
  check(request: AuthRequest): Readonly<Record<string, string>>;
}

/** `proxyProofGate`'s options. */
export interface ProxyProofOptions {
  /** `require`: refuse requests without a valid proof; `allow`: record the outcome, serve anyway. */
  readonly mode: "require" | "allow";
  /** This worker's identifier, folded into every MAC (never sent). */
  readonly originId: string;
  /** kid → secret (32 bytes), or `{ secret, label }`: several during a key rotation. */
  readonly secrets: ProofSecrets;
  /** Half-width of the timestamp window, in seconds. Default: 30. */
  readonly skewSeconds?: number;
  /** Reject replayed nonces within the window. Default: true. */
  readonly replayCache?: boolean;
  /** Most nonces remembered. Default: 100 000. */
  readonly replayCapacity?: number;
  /** Where refusals are reported (reason and diagnosis: never sent to the caller). Default: none. */
  readonly onReject?: (reason: ProofReason, diagnosis: string, request: AuthRequest) => void;
}

/** The gate of a worker behind a proof-minting proxy (see the module comment). */
export function proxyProofGate(options: ProxyProofOptions): PreconditionGate {
  const { mode, originId, secrets } = options;
  if (mode !== "require" && mode !== "allow")
    throw new TypeError(`mode must be 'require' or 'allow', got ${String(mode)}`);
  checkId("originId", originId, ORIGIN);
  const kids = Object.keys(secrets);
  if (kids.length === 0) throw new TypeError("proxyProofGate needs at least one secret");
  for (const kid of kids) {
    checkId("kid", kid, KID);
    const e = secrets[kid]!;
    const secret = e instanceof Uint8Array ? e : e.secret;
    if (secret.byteLength !== SECRET_BYTES)
      throw new RangeError(`secret for kid ${JSON.stringify(kid)} must be ${SECRET_BYTES} bytes`);
  }
  const skewSeconds = options.skewSeconds ?? 30;
  if (!Number.isSafeInteger(skewSeconds) || skewSeconds <= 0)
    throw new RangeError(`skewSeconds must be a positive integer`);
  const cache =
    options.replayCache === false
      ? null
      : new NonceCache(skewSeconds * 1000, options.replayCapacity ?? DEFAULT_REPLAY_CAPACITY);
  return {
    name: PROOF_CLAIMS_KEY,
    claimsKey: PROOF_CLAIMS_KEY,
    proxyHeaders: mode === "require" ? [PROOF_HEADER] : [],
    check(request) {
      const raw = request.headers.get(PROOF_HEADER);
      try {
        if (raw === null || raw === "") throw new ProofError("no_proof", "header absent");
        if (raw.includes(",")) throw new ProofError("malformed", "multiple proof headers");
        return { ...verifyProof(raw, { secrets, originId, skewSeconds, nonceCache: cache }) };
      } catch (err) {
        if (!(err instanceof ProofError)) throw err;
        options.onReject?.(err.proofReason, err.diagnosis, request);
        if (mode === "require") throw new ProofError(err.proofReason, err.diagnosis);
        return { verified: "false", proxy: "", kid: "", origin_id: originId, reason: err.proofReason };
      }
    },
  };
}

const proxyHeaders = new WeakMap<Authenticator, readonly string[]>();

/**
 * Records that `authenticator` depends on headers a trusted proxy adds (a proof, a forwarded
 * client certificate): its 401s then carry the proxy note. Returns it.
 */
export function declareProxyHeaders(authenticator: Authenticator, headers: readonly string[]): Authenticator {
  const known = proxyHeaders.get(authenticator) ?? [];
  proxyHeaders.set(authenticator, [...new Set([...known, ...headers])]);
  return authenticator;
}

/**
 * The headers a trusted proxy must add for `authenticator` to pass (its gates'), or none: a 401
 * then says so (`VGI-Auth-Proxy-Required: true` and a `proxy_hint`).
 */
export function proxyHeadersOf(authenticator: Authenticator | undefined): readonly string[] {
  return authenticator === undefined ? [] : (proxyHeaders.get(authenticator) ?? []);
}

/**
 * `gate` AND `inner`: the gate runs first, and a refusal refuses the request without running
 * `inner`; otherwise `inner` names the caller and the gate's claims join theirs under
 * `gate.claimsKey`. Without `inner` the gate alone authenticates (the proxy is the caller, its
 * label the principal): "only my proxy may call this worker".
 */
export function requireAll(gate: PreconditionGate, inner?: Authenticator): Authenticator {
  if (gate === null || typeof gate !== "object" || typeof gate.check !== "function") {
    throw new TypeError("requireAll expects a PreconditionGate (e.g. proxyProofGate(...)) as its first argument");
  }
  const authenticate: Authenticator = async (request) => {
    const claims = gate.check(request);
    if (inner === undefined) {
      return authenticated(gate.name, claims.proxy ?? "", { [gate.claimsKey]: claims });
    }
    const auth = await inner(request);
    return Object.freeze({ ...auth, claims: Object.freeze({ ...auth.claims, [gate.claimsKey]: claims }) });
  };
  proxyHeaders.set(authenticate, [...new Set([...gate.proxyHeaders, ...proxyHeadersOf(inner)])]);
  return authenticate;
}
