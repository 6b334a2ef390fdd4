/**
 * The seam between session transports (stdio, sockets, WebSocket) and the dispatch core: a
 * duplex byte stream plus what the transport knows about its peer.
 */
import type { AuthContext } from "../protocol/context.js";

export interface Connection {
  /** Bytes from the peer, in arbitrary pieces; ends when the peer closes its side. */
  readonly input: AsyncIterable<Uint8Array>;
  /**
   * Sends chunks in order. Resolves when the transport can take more (backpressure); rejects if
   * the peer is gone.
   */
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /** Transport name for contexts and logs: `pipe`, `unix`, `tcp`, `ws`. */
  readonly transport: string;
  /** Facts about the peer (`remote_addr`, `user_agent`, ...). */
  readonly transportMetadata?: Readonly<Record<string, string>>;
  /** The connection's identity, resolved once at accept; anonymous when absent. */
  readonly auth?: AuthContext;
}
