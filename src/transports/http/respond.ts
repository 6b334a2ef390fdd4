/**
 * A reply made into the response that goes out: the request id echoed, the capability headers
 * every answer carries, and an Arrow body compressed with the coding the client asked for.
 */

import { type Encoding, encodeBody } from "../../codec/compression.js";
import { concatBytes, totalBytes } from "../../wire/ipc.js";
import type { HttpConfig } from "./config.js";
import { ARROW_CONTENT_TYPE, REQUEST_ID_HEADER } from "./headers.js";
import type { Reply } from "./replies.js";
import type { UniversalResponse } from "./universal.js";

/** The response coding picked for a request (see `pickResponseEncoding`). */
export interface ResponseCoding {
  readonly encoding: Encoding | null;
  /** Stamp it as `X-VGI-Content-Encoding` (the client asked on the VGI header only). */
  readonly custom: boolean;
}

/** `reply` as sent to a `method` request with id `requestId` (a promise only when the body is compressed). */
export function respond(
  config: HttpConfig,
  method: string,
  reply: Reply,
  requestId: string,
  coding: ResponseCoding,
): UniversalResponse | Promise<UniversalResponse> {
  const headers = reply.headers;
  headers.push([REQUEST_ID_HEADER, requestId]);
  for (const h of config.capabilityHeaders) headers.push(h);
  if (method === "OPTIONS") headers.push(["Cache-Control", config.capabilitiesCacheControl]);
  if (coding.encoding !== null && reply.contentType === ARROW_CONTENT_TYPE && totalBytes(reply.body) > 0) {
    return compressed(config, reply, coding.encoding, coding.custom);
  }
  return finished(reply, reply.body);
}

async function compressed(
  config: HttpConfig,
  reply: Reply,
  encoding: Encoding,
  custom: boolean,
): Promise<UniversalResponse> {
  const body = reply.body;
  const encoded = await encodeBody(encoding, body.length === 1 ? body[0]! : concatBytes(body), config.levels);
  if (encoded === null) return finished(reply, body);
  reply.headers.push([custom ? "X-VGI-Content-Encoding" : "Content-Encoding", encoding]);
  return finished(reply, [encoded]);
}

function finished(reply: Reply, body: readonly Uint8Array[]): UniversalResponse {
  if (reply.contentType !== "") reply.headers.push(["Content-Type", reply.contentType]);
  return { status: reply.status, headers: reply.headers, body };
}
