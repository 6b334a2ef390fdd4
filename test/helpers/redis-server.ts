/**
 * A throwaway `redis-server` on loopback for the quota tests: on a free port (Redis cannot bind
 * port 0, so one is picked by listening first), no persistence, health-checked with PING, stopped
 * after. A missing binary fails the test saying how to install it.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createConnection } from "node:net";
import { freePort } from "./object-stores.js";

const BINARY = process.env.QUIVER_REDIS_SERVER ?? "/usr/bin/redis-server";

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The redis-server process (tests stop it with SIGSTOP to play a peer that stops answering). */
  readonly pid: number;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** It is killed after this long, should the caller never stop it, in ms. Default: 120 000. */
  readonly lifetimeMs?: number;
}

/** One PING on a fresh connection: true on `+PONG`. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d: Buffer) => done(d.toString("latin1").startsWith("+PONG")));
  });
}

/** Starts redis-server; rejects (failing the test) when it is missing or does not answer PING within 10 s. */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  assert.ok(
    existsSync(BINARY),
    `redis-server not found at ${BINARY}: install it with \`sudo apt-get install redis-server\` (or set QUIVER_REDIS_SERVER)`,
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      BINARY,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const kill = setTimeout(() => child.kill("SIGKILL"), opts.lifetimeMs ?? 120_000);
    kill.unref();
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const deadline = Date.now() + 10_000;
    let up = false;
    while (!up && Date.now() < deadline && child.exitCode === null) {
      up = await ping(port);
      if (!up) await new Promise((r) => setTimeout(r, 50));
    }
    const stop = async () => {
      clearTimeout(kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(force);
    };
    if (up) return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid!, stop };
    await stop();
    // The port was taken between the probe and the bind: try another, a few times.
    if (attempt >= 2) assert.fail(`redis-server did not answer PING on port ${port}: ${stderr}`);
  }
}
