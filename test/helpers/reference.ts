/**
 * The pinned reference, as tests see it: the fixture dumped from vgi-rpc 0.52.2
 * (scripts/dump-reference-protocols.py), its schemas decoded, and the Python interpreter of the
 * conformance environment for tests that ask the reference itself.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Schema } from "apache-arrow";
import { Message } from "apache-arrow/ipc/metadata/message";
import type { FieldToken } from "../../src/protocol/type-tokens.js";

export interface FixtureMethod {
  readonly name: string;
  readonly method_type: "unary" | "stream";
  readonly is_exchange: boolean | null;
  readonly has_return: boolean;
  readonly params_schema: string;
  readonly params_tokens: readonly FieldToken[];
  readonly result_schema: string;
  readonly result_tokens: readonly FieldToken[];
  readonly header_schema: string;
  readonly header_tokens: readonly FieldToken[] | null;
  readonly param_defaults: Readonly<Record<string, unknown>>;
}

export interface FixtureProtocol {
  readonly name: string;
  readonly version: string;
  readonly protocol_hash: string;
  readonly methods: readonly FixtureMethod[];
}

/** Every protocol the reference's conformance worker hosts, as the reference describes them. */
export const REFERENCE: { readonly protocols: readonly FixtureProtocol[] } = JSON.parse(
  readFileSync(new URL("../fixtures/reference-protocols.json", import.meta.url), "utf8"),
);

export function referenceProtocol(name: string): FixtureProtocol {
  const found = REFERENCE.protocols.find((p) => p.name === name);
  if (found === undefined) throw new Error(`fixture has no protocol '${name}'`);
  return found;
}

/** Decodes an encapsulated IPC schema message (pyarrow's `Schema.serialize()`). */
export function decodeSchemaMessage(bytes: Uint8Array): Schema {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getInt32(4, true);
  const message = Message.decode(bytes.subarray(8, 8 + length));
  if (!message.isSchema()) throw new Error("not a schema message");
  return message.header() as Schema;
}

/** A fixture schema (base64 of a schema message). */
export const schemaFromBase64 = (b64: string): Schema =>
  decodeSchemaMessage(new Uint8Array(Buffer.from(b64, "base64")));

/** The conformance environment's Python (set by `npm test`; the venv's by default). */
export const PYTHON: string =
  process.env.VGI_PYTHON ?? new URL("../../.venv-conformance/bin/python", import.meta.url).pathname;

/**
 * The path of a file inside the installed reference package (`vgi_rpc/<relative>`), asked of the
 * conformance environment's Python so it follows `VGI_PYTHON`.
 */
export function referencePackageFile(relative: string): string {
  const r = spawnSync(
    PYTHON,
    ["-c", "import pathlib, sys, vgi_rpc; print(pathlib.Path(vgi_rpc.__file__).parent / sys.argv[1])", relative],
    { encoding: "utf8", timeout: 30_000 },
  );
  if (r.status !== 0) throw new Error(`cannot locate vgi_rpc/${relative}: ${r.stderr || r.error}`);
  return r.stdout.trim();
}
