/**
 * Writing a body through a `node:http` message, request or response alike. No `node:` imports (the
 * HTTP client module that uses it also bundles for browsers, where it never runs).
 */
import { concatBytes, outgoingPieces } from "../../wire/ipc.js";

/** What of a `node:http` `ClientRequest` or `ServerResponse` a body is written through. */
interface OutgoingMessage {
  cork(): void;
  write(chunk: Uint8Array): unknown;
  end(chunk?: Uint8Array): unknown;
}

/**
 * Writes `body`'s pieces and ends the message, as one corked write: runs of small pieces joined by
 * `join`, a large batch's column buffers passed as the views they are (joining a large body first
 * would copy every byte, and hold as much memory again while it is written).
 */
export function endWithPieces(
  out: OutgoingMessage,
  body: readonly Uint8Array[],
  join: (run: readonly Uint8Array[]) => Uint8Array = concatBytes,
): void {
  const pieces = body.length > 1 ? outgoingPieces(body, join) : body;
  if (pieces.length <= 1) {
    out.end(pieces[0]);
    return;
  }
  out.cork();
  for (const p of pieces) out.write(p);
  out.end(); // uncorks fully
}
