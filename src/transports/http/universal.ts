/**
 * The request and response the HTTP transport core works on, whatever server received the request:
 * the node:http and fetch-style adapters translate to and from these, and so can an adapter for any
 * other runtime (`handler.handle(request)`). Plain values: no streams, no callbacks but the body's.
 */
import type { AuthRequest } from "../../auth/types.js";

/** A request body refused for its size, unread past the point it was refused. */
export interface BodyTooLarge {
  /** The size that passed the limit: the declared `Content-Length`, or the bytes received so far. */
  readonly tooLarge: number;
}

/** One HTTP request: the request line, headers, connection facts and a way to read the body. */
export interface UniversalRequest extends AuthRequest {
  /** The request method, upper case. */
  readonly method: string;
  /** The path, without the query string. */
  readonly path: string;
  /**
   * Reads the whole body, once. Past `limit` bytes (declared or received; null: no limit) it
   * resolves a `BodyTooLarge` and reads no further; it rejects only when the body cannot be read
   * (the connection went away).
   */
  readBody(limit: number | null): Promise<Uint8Array | BodyTooLarge>;
  /**
   * Aborted when the client goes away before its answer is written: the call it runs is then
   * aborted (`ctx.signal` fires with a `cancelled` error). Optional: without it a call runs to its end.
   */
  readonly signal?: AbortSignal;
  /**
   * The lighter form of `signal` for adapters that track their connections themselves: registers
   * `listener` to run once if the client goes away before its answer is written, and returns a
   * function that unregisters it (an `AbortController` and its event target per request cost a
   * small call several percent of its time). The core uses it when present, else `signal`.
   */
  readonly watchGone?: (listener: () => void) => () => void;
}

/** One complete HTTP response. */
export interface UniversalResponse {
  readonly status: number;
  /** Header pairs, in order; a name may repeat (`Set-Cookie`). `Content-Type` is among them when there is a body. */
  readonly headers: readonly (readonly [string, string])[];
  /**
   * The body's pieces, in order (an Arrow answer's large column buffers are views of its batches,
   * so write them as they are rather than join them). An adapter sends none for `HEAD`.
   */
  readonly body: readonly Uint8Array[];
}
