/**
 * The wider send buffer of Unix stream sockets (src/transports/node/send-buffer.ts over the
 * addon's `sendBuffer`): with the addon the kernel's value is at least what was asked for, and a
 * socket whose buffer was widened still carries a large message intact.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { UNIX_SEND_BUFFER_BYTES, widenSendBuffer } from "../../src/transports/node/send-buffer.js";
import { shmSupport } from "../../src/transports/shm/index.js";

const withAddon = process.platform === "linux" && shmSupport().backing === "mmap";

/** A connected pair of Unix stream sockets; `close` ends both and removes the path. */
async function unixPair(): Promise<{ client: Socket; accepted: Socket; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "quiver-sndbuf-test-"));
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(join(dir, "s.sock"), resolve));
  const client = connect({ path: join(dir, "s.sock") });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  const peer = await accepted;
  return {
    client,
    accepted: peer,
    close: () => {
      client.destroy();
      peer.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("a widened Unix socket's send buffer holds at least what was asked for", { skip: !withAddon }, async () => {
  const pair = await unixPair();
  try {
    const bytes = widenSendBuffer(pair.accepted);
    assert.ok(bytes !== null && bytes >= UNIX_SEND_BUFFER_BYTES, `kernel value ${bytes}`);
    // A larger buffer than asked for is kept.
    assert.equal(widenSendBuffer(pair.accepted, 4096), bytes);
  } finally {
    pair.close();
  }
});

test("a socket with a widened send buffer delivers a large message intact", async () => {
  const pair = await unixPair();
  try {
    widenSendBuffer(pair.accepted);
    const message = Buffer.alloc(700_000);
    for (let i = 0; i < message.byteLength; i++) message[i] = (i * 7) & 0xff;
    const received: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) => {
      pair.client.on("data", (d: Buffer) => {
        received.push(d);
        got += d.byteLength;
        if (got === message.byteLength) resolve();
      });
    });
    pair.accepted.write(message);
    await all;
    assert.ok(Buffer.concat(received).equals(message));
  } finally {
    pair.close();
  }
});

test("a socket without a descriptor is left alone", () => {
  assert.equal(widenSendBuffer(new Socket()), null);
});
