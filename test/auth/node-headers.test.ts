import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { headersOf } from "../../src/auth/node.js";

/** A request with these raw header pairs, as node:http hands them over. */
const requestWith = (raw: string[]) => ({ rawHeaders: raw }) as unknown as IncomingMessage;

describe("a node:http request's headers", () => {
  it("answer get and has as a fetch Headers filled from the same pairs would, repeats and case included", () => {
    const names = ["Accept", "accept", "X-Request-ID", "Cookie", "set-cookie", "Set-Cookie", "Authorization", "x-a"];
    const rng = (n: number) => Math.floor(Math.random() * n);
    for (let round = 0; round < 500; round++) {
      const raw: string[] = [];
      for (let i = rng(8); i > 0; i--) raw.push(names[rng(names.length)]!, `v${rng(5)}; q=${rng(3)}`);
      const ours = headersOf(requestWith(raw));
      const fetchHeaders = new Headers();
      for (let i = 0; i < raw.length; i += 2) fetchHeaders.append(raw[i]!, raw[i + 1]!);
      for (const name of [...names, "absent", "ACCEPT", "x-request-id"]) {
        assert.equal(ours.get(name), fetchHeaders.get(name), `${name} of ${JSON.stringify(raw)}`);
        assert.equal(ours.has(name), fetchHeaders.has(name));
      }
    }
  });

  it("iterate, list set-cookie and change as a fetch Headers does", () => {
    const ours = headersOf(requestWith(["B", "2", "a", "1", "Set-Cookie", "x=1", "set-cookie", "y=2", "b", "3"]));
    assert.deepEqual(ours.getSetCookie(), ["x=1", "y=2"]);
    assert.deepEqual(
      [...(ours as unknown as Iterable<[string, string]>)],
      [
        ["a", "1"],
        ["b", "2, 3"],
        ["set-cookie", "x=1"],
        ["set-cookie", "y=2"],
      ],
    );
    ours.set("a", "9");
    ours.delete("b");
    assert.equal(ours.get("A"), "9");
    assert.equal(ours.has("b"), false);
    const seen: string[] = [];
    ours.forEach((value, key, parent) => {
      assert.equal(parent, ours);
      seen.push(`${key}=${value}`);
    });
    assert.deepEqual(seen, ["a=9", "set-cookie=x=1", "set-cookie=y=2"]);
  });
});
