/** `npm start`'s demo service: it starts, says where it listens, and answers there. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Demo } from "../../src/bin/demo-protocol.js";
import { proxy } from "../../src/client/typed.js";
import { connectUnix } from "../../src/transports/socket/client.js";

test("the demo serves HTTP and a Unix socket and prints how to reach them", async () => {
  const sock = join(mkdtempSync(join(tmpdir(), "quiver-demo-")), "demo.sock");
  const demo = new URL("../../src/bin/demo.ts", import.meta.url).pathname;
  const child = spawn(process.execPath, ["--import", "tsx", demo, "--port", "0", "--unix", sock], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    let out = "";
    for await (const chunk of child.stdout) {
      out += String(chunk);
      if (out.includes("Ctrl-C")) break;
    }
    const url = /http: +(http:\/\/[^ ]+)/.exec(out)?.[1];
    assert.ok(url, out);
    assert.match(out, new RegExp(`unix socket: ${sock}`));
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    const client = await connectUnix(sock);
    const api = proxy(client, Demo);
    assert.equal(await api.add({ a: 1.5, b: 2 }), 3.5);
    const rows = await (await api.range({ start: 0n, stop: 5n, batch_size: 2n })).toArray();
    assert.deepEqual(
      rows.map((r) => r.square),
      [0n, 1n, 4n, 9n, 16n],
    );
    await client.close();
  } finally {
    clearTimeout(timer);
    child.kill("SIGTERM");
  }
});
