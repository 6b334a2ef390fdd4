#!/usr/bin/env node
/**
 * Hostile HTTP clients against a quiver HTTP server in a child process, with the figures issue #21
 * asks for (run on demand, not part of `npm test`):
 *
 *   node scripts/hostile-http.mjs [--requests 200] [--answer-mib 16] [--hold-ms 4000] [--skip pipeline|bombs]
 *
 * 1. Pipelining: one keep-alive connection sends `--requests` pipelined `/init` requests of a
 *    producer whose first turn answers `--answer-mib` MiB, and never reads. Prints the server's RSS
 *    idle, at its peak while the client holds on, and after the client leaves (at once, and once
 *    the large-body pool has released its idle buffers, 5-10 s after its last use), the producer
 *    invocations, and the latency of another client's calls meanwhile.
 * 2. Bombs: a gzip and a zstd body that inflate far past `maxRequestBytes` (256 MiB), each sent
 *    while another client calls in a loop. Prints the status, the time to the refusal, the server's
 *    longest event-loop stall, the other client's worst latency and the server's RSS.
 *
 * The server runs from src through tsx (`--import tsx`) with the default options; its RSS is read
 * in the child (`process.memoryUsage().rss`). Node version and machine are printed with the figures.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { connect } from "node:net";
import { cpus, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

const MiB = 1024 * 1024;
const here = fileURLToPath(import.meta.url);

if (process.argv[2] === "--serve") await serve();
else await main();

// ---------------------------------------------------------------------------------------------
// The server (child process)

async function serve() {
  const { createServer, bind } = await import("../src/server/server.ts");
  const { defineProtocol, producer, unary } = await import("../src/protocol/methods.ts");
  const { t } = await import("../src/protocol/types.ts");
  const { listenHttp } = await import("../src/transports/http/index.ts");
  const answerBytes = Number(process.env.ANSWER_BYTES);
  const Proto = defineProtocol(
    "quiver.Hostile.v1",
    { version: "1.0.0" },
    {
      add: unary({ a: t.float64(), b: t.float64() }, t.float64()),
      big: producer({}, { output: { data: t.binary() }, header: null, state: { sent: t.bool() } }),
    },
  );
  let produced = 0;
  const server = createServer({
    protocols: [
      bind(Proto, {
        add: ({ a, b }) => a + b,
        big: {
          init: () => ({ state: { sent: false } }),
          produce: (state, out) => {
            if (state.sent) return out.finish();
            produced++;
            state.sent = true;
            out.emit([{ data: new Uint8Array(answerBytes).fill(1) }]);
          },
        },
      }),
    ],
  });
  const http = await listenHttp(server, { port: 0 });
  // The longest the event loop went without running a 1 ms timer (minus that 1 ms).
  let stallMax = 0;
  let lastTick = performance.now();
  setInterval(() => {
    const now = performance.now();
    stallMax = Math.max(stallMax, now - lastTick - 1);
    lastTick = now;
  }, 1);
  process.on("message", (msg) => {
    if (msg === "stats") {
      process.send({ rss: process.memoryUsage().rss, produced, loopMaxMs: stallMax });
    } else if (msg === "reset-loop") {
      stallMax = 0;
      process.send({ ok: true });
    } else if (msg === "gc") {
      globalThis.gc?.();
      process.send({ ok: true });
    }
  });
  process.send({ port: http.port });
}

// ---------------------------------------------------------------------------------------------
// The clients (parent)

async function main() {
  const { values } = parseArgs({
    options: {
      requests: { type: "string", default: "200" },
      "answer-mib": { type: "string", default: "16" },
      "hold-ms": { type: "string", default: "4000" },
      skip: { type: "string", multiple: true, default: [] },
    },
  });
  const requests = Number(values.requests);
  const answerBytes = Number(values["answer-mib"]) * MiB;
  const holdMs = Number(values["hold-ms"]);
  const child = fork(here, ["--serve"], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, ANSWER_BYTES: String(answerBytes) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    timeout: 600_000,
  });
  const ask = async (msg) => {
    child.send(msg);
    const [reply] = await once(child, "message");
    return reply;
  };
  const [{ port }] = await once(child, "message");
  const { Zstd } = await import("@hpcc-js/wasm-zstd");
  const zstd = await Zstd.load();
  const proto = await loadRequests();
  const addBody = proto.body("add", { a: 1, b: 2 });
  console.log(
    `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
  );

  // Warm up: every code path once, so idle RSS includes what any call loads.
  for (let i = 0; i < 3; i++) await call(port, "/quiver.Hostile.v1/add", addBody);
  await call(port, "/quiver.Hostile.v1/big/init", proto.body("big", {}));
  await sleep(11_000); // let the large-body pool trim
  await ask("gc");
  const idle = (await ask("stats")).rss;
  console.log(`idle RSS: ${mib(idle)}`);

  try {
    await baseline();
    if (!values.skip.includes("pipeline")) await pipeline();
    if (!values.skip.includes("bombs")) await bombs();
  } finally {
    child.kill();
  }

  /** The other client's latency with no hostile client: the machine's own noise. */
  async function baseline() {
    const latencies = [];
    const until = performance.now() + holdMs;
    while (performance.now() < until) {
      const t0 = performance.now();
      await call(port, "/quiver.Hostile.v1/add", addBody);
      latencies.push(performance.now() - t0);
      await ask("stats");
      await sleep(20);
    }
    latencies.sort((x, y) => x - y);
    console.log(
      `baseline, no hostile client, ${latencies.length} calls: median ${ms(latencies[latencies.length >> 1])}, p99 ${ms(latencies[Math.floor(latencies.length * 0.99)])}, max ${ms(latencies.at(-1))}`,
    );
  }

  async function pipeline() {
    console.log(`\n# ${requests} pipelined /init requests answering ${answerBytes / MiB} MiB each, never read`);
    const before = (await ask("stats")).produced;
    const sock = connect(port, "127.0.0.1");
    await once(sock, "connect");
    sock.pause();
    const one = rawRequest(port, "/quiver.Hostile.v1/big/init", proto.body("big", {}));
    sock.write(Buffer.concat(Array.from({ length: requests }, () => one)));
    let peak = 0;
    const latencies = [];
    const until = performance.now() + holdMs;
    while (performance.now() < until) {
      const t0 = performance.now();
      await call(port, "/quiver.Hostile.v1/add", addBody);
      latencies.push(performance.now() - t0);
      const s = await ask("stats");
      peak = Math.max(peak, s.rss);
      await sleep(20);
    }
    const during = await ask("stats");
    sock.destroy();
    await sleep(500);
    await ask("gc");
    const after = (await ask("stats")).rss;
    await sleep(11_000);
    await ask("gc");
    const afterTrim = (await ask("stats")).rss;
    latencies.sort((x, y) => x - y);
    console.log(`producer invocations while held: ${during.produced - before}`);
    console.log(`RSS peak: ${mib(peak)} (idle + ${mib(peak - idle)})`);
    console.log(`RSS 0.5 s after the client left: ${mib(after)} (idle + ${mib(after - idle)})`);
    console.log(`RSS 11.5 s after (pool trimmed): ${mib(afterTrim)} (idle + ${mib(afterTrim - idle)})`);
    console.log(
      `other client, ${latencies.length} calls: median ${ms(latencies[latencies.length >> 1])}, p99 ${ms(latencies[Math.floor(latencies.length * 0.99)])}, max ${ms(latencies.at(-1))}`,
    );
  }

  async function bombs() {
    const cap = 256 * MiB;
    const inflated = new Uint8Array(cap + MiB);
    const gz = gzipSync(inflated, { level: 9 });
    zstd.reset();
    const zparts = [];
    for (let at = 0; at < inflated.byteLength; at += 8 * MiB)
      zparts.push(zstd.compressChunk(inflated.subarray(at, at + 8 * MiB)));
    zparts.push(zstd.compressEnd());
    const zs = Buffer.concat(zparts);
    for (const [coding, body] of [
      ["gzip", gz],
      ["zstd", zs],
    ]) {
      console.log(
        `\n# ${coding} bomb: ${(body.byteLength / 1024).toFixed(0)} KiB inflating to ${mib(inflated.byteLength)}`,
      );
      await ask("gc");
      const base = (await ask("stats")).rss;
      await ask("reset-loop");
      let done = false;
      const latencies = [];
      const other = (async () => {
        while (!done) {
          const t0 = performance.now();
          await call(port, "/quiver.Hostile.v1/add", addBody);
          latencies.push(performance.now() - t0);
        }
      })();
      const t0 = performance.now();
      const r = await call(port, "/quiver.Hostile.v1/add", body, { "content-encoding": coding });
      const elapsed = performance.now() - t0;
      done = true;
      await other;
      const s = await ask("stats");
      await ask("gc");
      const after = (await ask("stats")).rss;
      await sleep(11_000); // the large-body pool releases its idle buffers 5-10 s after its last use
      await ask("gc");
      const trimmed = (await ask("stats")).rss;
      latencies.sort((x, y) => x - y);
      console.log(`status ${r.status} after ${ms(elapsed)}; server loop stall max ${ms(s.loopMaxMs)}`);
      console.log(
        `other client, ${latencies.length} calls meanwhile: median ${ms(latencies[latencies.length >> 1])}, max ${ms(latencies.at(-1))}`,
      );
      console.log(
        `RSS before ${mib(base)}, at the refusal ${mib(s.rss)}, after GC ${mib(after)}, 11 s later ${mib(trimmed)}`,
      );
    }
  }
}

/** Request bodies for the hostile protocol, built with the library itself (through tsx). */
async function loadRequests() {
  const { batchFromRows } = await import("../src/protocol/batch.ts");
  const { t } = await import("../src/protocol/types.ts");
  const { concatBytes, encodeStream } = await import("../src/wire/ipc.ts");
  const keys = await import("../src/wire/keys.ts");
  const params = { add: { a: t.float64(), b: t.float64() }, big: {} };
  return {
    body(method, row) {
      const md = new Map([
        [keys.METHOD_KEY, method],
        [keys.REQUEST_VERSION_KEY, keys.REQUEST_VERSION],
        [keys.PROTOCOL_KEY, "quiver.Hostile.v1"],
        [keys.PROTOCOL_VERSION_KEY, "1.0.0"],
      ]);
      const batch = batchFromRows(params[method], [row], md);
      return Buffer.from(concatBytes(encodeStream(batch.schema, [batch])));
    },
  };
}

function rawRequest(port, path, body) {
  const head =
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/vnd.apache.arrow.stream\r\n` +
    `Content-Length: ${body.byteLength}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

/** One request on a fresh connection; resolves with the status once the answer is read. */
async function call(port, path, body, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/vnd.apache.arrow.stream", connection: "close", ...headers },
    signal: AbortSignal.timeout(60_000),
  });
  await res.arrayBuffer();
  return { status: res.status };
}

function sleep(msec) {
  return new Promise((resolve) => setTimeout(resolve, msec));
}

function mib(bytes) {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

function ms(v) {
  return `${v.toFixed(1)} ms`;
}
