/** Sticky sessions' options (`HttpServerOptions.sticky`), checked once per handler (see sticky.ts). */
import {
  ECHO_HEADER_PREFIX,
  SESSION_CLOSE_HEADER,
  SESSION_HEADER,
  STICKY_DEFAULT_TTL_HEADER,
  STICKY_ECHO_HEADERS_HEADER,
  STICKY_ENABLED_HEADER,
} from "./headers.js";

/** Default `StickyOptions.defaultTtlSeconds` (the reference's `sticky_default_ttl`). */
export const DEFAULT_STICKY_TTL_SECONDS = 300;
/** Default `StickyOptions.maxTtlSeconds`: one day. */
export const DEFAULT_STICKY_MAX_TTL_SECONDS = 86_400;
/** Default `StickyOptions.maxSessions`. */
export const DEFAULT_MAX_STICKY_SESSIONS = 10_000;
/** Default `StickyOptions.maxWaitingPerSession`. */
export const DEFAULT_MAX_WAITING_PER_SESSION = 64;
/** Default `StickyOptions.maxWaitMs`. */
export const DEFAULT_STICKY_MAX_WAIT_MS = 30_000;
/** Default `StickyOptions.sweepIntervalMs` (the reference's reaper ticks every second). */
export const DEFAULT_STICKY_SWEEP_MS = 1_000;

/** `HttpServerOptions.sticky` when given as an object. */
export interface StickyOptions {
  /**
   * Lifetime of a session opened without `ttlSeconds`, in whole seconds (at least 1), advertised
   * as `VGI-Sticky-Default-TTL`. Lifetimes count from the open; use does not extend them. Default: 300.
   */
  readonly defaultTtlSeconds?: number;
  /** Longest lifetime `openSession` may ask for, in seconds; more throws `RangeError`. Default: 86 400. */
  readonly maxTtlSeconds?: number;
  /**
   * Closes a session no request has used for this long, in seconds, before its lifetime ends
   * (null: only its lifetime ends it, as in the reference). Default: null.
   */
  readonly idleTimeoutSeconds?: number | null;
  /** Most sessions open at once; opening another fails with `session_limit`. Default: 10 000. */
  readonly maxSessions?: number;
  /**
   * Most requests that may wait for one session while another of its calls runs; more are
   * answered `session_limit`. Default: 64.
   */
  readonly maxWaitingPerSession?: number;
  /**
   * Longest a request waits for its session while another of the session's calls runs, in ms;
   * then it is answered `session_limit` (so a call that never ends cannot hold the requests queued
   * behind it forever). Default: 30 000.
   */
  readonly maxWaitMs?: number;
  /**
   * Headers the client echoes on every later request of a session, for routing by the load
   * balancer (e.g. Fly's `fly-force-instance-id: <machine>`): sent as `VGI-Echo-<name>: <value>`
   * on the answer that opens a session and listed in `VGI-Sticky-Echo-Headers`. Default: none.
   */
  readonly echoHeaders?: Readonly<Record<string, string>>;
  /** How often expired and idle sessions are swept while any are open, in ms. Default: 1000. */
  readonly sweepIntervalMs?: number;
}

/** `StickyOptions` checked, in milliseconds. */
export interface StickyConfig {
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly idleMs: number | null;
  readonly maxSessions: number;
  readonly maxWaiting: number;
  readonly maxWaitMs: number;
  readonly echo: readonly (readonly [string, string])[];
  readonly sweepMs: number;
  /** The capability headers sticky sessions add to every answer. */
  readonly capabilityHeaders: readonly (readonly [string, string])[];
  /** The headers a browser client must be able to read (CORS `Access-Control-Expose-Headers`). */
  readonly exposed: readonly string[];
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function positive(name: string, value: number, integer: boolean): number {
  if (
    typeof value !== "number" ||
    !(value > 0) ||
    !Number.isFinite(value) ||
    (integer && !Number.isSafeInteger(value))
  ) {
    throw new RangeError(`sticky.${name} must be a positive ${integer ? "integer" : "number"}, got ${String(value)}`);
  }
  return value;
}

/** Checks `options` (`true`: every default) and derives the configuration; throws on an unusable value. */
export function stickyConfig(options: StickyOptions | true): StickyConfig {
  const o: StickyOptions = options === true ? {} : options;
  const defaultTtl = positive("defaultTtlSeconds", o.defaultTtlSeconds ?? DEFAULT_STICKY_TTL_SECONDS, true);
  const maxTtl = positive("maxTtlSeconds", o.maxTtlSeconds ?? DEFAULT_STICKY_MAX_TTL_SECONDS, false);
  if (defaultTtl > maxTtl)
    throw new RangeError(`sticky.defaultTtlSeconds (${defaultTtl}) exceeds maxTtlSeconds (${maxTtl})`);
  const idle = o.idleTimeoutSeconds ?? null;
  const echo: [string, string][] = [];
  for (const [name, value] of Object.entries(o.echoHeaders ?? {})) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || !HEADER_VALUE.test(value)) {
      throw new TypeError(`sticky.echoHeaders: ${JSON.stringify(name)} is not a header name with a header value`);
    }
    echo.push([name, value]);
  }
  const caps: [string, string][] = [
    [STICKY_ENABLED_HEADER, "true"],
    [STICKY_DEFAULT_TTL_HEADER, String(defaultTtl)],
  ];
  const exposed = [STICKY_ENABLED_HEADER, STICKY_DEFAULT_TTL_HEADER, SESSION_HEADER, SESSION_CLOSE_HEADER];
  if (echo.length > 0) {
    caps.push([STICKY_ECHO_HEADERS_HEADER, echo.map(([n]) => n).join(", ")]);
    exposed.push(STICKY_ECHO_HEADERS_HEADER, ...echo.map(([n]) => `${ECHO_HEADER_PREFIX}${n}`));
  }
  return {
    defaultTtlSeconds: defaultTtl,
    maxTtlSeconds: maxTtl,
    idleMs: idle === null ? null : positive("idleTimeoutSeconds", idle, false) * 1000,
    maxSessions: positive("maxSessions", o.maxSessions ?? DEFAULT_MAX_STICKY_SESSIONS, true),
    maxWaiting:
      o.maxWaitingPerSession === 0
        ? 0
        : positive("maxWaitingPerSession", o.maxWaitingPerSession ?? DEFAULT_MAX_WAITING_PER_SESSION, true),
    maxWaitMs: positive("maxWaitMs", o.maxWaitMs ?? DEFAULT_STICKY_MAX_WAIT_MS, false),
    echo,
    sweepMs: positive("sweepIntervalMs", o.sweepIntervalMs ?? DEFAULT_STICKY_SWEEP_MS, true),
    capabilityHeaders: caps,
    exposed,
  };
}
