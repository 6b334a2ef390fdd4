/** A view of an HTTP client in a sticky session (`HttpClient.withSession`). No `node:` imports. */
import type { RecordBatch } from "apache-arrow";
import { TypedChannel } from "../../client/channel.js";
import type { CallTarget, RequestMetadata, StreamOpenOptions } from "../../client/transport.js";
import type { ClientCore, SessionTracker } from "./client-core.js";
import type { HttpStream } from "./client-stream.js";
import { SESSION_ENDPOINT } from "./headers.js";

/** Options of `HttpClient.withSession`. */
export interface HttpSessionOptions {
  /** A session token kept from before (`HttpSession.detach()`), to resume that session. Default: none. */
  readonly token?: string;
  /** The echo headers kept with it (`HttpSession.echoHeaders`). Default: none. */
  readonly echoHeaders?: Readonly<Record<string, string>>;
}

/**
 * A client in a sticky session, as the reference's `with_session_token()`: a `CallChannel` (so
 * `proxy(session, Protocol)` works) whose requests carry `VGI-Session-Accept: true` and, once a
 * method opened a session, its `VGI-Session` token and the `VGI-Echo-*` headers the server sent.
 * A `VGI-Session-Close: true` answer ends it. `close()` closes a session still open on the server
 * (`DELETE {prefix}/__session__`); `detach()` keeps it open and hands its token over instead.
 * A session belongs to the server instance that opened it: elsewhere (or once it ended) its calls
 * fail with an `RpcError` of kind `session_lost`.
 */
export class HttpSession extends TypedChannel {
  /** @internal Made by `HttpClient.withSession`. */
  constructor(
    private readonly core: ClientCore,
    private readonly tracker: SessionTracker,
  ) {
    super();
  }

  /** The session's token, or null when none is open (not opened yet, closed, detached). */
  get token(): string | null {
    return this.tracker.token;
  }

  /** The headers this session echoes on every request (`VGI-Echo-<name>` on the opening answer). */
  get echoHeaders(): Readonly<Record<string, string>> {
    return { ...this.tracker.echo };
  }

  unaryBatch(target: CallTarget, params: RecordBatch, extra?: RequestMetadata): Promise<RecordBatch> {
    return this.core.unaryBatch(target, params, extra, this.tracker);
  }

  openStream(target: CallTarget, params: RecordBatch, opts: StreamOpenOptions): Promise<HttpStream> {
    return this.core.openStream(target, params, opts, this.tracker);
  }

  /**
   * Hands the token over and forgets it, leaving the session open on the server (until its
   * lifetime ends) to be resumed with `withSession({ token, echoHeaders })`; `close()` then sends nothing.
   */
  detach(): string | null {
    const token = this.tracker.token;
    this.tracker.forget();
    return token;
  }

  /**
   * Closes the session on the server if one is open (`DELETE {prefix}/__session__`, best effort:
   * a failure is ignored, the session's lifetime ends it anyway) and forgets it. Idempotent.
   */
  async close(): Promise<void> {
    const token = this.tracker.token;
    if (token === null) return;
    const headers = this.tracker.headers(null);
    this.tracker.forget();
    try {
      await this.core.requests.send("DELETE", `${this.core.url}/${SESSION_ENDPOINT}`, headers);
    } catch {
      // Best effort, as the reference: the server's expiry is the safety net.
    }
  }
}
