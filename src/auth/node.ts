/** Reading an authentication request off a Node `IncomingMessage` (HTTP requests and WebSocket upgrades). */
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { PeerCertificate } from "./types.js";

/** The verified client certificate of a TLS connection, or null (plain TCP, or not authorized). */
export function peerCertificateOf(req: IncomingMessage): PeerCertificate | null {
  const socket = req.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== "function" || !socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  const subject = Object.entries(cert.subject ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : String(v)}`)
    .join(",");
  return {
    fingerprint256: (cert.fingerprint256 ?? "").replace(/:/g, "").toLowerCase(),
    subject,
    subjectAltName: cert.subjectaltname ?? "",
  };
}

/** The request's headers as a fetch `Headers` (repeated headers kept). */
export function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  return headers;
}
