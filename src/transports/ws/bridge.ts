/**
 * A pipe-to-WebSocket bridge (`quiver bridge --ws URL`): speaks the pipe protocol on a readable
 * and a writable (stdin/stdout) and relays the bytes, unchanged, to and from a WebSocket. Any
 * pipe client (the reference's `vgi-rpc-test --cmd`, `connectSubprocess`) thereby reaches a
 * WebSocket server. Backpressure holds both ways: stdin is read only as fast as the WebSocket
 * takes bytes, and WebSocket reading pauses while stdout is full.
 *
 * A WebSocket has no half-close, so EOF on stdin closes the WebSocket (1000) once everything
 * written has been sent; the server's answers to earlier requests have already arrived then,
 * since the protocol is lockstep.
 *
 * When the WebSocket cannot be opened (the upgrade refused with 401, the server unreachable),
 * the bridge answers each request its pipe client sends with that error, as a server answers a
 * request it cannot serve, so the client's call fails with it (kind `transport_error`, code
 * `UNAUTHENTICATED` for a 401, the HTTP status and `VGI-Auth-Reason` in the message and in a
 * `quiver.WebSocketRefused` detail) rather than with a closed pipe.
 */
import type { Readable, Writable } from "node:stream";
import type { RecordBatch } from "apache-arrow";
import type { ClientTransport } from "../../client/transport.js";
import { RpcError } from "../../errors.js";
import { EMPTY_SCHEMA } from "../../wire/batches.js";
import { MessageFramer } from "../../wire/framer.js";
import { encodeStream, IpcStreamDecoder } from "../../wire/ipc.js";
import { METHOD_KEY, REQUEST_ID_KEY } from "../../wire/keys.js";
import { errorBatch } from "../../wire/messages.js";
import { writableSink } from "../node/sink.js";
import { connectWebSocket, type WebSocketClientOptions } from "./client.js";

/**
 * Relays `input` → WebSocket `url` → `output` until either side ends; resolves to an exit code
 * (1 after a failure, reported to `onError`). A WebSocket that cannot be opened is reported, and
 * every request read from `input` is answered with its error until `input` ends.
 */
export async function bridgeWebSocket(
  url: string,
  input: Readable,
  output: Writable,
  opts: WebSocketClientOptions & { readonly onError?: (message: string) => void } = {},
): Promise<number> {
  const report = opts.onError ?? (() => {});
  let transport: ClientTransport;
  try {
    transport = await connectWebSocket(url, opts);
  } catch (err) {
    const refusal = RpcError.from(err);
    report(`quiver bridge: ${refusal.message}`);
    await answerWith(refusal, input, output);
    return 1;
  }
  const sink = writableSink(output);
  let status = 0;
  let stop = false;
  const down = (async () => {
    try {
      for await (const chunk of transport.input) await sink.write([chunk]);
    } catch (err) {
      if (!sink.broken) {
        report(`quiver bridge: ${RpcError.from(err).message}`);
        status = 1;
      }
    } finally {
      stop = true;
      await sink.flush();
      output.end();
      input.destroy();
    }
  })();
  const up = (async () => {
    try {
      for await (const chunk of input as AsyncIterable<Uint8Array>) {
        if (stop) break;
        await transport.write([chunk]);
      }
    } catch (err) {
      if (!stop) {
        report(`quiver bridge: ${RpcError.from(err).message}`);
        status = 1;
      }
    }
    await transport.close();
  })();
  await Promise.all([up, down]);
  return status;
}

/**
 * Reads IPC streams from `input` until it ends and answers each request (a stream whose first
 * batch names a method) with `err` on the empty schema, as a server answers a request it cannot
 * route. Other streams (the input stream a client still sends after its stream call failed) are
 * read and dropped. Bytes that are not IPC end it.
 */
async function answerWith(err: RpcError, input: Readable, output: Writable): Promise<void> {
  const sink = writableSink(output);
  const framer = new MessageFramer((input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]());
  try {
    for (;;) {
      const decoder = new IpcStreamDecoder();
      let first: RecordBatch | null = null;
      for (;;) {
        const frame = await framer.next();
        if (frame === "end") return;
        if (frame === "eos") break;
        const out = decoder.accept(frame);
        if (first === null && out !== null && "numRows" in out) first = out;
      }
      if (first?.metadata.has(METHOD_KEY)) {
        const origin = { serverId: "", requestId: first.metadata.get(REQUEST_ID_KEY) ?? "" };
        await sink.write(encodeStream(EMPTY_SCHEMA, [errorBatch(EMPTY_SCHEMA, err, origin, false)]));
      }
    }
  } catch {
    // Not IPC, or the client went away: nothing more to answer.
  } finally {
    await sink.flush().catch(() => {});
    output.end();
    input.destroy();
  }
}
