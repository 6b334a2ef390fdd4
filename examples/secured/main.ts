// A secured service over HTTP: API keys name the caller and their scopes, each method declares
// the scopes it needs, a handler checks a role, and an injected value is resolved after the check.
// Open methods stay reachable to anonymous callers.
import {
  authenticated,
  bind,
  type CallContext,
  createServer,
  defineProtocol,
  proxy,
  RpcError,
  requireRole,
  t,
  unary,
} from "quiver-rpc";
import { type Authenticator, anonymous, apiKeyAuthenticate, connectHttp, listenHttp } from "quiver-rpc/http";

const notes = new Map<bigint, string>();
const account = (ctx: CallContext) => ({ name: ctx.auth.principal, since: 2024 }); // e.g. a database lookup

const Notes = defineProtocol(
  "acme.Notes.v1",
  { version: "1.0.0" },
  {
    health: unary({}, t.utf8()), // open
    read: unary({ id: t.int64() }, t.utf8().optional(), { security: { apikey: ["notes.read"] } }),
    write: unary({ text: t.utf8() }, t.int64(), { security: { apikey: ["notes.write"] }, inject: { account } }),
    purge: unary({}, t.int64(), { security: { apikey: ["notes.write"] } }),
  },
);

const server = createServer({
  protocols: [
    bind(Notes, {
      health: () => "ok",
      read: ({ id }) => notes.get(id) ?? null,
      write: ({ text }, ctx) => {
        const id = BigInt(notes.size + 1);
        notes.set(id, `${text} (by ${ctx.injected.account.name})`);
        return id;
      },
      purge: (_params, ctx) => {
        requireRole(ctx, "admin");
        const n = BigInt(notes.size);
        notes.clear();
        return n;
      },
    }),
  ],
  securitySchemes: { apikey: { type: "apikey", description: "Keys issued per team", header: "X-API-Key" } },
});

// Keys come from configuration; each maps to a caller with its scopes and roles.
const keys = {
  "key-reader-0001": authenticated("apikey", "reports", {}, { scheme: "apikey", scopes: ["notes.read"] }),
  "key-writer-0002": authenticated("apikey", "editor", {}, { scheme: "apikey", scopes: ["notes.read", "notes.write"] }),
};
const byKey = apiKeyAuthenticate({ keys });
// Let requests without a key through as anonymous; dispatch then refuses them per method.
const authenticate: Authenticator = (req) => (req.headers.has("x-api-key") ? byKey(req) : anonymous());
const http = await listenHttp(server, { port: 0, authenticate });

const clients = {
  editor: connectHttp(http.url, { headers: { "X-API-Key": "key-writer-0002" } }),
  reports: connectHttp(http.url, { headers: { "X-API-Key": "key-reader-0001" } }),
  nobody: connectHttp(http.url), // no key: anonymous
};
const editor = proxy(clients.editor, Notes);
const reports = proxy(clients.reports, Notes);
const nobody = proxy(clients.nobody, Notes);
const attempt = async (label: string, call: () => Promise<unknown>) => {
  try {
    console.log(`${label}: ${String(await call())}`);
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    console.log(`${label}: refused (${err.kind || err.type}, ${err.code})`);
  }
};

await attempt("anonymous health", () => nobody.health({}));
await attempt("anonymous read", () => nobody.read({ id: 1n }));
await attempt("editor write", () => editor.write({ text: "ship it" }));
await attempt("reports read", () => reports.read({ id: 1n }));
await attempt("reports write", () => reports.write({ text: "nope" }));
await attempt("editor purge", () => editor.purge({}));

for (const c of Object.values(clients)) await c.close();
await http.close();
