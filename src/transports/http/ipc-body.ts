/** Whole-body Arrow IPC helpers for request transports: decode one stream, encode answers. */
import type { RecordBatch, Schema } from "apache-arrow";
import { frameworkError } from "../../errors.js";
import { MessageFramer } from "../../wire/framer.js";
import { concatBytes, encodeStream, IpcStreamDecoder } from "../../wire/ipc.js";

/** One decoded IPC stream. */
export interface DecodedStream {
  readonly schema: Schema;
  readonly batches: RecordBatch[];
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/**
 * Decodes the first IPC stream in `bytes`. A body that ends at a message boundary without EOS
 * is accepted (as pyarrow does); one that ends inside a message, or is not Arrow, throws a
 * `protocol_error`.
 */
export async function decodeIpcBody(bytes: Uint8Array, maxMessageBytes?: number): Promise<DecodedStream> {
  const framer = new MessageFramer(once(bytes), maxMessageBytes === undefined ? {} : { maxMessageBytes });
  const decoder = new IpcStreamDecoder();
  const batches: RecordBatch[] = [];
  for (;;) {
    const frame = await framer.next();
    if (frame === "eos" || frame === "end") break;
    const out = decoder.accept(frame);
    if (out !== null && "numRows" in out) batches.push(out);
  }
  const schema = decoder.schema;
  if (schema === null) {
    throw frameworkError(
      "protocol_error",
      bytes.byteLength === 0
        ? "Request body is empty; expected an Arrow IPC stream."
        : "Request body is not an Arrow IPC stream (no schema message).",
    );
  }
  return { schema, batches };
}

/** Encodes one IPC stream to a single buffer. */
export function encodeIpcBody(schema: Schema, batches: readonly RecordBatch[]): Uint8Array {
  return concatBytes(encodeStream(schema, batches));
}
