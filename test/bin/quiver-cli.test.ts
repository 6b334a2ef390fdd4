/**
 * The `quiver` CLI against in-process servers on loopback: headers over HTTP and WebSocket (a
 * server requiring a bearer token), the bridge passing an upgrade refusal to its pipe client,
 * `--format arrow` files pyarrow reads, `--input` for exchanges, `--version`, values refused with
 * exit 2 naming the parameter, and `describe` showing each stream's schemas.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { authenticated, bearerAuthenticateStatic } from "../../src/auth/index.js";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { batchFromRows } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, producer, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer, QUIVER_VERSION } from "../../src/server/server.js";
import { type HttpListener, listenHttp } from "../../src/transports/http/listen.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import { listenWebSocket, type WebSocketListener } from "../../src/transports/ws/server.js";
import { encodeStream } from "../../src/wire/ipc.js";
import { QUIVER_CLI as CLI, type CliRun, jsonLines as lines, runQuiver as quiver } from "../helpers/quiver-cli.js";
import { PYTHON } from "../helpers/reference.js";

const TOKEN = "t-cli-secret";

const Svc = defineProtocol(
  "test.Cli.v1",
  {},
  {
    add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
    big: unary({ n: t.int64(), tag: t.utf8().optional() }, t.int64()),
    noop: unary({}, null),
    count: producer(
      { n: t.int64() },
      {
        output: { i: t.int64(), sq: t.float64() },
        header: { total: t.int64() },
        state: { i: t.int64(), n: t.int64() },
      },
    ),
    scale: exchange(
      { factor: t.float64() },
      { input: { x: t.float64() }, output: { y: t.float64() }, state: { f: t.float64() } },
    ),
  },
);

function makeServer() {
  return createServer({
    protocols: [
      bind(Svc, {
        add: ({ a, b }) => a + b,
        big: ({ n }) => n,
        noop: () => {},
        count: {
          init: ({ n }) => ({ state: { i: 0n, n }, header: { total: n } }),
          produce: (s, out) => {
            if (s.i < s.n) {
              out.emit([{ i: s.i, sq: Number(s.i * s.i) }]);
              s.i++;
            } else out.finish();
          },
        },
        scale: {
          init: ({ factor }) => ({ state: { f: factor } }),
          process: (s, input, out) => out.emitColumns({ y: input.column("x").map((x) => x * s.f) }),
        },
      }),
    ],
  });
}

const auth = () => bearerAuthenticateStatic({ tokens: { [TOKEN]: authenticated("bearer", "cli-user") } });

let http: HttpListener;
let ws: WebSocketListener;
const dir = mkdtempSync(join(tmpdir(), "quiver-cli-"));

before(async () => {
  http = await listenHttp(makeServer(), { authenticate: auth() });
  ws = await listenWebSocket(makeServer(), { authenticate: auth() });
});

after(async () => {
  await http.close();
  await ws.close();
});

const errorOf = (r: CliRun) => (lines(r.stderr).at(-1) as { error: Record<string, unknown> }).error;

const bearer = ["-H", `Authorization: Bearer ${TOKEN}`];
/** The transport options reaching each server with the right token. */
const viaHttp = () => ["--url", http.url, ...bearer];
const viaWs = () => ["--ws", ws.url, ...bearer];

/** Reads an Arrow IPC file with pyarrow: each IPC stream in it (back to back) as `[names, rows]`. */
function pyarrowRead(path: string, streams = 1): unknown {
  const script = `
import json, sys
import pyarrow as pa
out = []
with open(sys.argv[1], "rb") as f:
    for _ in range(int(sys.argv[2])):
        t = pa.ipc.open_stream(f).read_all()
        out.append([t.schema.names, t.to_pylist()])
print(json.dumps(out))
`;
  const run = spawnSync(PYTHON, ["-c", script, path, String(streams)], { encoding: "utf8", timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

const noPython = !existsSync(PYTHON);

test("--version prints the package's version (which the server reports too)", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  assert.equal(QUIVER_VERSION, pkg.version);
  const r = await quiver(["--version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `quiver ${pkg.version}\n`);
});

test("--url with -H: a bearer token reaches the server; a wrong or missing one prints the 401 reason, exit 1", async () => {
  const ok = await quiver([...viaHttp(), "call", "add", "a=1", "b=2.5"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(lines(ok.stdout), [{ result: 3.5 }]);

  const wrong = await quiver(["--url", http.url, "-H", "Authorization: Bearer nope", "call", "add", "a=1", "b=2"]);
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stdout, "");
  assert.deepEqual(errorOf(wrong), {
    type: "AuthenticationError",
    message: "authentication rejected: Unknown bearer token",
    code: "UNAUTHENTICATED",
    kind: "unauthenticated",
    http_status: 401,
    auth_reason: "invalid_credential",
  });
  const missing = await quiver(["--url", http.url, "describe"]);
  assert.equal(missing.code, 1);
  assert.equal(errorOf(missing).auth_reason, "missing_credential");
});

test("--ws with -H: the header goes on the upgrade; a refused upgrade prints its status and reason, exit 1", async () => {
  const ok = await quiver([...viaWs(), "call", "count", "n=2"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(lines(ok.stdout), [{ __header__: { total: 2 } }, { i: 0, sq: 0 }, { i: 1, sq: 1 }]);

  const wrong = await quiver(["--ws", ws.url, "--header=Authorization: Bearer nope", "describe"]);
  assert.equal(wrong.code, 1);
  const err = errorOf(wrong);
  assert.equal(err.code, "UNAUTHENTICATED");
  assert.equal(err.kind, "transport_error");
  assert.equal(err.http_status, 401);
  assert.equal(err.auth_reason, "invalid_credential");
  assert.match(String(err.message), /HTTP 401 \(invalid_credential\)/);
});

test("quiver bridge: an upgrade refusal reaches the pipe client as a typed error on every call", async () => {
  const client = await connectSubprocess(
    process.execPath,
    ["--import", "tsx", CLI, "bridge", "--ws", ws.url, "-H", "Authorization: Bearer nope"],
    { timeoutMs: 10_000, exitTimeoutMs: 3000, stderr: "ignore" },
  );
  const exited = new Promise<number | null>((resolve) => client.process.once("exit", (code) => resolve(code)));
  const refused = (e: unknown) => {
    assert.ok(e instanceof RpcError, String(e));
    assert.equal(e.kind, "transport_error");
    assert.equal(e.code, "UNAUTHENTICATED");
    assert.match(e.message, /HTTP 401 \(invalid_credential\)/);
    assert.deepEqual(
      e.details.map((d) => [d["@type"], (d as { status?: unknown }).status, (d as { reason?: unknown }).reason]),
      [["quiver.WebSocketRefused", 401, "invalid_credential"]],
    );
    return true;
  };
  const api = proxy(client, Svc);
  await assert.rejects(api.add({ a: 1, b: 2 }), refused);
  // A stream call fails the same way, and the pipe stays in step for the next call.
  await assert.rejects(async () => (await api.count({ n: 2n })).toArray(), refused);
  await assert.rejects(async () => (await api.scale({ factor: 2 })).exchange([{ x: 1 }]), refused);
  await assert.rejects(api.add({ a: 1, b: 2 }), refused);
  await client.close();
  assert.equal(await exited, 1);

  // With the right header the bridge relays.
  const good = await connectSubprocess(process.execPath, ["--import", "tsx", CLI, "bridge", ...viaWs()], {
    timeoutMs: 10_000,
    exitTimeoutMs: 3000,
  });
  assert.equal(await proxy(good, Svc).add({ a: 40, b: 2 }), 42);
  await good.close();
});

test("--format arrow -o FILE writes an Arrow IPC stream pyarrow reads (a header as a stream of its own)", async (t) => {
  const unaryFile = join(dir, "add.arrow");
  const u = await quiver([...viaHttp(), "--format", "arrow", "-o", unaryFile, "call", "add", "a=1", "b=2"]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(u.stdout, "");
  const rowsFile = join(dir, "count.arrow");
  const p = await quiver([...viaWs(), "-f", "arrow", "--output", rowsFile, "call", "count", "n=3"]);
  assert.equal(p.code, 0, p.stderr);
  const empty = join(dir, "empty.arrow");
  const e = await quiver([...viaHttp(), "-f", "arrow", "-o", empty, "call", "count", "n=0"]);
  assert.equal(e.code, 0, e.stderr);
  if (noPython) {
    t.skip(`no python at ${PYTHON}`);
    return;
  }
  assert.deepEqual(pyarrowRead(unaryFile), [[["result"], [{ result: 3 }]]]);
  assert.deepEqual(pyarrowRead(rowsFile, 2), [
    [["total"], [{ total: 3 }]],
    [
      ["i", "sq"],
      [
        { i: 0, sq: 0 },
        { i: 1, sq: 1 },
        { i: 2, sq: 4 },
      ],
    ],
  ]);
  // No rows: the described output schema, so the file still says what the columns are.
  assert.deepEqual(pyarrowRead(empty, 2), [
    [["total"], [{ total: 0 }]],
    [["i", "sq"], []],
  ]);
});

test("--input FILE feeds an exchange: an Arrow IPC stream (a batch a turn) or JSON lines (a row a turn)", async () => {
  const arrowIn = join(dir, "in.arrow");
  const schema = Svc.methods.scale.input;
  const batches = [batchFromRows(schema, [{ x: 1 }, { x: 2 }]), batchFromRows(schema, [{ x: 3 }])];
  writeFileSync(arrowIn, Buffer.concat(encodeStream(batches[0]!.schema, batches)));
  const a = await quiver([...viaHttp(), "call", "scale", "factor=10", "--input", arrowIn]);
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(lines(a.stdout), [{ y: 10 }, { y: 20 }, { y: 30 }]);

  // JSON lines are read by the exchange's declared input schema ("1" is a float64 as text, 2 an integer literal).
  const jsonIn = join(dir, "in.jsonl");
  writeFileSync(jsonIn, '{"x": 1.5}\n\n{"x": 2}\n');
  const out = join(dir, "scaled.jsonl");
  const j = await quiver([...viaWs(), "-o", out, "-f", "json", "call", "scale", "factor=2", "-i", jsonIn]);
  assert.equal(j.code, 0, j.stderr);
  assert.equal(j.stdout, "");
  assert.deepEqual(lines(readFileSync(out, "utf8")), [{ y: 3 }, { y: 4 }]);

  // A value its type refuses names the line and the field: exit 2, nothing called.
  writeFileSync(jsonIn, '{"x": 1}\n{"x": "one"}\n');
  const bad = await quiver([...viaHttp(), "call", "scale", "factor=2", "--input", jsonIn]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.deepEqual(errorOf(bad), {
    type: "TypeError",
    message: `${jsonIn} line 2: scale() input field 'x': expected a number for float64, got "one"`,
    code: "INVALID_ARGUMENT",
  });
  const stdin = await quiver([...viaHttp(), "call", "scale", "factor=2", "--input", "-"], '{"y": 1}\n');
  assert.equal(stdin.code, 2);
  assert.match(stdin.stderr, /^Error: stdin line 1: Unknown input field 'y'\. Available: x$/m);
});

test("values are read by their declared type; a bad one exits 2 naming the parameter", async () => {
  const refused = async (args: string[], type: string, message: string) => {
    const r = await quiver([...viaHttp(), "call", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, "");
    const err = errorOf(r);
    assert.deepEqual([err.type, err.message], [type, message]);
  };
  await refused(["add", "a=1"], "TypeError", "add() parameter 'b': no value given, and it is not nullable (float64)");
  await refused(
    ["add", "--json", '{"a": 1, "b": null}'],
    "TypeError",
    "add() parameter 'b': null given, but it is not nullable (float64)",
  );
  await refused(["add", "a=1", "b="], "TypeError", "add() parameter 'b': expected a number for float64, got \"\"");
  await refused(["big", "n=1.5"], "TypeError", "big() parameter 'n': 1.5 is not an integer, as int64 needs");
  await refused(
    ["big", "n=99999999999999999999"],
    "OverflowError",
    "big() parameter 'n': 99999999999999999999 is out of range for int64 (-9223372036854775808 to 9223372036854775807)",
  );
  const unknown = await quiver([...viaHttp(), "call", "add", "c=1"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^Error: Unknown parameter 'c'\. Available: a, b$/m);
  // An optional parameter may be left out; the big integer comes back whole.
  const big = await quiver([...viaHttp(), "call", "big", "n=9223372036854775807"]);
  assert.equal(big.stdout, '{"result":9223372036854775807}\n');
});

test("usage errors exit 2 before connecting: headers without HTTP, malformed headers, arrow for describe", async () => {
  for (const [args, message] of [
    [["--cmd", "true", "-H", "A: b", "describe"], /--header applies to --url and --ws/],
    [["--url", http.url, "-H", "no colon", "describe"], /--header wants "Name: value"/],
    [["--url", http.url, "-f", "arrow", "describe"], /--format arrow is for call/],
    [["--url", http.url, "-f", "xml", "describe"], /unknown format 'xml'/],
  ] as const) {
    const r = await quiver(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, message);
  }
});

test("describe shows each stream's kind, header, input and output schemas", async () => {
  const r = await quiver([...viaHttp(), "describe"]);
  assert.equal(r.code, 0, r.stderr);
  const methods = (lines(r.stdout)[0] as { methods: Record<string, Record<string, unknown>> }).methods;
  assert.deepEqual(methods.count, {
    method_type: "stream",
    has_return: false,
    params_schema: "n: int64 not null",
    result_schema: "",
    has_header: true,
    stream_kind: "producer",
    header_schema: "total: int64 not null",
    output_schema: "i: int64 not null\nsq: double not null",
  });
  assert.equal(methods.scale!.input_schema, "x: double not null");
  assert.equal(methods.scale!.output_schema, "y: double not null");
  const table = await quiver([...viaWs(), "-f", "table", "describe"]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(
    table.stdout,
    /^ {2}count\(stream\)\n {4}params: n: int64 not null\n {4}kind: producer\n {4}header: total: int64 not null\n {4}output: i: int64 not null\n {12}sq: double not null$/m,
  );
});
