/**
 * OAuth discovery, as the reference serves it: RFC 9728 protected-resource metadata at
 * `GET /.well-known/oauth-protected-resource{prefix}` (no credentials needed), and the
 * `WWW-Authenticate: Bearer resource_metadata="…"` challenge on every 401, so a client that
 * meets a 401 finds the authorization server to get a token from. The issuers and the resource
 * come from the JWT authenticator's own `issuer` and `audience` unless given here.
 */

import { oauthIssuanceOf } from "../../auth/factories.js";
import type { Authenticator } from "../../auth/types.js";

/** `HttpServerOptions.oauthResource`: RFC 9728 metadata (and the reference's client hints). */
export interface OAuthResourceOptions {
  /** This resource's canonical URL (`resource`). Default: the JWT authenticator's first audience. */
  readonly resource?: string;
  /** Authorization server issuer URLs. Default: the JWT authenticator's issuers. */
  readonly authorizationServers?: readonly string[];
  readonly scopesSupported?: readonly string[];
  /** Token delivery methods. Default: `["header"]` (not written when it is the default). */
  readonly bearerMethodsSupported?: readonly string[];
  readonly resourceSigningAlgValuesSupported?: readonly string[];
  readonly resourceName?: string;
  readonly resourceDocumentation?: string;
  readonly resourcePolicyUri?: string;
  readonly resourceTosUri?: string;
  /** The OAuth client id clients should use (the reference's extension; URL-safe characters only). */
  readonly clientId?: string;
  /** Clients should send the OIDC `id_token` as their bearer token (the reference's extension). */
  readonly useIdTokenAsBearer?: boolean;
  /** The client id for the device-code flow (the reference's extension). */
  readonly deviceCodeClientId?: string;
}

/** Discovery as one handler serves it. */
export interface OAuthDiscovery {
  /** `/.well-known/oauth-protected-resource{prefix}`. */
  readonly path: string;
  /** The metadata document, made once. */
  readonly body: Uint8Array;
  /** The `WWW-Authenticate` value of every 401. */
  readonly challenge: string;
}

const URL_SAFE = /^[A-Za-z0-9\-._~]+$/;

function absoluteUrl(what: string, value: string): URL {
  try {
    const url = new URL(value);
    if (url.protocol === "https:" || url.protocol === "http:") return url;
  } catch {
    // reported below
  }
  throw new TypeError(`oauthResource.${what}: ${JSON.stringify(value)} is not an absolute http(s) URL`);
}

/**
 * Checks `options` against what `authenticate` knows (`true`: all of it from there) and makes the
 * discovery of a handler under `prefix`; throws when something required is missing or malformed.
 */
export function oauthDiscovery(
  options: OAuthResourceOptions | true,
  authenticate: Authenticator | undefined,
  prefix: string,
): OAuthDiscovery {
  const o: OAuthResourceOptions = options === true ? {} : options;
  const jwt = oauthIssuanceOf(authenticate);
  const resource = o.resource ?? jwt?.audiences[0];
  const servers = o.authorizationServers ?? jwt?.issuers;
  if (resource === undefined) {
    throw new TypeError("oauthResource needs `resource` (or a jwtAuthenticate authenticator, whose audience names it)");
  }
  if (servers === undefined || servers.length === 0) {
    throw new TypeError(
      "oauthResource needs `authorizationServers` (or a jwtAuthenticate authenticator, whose issuers they are)",
    );
  }
  const resourceUrl = absoluteUrl("resource", resource);
  for (const s of servers) absoluteUrl("authorizationServers", s);
  for (const [name, v] of [
    ["clientId", o.clientId],
    ["deviceCodeClientId", o.deviceCodeClientId],
  ] as const) {
    if (v !== undefined && !URL_SAFE.test(v)) {
      throw new TypeError(`oauthResource.${name} must contain only URL-safe characters, got ${JSON.stringify(v)}`);
    }
  }
  const doc: Record<string, unknown> = { resource, authorization_servers: [...servers] };
  if (o.scopesSupported?.length) doc.scopes_supported = [...o.scopesSupported];
  const bearer = o.bearerMethodsSupported;
  if (bearer !== undefined && !(bearer.length === 1 && bearer[0] === "header"))
    doc.bearer_methods_supported = [...bearer];
  if (o.resourceSigningAlgValuesSupported?.length) {
    doc.resource_signing_alg_values_supported = [...o.resourceSigningAlgValuesSupported];
  }
  if (o.resourceName !== undefined) doc.resource_name = o.resourceName;
  if (o.resourceDocumentation !== undefined) doc.resource_documentation = o.resourceDocumentation;
  if (o.resourcePolicyUri !== undefined) doc.resource_policy_uri = o.resourcePolicyUri;
  if (o.resourceTosUri !== undefined) doc.resource_tos_uri = o.resourceTosUri;
  if (o.clientId !== undefined) doc.client_id = o.clientId;
  if (o.useIdTokenAsBearer === true) doc.use_id_token_as_bearer = true;
  if (o.deviceCodeClientId !== undefined) doc.device_code_client_id = o.deviceCodeClientId;
  const path = `/.well-known/oauth-protected-resource${prefix}`;
  let challenge = `Bearer resource_metadata="${resourceUrl.protocol}//${resourceUrl.host}${path}"`;
  if (o.clientId !== undefined) challenge += `, client_id="${o.clientId}"`;
  if (o.useIdTokenAsBearer === true) challenge += ', use_id_token_as_bearer="true"';
  if (o.deviceCodeClientId !== undefined) challenge += `, device_code_client_id="${o.deviceCodeClientId}"`;
  return { path, body: new TextEncoder().encode(JSON.stringify(doc)), challenge };
}
