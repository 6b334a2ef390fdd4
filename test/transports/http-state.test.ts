/** An HTTP stream whose state no longer fits its declared types is refused with the field named. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { proxy } from "../../src/client/typed.js";
import { RpcError } from "../../src/errors.js";
import { defineProtocol, producer } from "../../src/protocol/methods.js";
import { t } from "../../src/protocol/types.js";
import { bind, createServer } from "../../src/server/server.js";
import { connectHttp, listenHttp } from "../../src/transports/http/index.js";

const Proto = defineProtocol(
  "test.HttpState.v1",
  { version: "1.0.0" },
  { climb: producer({}, { output: { n: t.int64() }, state: { n: t.int8() } }) },
);

it("a producer whose state passes its int8 range is refused with the state field named", async () => {
  const server = createServer({
    protocols: [
      bind(Proto, {
        climb: {
          init: () => ({ state: { n: 120 } }),
          produce(state, out) {
            out.emit([{ n: BigInt(state.n) }]);
            state.n += 5; // 125 after the first turn, 130 (past int8) after the second
          },
        },
      }),
    ],
  });
  const listener = await listenHttp(server);
  const client = connectHttp(listener.url, { timeoutMs: 10_000 });
  try {
    const seen: bigint[] = [];
    await assert.rejects(
      (async () => {
        for await (const row of await proxy(client, Proto).climb()) seen.push(row.n);
      })(),
      (err: unknown) => {
        assert.ok(err instanceof RpcError, String(err));
        assert.equal(err.type, "OverflowError");
        assert.match(err.message, /climb\(\) stream state 'n'.*130.*out of range for int8/);
        return true;
      },
    );
    // The second turn's answer cannot be continued from a token, so it is the error alone.
    assert.deepEqual(seen, [120n]);
  } finally {
    await client.close();
    await listener.close();
  }
});
