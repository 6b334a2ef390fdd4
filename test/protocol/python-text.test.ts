/**
 * JSON numbers and strings as the reference writes them: every expectation is the reference's own
 * `encode_error_details` / `json.dumps` output (test/fixtures/json-numbers.json, written by
 * scripts/make-json-fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import type { ErrorDetail } from "../../src/errors.js";
import { RpcError } from "../../src/errors.js";
import { PYTHON_DEFAULT, pyJsonDumps, pyJsonNumber } from "../../src/protocol/python-text.js";
import { encodeErrorDetails, errorMetadata } from "../../src/wire/messages.js";

interface JsonCase {
  readonly label: string;
  readonly value: unknown;
  readonly details: string | null;
  readonly extra: string;
  readonly retry_info: string | null;
}

const CASES: readonly JsonCase[] = JSON.parse(
  readFileSync(new URL("../fixtures/json-numbers.json", import.meta.url), "utf8"),
);

/** The JS value a tagged fixture value stands for: `$int` → bigint, `$float` → number from its bits. */
function build(tagged: unknown): unknown {
  if (Array.isArray(tagged)) return tagged.map(build);
  if (tagged !== null && typeof tagged === "object") {
    const o = tagged as Record<string, unknown>;
    if (typeof o.$int === "string") return BigInt(o.$int);
    if (typeof o.$float === "string") {
      const view = new DataView(new ArrayBuffer(8));
      view.setBigUint64(0, BigInt(`0x${o.$float}`));
      return view.getFloat64(0);
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, build(v)]));
  }
  return tagged;
}

describe("error details are encoded as the reference encodes them", () => {
  for (const c of CASES) {
    test(`a detail holding ${c.label} is written byte for byte`, () => {
      assert.equal(encodeErrorDetails([build(c.value) as ErrorDetail]) ?? null, c.details);
    });
  }
  for (const c of CASES.filter((k) => k.retry_info !== null)) {
    test(`RetryInfo with a delay of ${c.label} is written as RetryInfo.to_json() writes it`, () => {
      const delay = (build(c.value) as { v: number }).v;
      assert.equal(encodeErrorDetails([{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: delay }]), c.retry_info);
    });
  }
});

describe("log extras are written as json.dumps writes them", () => {
  for (const c of CASES) {
    test(`an extra holding ${c.label} is written byte for byte`, () => {
      assert.equal(pyJsonDumps(build(c.value), PYTHON_DEFAULT), c.extra);
    });
  }
});

test("an error batch carries its details and mirrors them in the log extra", () => {
  const details = [{ "@type": "vgi_rpc.RetryInfo", retry_delay_seconds: 1e21 }];
  const md = errorMetadata(
    new RpcError("slow down", { code: "UNAVAILABLE", details }),
    { serverId: "s", requestId: "r" },
    false,
  );
  assert.equal(
    md.get("vgi_rpc.error_details"),
    '[{"@type":"vgi_rpc.RetryInfo","retry_delay_seconds":1000000000000000000000}]',
  );
  assert.match(md.get("vgi_rpc.log_extra") ?? "", /"retry_delay_seconds": 1000000000000000000000\}/);
});

test("whole numbers are written as the integers they hold and bigints as their digits", () => {
  assert.equal(pyJsonNumber(2 ** 70), "1180591620717411303424");
  assert.equal(pyJsonNumber(-0), "0");
  assert.equal(pyJsonNumber(12345678901234567890123n), "12345678901234567890123");
  assert.equal(pyJsonNumber(1e-7), "1e-07");
});

test("sortKeys orders object keys by code point at every depth, as json.dumps(sort_keys=True) does", () => {
  // JS orders integer-like keys first and numerically; Python sorts every key as a string.
  const value = { b: 1, "10": { z: [{ y: 1, x: 2 }], a: "é" }, "9": null, a: true, "\u{1F600}": 0, "\uFFFD": 1 };
  assert.equal(
    pyJsonDumps(value, { compact: true, ensureAscii: true, allowNan: true, sortKeys: true }),
    // json.dumps(value, sort_keys=True, separators=(",", ":"))
    '{"10":{"a":"\\u00e9","z":[{"x":2,"y":1}]},"9":null,"a":true,"b":1,"\\ufffd":1,"\\ud83d\\ude00":0}',
  );
});
