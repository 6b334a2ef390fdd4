/**
 * What `widenSendBuffer` (src/transports/node/send-buffer.ts) buys (not part of `npm run bench`):
 * a lockstep download of BYTES-byte messages over a Unix socket, a 1-byte tick asking for each, the
 * writer's socket with the kernel's default send buffer and widened. The writer is a child process
 * (this script with `writer`), as a server is. Prints turns/s and CPU µs per turn of each side,
 * alternating the two settings for ROUNDS rounds.
 *
 *   npx tsc -p tsconfig.bench.json && node .bench/bench/send-buffer.js [BYTES=279160] [TURNS=20000] [ROUNDS=3] [ASK=UNIX_SEND_BUFFER_BYTES]
 *
 * ASK: the send buffer the widened writer asks for (the kernel doubles it).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UNIX_SEND_BUFFER_BYTES, widenSendBuffer } from "../src/transports/node/send-buffer.js";

/** A process's user + system CPU time so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** The writer: listens on `path`, answers every byte it reads with one `bytes`-byte message. */
function writer(path: string, bytes: number, ask: number): void {
  const message = Buffer.alloc(bytes, 7);
  const server = createServer((socket) => {
    if (ask > 0 && widenSendBuffer(socket, ask) === null) process.stderr.write("send-buffer: the addon is missing\n");
    socket.on("data", (ticks: Buffer) => {
      for (let i = 0; i < ticks.byteLength; i++) socket.write(message);
    });
    socket.on("close", () => process.exit(0));
  });
  server.listen(path, () => process.stdout.write("ready\n"));
}

/** One run: `turns` lockstep messages from a fresh writer; turns/s and CPU µs per turn of both sides. */
async function run(bytes: number, turns: number, ask: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "quiver-sndbuf-"));
  const path = join(dir, "s.sock");
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "writer", path, String(bytes), String(ask)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ path });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
  let got = 0;
  let left = turns;
  const done = new Promise<void>((resolve) => {
    socket.on("data", (d: Buffer) => {
      got += d.byteLength;
      if (got < bytes) return;
      got -= bytes;
      if (--left === 0) resolve();
      else socket.write(tick);
    });
  });
  const tick = Buffer.from([1]);
  const writer0 = cpuMicros(child.pid!);
  const reader0 = process.cpuUsage();
  const t0 = performance.now();
  socket.write(tick);
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const reader = process.cpuUsage(reader0);
  const writerUs = cpuMicros(child.pid!) - writer0;
  socket.destroy();
  await new Promise((resolve) => child.once("exit", resolve));
  rmSync(dir, { recursive: true, force: true });
  const per = (us: number) => (us / turns).toFixed(1);
  return (
    `${ask > 0 ? `asked ${ask}` : "default"}: ${(turns / seconds).toFixed(0)} turns/s, ${((turns * bytes) / seconds / 1e9).toFixed(2)} GB/s, ` +
    `writer ${per(writerUs)} us/turn, reader ${per(reader.user + reader.system)} us/turn`
  );
}

if (process.argv[2] === "writer") {
  writer(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
} else {
  const bytes = Number(process.argv[2] ?? "279160");
  const turns = Number(process.argv[3] ?? "20000");
  const rounds = Number(process.argv[4] ?? "3");
  const ask = Number(process.argv[5] ?? String(UNIX_SEND_BUFFER_BYTES));
  process.stdout.write(`node ${process.version}, ${bytes}-byte messages, ${turns} turns per run\n`);
  for (let r = 0; r < rounds; r++) {
    for (const a of [0, ask]) process.stdout.write(`${await run(bytes, turns, a)}\n`);
  }
}
