/**
 * A sample of the reference's pytest conformance suite, run through quiver's client with the
 * reference's `ClientDriver` and `src/bin/quiver-client-driver.ts` (the whole suite, on every
 * transport: `node scripts/run-client-conformance.mjs`).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { python } from "./helpers.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const SAMPLE = [
  "TestUnaryScalarEcho and test_echo_string",
  "TestProducerStream and (test_produce_n or test_produce_error_mid_stream)",
  "TestExchangeStream and test_scale_exchange",
  "TestCancel and (test_cancel_producer_mid_stream or test_transport_reusable_after_cancel)",
].join(" or ");

test("the reference's conformance suite (a sample) passes through quiver's client driver", async () => {
  const py = python();
  const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(
      py,
      [
        "-m",
        "pytest",
        "test/python-client",
        "--rootdir",
        "test/python-client",
        "-p",
        "no:cacheprovider",
        "-q",
        "--timeout=30",
        "-k",
        SAMPLE,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, QUIVER_CLIENT_TRANSPORTS: "stdio", PYTHONDONTWRITEBYTECODE: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pytest did not finish within 90 s\n${out}`));
    }, 90_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
  assert.equal(r.code, 0, r.out);
  const m = /(\d+) passed/.exec(r.out);
  assert.ok(m && Number(m[1]) >= 6, r.out);
  assert.doesNotMatch(r.out, /failed|error/i);
});
