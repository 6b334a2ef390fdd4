/**
 * An HTTP proxy for tests and the bench: forwards every request to `target`, except those
 * `fail(path)` gives a status for, which it answers itself with that status and `Retry-After: 0`
 * (as a balancer in front of a busy or dead instance would), counting them in `refused`.
 */
import { createServer as createHttpServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FlakyProxy {
  readonly url: string;
  readonly refused: string[];
  close(): Promise<void>;
}

export async function flakyProxy(target: string, fail: (path: string) => number | null): Promise<FlakyProxy> {
  const refused: string[] = [];
  const server: Server = createHttpServer((req, res) => {
    const status = fail(req.url ?? "");
    if (status !== null) {
      refused.push(req.url ?? "");
      req.resume();
      res.writeHead(status, { "content-type": "text/plain", "retry-after": "0" });
      res.end("try again");
      return;
    }
    const up = httpRequest(`${target}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
