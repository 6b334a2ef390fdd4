/**
 * What the WebSocket server and client share, free of `node:` imports so the browser client can
 * use it: close codes and their meaning, the one function mapping a close to an error kind, and the
 * keep-alive pinger of the `ws` package's sockets (the inbound byte queue is `../byte-queue.ts`;
 * outbound bytes are cut into messages by `outgoingPieces`).
 *
 * A WebSocket carries exactly the byte stream a pipe carries: binary messages whose concatenation
 * is the stream. Message boundaries mean nothing, so either side may split or merge freely.
 */
import { type ErrorCode, frameworkError, RpcError } from "../../errors.js";

/**
 * Default largest message either side sends (`maxSendBytes`): 16 KiB. The `ws` receiver copies
 * every message that spans two socket reads (64 KiB each) into fresh memory before handing it
 * over, so 1 MiB messages had each large batch copied, and collected, once more than needed; most
 * 16 KiB messages fit inside one read and are handed over as views. Measured with
 * `bench/cpu-per-call.ts` against 1 MiB (with the server sending a write's messages corked): a
 * 10k-row exchange turn, server 760 -> 220 us, client 650 -> 320 us; 100k-row producer batches,
 * client 11 -> 4.2 ms, server 1.7 -> 2.0 ms, wall 8.4 -> 4.8 ms; 1-row calls unchanged.
 */
export const DEFAULT_MAX_SEND_BYTES = 16 * 1024;

/**
 * The close codes quiver sends, and why.
 * - 1000 normal: the peer closed its side, the session ended; or, with reason `idle timeout`, no
 *   request came within the listener's `connectionIdleTimeoutMs`.
 * - 1001 going away: the server is shutting down. (A peer that leaves a keep-alive ping unanswered
 *   is dropped without a close frame: it is not listening; its side sees 1006.)
 * - 1003 unsupported data: a text message (the stream is binary only).
 * - 1008 policy violation: the byte stream was not vgi-rpc (framing lost), or too many connections.
 * - 1009 message too big: a message over `maxPayload` (sent by `ws` itself).
 * - 1011 internal error: the server failed outside any call.
 */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  abnormal: 1006,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

/** Maps a close (code and reason) to the typed error a reader sees; null for a clean close. */
export function closeError(code: number, reason: string): RpcError | null {
  if (code === CloseCode.normal || code === 1005) return null;
  const why = reason ? `: ${reason}` : "";
  const detail = [{ "@type": "quiver.WebSocketClose", code, reason }] as const;
  if (code === CloseCode.messageTooBig) {
    return new RpcError(`WebSocket closed with 1009 (message too big)${why}`, {
      type: "RpcError",
      code: "RESOURCE_EXHAUSTED",
      kind: "message_too_large",
      details: detail,
    });
  }
  const named: Record<number, [string, ErrorCode]> = {
    1001: ["going away", "UNAVAILABLE"],
    1002: ["protocol error", "INTERNAL"],
    1003: ["unsupported data", "INVALID_ARGUMENT"],
    1006: ["connection dropped", "UNAVAILABLE"],
    1008: ["policy violation", "FAILED_PRECONDITION"],
    1011: ["internal error", "INTERNAL"],
    1013: ["try again later", "UNAVAILABLE"],
  };
  const [name, errCode] = named[code] ?? ["closed", "UNAVAILABLE"];
  const err = frameworkError("transport_error", `WebSocket closed with ${code} (${name})${why}`);
  return new RpcError(err.message, { type: err.type, code: errCode, kind: err.kind, details: detail });
}

/** What `keepAlive` needs of a `ws` WebSocket (structural: this module stays free of `ws` and `node:`). */
interface Pingable {
  ping(): void;
  terminate(): void;
  on(event: "pong", listener: () => void): unknown;
  once(event: "close", listener: () => void): unknown;
}

/**
 * Pings `ws` every `intervalMs` (0: never) and drops it (`terminate`) when a ping goes
 * `pongTimeoutMs` without its pong: its close then fails whatever waits on the connection. The
 * timers end with the connection and never keep a process alive. Both sides use it (`ws` only: a
 * browser cannot send pings).
 */
export function keepAlive(ws: Pingable, intervalMs: number, pongTimeoutMs: number): void {
  if (intervalMs <= 0) return;
  let unanswered: ReturnType<typeof setTimeout> | undefined;
  const pinger = setInterval(() => {
    if (unanswered !== undefined) return;
    unanswered = setTimeout(() => ws.terminate(), pongTimeoutMs);
    (unanswered as { unref?: () => void }).unref?.();
    ws.ping();
  }, intervalMs);
  (pinger as { unref?: () => void }).unref?.();
  ws.on("pong", () => {
    clearTimeout(unanswered);
    unanswered = undefined;
  });
  ws.once("close", () => {
    clearInterval(pinger);
    clearTimeout(unanswered);
  });
}
