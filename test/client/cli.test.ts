/**
 * The `quiver` CLI against the Python reference conformance worker: `describe` lists its methods,
 * and `call` returns the right values for unary, producer and exchange methods.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { jsonLines as lines, runQuiver as quiver } from "../helpers/quiver-cli.js";
import { ourWorker, referenceWorker, type SocketWorker, socketPath, spawnSocketWorker } from "./helpers.js";

function workerCmd(): string {
  const [cmd, args] = referenceWorker("--pipe", "--describe");
  return [cmd, ...args].map((a) => (/[\s"']/.test(a) ? `'${a.replace(/'/g, "'\\''")}'` : a)).join(" ");
}

test("quiver describe --cmd <reference worker> lists its methods (JSON and table)", async () => {
  const r = await quiver(["--cmd", workerCmd(), "describe"]);
  assert.equal(r.code, 0, r.stderr);
  const [d] = lines(r.stdout) as [Record<string, unknown>];
  assert.equal(d.protocol_name, "ConformanceService");
  assert.equal(d.protocol_version, "2.0.0");
  assert.equal(d.describe_version, "5");
  const methods = d.methods as Record<string, Record<string, unknown>>;
  assert.equal(Object.keys(methods).length, 90);
  assert.deepEqual(methods.add_floats, {
    method_type: "unary",
    has_return: true,
    params_schema: "a: double not null\nb: double not null",
    result_schema: "result: double not null",
  });
  assert.equal(methods.produce_n!.method_type, "stream");
  // The reference describes a stream's header schema, but not its input or output schema.
  assert.deepEqual(methods.produce_with_header, {
    method_type: "stream",
    has_return: false,
    params_schema: "count: int64 not null",
    result_schema: "",
    has_header: true,
    stream_kind: "producer",
    header_schema: "total_expected: int64 not null\ndescription: string not null",
    output_schema: null,
  });
  assert.equal(methods.exchange_scale!.input_schema, null);

  const table = await quiver(["--cmd", workerCmd(), "--format", "table", "describe"]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^RPC Service: ConformanceService$/m);
  assert.match(table.stdout, /^ {2}echo_string\(unary\)$/m);
  assert.match(table.stdout, /^ {4}params: value: string not null$/m);
});

test("quiver call: unary methods with k=v and --json params, table output, void", async () => {
  const add = await quiver(["--cmd", workerCmd(), "call", "add_floats", "a=1", "b=2.5"]);
  assert.equal(add.code, 0, add.stderr);
  assert.deepEqual(lines(add.stdout), [{ result: 3.5 }]);

  const list = await quiver(["--cmd", workerCmd(), "call", "echo_list", "--json", '{"values": ["x", "y"]}']);
  assert.deepEqual(lines(list.stdout), [{ result: ["x", "y"] }]);

  const dict = await quiver(["--cmd", workerCmd(), "call", "echo_dict", 'mapping={"a": 1, "b": 2}']);
  assert.deepEqual(lines(dict.stdout), [{ result: { a: 1, b: 2 } }]);

  const int = await quiver(["--cmd", workerCmd(), "--format", "table", "call", "echo_int", "value=42"]);
  assert.equal(int.stdout, "result\n------\n42\n");

  const v = await quiver(["--cmd", workerCmd(), "call", "void_noop"]);
  assert.deepEqual(lines(v.stdout), [null]);
});

test("quiver call: producers print every row (and the header)", async () => {
  const r = await quiver(["--cmd", workerCmd(), "call", "produce_n", "count=3"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), [
    { index: 0, value: 0 },
    { index: 1, value: 10 },
    { index: 2, value: 20 },
  ]);
  const h = await quiver(["--cmd", workerCmd(), "call", "produce_with_header", "count=2"]);
  assert.deepEqual(lines(h.stdout), [
    { __header__: { total_expected: 2, description: "producing 2 batches" } },
    { index: 0, value: 0 },
    { index: 1, value: 10 },
  ]);
});

test("quiver call: an exchange reads its input rows as JSON lines from stdin", async () => {
  const r = await quiver(
    ["--cmd", workerCmd(), "call", "exchange_scale", "factor=2"],
    '{"value": 1.5}\n\n{"value": 4}\n',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), [{ value: 3 }, { value: 8 }]);
  const acc = await quiver(["--cmd", workerCmd(), "call", "exchange_accumulate"], '{"value": 1}\n{"value": 2.5}\n');
  assert.deepEqual(lines(acc.stdout), [
    { running_sum: 1, exchange_count: 1 },
    { running_sum: 3.5, exchange_count: 2 },
  ]);
});

test("quiver call: server errors go to stderr as JSON with exit code 1; usage errors exit 2", async () => {
  const r = await quiver(["--cmd", workerCmd(), "call", "raise_value_error", "message=boom"]);
  assert.equal(r.code, 1);
  const err = (lines(r.stderr).at(-1) as { error: Record<string, unknown> }).error;
  assert.equal(err.type, "ValueError");
  assert.equal(err.message, "boom");
  const unknown = await quiver(["--cmd", workerCmd(), "call", "no_such_method"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown method 'no_such_method'/);
  const usage = await quiver(["describe"]);
  assert.equal(usage.code, 2);
});

test("quiver call: values are read by their declared type; one that is not is refused naming the parameter, exit 2", async () => {
  const refused = async (args: string[], type: string, message: string) => {
    const r = await quiver(["--cmd", workerCmd(), "call", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}`);
    assert.equal(r.stdout, "");
    const { error } = lines(r.stderr).at(-1) as { error: Record<string, unknown> };
    assert.deepEqual([error.type, error.message], [type, message]);
  };
  await refused(
    ["add_floats", "a=one", "b=2"],
    "TypeError",
    "add_floats() parameter 'a': expected a number for float64, got \"one\"",
  );
  // Once an endless stream (the count wrapped to a negative int64); now refused before it starts.
  await refused(
    ["produce_n", "count=99999999999999999999"],
    "OverflowError",
    "produce_n() parameter 'count': 99999999999999999999 is out of range for int64 (-9223372036854775808 to 9223372036854775807)",
  );
  await refused(
    ["echo_int32", "value=1.9"],
    "TypeError",
    "echo_int32() parameter 'value': 1.9 is not an integer, as int32 needs",
  );
  await refused(
    ["echo_uint8", "value=-1"],
    "OverflowError",
    "echo_uint8() parameter 'value': -1 is out of range for uint8 (0 to 255)",
  );
  await refused(
    ["echo_int", "--json", '{"value": 9223372036854775808}'],
    "OverflowError",
    "echo_int() parameter 'value': 9223372036854775808 is out of range for int64 (-9223372036854775808 to 9223372036854775807)",
  );
  await refused(
    ["echo_bool", "value=maybe"],
    "TypeError",
    "echo_bool() parameter 'value': expected true, false, 1, 0, yes or no for bool, got \"maybe\"",
  );
});

test("quiver call: integers are printed whole at any magnitude, decimals as their exact text", async () => {
  const big = await quiver(["--cmd", workerCmd(), "call", "echo_uint64", "value=18446744073709551615"]);
  assert.equal(big.code, 0, big.stderr);
  assert.equal(big.stdout, '{"result":18446744073709551615}\n');
  const min = await quiver(["--cmd", workerCmd(), "call", "echo_int", "--json", '{"value": -9223372036854775808}']);
  assert.equal(min.stdout, '{"result":-9223372036854775808}\n');
  const dec = await quiver(["--cmd", workerCmd(), "call", "echo_decimal", "value=-1234567890123456.7891"]);
  assert.equal(dec.stdout, '{"result":"-1234567890123456.7891"}\n');
  const list = await quiver(["--cmd", workerCmd(), "call", "echo_nested_list", "matrix=[[9223372036854775807], []]"]);
  assert.equal(list.stdout, '{"result":[[9223372036854775807],[]]}\n');
});

test("quiver over --unix against the reference worker", async () => {
  const path = socketPath("cli.sock");
  const [cmd, args] = referenceWorker("--unix", path, "--describe");
  const worker: SocketWorker = await spawnSocketWorker(cmd, args);
  try {
    const r = await quiver(["--unix", path, "call", "echo_string", "value=hi there"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), [{ result: "hi there" }]);
  } finally {
    await worker.stop();
  }
});

test("quiver over --url against our HTTP worker: unary, producer and describe", async () => {
  const [cmd, args] = ourWorker("--http");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    let out = "";
    for await (const chunk of child.stdout) {
      out += String(chunk);
      if (/PORT:\d+/.test(out)) break;
    }
    const url = `http://127.0.0.1:${/PORT:(\d+)/.exec(out)![1]}`;
    const unaryRun = await quiver(["--url", url, "call", "echo_int", "value=42"]);
    assert.equal(unaryRun.code, 0, unaryRun.stderr);
    assert.deepEqual(lines(unaryRun.stdout), [{ result: 42 }]);
    const produced = await quiver(["--url", url, "call", "produce_n", "count=3"]);
    assert.equal(produced.code, 0, produced.stderr);
    assert.deepEqual(lines(produced.stdout), [
      { index: 0, value: 0 },
      { index: 1, value: 10 },
      { index: 2, value: 20 },
    ]);
    const described = await quiver(["--url", url, "describe"]);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /"protocol_name":"ConformanceService"/);
  } finally {
    clearTimeout(kill);
    child.kill("SIGTERM");
  }
});
