/**
 * A hostile server cannot hang a client: answers whose headers claim 2^31-1 entries or land inside
 * one another are refused at once (the connection failed, the protocol_error as its cause).
 */
import assert from "node:assert/strict";
import { createServer as createNetServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { RpcError } from "../../src/errors.js";
import { batchFromColumns, schemaOf } from "../../src/protocol/batch.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { connectUnix } from "../../src/transports/socket/client.js";
import { concatBytes, encodeStream } from "../../src/wire/ipc.js";
import { customMetadataCountAt, messageSpans } from "../helpers/ipc-bytes.js";
import { socketPath, within } from "./helpers.js";

const Echo = defineProtocol("test.Echo.v1", { version: "1.0.0" }, { echo: unary({}, t.utf8()) });

/** A valid answer to a unary call returning a string, its result batch carrying metadata. */
function answer(): Uint8Array {
  const Result = { result: t.utf8() };
  const batch = batchFromColumns(Result, { result: ["ok"] }, new Map([["k", "v"]]));
  return concatBytes(encodeStream(schemaOf(Result), [batch]));
}

/** Serves one connection: each time a request arrives, writes `bytes` back. */
async function hostileServer(bytes: Uint8Array): Promise<{ path: string; close(): void }> {
  const path = socketPath("hostile.sock");
  const sockets: Socket[] = [];
  const server = createNetServer((socket) => {
    sockets.push(socket);
    socket.once("data", () => socket.write(bytes));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function expectRefused(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const server = await hostileServer(bytes);
  const client = await connectUnix(server.path, { timeoutMs: 60_000 });
  try {
    await within(
      assert.rejects(client.call(Echo, "echo", {}), (err: unknown) => {
        // The byte stream is unframed after such an answer: the client fails the connection,
        // saying why, and keeps the refusal as the cause.
        assert.ok(err instanceof RpcError, String(err));
        assert.equal(err.kind, "transport_error", err.message);
        assert.match(err.message, pattern);
        assert.ok(err.cause instanceof RpcError && err.cause.kind === "protocol_error");
        return true;
      }),
      10_000,
      "the refused answer",
    );
  } finally {
    await client.close().catch(() => {});
    server.close();
  }
}

describe("answers from a hostile server", () => {
  it("a result batch declaring 2^31-1 metadata entries is refused", async () => {
    const bytes = answer().slice();
    const batch = messageSpans(bytes).find((s) => s.bodyLength > 0)!;
    new DataView(bytes.buffer).setUint32(customMetadataCountAt(bytes, batch)!, 0x7fffffff, true);
    await expectRefused(bytes, /declares 2147483647 entries/);
  });

  it("an answer whose first header lands inside a second answer is refused", async () => {
    const bytes = answer();
    await expectRefused(concatBytes([bytes.subarray(0, 100), bytes]), /malformed Arrow IPC message/);
  });
});
