/**
 * Access-log sampling and claim redaction: errors are always logged and successes sampled by a
 * decision keyed on the call (a stream's requests share one fate), kept records carry
 * `sample_rate`; claims go through the operator's redactor, and a redactor that throws drops them.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { authenticated } from "../../src/auth/types.js";
import { proxy } from "../../src/client/typed.js";
import { ValueError } from "../../src/errors.js";
import { defineProtocol, unary } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import {
  type AccessLogOptions,
  createAccessLog,
  noRedaction,
  redactClaims,
  sampled,
} from "../../src/server/access-log.js";
import { bind, createServer } from "../../src/server/server.js";
import { memoryClientAs } from "../helpers/session-harness.js";

const P = defineProtocol(
  "test.Sampled.v1",
  { version: "1.0.0" },
  { ok: unary({}, t.utf8()), bad: unary({}, t.utf8()) },
);

const CALLER = authenticated("jwt", "alice", { sub: "alice", email: "a@example.com", tenant: "t1" });

async function logCalls(opts: Omit<AccessLogOptions, "path">, oks: number, bads: number) {
  const path = join(mkdtempSync(join(tmpdir(), "quiver-sample-")), "access.jsonl");
  const log = createAccessLog({ path, ...opts });
  const server = createServer({
    onCallEnd: log.observer,
    protocols: [
      bind(P, {
        ok: () => "ok",
        bad: () => {
          throw new ValueError("bad");
        },
      }),
    ],
  });
  const client = memoryClientAs(server, CALLER);
  const svc = proxy(client, P);
  for (let i = 0; i < oks; i++) await svc.ok();
  for (let i = 0; i < bads; i++) await assert.rejects(svc.bad());
  await client.close();
  await log.close();
  const text = readFileSync(path, "utf8").trim();
  return text === "" ? [] : text.split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("access-log sampling", () => {
  it("keeps every error and about rate x the successes, each kept record saying sample_rate", async () => {
    const records = await logCalls({ sampleRate: 0.25 }, 400, 20);
    const errors = records.filter((r) => r.status === "error");
    const oks = records.filter((r) => r.status === "ok");
    assert.equal(errors.length, 20);
    assert.ok(oks.length > 50 && oks.length < 150, `about 100 of 400 successes kept, got ${oks.length}`);
    for (const r of records) assert.equal(r.sample_rate, 0.25);
  });

  it("keeps everything without sample_rate at the default rate, and only errors at 0", async () => {
    const all = await logCalls({}, 5, 1);
    assert.equal(all.length, 6);
    assert.ok(all.every((r) => !("sample_rate" in r)));
    const none = await logCalls({ sampleRate: 0 }, 5, 2);
    assert.deepEqual(
      none.map((r) => r.status),
      ["error", "error"],
    );
  });

  it("decides by the stream id first, so every request of one stream shares a fate", () => {
    const streamId = "0123456789abcdef0123456789abcdef";
    const fates = new Set(
      Array.from({ length: 50 }, (_, i) => sampled({ status: "ok", streamId, requestId: `req-${i}` }, 0.5)),
    );
    assert.equal(fates.size, 1);
    // Different calls do get different fates.
    const many = new Set(
      Array.from({ length: 50 }, (_, i) => sampled({ status: "ok", streamId: "", requestId: `req-${i}` }, 0.5)),
    );
    assert.equal(many.size, 2);
  });

  it("refuses a rate outside 0 to 1", () => {
    assert.throws(() => createAccessLog({ path: "/dev/null", sampleRate: 1.5 }), RangeError);
  });
});

describe("access-log claim redaction", () => {
  it("redacts sensitive claims by default and applies the operator's redactor instead when given", async () => {
    const [byDefault] = await logCalls({}, 1, 0);
    assert.deepEqual(byDefault!.claims, { sub: "alice", email: "[redacted]", tenant: "t1" });
    assert.deepEqual(redactClaims({ password: "x" }), { password: "[redacted]" });
    const [kept] = await logCalls({ redactClaims: noRedaction }, 1, 0);
    assert.deepEqual(kept!.claims, { sub: "alice", email: "a@example.com", tenant: "t1" });
    const [custom] = await logCalls({ redactClaims: (c) => ({ tenant: c.tenant }) }, 1, 0);
    assert.deepEqual(custom!.claims, { tenant: "t1" });
  });

  it("drops the claims, never logs them unredacted, when the redactor throws", async () => {
    const [rec] = await logCalls(
      {
        redactClaims: () => {
          throw new Error("broken redactor");
        },
      },
      1,
      0,
    );
    assert.equal(rec!.status, "ok");
    assert.ok(!("claims" in rec!));
  });
});
