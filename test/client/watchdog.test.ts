import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Watchdog } from "../../src/client/watchdog.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a wait that does not end expires; one that ends in time does not", async () => {
  const dog = new Watchdog(30);
  const expired: string[] = [];
  const a = dog.start(() => expired.push("a"));
  dog.stop(a);
  dog.start(() => expired.push("b"));
  await sleep(120);
  assert.deepEqual(expired, ["b"]);
  dog.close();
});

test("each wait has its own deadline: waits that end in time never expire, however many follow each other", async () => {
  // One timer serves them all, armed at the first wait and re-armed at the wait running when it fires.
  const dog = new Watchdog(400);
  let expired = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    const w = dog.start(() => expired++);
    await sleep(15);
    dog.stop(w);
  }
  assert.equal(expired, 0);
  dog.close();
});

test("overlapping waits expire on their own deadlines, and a late stop of an expired wait touches no other", async () => {
  const dog = new Watchdog(40);
  const expired: string[] = [];
  const a = dog.start(() => expired.push("a"));
  const b = dog.start(() => expired.push("b"));
  dog.stop(a);
  await sleep(150);
  assert.deepEqual(expired, ["b"]);
  const c = dog.start(() => expired.push("c"));
  dog.stop(b); // b expired already
  await sleep(150);
  assert.deepEqual(expired, ["b", "c"]);
  dog.stop(c);
  // An expiry that starts the next wait: that wait is bounded too.
  const chained: number[] = [];
  const again = () => {
    chained.push(chained.length);
    if (chained.length < 3) dog.start(again);
  };
  dog.start(again);
  await sleep(400);
  assert.deepEqual(chained, [0, 1, 2]);
  dog.close();
});

test("a watchdog keeps the process alive while a wait runs, and not once none does, closed or not", async () => {
  // The timer outlives a wait by design (restarting it per wait is what costs); were it still
  // referenced, a client idle after its last call would hold the process for the whole timeout.
  const module = fileURLToPath(new URL("../../src/client/watchdog.ts", import.meta.url));
  for (const close of [true, false]) {
    const script = `
      const { Watchdog } = await import(${JSON.stringify(module)});
      const dog = new Watchdog(600000);
      for (let k = 0; k < 3; k++) dog.stop(dog.start(() => console.log("expired")));
      ${close ? "dog.close();" : ""}
      console.log("done");
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { timeout: 60_000 },
    );
    assert.equal(stdout.trim(), "done", `close: ${close}`);
  }
  // A wait still running does keep it alive, until the wait expires (after an idle spell too).
  const script = `
    const { Watchdog } = await import(${JSON.stringify(module)});
    const dog = new Watchdog(200);
    dog.stop(dog.start(() => console.log("not this one")));
    dog.start(() => console.log("expired"));
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    {
      timeout: 60_000,
    },
  );
  assert.equal(stdout.trim(), "expired");
});
