/**
 * `quiver-rpc/quota/redis`: a `QuotaStore` in Redis, so several quiver instances enforce one quota
 * between them. Every operation is one Lua script run atomically on the server, and windows and
 * slot expiries read Redis's own clock (`TIME`), so instances whose clocks disagree still count
 * in the same windows.
 *
 * The client library (`redis`, node-redis) is an optional peer dependency, loaded when the store
 * connects by `url`; or pass any connected client with node-redis's `sendCommand`.
 *
 * @module quiver-rpc/quota/redis
 */
import { createHash, randomBytes } from "node:crypto";
import { loadSdk } from "../external/sdk.js";
import { type QuotaStore, QuotaStoreTimeoutError, type WindowCount } from "../server/quota-store.js";

export { MissingSdkError } from "../external/sdk.js";
export { type QuotaStore, QuotaStoreTimeoutError, type WindowCount } from "../server/quota-store.js";

/** What the store needs of a Redis client: one raw command, its reply (node-redis's `sendCommand`). */
export interface RedisCommander {
  sendCommand(args: readonly string[]): Promise<unknown>;
}

export interface RedisQuotaStoreOptions {
  /** The server to connect to (`redis://127.0.0.1:6379`), with the `redis` package. Not with `client`. */
  readonly url?: string;
  /** A connected client to use instead (closed by the caller). Default: one made from `url`. */
  readonly client?: RedisCommander;
  /**
   * How long connecting to `url` may take, in ms, retries included; longer fails with a
   * `QuotaStoreTimeoutError` (operation `connect`) instead of holding start-up. Default: 10 000.
   */
  readonly connectTimeoutMs?: number;
}

/** A quota store in Redis. */
export interface RedisQuotaStore extends QuotaStore {
  /** Disconnects the client the store made from `url` (a client passed in is left open). */
  close(): Promise<void>;
}

/** Milliseconds on Redis's clock. */
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/**
 * Adds ARGV[1] to the window of ARGV[2] ms holding now; the window's key is KEYS[1] (a hash tag)
 * with its index, expiring a second after the window ends. Returns { total, ms until the end }.
 */
const ADD = `${NOW}
local w = tonumber(ARGV[2])
local idx = math.floor(now / w)
local k = KEYS[1] .. ':' .. idx
local total = redis.call('INCRBY', k, ARGV[1])
local left = (idx + 1) * w - now
if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, left + 1000) end
return { total, left }`;

/** Takes one of ARGV[1] slots of KEYS[1] (a sorted set scored by expiry) for ARGV[3] until now + ARGV[2]; 1 or 0. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

const sha1 = (script: string): string => createHash("sha1").update(script).digest("hex");

/** True for Redis's `NOSCRIPT` error (the script is not cached on this server, e.g. after a restart). */
function noScript(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  // Redis errors open with their code word; NOSCRIPT is the protocol's, not prose.
  return typeof message === "string" && message.startsWith("NOSCRIPT");
}

/** `{key}`: a hash tag, so a key and the window keys made from it live in one cluster slot. */
const tagged = (key: string): string => `{${key}}`;

/** Most releases kept for a reconnect; past it, slots are left to free themselves after their TTL. */
const MAX_OWED_RELEASES = 10_000;

/** Slot releases that failed while Redis was away, sent again once it is back. */
interface OwedReleases {
  add(key: string, token: string): void;
  /** Sends every owed release (on the client's `ready`); one that fails again stays owed. */
  repay(): void;
}

/**
 * The releases a store made from a URL owes: with no offline queue, a release sent during a
 * reconnect fails at once, and its slot would stay held until its TTL (an hour by default).
 */
function owedReleases(client: RedisCommander): OwedReleases {
  const owed = new Map<string, string>(); // token -> key
  const add = (key: string, token: string) => {
    if (owed.size < MAX_OWED_RELEASES) owed.set(token, key);
  };
  return {
    add,
    repay() {
      for (const [token, key] of owed) {
        owed.delete(token);
        client.sendCommand(["ZREM", key, token]).catch(() => add(key, token));
      }
    },
  };
}

/**
 * Opens a Redis quota store: connects to `url` (loading the `redis` package; `MissingSdkError`
 * when it is not installed) or uses `client`.
 */
export async function createRedisQuotaStore(opts: RedisQuotaStoreOptions): Promise<RedisQuotaStore> {
  if ((opts.url === undefined) === (opts.client === undefined)) {
    throw new TypeError("createRedisQuotaStore needs exactly one of url and client");
  }
  let client: RedisCommander;
  let close: () => Promise<void> = async () => {};
  let owe: OwedReleases | null = null;
  if (opts.client !== undefined) client = opts.client;
  else {
    const url = opts.url!;
    const { createClient } = await loadSdk("quiver-rpc/quota/redis", ["redis"], () => import("redis"));
    const connectTimeout = opts.connectTimeoutMs ?? 10_000;
    if (!(Number.isFinite(connectTimeout) && connectTimeout > 0)) {
      throw new RangeError(`createRedisQuotaStore: connectTimeoutMs must be a positive number, got ${connectTimeout}`);
    }
    // While disconnected, commands fail at once (the quota lets calls through) instead of
    // waiting in node-redis's offline queue for a reconnect that may never come.
    const made = createClient({ url, disableOfflineQueue: true, socket: { connectTimeout } });
    // Errors are the commands' to report; an unhandled 'error' event would end the process.
    made.on("error", () => {});
    // node-redis retries a first connection that fails, for ever: the deadline ends that.
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QuotaStoreTimeoutError("connect", connectTimeout)), connectTimeout);
    });
    try {
      await Promise.race([made.connect(), expired]);
    } catch (err) {
      made.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    client = { sendCommand: (args) => made.sendCommand(args) };
    close = async () => {
      made.destroy();
    };
    owe = owedReleases(client);
    made.on("ready", owe.repay);
  }
  const scripts = new Map([ADD, ACQUIRE].map((s) => [s, sha1(s)]));
  const run = async (script: string, keys: readonly string[], args: readonly string[]): Promise<unknown> => {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await client.sendCommand(["EVALSHA", scripts.get(script)!, ...tail]);
    } catch (err) {
      if (!noScript(err)) throw err;
      return client.sendCommand(["EVAL", script, ...tail]);
    }
  };
  return {
    async add(key, amount, windowMs): Promise<WindowCount> {
      const reply = await run(ADD, [tagged(key)], [String(amount), String(windowMs)]);
      if (!Array.isArray(reply) || reply.length !== 2) throw new TypeError(`unexpected Redis reply ${String(reply)}`);
      return { total: Number(reply[0]), resetMs: Number(reply[1]) };
    },
    async acquire(key, limit, ttlMs) {
      const token = randomBytes(12).toString("hex");
      const reply = await run(ACQUIRE, [tagged(key)], [String(limit), String(ttlMs), token]);
      return Number(reply) === 1 ? token : null;
    },
    async release(key, token) {
      try {
        await client.sendCommand(["ZREM", tagged(key), token]);
      } catch (err) {
        owe?.add(tagged(key), token);
        throw err;
      }
    },
    close,
  };
}
