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

/**
 * A request's headers as a fetch `Headers`, read from Node's raw header list: `get` and `has` scan
 * it (a request has a dozen or so headers, and a `Headers` filled pair by pair costs a small call
 * more than the scan); anything else is answered by a real `Headers`, made on first use.
 */
class RawHeaders implements Headers {
  private full: Headers | null = null;

  constructor(private readonly raw: readonly string[]) {}

  private get all(): Headers {
    if (this.full === null) {
      const headers = new Headers();
      for (let i = 0; i + 1 < this.raw.length; i += 2) headers.append(this.raw[i]!, this.raw[i + 1]!);
      this.full = headers;
    }
    return this.full;
  }

  get(name: string): string | null {
    if (this.full !== null) return this.full.get(name);
    const want = name.toLowerCase();
    // Repeats join as `Headers` joins them: cookies with "; ", anything else with ", ".
    const separator = want === "cookie" ? "; " : ", ";
    let value: string | null = null;
    for (let i = 0; i + 1 < this.raw.length; i += 2) {
      const k = this.raw[i]!;
      if (k.length === want.length && k.toLowerCase() === want) {
        value = value === null ? this.raw[i + 1]! : value + separator + this.raw[i + 1]!;
      }
    }
    return value;
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  getSetCookie(): string[] {
    return this.all.getSetCookie();
  }
  append(name: string, value: string): void {
    this.all.append(name, value);
  }
  delete(name: string): void {
    this.all.delete(name);
  }
  set(name: string, value: string): void {
    this.all.set(name, value);
  }
  forEach(callbackfn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.all.forEach((value, key) => {
      callbackfn.call(thisArg, value, key, this);
    });
  }
  // Iteration, as a runtime `Headers` offers it (the DOM typings this library compiles with leave it out).
  private iterable(): {
    entries(): IterableIterator<[string, string]>;
    keys(): IterableIterator<string>;
    values(): IterableIterator<string>;
  } {
    return this.all as unknown as ReturnType<RawHeaders["iterable"]>;
  }
  entries(): IterableIterator<[string, string]> {
    return this.iterable().entries();
  }
  keys(): IterableIterator<string> {
    return this.iterable().keys();
  }
  values(): IterableIterator<string> {
    return this.iterable().values();
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.iterable().entries();
  }
}

/** The request's headers as a fetch `Headers` (repeated headers kept). */
export function headersOf(req: IncomingMessage): Headers {
  return new RawHeaders(req.rawHeaders);
}
