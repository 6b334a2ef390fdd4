/**
 * Stateless streams behind a real load balancer: nginx (Debian's, started by the test on loopback
 * with a config of its own, passing no failed request on by itself) spreads requests over two
 * quiver conformance workers sharing one token key. Streams are read through nginx while one
 * worker is killed (SIGKILL) mid-turn: every stream finishes with all its values, in order, and no
 * error reaches the caller (the client re-sends the turns nginx answered 502, and nginx sends them
 * to the live worker). The killed worker is restarted on its port and takes traffic again.
 *
 * nginx is required, never skipped: without it the test fails saying how to install it (`.ci/run`
 * installs it on a fresh machine). `QUIVER_NGINX` overrides its path.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { connectHttp } from "../../src/transports/http/index.js";
import { WORKER } from "../helpers/raw-peer.js";

/** The nginx binary, or an error saying how to get one. */
function nginxPath(): string {
  const override = process.env.QUIVER_NGINX;
  if (override !== undefined && override !== "") {
    if (!existsSync(override)) throw new Error(`QUIVER_NGINX=${override} does not exist`);
    return override;
  }
  for (const path of ["/usr/sbin/nginx", "/usr/bin/nginx"]) if (existsSync(path)) return path;
  throw new Error(
    "nginx is required by the load-balancer test and was not found. Install it " +
      "(`sudo apt-get install -y nginx-light`; `.ci/run` does this) or set QUIVER_NGINX=/path/to/nginx.",
  );
}

/** A free loopback port (bound and released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const TOKEN_KEY = "11".repeat(32);

/** Starts a conformance worker on `port` with the shared token key; resolves once it listens. */
async function startWorker(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", WORKER, "--http", "--port", String(port), "--token-key", TOKEN_KEY],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`worker on ${port} did not start`)), 30_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("PORT:")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`worker on ${port} exited (${code}) before listening`)));
  });
  return child;
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    }
  });
}

/** The `server_id`s that answer `/health` through nginx over `n` requests. */
async function serverIds(url: string, n: number): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/health`);
    if (res.ok) ids.add(((await res.json()) as { server_id: string }).server_id);
  }
  return ids;
}

test("streams through nginx survive one worker being killed, with every value right; the worker comes back", {
  timeout: 180_000,
}, async () => {
  const nginx = nginxPath();
  const dir = mkdtempSync(join(tmpdir(), "quiver-nginx-"));
  const [portA, portB, portLb] = [await freePort(), await freePort(), await freePort()];
  const workers: ChildProcess[] = [];
  let nginxProc: ChildProcess | undefined;
  const conf = join(dir, "nginx.conf");
  try {
    workers.push(await startWorker(portA), await startWorker(portB));
    mkdirSync(join(dir, "tmp"));
    writeFileSync(
      conf,
      `daemon off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "tmp")};
  proxy_temp_path ${join(dir, "tmp")};
  fastcgi_temp_path ${join(dir, "tmp")};
  uwsgi_temp_path ${join(dir, "tmp")};
  scgi_temp_path ${join(dir, "tmp")};
  upstream quiver {
    server 127.0.0.1:${portA} max_fails=1 fail_timeout=1s;
    server 127.0.0.1:${portB} max_fails=1 fail_timeout=1s;
    keepalive 8;
  }
  server {
    listen 127.0.0.1:${portLb};
    location / {
      proxy_pass http://quiver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 2s;
      # nginx passes no failed request on itself: the client's own retries must carry the streams.
      proxy_next_upstream off;
    }
  }
}
`,
    );
    const check = spawnSync(nginx, ["-t", "-c", conf, "-e", join(dir, "error.log")], { encoding: "utf8" });
    assert.equal(check.status, 0, `nginx -t failed: ${check.stderr}`);
    nginxProc = spawn(nginx, ["-c", conf, "-e", join(dir, "error.log")], { stdio: "ignore" });
    const url = `http://127.0.0.1:${portLb}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      assert.ok(i < 100, "nginx did not start answering");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await serverIds(url, 6)).size, 2, "nginx does not spread requests over both workers");

    const client = connectHttp(url, { retry: { maxRetries: 5, backoffBaseMs: 20, backoffMaxMs: 200 } });
    const service = proxy(client, ConformanceService);
    const STREAMS = 8;
    const ROWS = 40n;
    const streams = await Promise.all(Array.from({ length: STREAMS }, () => service.produce_n({ count: ROWS })));
    const iterators = streams.map((s) => s[Symbol.asyncIterator]());
    const seen: { index: bigint | null; value: bigint | null }[][] = streams.map(() => []);
    // Lockstep turns over all streams; worker A dies a third of the way through, while that
    // turn's requests are in flight.
    for (let turn = 0n; turn <= ROWS; turn++) {
      const turns = iterators.map(async (it, k) => {
        const r = await it.next();
        if (!r.done) seen[k]!.push(r.value);
      });
      if (turn === ROWS / 3n) await killed(workers[0]!);
      await Promise.all(turns);
    }
    for (const rows of seen) {
      assert.equal(rows.length, Number(ROWS));
      rows.forEach((row, i) => {
        assert.equal(row.index, BigInt(i));
        assert.equal(row.value, BigInt(i) * 10n);
      });
    }
    // Only B answers now; A restarted on its port takes traffic again.
    assert.equal((await serverIds(url, 4)).size, 1);
    workers[0] = await startWorker(portA);
    let ids = new Set<string>();
    for (let i = 0; i < 40 && ids.size < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      ids = await serverIds(url, 4);
    }
    assert.equal(ids.size, 2, "the restarted worker takes no traffic");
    const after = await (await service.produce_n({ count: 5n })).toArray();
    assert.deepEqual(
      after.map((r) => r.index),
      [0n, 1n, 2n, 3n, 4n],
    );
    await client.close();
  } finally {
    if (nginxProc !== undefined) await killed(nginxProc);
    for (const w of workers) await killed(w);
    rmSync(dir, { recursive: true, force: true });
  }
});
