/**
 * Our client → the Python reference conformance worker (`vgi-rpc-conformance --describe`), over
 * a pipe (subprocess), a Unix socket and TCP. Each interop case is one test, per transport.
 */
import { after, before, describe, test } from "node:test";
import type { RpcClient } from "../../src/client/client.js";
import { proxy } from "../../src/client/typed.js";
import { ConformanceService } from "../../src/conformance/service.js";
import { connectTcp, connectUnix } from "../../src/transports/socket/client.js";
import { connectSubprocess } from "../../src/transports/stdio/client.js";
import type { LogRecord } from "../../src/wire/messages.js";
import { ourWorker, referenceWorker, type SocketWorker, socketPath, spawnSocketWorker, within } from "./helpers.js";
import { CASES, type CaseContext, SESSION_CASES } from "./reference-cases.js";

const TIMEOUT = { timeoutMs: 10_000 };

function suite(
  target: string,
  transport: string,
  open: (onLog: (r: LogRecord) => void) => Promise<RpcClient>,
  setup?: () => Promise<void>,
  teardown?: () => Promise<void>,
) {
  describe(`our client → ${target} over ${transport}`, () => {
    let client: RpcClient;
    let logs: LogRecord[] = [];
    before(async () => {
      await setup?.();
      client = await open((r) => logs.push(r));
    });
    after(async () => {
      await client?.close();
      await teardown?.();
    });
    for (const c of [...CASES, ...SESSION_CASES]) {
      test(c.name, async () => {
        logs = [];
        const ctx: CaseContext = {
          client,
          svc: proxy(client, ConformanceService),
          get logs() {
            return logs;
          },
        };
        await within(c.run(ctx), 20_000, c.name);
      });
    }
  });
}

suite("reference worker", "pipe", async (onLog) => {
  const [cmd, args] = referenceWorker("--pipe", "--describe");
  return connectSubprocess(cmd, args, { ...TIMEOUT, onLog, stderr: "ignore" });
});

let unixWorker: SocketWorker | undefined;
const unixPath = socketPath("ref.sock");
suite(
  "reference worker",
  "unix",
  (onLog) => connectUnix(unixPath, { ...TIMEOUT, onLog }),
  async () => {
    const [cmd, args] = referenceWorker("--unix", unixPath, "--describe");
    unixWorker = await spawnSocketWorker(cmd, args);
  },
  async () => unixWorker?.stop(),
);

let tcpWorker: SocketWorker | undefined;
let tcpPort = 0;
suite(
  "reference worker",
  "tcp",
  (onLog) => connectTcp("127.0.0.1", tcpPort, { ...TIMEOUT, onLog }),
  async () => {
    const [cmd, args] = referenceWorker("--tcp", "127.0.0.1:0", "--describe");
    tcpWorker = await spawnSocketWorker(cmd, args);
    tcpPort = Number(/:(\d+)$/.exec(tcpWorker.ready)![1]);
  },
  async () => tcpWorker?.stop(),
);

// The same cases against our own conformance worker (the server side of the port).
suite("our worker", "pipe", async (onLog) => {
  const [cmd, args] = ourWorker();
  return connectSubprocess(cmd, args, { ...TIMEOUT, onLog, stderr: "ignore" });
});

let ourUnix: SocketWorker | undefined;
const ourUnixPath = socketPath("ours.sock");
suite(
  "our worker",
  "unix",
  (onLog) => connectUnix(ourUnixPath, { ...TIMEOUT, onLog }),
  async () => {
    const [cmd, args] = ourWorker("--unix", ourUnixPath);
    ourUnix = await spawnSocketWorker(cmd, args);
  },
  async () => ourUnix?.stop(),
);

let ourTcp: SocketWorker | undefined;
let ourTcpPort = 0;
suite(
  "our worker",
  "tcp",
  (onLog) => connectTcp("127.0.0.1", ourTcpPort, { ...TIMEOUT, onLog }),
  async () => {
    const [cmd, args] = ourWorker("--tcp", "127.0.0.1:0");
    ourTcp = await spawnSocketWorker(cmd, args);
    ourTcpPort = Number(/:(\d+)$/.exec(ourTcp.ready)![1]);
  },
  async () => ourTcp?.stop(),
);
