/** What an authenticator is handed, for tests that call authenticators directly. */
import type { AuthRequest, PeerCertificate } from "../../src/auth/types.js";

/** A `POST /p/m` from 127.0.0.1 with `headers` (and a TLS client certificate when given). */
export function authRequest(
  headers: Record<string, string> = {},
  peerCertificate: PeerCertificate | null = null,
): AuthRequest {
  return { method: "POST", path: "/p/m", headers: new Headers(headers), remoteAddr: "127.0.0.1", peerCertificate };
}
