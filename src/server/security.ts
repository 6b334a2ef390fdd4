/**
 * Authorization in one place: the server's security schemes, the check dispatch runs before a
 * method's parameters are decoded, and the resolution of a method's injected values.
 *
 * A method's `security` maps scheme names to required scopes. The caller is admitted when it was
 * authenticated by one of those schemes and its credential carries every scope listed for it.
 * An anonymous caller is refused as `unauthenticated`; an identified caller that satisfies no
 * entry as `permission_denied`.
 */
import { frameworkError, type RpcError } from "../errors.js";
import type { AuthContext, CallContext } from "../protocol/context.js";
import type { InjectSpec, SecurityRequirement } from "../protocol/methods.js";

/** How callers of one scheme authenticate, as `describe` reports it. Declared once per server. */
export interface SecurityScheme {
  /** The kind of credential: `jwt`, `oidc`, `apikey`, `bearer`, `mtls`, or your own. */
  readonly type: string;
  /** What a caller needs to know to obtain a credential. Default: none. */
  readonly description?: string;
  /** For `apikey`: the header carrying the key. Default: none. */
  readonly header?: string;
  /** For `jwt`/`oidc`: the expected issuer. Default: none. */
  readonly issuer?: string;
  /** For `jwt`/`oidc`: the expected audience. Default: none. */
  readonly audience?: string;
  /** For `oidc`: the discovery document URL. Default: none. */
  readonly openIdConnectUrl?: string;
  /** Scopes this scheme can grant, with what each allows. Default: none. */
  readonly scopes?: Readonly<Record<string, string>>;
}

/** Security schemes by name; methods' requirements refer to these names. */
export type SecuritySchemes = Readonly<Record<string, SecurityScheme>>;

/** Throws a TypeError when a method names a scheme the server does not declare. */
export function checkSchemeNames(
  protocol: string,
  method: string,
  requirement: SecurityRequirement | null,
  schemes: SecuritySchemes,
): void {
  if (requirement === null) return;
  for (const name of Object.keys(requirement)) {
    if (!Object.hasOwn(schemes, name)) {
      const known = Object.keys(schemes).sort();
      throw new TypeError(
        `protocol '${protocol}' method '${method}' requires security scheme '${name}', which the server does not declare (securitySchemes: [${known.join(", ")}])`,
      );
    }
  }
}

function describeRequirement(requirement: SecurityRequirement): string {
  return Object.entries(requirement)
    .map(([scheme, scopes]) => (scopes.length === 0 ? scheme : `${scheme} with scopes [${scopes.join(", ")}]`))
    .join(" or ");
}

/**
 * Why `auth` may not call a method guarded by `requirement`, or null when it may. Open methods
 * (`requirement === null`) admit everyone.
 */
export function securityRefusal(
  method: string,
  requirement: SecurityRequirement | null,
  auth: AuthContext,
): RpcError | null {
  if (requirement === null) return null;
  const needs = describeRequirement(requirement);
  if (!auth.authenticated) {
    return frameworkError(
      "unauthenticated",
      `Authentication required: '${method}' does not accept anonymous callers; it requires ${needs}.`,
    );
  }
  const scopes = Object.hasOwn(requirement, auth.scheme) ? requirement[auth.scheme] : undefined;
  if (scopes === undefined) {
    return frameworkError(
      "permission_denied",
      `Permission denied: '${method}' requires ${needs}; the caller authenticated with '${auth.scheme || auth.domain}'.`,
    );
  }
  const missing = scopes.filter((s) => !auth.scopes.includes(s));
  if (missing.length > 0) {
    return frameworkError(
      "permission_denied",
      `Permission denied: '${method}' requires ${needs}; the '${auth.scheme}' credential lacks scope${missing.length === 1 ? "" : "s"} [${missing.join(", ")}].`,
    );
  }
  return null;
}

/** Resolves a method's injected values in declaration order; the first resolver to throw fails the call. */
export async function resolveInjected(inject: InjectSpec, ctx: CallContext): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [name, resolve] of Object.entries(inject)) out[name] = await resolve(ctx);
  return Object.freeze(out);
}
