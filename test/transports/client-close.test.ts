/**
 * A client's `close()` over a socket or a pipe lets queued bytes go first, but a peer that stopped
 * reading does not hold it: after `CLOSE_FLUSH_MS` the connection is dropped with what is still
 * queued, and the peer sees it end.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ClientTransport } from "../../src/client/transport.js";
import { socketTransport } from "../../src/transports/socket/client.js";
import { pipeTransport } from "../../src/transports/stdio/client.js";

let dir: string;
let server: Server;
let path: string;
/** The server's side of each connection, never read; resolves when the client's side goes away. */
const peers: Array<{ socket: Socket; gone: Promise<void> }> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "quiver-close-"));
  path = join(dir, "s.sock");
  server = createServer((socket) => {
    socket.pause(); // a peer that stopped reading
    socket.on("error", () => {});
    peers.push({ socket, gone: new Promise((resolve) => socket.once("close", () => resolve())) });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
});

after(async () => {
  for (const p of peers) p.socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function connected(): Promise<Socket> {
  const socket = connect(path);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return socket;
}

/** Queues far more than the socket buffers hold, then closes: `close()` must come back, and the peer see the end. */
async function closesUnread(transport: ClientTransport, socket: Socket): Promise<void> {
  const peer = peers.at(-1)!;
  const stuck = transport.write([new Uint8Array(64 * 1024 * 1024)]).catch((e: unknown) => e);
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(socket.writableLength > 0, "bytes are queued behind a peer that does not read");
  await transport.close();
  assert.ok(socket.destroyed, "the socket was dropped");
  peer.socket.resume(); // (a paused socket does not notice its peer went away)
  await peer.gone;
  await stuck;
}

describe("closing a client whose peer stopped reading", () => {
  it("a socket client closes after at most CLOSE_FLUSH_MS", { timeout: 15_000 }, async () => {
    const socket = await connected();
    await closesUnread(socketTransport(socket, "unix"), socket);
  });

  it("a pipe client closes after at most CLOSE_FLUSH_MS", { timeout: 15_000 }, async () => {
    const socket = await connected();
    await closesUnread(pipeTransport(socket, socket), socket);
  });

  it("a peer that reads gets every queued byte before the end", { timeout: 15_000 }, async () => {
    const socket = await connected();
    const peer = peers.at(-1)!;
    let got = 0;
    peer.socket.on("data", (c: Buffer) => {
      got += c.byteLength;
    });
    const transport = socketTransport(socket, "unix");
    void transport.write([new Uint8Array(4 * 1024 * 1024)]);
    peer.socket.resume();
    await transport.close();
    await peer.gone;
    assert.equal(got, 4 * 1024 * 1024);
  });
});
