/**
 * The HTML pages the reference serves beside the RPC routes: a landing page at `GET {prefix}`
 * (the protocol, the server id, links to the API page and the health endpoint) and an API page at
 * `GET {prefix}/describe` (every hosted protocol's methods with their kind, parameters, results,
 * stream schemas and security), the latter only when the server hosts reflection (the same facts
 * `describe` gives any client). Both are made once per handler, plain HTML with no script and no
 * outside resource, and sent after authentication like any route but `/health`.
 */
import type { Schema } from "apache-arrow";
import { pyarrowFieldTypeName } from "../../protocol/pyarrow-names.js";
import type { ResolvedMethod, ServerCore } from "../../server/types.js";

const REFLECTION = "vgi_rpc.Reflection.v1";

/** `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}
h1{margin-bottom:.2rem}code{font-family:ui-monospace,monospace;background:#f3f3f0;padding:0 .25rem;border-radius:3px}
.meta{color:#666}.method{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.kind{font-size:.75rem;text-transform:uppercase;border-radius:3px;padding:.1rem .4rem;margin-left:.5rem;background:#e8f0e0}
table{border-collapse:collapse;margin:.3rem 0}td,th{text-align:left;padding:.15rem .8rem .15rem 0;vertical-align:top}th{color:#555;font-weight:600}`;

function page(title: string, body: string): Uint8Array {
  return new TextEncoder().encode(
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>\n${body}\n</body></html>\n`,
  );
}

/** The landing page of a server under `prefix`; `describePath` links the API page when there is one. */
export function landingPage(server: ServerCore, prefix: string, describePath: string | null): Uint8Array {
  const primary = [...server.protocols.keys()].find((name) => name !== REFLECTION) ?? "vgi-rpc";
  const links = [
    describePath === null ? null : `<a href="${escapeHtml(describePath)}">API reference</a>`,
    `<a href="${escapeHtml(`${prefix}/health`)}">health</a>`,
  ].filter((l) => l !== null);
  return page(
    `${primary} — vgi-rpc`,
    `<h1>${escapeHtml(primary)}</h1>\n<p>A <code>vgi-rpc</code> service endpoint: Arrow IPC over HTTP at <code>POST ${escapeHtml(prefix)}/{protocol}/{method}</code>.</p>\n` +
      `<p>${links.join(" · ")}</p>\n<p class="meta">server <code>${escapeHtml(server.serverId)}</code></p>`,
  );
}

function fields(schema: Schema | null): string {
  if (schema === null) return "<em>chosen by the handler</em>";
  if (schema.fields.length === 0) return "<em>none</em>";
  const rows = schema.fields.map(
    (f) =>
      `<tr><td><code>${escapeHtml(f.name)}</code></td><td><code>${escapeHtml(pyarrowFieldTypeName(f))}${f.nullable ? "" : " not null"}</code></td></tr>`,
  );
  return `<table>${rows.join("")}</table>`;
}

function methodHtml(m: ResolvedMethod): string {
  const kind = m.decl.kind;
  const rows: [string, string][] = [["parameters", fields(m.schemas.params)]];
  if (kind === "unary") rows.push(["result", m.schemas.hasReturn ? fields(m.schemas.result) : "<em>none</em>"]);
  else {
    if (kind === "exchange") rows.push(["input", fields(m.schemas.input)]);
    rows.push(["output", fields(m.schemas.output)]);
    if (m.schemas.header !== null) rows.push(["header", fields(m.schemas.header)]);
  }
  const security = m.decl.security;
  if (security !== undefined && security !== null) {
    const text = Object.entries(security)
      .map(([scheme, scopes]) => (scopes.length === 0 ? scheme : `${scheme} (${scopes.join(", ")})`))
      .join(" and ");
    rows.push(["security", escapeHtml(text)]);
  }
  const table = rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("");
  return `<div class="method"><code><b>${escapeHtml(m.name)}</b></code><span class="kind">${kind}</span><table>${table}</table></div>`;
}

/** The API page: every hosted protocol but reflection, its methods in name order. */
export function describePage(server: ServerCore): Uint8Array {
  const sections: string[] = [];
  for (const p of server.protocols.values()) {
    if (p.name === REFLECTION) continue;
    const methods = [...p.methods.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    sections.push(
      `<h2><code>${escapeHtml(p.name)}</code></h2>\n<p class="meta">${p.version === "" ? "" : `version ${escapeHtml(p.version)} · `}hash <code>${escapeHtml(p.hash)}</code> · ${methods.length} methods</p>\n` +
        methods.map(methodHtml).join("\n"),
    );
  }
  return page("API reference — vgi-rpc", `<h1>API reference</h1>\n${sections.join("\n")}`);
}

/** Whether the server hosts reflection (so its API page may be shown). */
export function hostsReflection(server: ServerCore): boolean {
  return server.protocols.has(REFLECTION);
}
