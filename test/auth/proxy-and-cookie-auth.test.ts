/**
 * mTLS behind a TLS-terminating proxy (the client certificate read from the proxy's header as
 * URL-encoded PEM, by fingerprint or subject, the refusals, the proxy note on 401s), and session
 * cookies (`cookieAuthenticate`).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chainAuthenticate, cookieAuthenticate, mtlsAuthenticate } from "../../src/auth/factories.js";
import { proxyHeadersOf } from "../../src/auth/proxy-proof.js";
import { AuthFailure, type AuthRequest, authenticated } from "../../src/auth/types.js";

/** A self-signed certificate (CN=worker-7, O=Example), valid for a century from 2026-12-07. */
const PEM = `-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUY8K6puHbvRRA/jBJqDpraG7wM94wCgYIKoZIzj0EAwIw
JTERMA8GA1UEAwwId29ya2VyLTcxEDAOBgNVBAoMB0V4YW1wbGUwIBcNMjYxMjA3
MDkzMzQ3WhgPMjEyNjExMTMwOTMzNDdaMCUxETAPBgNVBAMMCHdvcmtlci03MRAw
DgYDVQQKDAdFeGFtcGxlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExqKiV09j
Zf9zLvlG0QSoKF5EcyZs2elrhJFrs2z+ochQ/1ogiwM1to9u+GQQdeemQZa1NOf7
iPzJ2AsLko9tfqNTMFEwHQYDVR0OBBYEFLBSPHU8eKBKoeU6wcsxyf9vkrNYMB8G
A1UdIwQYMBaAFLBSPHU8eKBKoeU6wcsxyf9vkrNYMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDRwAwRAIgAJdg0nkJt/D46zDdjMZAycnYZzsaeU+Ibchs5KWE
c2ACIGwhIwUAqLL4salelquP3wZ+XAPyJssn4wDXnHvmJGq+
-----END CERTIFICATE-----
`;
const FINGERPRINT = "a0f80b0794b15d3375a859dd5bae7311c8454c0d9e5fca48eab6a1f37fb56fa8";

const req = (headers: Record<string, string>): AuthRequest => ({
  method: "POST",
  path: "/",
  headers: new Headers(headers),
  remoteAddr: "10.0.0.2",
  peerCertificate: null,
});

async function refusal(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof AuthFailure, String(err));
    return `${err.reason}: ${err.message}`;
  }
  return "accepted";
}

describe("mTLS from a proxy's header", () => {
  it("takes the certificate from the header, by fingerprint or by subject", async () => {
    const header = { "x-ssl-client-cert": encodeURIComponent(PEM) };
    const byFp = mtlsAuthenticate({ header: "X-SSL-Client-Cert", fingerprints: { [FINGERPRINT]: "worker" } });
    const ctx = await byFp(req(header));
    assert.equal(ctx.principal, "worker");
    assert.equal(ctx.claims.subject, "CN=worker-7,O=Example");
    const bySubject = mtlsAuthenticate({
      header: "X-SSL-Client-Cert",
      subject: { allowed: ["worker-7"] },
      checkExpiry: true,
    });
    assert.equal((await bySubject(req(header))).principal, "worker-7");
  });

  it("refuses a missing header as the proxy's fault, and garbage as an invalid credential", async () => {
    const auth = mtlsAuthenticate({ header: "X-SSL-Client-Cert", subject: {} });
    assert.equal(await refusal(() => auth(req({}))), "proxy_required: Missing X-SSL-Client-Cert header");
    assert.equal(
      await refusal(() => auth(req({ "x-ssl-client-cert": "not a cert" }))),
      "invalid_credential: Header value is not a PEM certificate",
    );
    assert.match(
      await refusal(() => auth(req({ "x-ssl-client-cert": encodeURIComponent(PEM.replace("MIIB", "MIIX")) }))),
      /^invalid_credential: Failed to parse PEM certificate/,
    );
    assert.equal(
      await refusal(() => auth(req({ "x-ssl-client-cert": "%E0%A4%A" }))),
      "invalid_credential: Header value is not a PEM certificate",
    );
    const other = mtlsAuthenticate({ header: "X-SSL-Client-Cert", fingerprints: { ["00".repeat(32)]: "x" } });
    assert.match(
      await refusal(() => other(req({ "x-ssl-client-cert": encodeURIComponent(PEM) }))),
      /^invalid_credential/,
    );
  });

  it("declares its header for the 401's proxy note, also through a chain; the TLS form declares none", () => {
    const viaProxy = mtlsAuthenticate({ header: "X-SSL-Client-Cert", subject: {} });
    assert.deepEqual(proxyHeadersOf(viaProxy), ["X-SSL-Client-Cert"]);
    assert.deepEqual(proxyHeadersOf(chainAuthenticate(viaProxy)), ["X-SSL-Client-Cert"]);
    assert.deepEqual(proxyHeadersOf(mtlsAuthenticate({ subject: {} })), []);
    assert.throws(() => mtlsAuthenticate({ header: "bad header", subject: {} }), /must be a header name/);
  });
});

describe("cookieAuthenticate", () => {
  it("hands the named cookie to validate, and refuses a request without it", async () => {
    const auth = cookieAuthenticate({
      name: "sid",
      validate: (value) => {
        if (value !== "s-42") throw new AuthFailure("invalid_credential", "unknown session");
        return authenticated("cookie", "alice");
      },
    });
    assert.equal((await auth(req({ cookie: 'theme=dark; sid="s-42"' }))).principal, "alice");
    assert.equal(await refusal(() => auth(req({ cookie: "theme=dark" }))), "missing_credential: Missing sid cookie");
    assert.equal(await refusal(() => auth(req({ cookie: "sid=s-1" }))), "invalid_credential: unknown session");
    assert.throws(
      () => cookieAuthenticate({ name: "bad name", validate: () => authenticated("c", "x") }),
      /cookie name/,
    );
  });
});
