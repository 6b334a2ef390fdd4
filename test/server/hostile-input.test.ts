/**
 * Hostile requests on a session: each is refused with a typed error in bounded time, the
 * connection stays usable where the bytes are still framed and closes where they are not, and
 * another connection of the same server is answered meanwhile.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, exchange, type InputBatch, unary } from "../../src/protocol/methods.js";
import { type TypeSpec, t } from "../../src/protocol/types.js";
import { bind, createServer, type RpcServer } from "../../src/server/server.js";
import { memoryPipe } from "../../src/transports/memory/index.js";
import { MessageFramer } from "../../src/wire/framer.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import { classifyBatch, errorFromMetadata } from "../../src/wire/messages.js";
import { customMetadataCountAt, fieldPosition, messageSpans, messageTable } from "../helpers/ipc-bytes.js";
import { readStream, requestBytes } from "../helpers/raw-peer.js";

const Echo = defineProtocol(
  "test.Echo.v1",
  { version: "1.0.0" },
  {
    echo: unary({ value: t.utf8() }, t.utf8()),
    add: unary({ a: t.int64(), b: t.int64() }, t.int64()),
    double: exchange({}, { input: { x: t.float64() }, output: { x: t.float64() } }),
  },
);

const implementation = {
  echo: ({ value }: { value: string }) => value,
  add: ({ a, b }: { a: bigint; b: bigint }) => a + b,
  double: {
    init: () => ({}),
    process(
      _state: Record<string, never>,
      input: InputBatch<{ x: TypeSpec<number> }>,
      out: { emitColumns(c: { x: number[] }): void },
    ) {
      out.emitColumns({ x: input.column("x").map((x) => x * 2) });
    },
  },
};

function makeServer(): RpcServer {
  return createServer({
    protocols: [bind(Echo, implementation)],
  });
}

/** One connection to `server`: raw writes, framed reads, and whether the server closed it. */
function connect(server: RpcServer) {
  const pipe = memoryPipe();
  const served = server.serveConnection(pipe.server);
  const framer = new MessageFramer(pipe.client.input[Symbol.asyncIterator]());
  return {
    served,
    send: (bytes: Uint8Array | Uint8Array[]) => pipe.client.write(Array.isArray(bytes) ? bytes : [bytes]),
    read: () => readStream(framer),
    close: async () => {
      pipe.client.close();
      await served;
    },
  };
}

const echo = (value: string) =>
  concatBytes(requestBytes("echo", { value: t.utf8() }, { value: [value] }, {}, "test.Echo.v1", "1.0.0"));

type Conn = ReturnType<typeof connect>;

/** A call answered with its result. */
async function expectEcho(conn: Conn, value: string): Promise<void> {
  await conn.send(echo(value));
  const answer = await conn.read();
  assert.ok(answer, "no answer");
  const last = answer.batches.at(-1)!;
  assert.equal(classifyBatch(last), "data");
  assert.equal(last.getChildAt(0)!.get(0), value);
}

/** The next answer is an error of `kind` whose message matches `pattern`. */
async function expectError(conn: Conn, kind: string, pattern: RegExp): Promise<void> {
  const answer = await conn.read();
  assert.ok(answer, "no answer");
  const err = errorFromMetadata(answer.batches.at(-1)!.metadata);
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, pattern);
}

/** The request's record batch, with its custom-metadata count set to 2^31-1 (4 bytes changed). */
function inflatedMetadata(): Uint8Array {
  const bytes = echo("x").slice();
  const batch = messageSpans(bytes).find((s) => s.bodyLength > 0)!;
  new DataView(bytes.buffer).setUint32(customMetadataCountAt(bytes, batch)!, 0x7fffffff, true);
  return bytes;
}

describe("hostile requests on a session", () => {
  it("a record batch declaring 2^31-1 metadata entries is refused, its connection closed, another answered", async () => {
    const server = makeServer();
    const other = connect(server);
    const hostile = connect(server);
    await hostile.send(inflatedMetadata());
    await expectEcho(other, "still here");
    await expectError(hostile, "protocol_error", /declares 2147483647 entries/);
    await hostile.served; // unframed: the server ends the session
    await expectEcho(other, "and after");
    await other.close();
  });

  it("the first 111 bytes of a request followed by the whole request are refused the same way", async () => {
    const server = makeServer();
    const other = connect(server);
    const hostile = connect(server);
    const request = echo("y");
    await hostile.send(concatBytes([request.subarray(0, 111), request]));
    await expectEcho(other, "still here");
    await expectError(hostile, "protocol_error", /malformed Arrow IPC message/);
    await hostile.served;
    await other.close();
  });

  it("a sound header of a message type vgi-rpc does not use is refused and the connection keeps serving", async () => {
    const server = makeServer();
    const conn = connect(server);
    const bytes = echo("z").slice();
    const schema = messageSpans(bytes)[0]!;
    bytes[fieldPosition(bytes, schema.start, messageTable(bytes, schema), 1)!] = 4; // Tensor
    await conn.send(bytes);
    await expectError(conn, "protocol_error", /Tensor is not part of the vgi-rpc wire protocol/);
    await expectEcho(conn, "usable");
    await conn.close();
  });

  it("a batch whose buffers run past its body is refused and the connection keeps serving", async () => {
    const server = makeServer();
    const conn = connect(server);
    const bytes = concatBytes(
      requestBytes("add", { a: t.int64(), b: t.int64() }, { a: [1n], b: [2n] }, {}, "test.Echo.v1", "1.0.0"),
    ).slice();
    const batch = messageSpans(bytes).find((s) => s.bodyLength > 0)!;
    // The record batch header's buffers vector: make the last region's length reach past the body.
    const view = new DataView(bytes.buffer);
    const header = fieldPosition(bytes, batch.start, messageTable(bytes, batch), 2)!;
    const table = header + view.getUint32(header, true) - batch.start;
    const buffersRef = fieldPosition(bytes, batch.start, table, 2)!;
    const vector = buffersRef + view.getUint32(buffersRef, true);
    const count = view.getUint32(vector, true);
    view.setUint32(vector + 4 + (count - 1) * 16 + 8, batch.bodyLength + 64, true);
    await conn.send(bytes);
    await expectError(conn, "protocol_error", /runs past the body/);
    await expectEcho(conn, "usable");
    await conn.close();
  });

  it("a message over maxMessageBytes is refused with message_too_large, its body skipped, and the connection keeps serving", async () => {
    const server = createServer({
      protocols: [bind(Echo, implementation)],
      maxMessageBytes: 1024,
    });
    const conn = connect(server);
    await conn.send(echo("a".repeat(2000)));
    await expectError(conn, "message_too_large", /exceeds the limit of 1024 bytes/);
    await expectEcho(conn, "usable");
    await conn.close();
  });

  it("an exchange input that does not fit its schema ends the stream with the error, and the connection keeps serving", async () => {
    const server = makeServer();
    const conn = connect(server);
    await conn.send(concatBytes(requestBytes("double", {}, {}, {}, "test.Echo.v1", "1.0.0")));
    const In = { x: t.float64() };
    const input = concatBytes(
      encodeStream(schemaOf(In), [batchFromColumns(In, { x: [1] }), batchFromColumns(In, { x: [2] })]),
    ).slice();
    // The second batch's buffers vector: its values buffer now reaches past the body.
    const second = messageSpans(input).filter((m) => m.bodyLength > 0)[1]!;
    const view = new DataView(input.buffer);
    const header = fieldPosition(input, second.start, messageTable(input, second), 2)!;
    const table = header + view.getUint32(header, true) - second.start;
    const buffersRef = fieldPosition(input, second.start, table, 2)!;
    const vector = buffersRef + view.getUint32(buffersRef, true);
    view.setUint32(vector + 4 + 16 + 8, 1024, true);
    await conn.send(input);
    const out = await conn.read();
    assert.ok(out, "no output stream");
    // One output stream: the first turn's answer, then the error on the output schema, then EOS.
    assert.deepEqual(
      out.schema.fields.map((f) => f.name),
      ["x"],
    );
    assert.equal(out.batches[0]!.getChildAt(0)!.get(0), 2);
    const err = errorFromMetadata(out.batches.at(-1)!.metadata);
    assert.equal(err.kind, "protocol_error");
    assert.match(err.message, /runs past the body/);
    await expectEcho(conn, "usable");
    await conn.close();
  });

  it("an exchange input stream that leaves the bytes unframed ends the output stream with the error, then the session", async () => {
    const server = makeServer();
    const other = connect(server);
    const conn = connect(server);
    await conn.send(concatBytes(requestBytes("double", {}, {}, {}, "test.Echo.v1", "1.0.0")));
    const In = { x: t.float64() };
    const input = concatBytes(encodeStream(schemaOf(In), [batchFromColumns(In, { x: [1] })])).slice();
    // The batch's length prefix claims 2^31-1 bytes of header: no Arrow stream has that.
    const batch = messageSpans(input).find((m) => m.bodyLength > 0)!;
    new DataView(input.buffer).setInt32(batch.start - 4, 0x7fffffff, true);
    await conn.send(input);
    const out = await conn.read();
    assert.ok(out, "no output stream");
    assert.equal(out.batches.length, 1);
    assert.equal(errorFromMetadata(out.batches[0]!.metadata).kind, "protocol_error");
    await conn.served;
    await expectEcho(other, "still here");
    await other.close();
  });
});
