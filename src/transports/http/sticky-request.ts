/** A request's side of a sticky session: the session it presents, and what it did to it (see sticky.ts). */

import { type RpcError, RuntimeError } from "../../errors.js";
import type { AuthContext, SessionOptions } from "../../protocol/context.js";
import type { SessionAction, SessionSink } from "../../server/dispatch.js";
import { ECHO_HEADER_PREFIX, SESSION_ACCEPT_HEADER, SESSION_CLOSE_HEADER, SESSION_HEADER } from "./headers.js";
import { Entry, type SessionRegistry } from "./sticky.js";

/** How a request's session ended up, for its answer's headers. */
export class RequestSession implements SessionSink {
  action: SessionAction = "none";
  touchedId = "";
  /** The bound session (resumed, or opened by this request); null once closed. */
  private entry: Entry | null;
  /** The session whose turn this request holds. */
  private held: Entry | null = null;
  /** The token of a session this request opened. */
  private minted: string | null = null;
  private closed = false;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly auth: AuthContext,
    /** The client sent `VGI-Session-Accept: true`. */
    private readonly accepts: boolean,
    resumed: Entry | null,
  ) {
    this.entry = resumed;
    if (resumed !== null) {
      this.action = "resume";
      this.touchedId = resumed.idHex;
    }
  }

  get state(): unknown {
    return this.entry === null ? null : this.entry.state;
  }

  get id(): string | null {
    return this.entry === null ? null : this.entry.idHex;
  }

  open(state: unknown, options: SessionOptions): void {
    if (!this.accepts) {
      // The reference's messages, word for word (quiver's client: `withSession()`).
      throw new RuntimeError(
        `client did not opt in to sticky sessions (missing ${SESSION_ACCEPT_HEADER}: true header — open the call inside an HttpConnection.with_session_token() block)`,
      );
    }
    if (this.entry !== null) {
      throw new RuntimeError("a sticky session is already active for this request");
    }
    const { entry, token } = this.registry.open(state, options, this.auth);
    this.entry = entry;
    this.held = entry;
    this.minted = token;
    this.action = "open";
    this.touchedId = entry.idHex;
  }

  close(): void {
    const entry = this.entry;
    if (entry !== null) {
      this.entry = null;
      this.registry.retire(entry);
      // The handler that closes its session is done with the state: it closes now, and requests
      // waiting for the session go on (to `session_lost`).
      this.registry.closeState(entry);
      if (this.held === entry) {
        this.held = null;
        this.registry.give(entry);
      }
    }
    this.closed = true;
    this.action = "close";
  }

  /** Waits for the resumed session's turn; false when it ended while this request waited. */
  async begin(): Promise<boolean> {
    const entry = this.entry;
    if (entry === null) return true;
    if (!(await this.registry.take(entry))) return false;
    this.held = entry;
    return true;
  }

  /** Gives up the session's turn and adds the session headers to the answer. */
  end(headers: (readonly [string, string])[]): void {
    const held = this.held;
    this.held = null;
    if (held !== null) this.registry.give(held);
    if (this.minted !== null) {
      headers.push([SESSION_HEADER, this.minted]);
      for (const [name, value] of this.registry.config.echo) headers.push([`${ECHO_HEADER_PREFIX}${name}`, value]);
    }
    if (this.closed) headers.push([SESSION_CLOSE_HEADER, "true"]);
  }
}

/**
 * The session a request presents (`VGI-Session`), or the `session_lost` error; a request without
 * one gets a `RequestSession` bound to nothing (its method may open one).
 */
export function requestSession(
  registry: SessionRegistry,
  headers: { get(name: string): string | null },
  auth: AuthContext,
): RequestSession | RpcError {
  const accepts = (headers.get(SESSION_ACCEPT_HEADER) ?? "").trim().toLowerCase() === "true";
  const token = headers.get(SESSION_HEADER);
  if (!token) return new RequestSession(registry, auth, accepts, null);
  const entry = registry.lookup(token, auth);
  if (!(entry instanceof Entry)) return entry;
  return new RequestSession(registry, auth, accepts, entry);
}

/**
 * `DELETE {prefix}/__session__`: closes the session the request's token names, after the call
 * using it (if any) answers. True when one was closed (204); false for anything else — no token,
 * a token that does not open, another instance's or caller's, no such session — answered 200 so
 * that a stolen token cannot probe whether a session exists.
 */
export async function deleteSession(
  registry: SessionRegistry,
  headers: { get(name: string): string | null },
  auth: AuthContext,
): Promise<boolean> {
  const token = headers.get(SESSION_HEADER);
  if (!token) return false;
  const entry = registry.lookup(token, auth);
  if (!(entry instanceof Entry)) return false;
  let mine: boolean;
  try {
    mine = await registry.take(entry);
  } catch {
    return false; // too many waiting: its lifetime will end it
  }
  if (!mine) return false;
  registry.retire(entry);
  registry.closeState(entry);
  registry.give(entry);
  return true;
}
