/** `quiver bridge --ws URL`: the pipe protocol on stdin/stdout relayed to a WebSocket server. */
import { RpcError } from "../errors.js";
import { bridgeWebSocket } from "../transports/ws/bridge.js";
import { optionAt, parseHeader, UsageError } from "./cli-args.js";

const USAGE = `usage: quiver bridge --ws URL [-H "Name: value" ...]

Speaks the vgi-rpc pipe protocol on stdin/stdout and relays it to the WebSocket at URL, e.g.
  vgi-rpc-test --cmd "quiver bridge --ws ws://127.0.0.1:8765/ws"

  -H, --header "Name: value"   a header on the WebSocket upgrade request (e.g. Authorization); repeatable

When the server refuses the upgrade (a 401, say) or cannot be reached, every call the pipe client
makes fails with that error (its HTTP status and reason), and the bridge exits 1 when stdin closes.
`;

/** `quiver bridge` on the process's stdin/stdout; returns the exit code. */
export async function bridgeMain(argv: readonly string[]): Promise<number> {
  let url: string | undefined;
  const headers: Record<string, string> = {};
  try {
    for (let i = 0; i < argv.length; i++) {
      const { flag, value, last } = optionAt(argv, i);
      if (flag === "-h" || flag === "--help") {
        process.stdout.write(USAGE);
        return 0;
      }
      if (flag === "--ws") url = value();
      else if (flag === "--header" || flag === "-H") {
        const [name, v] = parseHeader(value());
        headers[name] = v;
      } else throw new UsageError(`unexpected argument '${argv[i]}'`);
      i = last();
    }
    if (url === undefined || !/^wss?:\/\//.test(url)) throw new UsageError("--ws wants a ws:// or wss:// URL");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`quiver bridge: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await bridgeWebSocket(url, process.stdin, process.stdout, {
      implementation: "ws",
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      onError: (m) => process.stderr.write(`${m}\n`),
    });
  } catch (err) {
    process.stderr.write(`quiver bridge: ${RpcError.from(err).message}\n`);
    return 1;
  }
}
