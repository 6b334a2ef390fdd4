/**
 * Ready-made authenticators: bearer tokens (custom validation or pre-shared), API keys in a
 * header, JWT against a JWKS (`jose`), mutual TLS (certificate fingerprint or subject) and Envoy's
 * `x-forwarded-client-cert`, and a chain that tries several in order. Each names the security
 * scheme it produced in `AuthContext.scheme`, which methods' `security` requirements refer to.
 */
import { createHash, timingSafeEqual, X509Certificate } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { AuthContext } from "../protocol/context.js";
import { cookieValue } from "./cross-site.js";
import { declareProxyHeaders, proxyHeadersOf } from "./proxy-proof.js";
import {
  AuthConfigError,
  type Authenticator,
  AuthFailure,
  type AuthReason,
  type AuthRequest,
  AuthUnavailableError,
  authenticated,
  authReasonOf,
  type CredentialProblem,
  type PeerCertificate,
} from "./types.js";

/** The token of an `Authorization: Bearer <token>` header; throws `missing_credential` without one. */
export function bearerToken(request: AuthRequest): string {
  const header = request.headers.get("authorization");
  if (!header) throw new AuthFailure("missing_credential", "Missing Authorization header");
  const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
  if (!m) throw new AuthFailure("invalid_credential", "Authorization header is not a Bearer token");
  return m[1]!;
}

/** Where a claim lives: a top-level name, a dot path (`realm_access.roles`), or explicit segments. */
export type ClaimPath = string | readonly string[];

/**
 * The claim at `path`. A string is first looked up as a whole (OIDC custom claims are often URLs
 * with dots), then as a dot path; an array names the segments exactly.
 */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: ClaimPath): unknown {
  if (typeof path === "string" && Object.hasOwn(claims, path)) return claims[path];
  const segments = typeof path === "string" ? path.split(".") : path;
  let at: unknown = claims;
  for (const seg of segments) {
    if (at === null || typeof at !== "object" || Array.isArray(at) || !Object.hasOwn(at, seg)) return undefined;
    at = (at as Record<string, unknown>)[seg];
  }
  return at;
}

/**
 * The strings a claim holds: an array's string items, or a space-separated string split (the
 * OAuth `scope` form). Anything else: none.
 */
export function claimStrings(claims: Readonly<Record<string, unknown>>, path: ClaimPath): string[] {
  const v = claimAt(claims, path);
  if (typeof v === "string") return v.split(/\s+/).filter((x) => x !== "");
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return [];
}

/** How a factory's configured credentials are checked (see `checkCredentials`). */
interface CredentialRules {
  /** What one credential is called in messages: `token`, `key`, `fingerprint`, `issuer`. */
  readonly noun: string;
  /** Whitespace a presented credential can never carry: around it (trimmed on arrival) or anywhere. */
  readonly whitespace: "edges" | "anywhere";
  /** The form credentials are compared in (duplicates are found on it). Default: as written. */
  readonly normalize?: (credential: string) => string;
  /** False when the normalised credential is not in its format. Default: any. */
  readonly wellFormed?: (normalized: string) => boolean;
  /** Refuse the same credential twice. Default: true. */
  readonly unique?: boolean;
}

/** What a missing value becomes as text: `${undefined}`, `String(null)`, a computed key. */
const PLACEHOLDER = /^(?:undefined|null)$/i;

/**
 * Refuses, at construction, credentials that are missing, empty, blank, a placeholder left by a
 * missing value, padded with whitespace that no request can carry, malformed or repeated; returns
 * them normalised. Errors name the entry's position and the problem, never the credential.
 */
function checkCredentials(
  factory: string,
  option: string,
  credentials: readonly unknown[],
  rules: CredentialRules,
): string[] {
  const seen = new Map<string, number>();
  return credentials.map((credential, i) => {
    const refuse = (problem: CredentialProblem, what: string): never => {
      throw new AuthConfigError(factory, option, i, problem, `${factory}: ${option} entry #${i + 1} ${what}`);
    };
    if (typeof credential !== "string") {
      return refuse(
        "missing",
        `is ${credential === null ? "null" : typeof credential}, not a ${rules.noun} (an unset environment variable?)`,
      );
    }
    if (credential === "")
      return refuse("empty", `is an empty ${rules.noun} (an unset or empty environment variable?)`);
    const trimmed = credential.trim();
    if (trimmed === "") return refuse("blank", `is only whitespace, not a ${rules.noun}`);
    if (PLACEHOLDER.test(trimmed)) {
      return refuse(
        "placeholder",
        `is the text "${trimmed.toLowerCase()}", what a missing value becomes as a string (e.g. \`{ [process.env.NAME!]: ... }\` with NAME unset)`,
      );
    }
    if (rules.whitespace === "edges" ? trimmed !== credential : /\s/.test(credential)) {
      return refuse(
        "whitespace",
        `has whitespace ${rules.whitespace === "edges" ? "around it" : "in it"} (a stray newline or \\r from a file?), so no request could ever match it`,
      );
    }
    const normalized = rules.normalize ? rules.normalize(credential) : credential;
    if (rules.wellFormed && !rules.wellFormed(normalized))
      return refuse("malformed", `is not a well-formed ${rules.noun}`);
    const first = seen.get(normalized);
    if (first !== undefined && rules.unique !== false) {
      return refuse("duplicate", `is the same ${rules.noun} as entry #${first + 1}`);
    }
    seen.set(normalized, i);
    return normalized;
  });
}

/** The entries of a credential table: a `Map` or a plain object (an array would make its indexes credentials). */
function tableEntries<V>(factory: string, option: string, table: unknown): [unknown, V][] {
  if (table instanceof Map) return [...(table as Map<unknown, V>).entries()];
  if (table === null || typeof table !== "object" || Array.isArray(table)) {
    throw new TypeError(`${factory}: ${option} must be a Map or an object mapping each credential to its caller`);
  }
  return Object.entries(table as Record<string, V>);
}

/** Refuses a table entry that maps its credential to no caller (`what` says what a caller is here). */
function checkCallers(
  factory: string,
  option: string,
  callers: readonly unknown[],
  accept: (who: unknown) => boolean,
  what: string,
): void {
  callers.forEach((who, i) => {
    if (!accept(who)) {
      throw new AuthConfigError(
        factory,
        option,
        i,
        "missing",
        `${factory}: ${option} entry #${i + 1} maps to no caller (${what})`,
      );
    }
  });
}

const isContext = (who: unknown): boolean => typeof who === "object" && who !== null;

/** Bearer tokens checked by `validate` (which throws to refuse, or returns the caller). */
export function bearerAuthenticate(options: {
  readonly validate: (token: string, request: AuthRequest) => AuthContext | Promise<AuthContext>;
}): Authenticator {
  return (request) => options.validate(bearerToken(request), request);
}

/**
 * A session cookie: the value of cookie `name` handed to `validate` (look the session up, verify
 * its signature), which returns the caller or throws. A request without the cookie is refused
 * `missing_credential`. Browsers send cookies on their own, so every cookie request is checked for
 * cross-site forgery (see `trustedOrigins` and `requireCsrf`). The name must be a cookie name.
 */
export function cookieAuthenticate(options: {
  readonly name: string;
  readonly validate: (value: string, request: AuthRequest) => AuthContext | Promise<AuthContext>;
}): Authenticator {
  const { name, validate } = options;
  if (typeof name !== "string" || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
    throw new TypeError(`cookieAuthenticate: name must be a cookie name, got ${JSON.stringify(name)}`);
  }
  return (request) => {
    const value = cookieValue(request.headers.get("cookie"), name);
    if (value === null || value === "") throw new AuthFailure("missing_credential", `Missing ${name} cookie`);
    return validate(value, request);
  };
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Pre-shared bearer tokens, each mapped to its caller. Every configured token is compared in
 * constant time (over SHA-256 digests, so lengths leak nothing either). Throws `AuthConfigError`
 * for a token that is missing, empty, blank, the text `undefined`/`null`, holds whitespace, or
 * repeats, and for one mapped to no `AuthContext`.
 */
export function bearerAuthenticateStatic(options: {
  readonly tokens: ReadonlyMap<string, AuthContext> | Readonly<Record<string, AuthContext>>;
}): Authenticator {
  const factory = "bearerAuthenticateStatic";
  const entries = tableEntries<AuthContext>(factory, "tokens", options.tokens);
  const tokens = checkCredentials(
    factory,
    "tokens",
    entries.map(([token]) => token),
    { noun: "token", whitespace: "anywhere" },
  );
  checkCallers(
    factory,
    "tokens",
    entries.map(([, ctx]) => ctx),
    isContext,
    "an AuthContext",
  );
  const table = entries.map(([, ctx], i) => ({ hash: digest(tokens[i]!), ctx }));
  return (request) => {
    const presented = digest(bearerToken(request));
    let found: AuthContext | null = null;
    for (const { hash, ctx } of table) {
      if (timingSafeEqual(hash, presented) && found === null) found = ctx;
    }
    if (found === null) throw new AuthFailure("invalid_credential", "Unknown bearer token");
    return found;
  };
}

/** Options of `apiKeyAuthenticate`. */
export interface ApiKeyAuthenticateOptions {
  /**
   * Accepted keys, each mapped to its caller: a principal name (authenticated with the scheme as
   * domain and no grants) or a full `AuthContext` (roles, capabilities, scopes).
   */
  readonly keys: ReadonlyMap<string, AuthContext | string> | Readonly<Record<string, AuthContext | string>>;
  /** The header carrying the key. Default: `X-API-Key`. */
  readonly header?: string;
  /** `AuthContext.scheme` (and domain) of callers identified by a principal name. Default: `apikey`. */
  readonly scheme?: string;
}

/**
 * API keys in a request header (for services and workers that hold a key rather than a user
 * token). Keys are compared in constant time over SHA-256 digests, as static bearer tokens are.
 * Throws `AuthConfigError` for a key that is missing, empty, blank, the text `undefined`/`null`,
 * padded with whitespace, or repeated, and for one mapped to no caller.
 */
export function apiKeyAuthenticate(options: ApiKeyAuthenticateOptions): Authenticator {
  const factory = "apiKeyAuthenticate";
  const header = options.header ?? "X-API-Key";
  const scheme = options.scheme ?? "apikey";
  const entries = tableEntries<AuthContext | string>(factory, "keys", options.keys);
  const keys = checkCredentials(
    factory,
    "keys",
    entries.map(([key]) => key),
    { noun: "key", whitespace: "edges" },
  );
  checkCallers(
    factory,
    "keys",
    entries.map(([, who]) => who),
    (who) => isContext(who) || (typeof who === "string" && who.trim() !== ""),
    "a principal name or an AuthContext",
  );
  const table = entries.map(([, who], i) => ({
    hash: digest(keys[i]!),
    ctx: typeof who === "string" ? authenticated(scheme, who, {}, { scheme }) : who,
  }));
  return (request) => {
    const presented = request.headers.get(header);
    if (!presented) throw new AuthFailure("missing_credential", `Missing ${header} header`);
    const hash = digest(presented.trim());
    let found: AuthContext | null = null;
    for (const entry of table) {
      if (timingSafeEqual(entry.hash, hash) && found === null) found = entry.ctx;
    }
    if (found === null) throw new AuthFailure("invalid_credential", "Unknown API key");
    return found;
  };
}

/** Options of `jwtAuthenticate`. */
export interface JwtAuthenticateOptions {
  /** Accepted `iss` value(s). */
  readonly issuer: string | readonly string[];
  /** Accepted `aud` value(s); a token naming any of them passes. */
  readonly audience: string | readonly string[];
  /** JWKS endpoint; keys are cached and refetched when a token names an unknown `kid` (rotation). */
  readonly jwksUri?: string | URL;
  /** A fixed key set instead of an endpoint (tests, offline deployments). */
  readonly jwks?: JSONWebKeySet;
  /** Any `jose` key resolver instead of the two above. */
  readonly getKey?: JWTVerifyGetKey;
  /** Allowed signature algorithms. Default: jose's (any asymmetric the key supports). */
  readonly algorithms?: readonly string[];
  /** Claim used as the principal. Default: `sub`. */
  readonly principalClaim?: string;
  /** `AuthContext.domain`. Default: `jwt`. */
  readonly domain?: string;
  /** `AuthContext.scheme`, what methods' `security` requirements name. Default: the domain. */
  readonly scheme?: string;
  /** Where the granted scopes are (space-separated string or array). Default: `scope`, else `scp`. */
  readonly scopesClaim?: ClaimPath;
  /** Where the caller's roles are (e.g. `realm_access.roles` for Keycloak). Default: `roles`. */
  readonly rolesClaim?: ClaimPath;
  /** Where the caller's capabilities are (e.g. `permissions` for Auth0). Default: `capabilities`. */
  readonly capabilitiesClaim?: ClaimPath;
  /** Clock skew tolerated on `exp`/`nbf`, in seconds. Default: 0. */
  readonly clockToleranceSeconds?: number;
  /** Minimum time between JWKS refetches for unknown keys, in ms. Default: 30000 (jose's). */
  readonly jwksCooldownMs?: number;
  /** How long a JWKS fetch may take, in ms; longer is an `AuthUnavailableError` (503). Default: 5000 (jose's). */
  readonly jwksTimeoutMs?: number;
}

/**
 * `getKey` with its endpoint's failures (unreachable, timed out, not 200, not a key set) as an
 * `AuthUnavailableError`: the key set could not be had, which says nothing of the token (503, not
 * 401). A key set that has no key, or several, for the token's header, or a token whose alg no key
 * set takes, still refuses the token.
 */
function unavailableWhenUnreachable(getKey: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await getKey(header, token);
    } catch (err) {
      if (
        err instanceof joseErrors.JWKSNoMatchingKey ||
        err instanceof joseErrors.JWKSMultipleMatchingKeys ||
        err instanceof joseErrors.JOSENotSupported // the token's alg
      ) {
        throw err;
      }
      throw new AuthUnavailableError(`JWKS endpoint unavailable: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
  };
}

function joseReason(err: unknown): AuthReason {
  if (err instanceof joseErrors.JWTExpired) return "expired_credential";
  return "invalid_credential";
}

/** What an authenticator knows of the OAuth authorization servers whose tokens it takes. */
export interface OAuthIssuance {
  /** The accepted token issuers (`iss`): the authorization servers. */
  readonly issuers: readonly string[];
  /** The accepted audiences (`aud`): the first names this resource. */
  readonly audiences: readonly string[];
}

const issuance = new WeakMap<Authenticator, OAuthIssuance>();

/**
 * The issuers and audiences `authenticator` verifies tokens against (a `jwtAuthenticate`, or a
 * chain whose first such member it is), or null: what OAuth discovery advertises
 * (`HttpServerOptions.oauthResource`), so the two are configured once.
 */
export function oauthIssuanceOf(authenticator: Authenticator | undefined): OAuthIssuance | null {
  return authenticator === undefined ? null : (issuance.get(authenticator) ?? null);
}

/** JWT bearer tokens verified against a JWKS: signature, issuer, audience, expiry. */
export function jwtAuthenticate(options: JwtAuthenticateOptions): Authenticator {
  const authenticator = jwtAuthenticator(options);
  issuance.set(authenticator, {
    issuers: Object.freeze(listOf(options.issuer)),
    audiences: Object.freeze(listOf(options.audience)),
  });
  return authenticator;
}

function listOf(v: string | readonly string[]): string[] {
  return typeof v === "string" ? [v] : [...v];
}

function jwtAuthenticator(options: JwtAuthenticateOptions): Authenticator {
  const list = (v: string | readonly string[] | undefined): unknown[] =>
    typeof v === "string" || v === undefined || v === null ? [v] : [...v];
  const names = { whitespace: "edges", unique: false } as const;
  const issuers = checkCredentials("jwtAuthenticate", "issuer", list(options.issuer), { noun: "issuer", ...names });
  const audiences = checkCredentials("jwtAuthenticate", "audience", list(options.audience), {
    noun: "audience",
    ...names,
  });
  if (issuers.length === 0) throw new TypeError("jwtAuthenticate: issuer must not be empty");
  if (audiences.length === 0) throw new TypeError("jwtAuthenticate: audience must not be empty");
  let getKey: JWTVerifyGetKey;
  if (options.getKey) getKey = options.getKey;
  else if (options.jwks) getKey = createLocalJWKSet(options.jwks);
  else if (options.jwksUri) {
    getKey = unavailableWhenUnreachable(
      createRemoteJWKSet(new URL(String(options.jwksUri)), {
        cooldownDuration: options.jwksCooldownMs ?? 30_000,
        timeoutDuration: options.jwksTimeoutMs ?? 5_000,
      }),
    );
  } else throw new TypeError("jwtAuthenticate needs jwksUri, jwks or getKey");
  const principalClaim = options.principalClaim ?? "sub";
  const domain = options.domain ?? "jwt";
  return async (request) => {
    const token = bearerToken(request);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: issuers,
        audience: audiences,
        ...(options.algorithms ? { algorithms: [...options.algorithms] } : {}),
        ...(options.clockToleranceSeconds !== undefined ? { clockTolerance: options.clockToleranceSeconds } : {}),
      }));
    } catch (err) {
      if (err instanceof AuthUnavailableError) throw err;
      throw new AuthFailure(joseReason(err), `JWT rejected: ${(err as Error).message}`, { cause: err });
    }
    const principal = payload[principalClaim];
    if (typeof principal !== "string" || principal === "") {
      throw new AuthFailure("invalid_credential", `JWT has no string '${principalClaim}' claim`);
    }
    const scopes = options.scopesClaim
      ? claimStrings(payload, options.scopesClaim)
      : claimAt(payload, "scope") !== undefined
        ? claimStrings(payload, "scope")
        : claimStrings(payload, "scp");
    return authenticated(domain, principal, payload, {
      scheme: options.scheme ?? domain,
      scopes,
      roles: claimStrings(payload, options.rolesClaim ?? "roles"),
      capabilities: claimStrings(payload, options.capabilitiesClaim ?? "capabilities"),
    });
  };
}

/** The `CN` of a distinguished name such as `CN=client,O=Example` (`""` when absent). */
export function commonName(subject: string): string {
  for (const part of subject.split(/(?<!\\),/)) {
    const p = part.trim();
    if (p.toUpperCase().startsWith("CN=")) return p.slice(3);
  }
  return "";
}

function certClaims(cert: PeerCertificate): Record<string, unknown> {
  return { fingerprint256: cert.fingerprint256, subject: cert.subject, subjectAltName: cert.subjectAltName };
}

/** Where `mtlsAuthenticate` finds the client certificate: the TLS connection, or a proxy's header. */
export interface MtlsCertificateSource {
  /**
   * Read the certificate a trusted TLS-terminating proxy forwards in this header, URL-encoded PEM
   * (nginx: `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`), instead of the
   * connection's. The proxy must verify the certificate and strip the header from what clients
   * send: whoever can set it can be anyone. A request without it is refused `proxy_required`
   * (the proxy did not add it), and 401s carry the proxy note. Default: the TLS connection.
   */
  readonly header?: string;
  /** With `header`: refuse a certificate outside its validity period (`expired_credential`). Default: false. */
  readonly checkExpiry?: boolean;
}

/** Options of `mtlsAuthenticate`: exactly one of `fingerprints` or `subject`. */
export type MtlsAuthenticateOptions = MtlsCertificateSource &
  (
    | {
        /** Allowed certificates by SHA-256 fingerprint (hex, colons and case ignored) → principal. */
        readonly fingerprints: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
        readonly domain?: string;
      }
    | {
        /**
         * Accept any certificate the TLS layer verified and take the principal from its subject:
         * the CN by default, or whatever `principal(cert)` returns (throw to refuse). `allowed`
         * restricts the accepted principals.
         */
        readonly subject: {
          readonly allowed?: readonly string[];
          readonly principal?: (cert: PeerCertificate) => string;
        };
        readonly domain?: string;
      }
  );

/** The certificate in a proxy's header (URL-encoded PEM), as `PeerCertificate`; refusals as the reference words them. */
function headerCertificate(request: AuthRequest, header: string, checkExpiry: boolean): PeerCertificate {
  const raw = request.headers.get(header);
  if (!raw) throw new AuthFailure("proxy_required", `Missing ${header} header`);
  let pem: string;
  try {
    pem = decodeURIComponent(raw);
  } catch {
    throw new AuthFailure("invalid_credential", "Header value is not a PEM certificate");
  }
  if (!pem.startsWith("-----BEGIN CERTIFICATE-----")) {
    throw new AuthFailure("invalid_credential", "Header value is not a PEM certificate");
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new AuthFailure("invalid_credential", `Failed to parse PEM certificate: ${(err as Error).message}`);
  }
  if (checkExpiry) {
    const now = Date.now();
    if (now < Date.parse(cert.validFrom)) throw new AuthFailure("expired_credential", "Certificate is not yet valid");
    if (now > Date.parse(cert.validTo)) throw new AuthFailure("expired_credential", "Certificate has expired");
  }
  return {
    fingerprint256: normalizeFingerprint(cert.fingerprint256),
    subject: cert.subject.split("\n").join(","),
    subjectAltName: cert.subjectAltName ?? "",
  };
}

function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, "").toLowerCase();
}

/**
 * Mutual TLS on the connection itself (serve over `node:https` with `requestCert: true`): the
 * verified client certificate identifies the caller by fingerprint or by subject.
 */
export function mtlsAuthenticate(options: MtlsAuthenticateOptions): Authenticator {
  const authenticate = mtlsAuthenticator(options);
  if (options.header !== undefined) declareProxyHeaders(authenticate, [options.header]);
  return authenticate;
}

function mtlsAuthenticator(options: MtlsAuthenticateOptions): Authenticator {
  const domain = options.domain ?? "mtls";
  const header = options.header;
  if (header !== undefined && (typeof header !== "string" || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header))) {
    throw new TypeError(`mtlsAuthenticate: header must be a header name, got ${JSON.stringify(header)}`);
  }
  const checkExpiry = options.checkExpiry === true;
  const certOf = (request: AuthRequest): PeerCertificate => {
    if (header !== undefined) return headerCertificate(request, header, checkExpiry);
    const cert = request.peerCertificate;
    if (cert === null) throw new AuthFailure("missing_credential", "No verified client certificate");
    return cert;
  };
  if ("fingerprints" in options) {
    const factory = "mtlsAuthenticate";
    const entries = tableEntries<string>(factory, "fingerprints", options.fingerprints);
    const fingerprints = checkCredentials(
      factory,
      "fingerprints",
      entries.map(([fp]) => fp),
      {
        noun: "fingerprint",
        whitespace: "anywhere",
        normalize: normalizeFingerprint,
        wellFormed: (fp) => /^[0-9a-f]+$/.test(fp),
      },
    );
    checkCallers(
      factory,
      "fingerprints",
      entries.map(([, principal]) => principal),
      (p) => typeof p === "string" && p.trim() !== "",
      "a principal name",
    );
    const table = new Map(entries.map(([, principal], i) => [fingerprints[i]!, principal]));
    return (request) => {
      const cert = certOf(request);
      const principal = table.get(normalizeFingerprint(cert.fingerprint256));
      if (principal === undefined) throw new AuthFailure("invalid_credential", "Client certificate is not allowed");
      return authenticated(domain, principal, certClaims(cert));
    };
  }
  const { allowed, principal: pick } = options.subject;
  return (request) => {
    const cert = certOf(request);
    const principal = pick ? pick(cert) : commonName(cert.subject);
    if (!principal) throw new AuthFailure("invalid_credential", "Client certificate subject has no CN");
    if (allowed !== undefined && !allowed.includes(principal)) {
      throw new AuthFailure("invalid_credential", `Client certificate subject '${principal}' is not allowed`);
    }
    return authenticated(domain, principal, certClaims(cert));
  };
}

/** One element of an `x-forwarded-client-cert` header. */
export interface XfccElement {
  readonly hash: string | null;
  readonly cert: string | null;
  readonly subject: string | null;
  readonly uri: string | null;
  readonly dns: readonly string[];
  readonly by: string | null;
}

function splitQuoted(text: string, delimiter: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && quoted && i + 1 < text.length) {
      current += ch + text[i + 1];
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
      current += ch;
    } else if (ch === delimiter && !quoted) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Parses Envoy's `x-forwarded-client-cert` header into its elements. */
export function parseXfcc(header: string): XfccElement[] {
  const out: XfccElement[] = [];
  for (const raw of splitQuoted(header, ",")) {
    if (!raw.trim()) continue;
    const fields = new Map<string, string>();
    const dns: string[] = [];
    for (const pair of splitQuoted(raw.trim(), ";")) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const key = pair.slice(0, eq).trim().toLowerCase();
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
        value = value.slice(1, -1).replace(/\\(.)/g, "$1");
      }
      if (key === "cert" || key === "uri" || key === "by") value = safeDecode(value);
      if (key === "dns") dns.push(value);
      else fields.set(key, value);
    }
    out.push({
      hash: fields.get("hash") ?? null,
      cert: fields.get("cert") ?? null,
      subject: fields.get("subject") ?? null,
      uri: fields.get("uri") ?? null,
      dns,
      by: fields.get("by") ?? null,
    });
  }
  return out;
}

/**
 * mTLS terminated by a proxy (Envoy) that forwards the client certificate in
 * `x-forwarded-client-cert`. The proxy MUST strip client-supplied copies of the header.
 */
export function mtlsAuthenticateXfcc(
  options: {
    readonly validate?: (element: XfccElement) => AuthContext | Promise<AuthContext>;
    readonly domain?: string;
    /** Which element to trust when several are present. Default: `first` (the original client). */
    readonly selectElement?: "first" | "last";
  } = {},
): Authenticator {
  const domain = options.domain ?? "mtls";
  return (request) => {
    const header = request.headers.get("x-forwarded-client-cert");
    if (!header) throw new AuthFailure("proxy_required", "Missing x-forwarded-client-cert header");
    const elements = parseXfcc(header);
    const element = options.selectElement === "last" ? elements[elements.length - 1] : elements[0];
    if (element === undefined) throw new AuthFailure("invalid_credential", "Empty x-forwarded-client-cert header");
    if (options.validate) return options.validate(element);
    const claims: Record<string, unknown> = {};
    if (element.hash) claims.hash = element.hash;
    if (element.subject) claims.subject = element.subject;
    if (element.uri) claims.uri = element.uri;
    if (element.dns.length > 0) claims.dns = [...element.dns];
    if (element.by) claims.by = element.by;
    return authenticated(domain, element.subject ? commonName(element.subject) : "", claims);
  };
}

/**
 * Tries each authenticator in order; the first that accepts wins. A refusal with reason
 * `insufficient_scope` (identified but forbidden), a final refusal (`AuthFailure` with `final`)
 * and an `AuthUnavailableError` (the authority could not be asked: 503, not 401) stop the chain.
 * When all refuse, the 401 names every reason: `missing_credential` only if every member saw no
 * credential, else the first substantive reason.
 */
export function chainAuthenticate(...authenticators: readonly Authenticator[]): Authenticator {
  if (authenticators.length === 0) throw new TypeError("chainAuthenticate needs at least one authenticator");
  const chained: Authenticator = async (request) => {
    const reasons: AuthReason[] = [];
    const messages: string[] = [];
    for (const authenticate of authenticators) {
      try {
        return await authenticate(request);
      } catch (err) {
        const reason = authReasonOf(err);
        if (reason === "insufficient_scope" || err instanceof AuthUnavailableError) throw err;
        if (err instanceof AuthFailure && err.final) throw err;
        reasons.push(reason);
        messages.push((err as Error)?.message || String(err));
      }
    }
    const combined = reasons.every((r) => r === "missing_credential")
      ? "missing_credential"
      : (reasons.find((r) => r !== "missing_credential") ?? "unauthorized");
    throw new AuthFailure(combined, `No authenticator accepted the request (${messages.join("; ")})`);
  };
  const jwt = authenticators.map(oauthIssuanceOf).find((i) => i !== null);
  if (jwt !== undefined) issuance.set(chained, jwt);
  const viaProxy = authenticators.flatMap(proxyHeadersOf);
  return viaProxy.length > 0 ? declareProxyHeaders(chained, viaProxy) : chained;
}
