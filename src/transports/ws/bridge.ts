/**
 * A pipe-to-WebSocket bridge (`quiver bridge --ws URL`): speaks the pipe protocol on a readable
 * and a writable (stdin/stdout) and relays the bytes, unchanged, to and from a WebSocket. Any
 * pipe client (the reference's `vgi-rpc-test --cmd`, `connectSubprocess`) thereby reaches a
 * WebSocket server. Backpressure holds both ways: stdin is read only as fast as the WebSocket
 * takes bytes, and WebSocket reading pauses while stdout is full.
 *
 * A WebSocket has no half-close, so EOF on stdin closes the WebSocket (1000) once everything
 * written has been sent; the server's answers to earlier requests have already arrived then,
 * since the protocol is lockstep.
 */
import type { Readable, Writable } from "node:stream";
import { RpcError } from "../../errors.js";
import { writableSink } from "../node/sink.js";
import { connectWebSocket, type WebSocketClientOptions } from "./client.js";

/** Relays `input` → WebSocket `url` → `output` until either side ends; resolves to an exit code. */
export async function bridgeWebSocket(
  url: string,
  input: Readable,
  output: Writable,
  opts: WebSocketClientOptions & { readonly onError?: (message: string) => void } = {},
): Promise<number> {
  const report = opts.onError ?? (() => {});
  const transport = await connectWebSocket(url, opts);
  const sink = writableSink(output);
  let status = 0;
  let stop = false;
  const down = (async () => {
    try {
      for await (const chunk of transport.input) await sink.write([chunk]);
    } catch (err) {
      if (!sink.broken) {
        report(`quiver bridge: ${RpcError.from(err).message}`);
        status = 1;
      }
    } finally {
      stop = true;
      await sink.flush();
      output.end();
      input.destroy();
    }
  })();
  const up = (async () => {
    try {
      for await (const chunk of input as AsyncIterable<Uint8Array>) {
        if (stop) break;
        await transport.write([chunk]);
      }
    } catch (err) {
      if (!stop) {
        report(`quiver bridge: ${RpcError.from(err).message}`);
        status = 1;
      }
    }
    await transport.close();
  })();
  await Promise.all([up, down]);
  return status;
}

const USAGE = `usage: quiver bridge --ws URL [--header "Name: value" ...]

Speaks the vgi-rpc pipe protocol on stdin/stdout and relays it to the WebSocket at URL, e.g.
  vgi-rpc-test --cmd "quiver bridge --ws ws://127.0.0.1:8765/ws"
`;

/** `quiver bridge` on the process's stdin/stdout; returns the exit code. */
export async function bridgeMain(argv: readonly string[]): Promise<number> {
  let url: string | undefined;
  const headers: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (flag === "-h" || flag === "--help") {
      process.stdout.write(USAGE);
      return 0;
    }
    if (flag === "--ws") url = value();
    else if (flag === "--header" || flag === "-H") {
      const h = value() ?? "";
      const colon = h.indexOf(":");
      if (colon <= 0) {
        process.stderr.write(`quiver bridge: --header wants "Name: value", got '${h}'\n\n${USAGE}`);
        return 2;
      }
      headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else {
      process.stderr.write(`quiver bridge: unexpected argument '${a}'\n\n${USAGE}`);
      return 2;
    }
  }
  if (url === undefined || !/^wss?:\/\//.test(url)) {
    process.stderr.write(`quiver bridge: --ws wants a ws:// or wss:// URL\n\n${USAGE}`);
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
