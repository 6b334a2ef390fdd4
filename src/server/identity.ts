/**
 * `vgi_rpc.Identity.v2`, the framework's identity protocol (the reference's
 * `rpc/_token_identity.py`): `introspect_token` resolves an opaque credential for an allowlisted
 * asker (a reverse proxy), `issue_grant` mints a standing delegation for the calling user. The
 * server hosts it only when configured (`ServerOptions.identity`), and then only the methods whose
 * hook exists: a method without its hook is absent, not hosted-and-refusing, and the protocol hash
 * shrinks with it, so upgrading never grows a credential oracle on a worker that asked for none.
 *
 * Both results travel as `binary` holding a one-row Arrow IPC stream, the reference's serialized
 * dataclasses: `TokenIdentity {principal: utf8, token_name: utf8, ttl_seconds: int64}` and
 * `IssuedGrant {token: utf8, expires_at: timestamp[us, UTC], grant_id: utf8}`, every field non-null.
 */
import type { GrantKeys } from "../auth/grants.js";
import {
  checkFreshness,
  checkIntrospector,
  DEFAULT_MAX_AUTH_AGE_SECONDS,
  DEFAULT_TOKEN_TTL_SECONDS,
  type GrantRequest,
  type IssuedGrant,
  type MintGrant,
  type ResolveToken,
  rejectJwsShaped,
  sealedGrantMinter,
  type TokenIdentity,
  tokenUnresolved,
  translateUnavailable,
} from "../auth/identity.js";
import { RpcError } from "../errors.js";
import { batchFromRows, rowsFromBatch, schemaOf } from "../protocol/batch.js";
import type { CallContext } from "../protocol/context.js";
import { type ProtocolDecl, type UnaryDecl, unary } from "../protocol/methods.js";
import { type FieldSpecs, type TypeSpec, t } from "../protocol/types.js";
import { concatBytes, decodeStreamBytes, encodeStream } from "../wire/ipc.js";

/** The identity protocol's wire name. */
export const IDENTITY_PROTOCOL = "vgi_rpc.Identity.v2";

const INTROSPECT = unary({ token: t.utf8() }, t.binary());
const ISSUE = unary({ purpose: t.utf8(), scopes: t.list(t.utf8()), ttl_seconds: t.int64() }, t.binary());

/**
 * The whole protocol, both methods (protocol hash `145267755ff9…`). For clients: `proxy(client,
 * IdentityProtocol)` calls it, `decodeTokenIdentity` / `decodeIssuedGrant` read the answers.
 */
export const IdentityProtocol: ProtocolDecl<{
  readonly introspect_token: UnaryDecl<
    { readonly token: TypeSpec<string> },
    TypeSpec<Uint8Array>,
    Record<never, never>
  >;
  readonly issue_grant: UnaryDecl<
    {
      readonly purpose: TypeSpec<string>;
      readonly scopes: TypeSpec<string[]>;
      readonly ttl_seconds: TypeSpec<bigint>;
    },
    TypeSpec<Uint8Array>,
    Record<never, never>
  >;
}> = Object.freeze({
  name: IDENTITY_PROTOCOL,
  version: "",
  methods: Object.freeze({ introspect_token: INTROSPECT, issue_grant: ISSUE }),
});

const TOKEN_IDENTITY_FIELDS = { principal: t.utf8(), token_name: t.utf8(), ttl_seconds: t.int64() } as const;
const ISSUED_GRANT_FIELDS = { token: t.utf8(), expires_at: t.timestampUs("UTC"), grant_id: t.utf8() } as const;

function encodeRecord<F extends FieldSpecs>(
  fields: F,
  row: Readonly<Record<string, unknown>>,
  what: string,
): Uint8Array {
  const schema = schemaOf(fields);
  const batch = batchFromRows(fields, [row as never], undefined, schema, { method: what, role: "result" });
  return concatBytes(encodeStream(schema, [batch]));
}

function decodeRecord<F extends FieldSpecs>(fields: F, bytes: Uint8Array, what: string): Record<string, unknown> {
  const decoded = decodeStreamBytes(bytes, what);
  const batch = decoded?.batches[0];
  if (decoded === null || decoded.batches.length !== 1 || batch === undefined || batch.numRows !== 1) {
    throw new RpcError(`${what} must be an IPC stream of exactly one row`, {
      type: "ValueError",
      code: "INVALID_ARGUMENT",
    });
  }
  const row = rowsFromBatch(fields, batch)[0] as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (row[name] === null) {
      throw new RpcError(`${what}.${name} is null`, { type: "ValueError", code: "INVALID_ARGUMENT" });
    }
  }
  return row;
}

/** A whole number of seconds >= 0 that fits an int64 exactly (`what` names the field in the error). */
function wholeSeconds(value: number, what: string): bigint {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a whole number of seconds >= 0, got ${String(value)}`);
  }
  return BigInt(value);
}

/** `TokenIdentity` as the `introspect_token` result carries it; omitted fields take their defaults. */
export function encodeTokenIdentity(identity: TokenIdentity): Uint8Array {
  if (typeof identity.principal !== "string") throw new TypeError("TokenIdentity.principal must be a string");
  return encodeRecord(
    TOKEN_IDENTITY_FIELDS,
    {
      principal: identity.principal,
      token_name: identity.tokenName ?? "",
      ttl_seconds: wholeSeconds(identity.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS, "TokenIdentity.ttlSeconds"),
    },
    "TokenIdentity",
  );
}

/** `IssuedGrant` as the `issue_grant` result carries it (`expires_at` in microseconds, UTC). */
export function encodeIssuedGrant(grant: IssuedGrant): Uint8Array {
  if (typeof grant.token !== "string") throw new TypeError("IssuedGrant.token must be a string");
  const ms = grant.expiresAt instanceof Date ? grant.expiresAt.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new TypeError("IssuedGrant.expiresAt must be a valid Date");
  return encodeRecord(
    ISSUED_GRANT_FIELDS,
    { token: grant.token, expires_at: BigInt(ms) * 1000n, grant_id: grant.grantId ?? "" },
    "IssuedGrant",
  );
}

/** Reads an `introspect_token` answer. */
export function decodeTokenIdentity(bytes: Uint8Array): Required<TokenIdentity> {
  const row = decodeRecord(TOKEN_IDENTITY_FIELDS, bytes, "TokenIdentity");
  return {
    principal: row.principal as string,
    tokenName: row.token_name as string,
    ttlSeconds: Number(row.ttl_seconds),
  };
}

/** Reads an `issue_grant` answer (`expiresAt` to the millisecond: a `Date` holds no finer). */
export function decodeIssuedGrant(bytes: Uint8Array): Required<IssuedGrant> {
  const row = decodeRecord(ISSUED_GRANT_FIELDS, bytes, "IssuedGrant");
  const micros = row.expires_at as bigint;
  return { token: row.token as string, expiresAt: new Date(Number(micros / 1000n)), grantId: row.grant_id as string };
}

/** `ServerOptions.identity`: which hooks the deployment supplies, and its policy. */
export interface IdentityOptions {
  /**
   * Resolves opaque credentials: hosts `introspect_token`, and over HTTP accepts bearers it resolves
   * (`HttpServerOptions.identityBearer`). Requires `introspectPrincipals`. Default: none (not hosted).
   */
  readonly resolveToken?: ResolveToken;
  /**
   * Who may call `introspect_token`: authenticated principals, compared exactly. Required with
   * `resolveToken` (at least one non-empty name); there is no permissive default.
   */
  readonly introspectPrincipals?: readonly string[];
  /** Mints grants: hosts `issue_grant`. Default: sealed grants when `grantKeys` is set, else none (not hosted). */
  readonly mintGrant?: MintGrant;
  /**
   * Sealed-grant configuration (`grantKeys`, `parseGrantKeys`, `grantKeysFromEnv`): without a
   * `mintGrant`, `issue_grant` mints sealed grants; over HTTP they are accepted back as bearers.
   * Default: none.
   */
  readonly grantKeys?: GrantKeys;
  /** How recently a caller must have authenticated (`auth_time` claim) to mint, in seconds. Default: 900. */
  readonly maxAuthAgeSeconds?: number;
}

/** What a server needs from its identity configuration. */
export interface HostedIdentity {
  /** The protocol narrowed to the configured methods, with its handlers; null when no method is offered. */
  readonly protocol: ProtocolDecl | null;
  readonly implementation: Readonly<Record<string, unknown>>;
  /** Where HTTP finds identity bearer credentials. */
  readonly bearer: { readonly grantKeys: GrantKeys | null; readonly resolveToken: ResolveToken | null };
}

const noNullScopes = (scopes: readonly (string | null)[]): readonly string[] => {
  if (scopes.some((s) => s === null)) {
    throw new RpcError("scopes must not contain null", { type: "ValueError", code: "INVALID_ARGUMENT" });
  }
  return scopes as readonly string[];
};

/**
 * Checks `options` and builds the identity protocol a server hosts. Throws a `TypeError` or
 * `RangeError` for a `resolveToken` without an allowlist, an allowlist without `resolveToken`, a
 * hook that is not a function, or a `maxAuthAgeSeconds` that is not a positive finite number.
 */
export function hostIdentity(options: IdentityOptions): HostedIdentity {
  const { resolveToken, mintGrant: ownMinter, grantKeys } = options;
  if (resolveToken !== undefined && typeof resolveToken !== "function") {
    throw new TypeError("identity.resolveToken must be a function");
  }
  if (ownMinter !== undefined && typeof ownMinter !== "function") {
    throw new TypeError("identity.mintGrant must be a function");
  }
  const principals = new Set((options.introspectPrincipals ?? []).filter((p) => typeof p === "string" && p !== ""));
  if (resolveToken !== undefined && principals.size === 0) {
    throw new TypeError(
      "identity.introspectPrincipals must name at least one principal when resolveToken is set. Introspection is a " +
        "distinct capability from authentication: allowing any authenticated caller lets any user resolve any other " +
        "user's credential to its owner.",
    );
  }
  if (resolveToken === undefined && options.introspectPrincipals !== undefined) {
    throw new TypeError("identity.introspectPrincipals is set without resolveToken: there is nothing to introspect");
  }
  const maxAge = options.maxAuthAgeSeconds ?? DEFAULT_MAX_AUTH_AGE_SECONDS;
  if (!Number.isFinite(maxAge) || maxAge <= 0) {
    throw new RangeError(`identity.maxAuthAgeSeconds must be a positive number, got ${maxAge}`);
  }
  const mintGrant = ownMinter ?? (grantKeys !== undefined ? sealedGrantMinter(grantKeys) : undefined);

  const methods: Record<string, UnaryDecl> = {};
  const implementation: Record<string, unknown> = {};
  if (resolveToken !== undefined) {
    methods.introspect_token = INTROSPECT;
    implementation.introspect_token = async (params: { readonly token: string }, ctx: CallContext) => {
      // Authorization first: an unauthorized caller learns nothing about the credential.
      checkIntrospector(ctx.auth, principals);
      rejectJwsShaped(params.token);
      let identity: TokenIdentity | null;
      try {
        identity = await resolveToken(params.token);
      } catch (err) {
        throw translateUnavailable(err);
      }
      // Uniform with malformed and over-long: saying which would confirm a guessed credential exists.
      if (identity === null || identity === undefined) throw tokenUnresolved();
      return encodeTokenIdentity(identity);
    };
  }
  if (mintGrant !== undefined) {
    methods.issue_grant = ISSUE;
    implementation.issue_grant = async (
      params: { readonly purpose: string; readonly scopes: readonly (string | null)[]; readonly ttl_seconds: bigint },
      ctx: CallContext,
    ) => {
      checkFreshness(ctx.auth, maxAge);
      const request: GrantRequest = {
        // The subject is the caller, never a parameter: cross-subject minting is closed by construction.
        principal: ctx.auth.principal,
        purpose: params.purpose,
        scopes: noNullScopes(params.scopes),
        ttlSeconds: Number(params.ttl_seconds),
      };
      let grant: IssuedGrant;
      try {
        grant = await mintGrant(request);
      } catch (err) {
        throw translateUnavailable(err);
      }
      return encodeIssuedGrant(grant);
    };
  }
  const offered = Object.keys(methods).length > 0;
  return {
    protocol: offered ? { name: IDENTITY_PROTOCOL, version: "", methods } : null,
    implementation,
    bearer: { grantKeys: grantKeys ?? null, resolveToken: resolveToken ?? null },
  };
}
