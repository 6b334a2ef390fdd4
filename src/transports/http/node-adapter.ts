/**
 * The `node:http` adapter: an `IncomingMessage` made a `UniversalRequest`, the core's response
 * written back, each request admitted in its turn on its connection (see backpressure.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { headersOf, peerCertificateOf } from "../../auth/node.js";
import type { RpcServer } from "../../server/server.js";
import { concatBytes, totalBytes } from "../../wire/ipc.js";
import { bodyBuffer, joinBuffers, POOLED_MIN_BYTES } from "../node/buffer-pool.js";
import { createRequestGate, type WatchGone } from "./backpressure.js";
import type { HttpCore } from "./core.js";
import { endWithPieces } from "./outgoing.js";
import { internalErrorReply } from "./replies.js";
import type { BodyTooLarge, UniversalRequest, UniversalResponse } from "./universal.js";

/** A `node:http` request listener, and how many of its requests wait for their turn. */
export interface NodeListener {
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** Requests waiting for their connection's earlier answers to be written. */
  readonly waiting: number;
}

/**
 * Reads a whole `node:http` body under `limit`, on the request's events: an async iterator per
 * request (and a promise per chunk) costs more than a small call's body. A refused body is left
 * paused and unread: the 413 goes out on a connection that then closes.
 */
function readNodeBody(
  req: IncomingMessage,
  declared: number | null,
  limit: number | null,
): Promise<Uint8Array | BodyTooLarge> {
  if (limit !== null && declared !== null && declared > limit) return Promise.resolve({ tooLarge: declared });
  return new Promise<Uint8Array | BodyTooLarge>((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Uint8Array) => {
      total += chunk.byteLength;
      if (limit !== null && total > limit) {
        done();
        req.pause();
        resolve({ tooLarge: total });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      // A large body is joined into pooled memory: its batch's buffers are views of it. A small
      // one comes from Node's Buffer pool (8-byte aligned), not a zeroed ArrayBuffer of its own.
      resolve(total >= POOLED_MIN_BYTES ? concatBytes(chunks, bodyBuffer) : Buffer.concat(chunks, total));
    };
    const onError = (err: unknown) => {
      done();
      reject(err);
    };
    const onClose = () => {
      // Closed before its end: the connection went away mid-body.
      if (req.complete) return;
      done();
      reject(new Error("the request body ended prematurely"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Serves `core` as a `node:http` listener; `writeHighWaterMark` as in `HttpServerOptions`. */
export function nodeListener(core: HttpCore, server: RpcServer, writeHighWaterMark: number): NodeListener {
  const gate = createRequestGate(writeHighWaterMark);
  const serve = async (req: IncomingMessage, res: ServerResponse, watchGone: WatchGone): Promise<void> => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const declared = req.headers["content-length"];
    let consumed = false;
    const request: UniversalRequest = {
      method: (req.method ?? "GET").toUpperCase(),
      path: q < 0 ? url : url.slice(0, q),
      headers: headersOf(req),
      remoteAddr: req.socket.remoteAddress ?? "",
      peerCertificate: peerCertificateOf(req),
      // The gate tells when the connection closes while this request is served (the client went away).
      watchGone,
      readBody: (limit) => {
        consumed = true;
        return readNodeBody(req, declared === undefined ? null : Number(declared), limit);
      },
    };
    let out: UniversalResponse;
    try {
      out = await core.handle(request);
    } catch (err) {
      server.logger.error({ err }, "HTTP handler failure");
      const reply = internalErrorReply();
      out = { status: reply.status, headers: [["Content-Type", reply.contentType]], body: reply.body };
    }
    // Header pairs flattened by hand (`Array.prototype.flat` measured at 2 us per answer here).
    const headers: string[] = [];
    let hasLength = false;
    for (const [name, value] of out.headers) {
      headers.push(name, value);
      hasLength ||= name.length === 14 && name.toLowerCase() === "content-length";
    }
    if (!hasLength) headers.push("Content-Length", String(totalBytes(out.body)));
    // A body left unread (refused before or while reading it) cannot be skipped safely.
    const hasBody = (declared !== undefined && declared !== "0") || req.headers["transfer-encoding"] !== undefined;
    if (hasBody && !req.complete) headers.push("Connection", "close");
    res.writeHead(out.status, headers);
    if (request.method === "HEAD") res.end();
    else endWithPieces(res, out.body, joinBuffers);
    if (!consumed && !req.complete) req.resume();
  };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    gate.enter(res, (watchGone) =>
      serve(req, res, watchGone).catch((err: unknown) => {
        // Writing the answer failed half-way: the connection's framing is unknown, so it goes.
        server.logger.error({ err }, "HTTP response failure");
        res.destroy();
      }),
    );
  };
  return {
    listener,
    get waiting() {
      return gate.waiting;
    },
  };
}
