#!/usr/bin/env node
/**
 * The conformance worker: the reference's ConformanceService (plus conformance.Secondary.v1 and
 * reflection) behind the reference worker's command-line contract.
 *
 *   quiver-conformance                 serve stdin/stdout (stdout carries IPC only)
 *   quiver-conformance --http [PORT]   serve HTTP at the root prefix, print PORT:<n>
 *     [--host H] [--port P]            bind address (default 127.0.0.1, port 0 = any free port)
 *     [--max-response-bytes N]         response cap (the suite's strict-cap fixture uses 65536)
 *     [--max-request-bytes N]          request cap (default 256 MiB)
 *     [--token-key HEX]                64 hex chars: stream token key shared across instances
 *     [--auth reject|reason]           refuse every RPC with 401 (the suite's auth fixture), or
 *                                      refuse with the reason named in X-Conformance-Auth-Reason
 *     [--no-compression]               advertise and produce no response coding
 *     [--cors-origin ORIGIN]...        allow these origins cross-origin (CORS; repeatable, or *)
 *     [--serve-start-fail-once]        the start hook fails on the first call, then succeeds
 *   --transport-kind-probe             also host TransportKindProbe.transport_kind() (every transport)
 *     [--proxy-proof-mode require|allow --proxy-proof-origin ID --proxy-proof-secrets kid:hex,...
 *      [--proxy-proof-skew SECONDS] [--no-proxy-proof-replay-cache]]  gate calls on a proxy's proof
 *     [--max-externalized-response-bytes N]  cap on what one response uploads (with --fake-storage)
 *     [--identity off|both|introspect-only|grants]  host vgi_rpc.Identity.v2 under the pinned
 *                                      policy of IDENTITY_CONFORMANCE_FIXTURE.md, authenticated by the
 *                                      fixture's spoofable X-Conformance-Principal / -Auth-Time headers
 *                                      (TEST ONLY): both hooks, the resolver alone, or the resolver
 *                                      with sealed grants (the fixture keys) and conformance.Whoami.v1
 *     [--sticky]                       keep sticky sessions (the reference worker's default), with
 *                                      the echo header x-vgi-conformance-echo: conformance-fixed-marker
 *                                      and the test-only POST|DELETE /__test_drain__ (drain on, off)
 *     [--sticky-ttl SECONDS]           sticky, with this default session lifetime (default 300)
 *     [--sticky-auth]                  sticky, each caller the principal its X-Conformance-Principal
 *                                      names (anonymous without one)
 *     [--no-sticky-echo]               sticky without the echo header
 *   quiver-conformance --unix PATH     serve a Unix socket, print UNIX:<path>
 *     [--idle-timeout SEC]             (--unix, --tcp) exit after SEC seconds with no connection
 *                                      (the launcher's worker contract; before the first connection
 *                                      the reference's grace of max(SEC, 60) applies; 0 = never)
 *   quiver-conformance --tcp [H:]P     serve TCP (loopback by default), print TCP:<host>:<port>
 *   quiver-conformance --ws            serve WebSocket at /ws and HTTP (root prefix) on one port,
 *     [--host H] [--port P]            print WS:<url> (e.g. WS:ws://127.0.0.1:41234/ws)
 *   --access-log PATH                  append JSONL access-log records to PATH
 *   --access-log-debug                 accepted for compatibility (payloads are never logged)
 *   --no-shm                           (pipe) decline the shared-memory side channel
 *   --fake-storage URL                 externalize output batches through the reference's fake
 *                                      storage service at URL (every transport); over HTTP, also
 *                                      vend upload URLs from it (__upload_url__/init)
 *   --externalize-threshold N          bytes from which a batch is externalized (default 4096)
 *   --external-compression zstd|gzip   compress externalized objects (quiver's flag: the
 *                                      reference's suites wire compression in-process)
 *   --external-max-fetch-bytes N       caps on fetching client-sent pointers (encoded, decoded);
 *   --external-max-decompressed-bytes N  the URLs fetched must be http(s) to a loopback host,
 *   --external-url-host H              or to H only when given (quiver's flags)
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { parseProofSecrets, proxyProofGate, requireAll } from "../auth/proxy-proof.js";
import { type Authenticator, AuthFailure, type AuthReason, authenticated } from "../auth/types.js";
import {
  conformanceHeaderAuthenticate,
  conformanceIdentity,
  createWhoamiImplementation,
  WhoamiProtocol,
} from "../conformance/identity.js";
import { createSecondaryImplementation, SecondaryProtocol } from "../conformance/secondary.js";
import { ConformanceService, createConformanceImplementation } from "../conformance/service.js";
import { loopbackOnly } from "../external/fetch.js";
import { FakeStorage } from "../external/storage.js";
import { ANONYMOUS } from "../protocol/context.js";
import { defineProtocol, unary } from "../protocol/methods.js";
import { t } from "../protocol/types.js";
import { createAccessLog } from "../server/access-log.js";
import { metricsInterceptor } from "../server/metrics.js";
import { bind, createServer } from "../server/server.js";
import { createHttpHandler, type HttpListener, listenHttp } from "../transports/http/server.js";
import { listenSocket } from "../transports/socket/server.js";
import { serveStdio } from "../transports/stdio/server.js";
import { listenWebSocket } from "../transports/ws/server.js";
import { consoleToStderr, startTelemetry } from "./telemetry.js";

function fail(message: string): never {
  process.stderr.write(`quiver-conformance: ${message}\n`);
  process.exit(2);
}

/** The runners' transport-kind probe (`--transport-kind-probe`): which transport a call saw. */
const TransportKindProbe = defineProtocol("TransportKindProbe", {}, { transport_kind: unary({}, t.utf8()) });

/** A start hook that fails the first time it runs. */
function failOnce(): () => void {
  let failed = false;
  return () => {
    if (failed) return;
    failed = true;
    throw new Error("injected onServeStart failure (--serve-start-fail-once)");
  };
}

/**
 * The reference worker's test-only `/__test_drain__` (its `TestSticky::test_drain_rejects_new_opens`
 * flips the sticky drain flag over the wire): `POST` drains (new sessions refused with
 * `server_draining`), `DELETE` stops draining; both 204. Every other request goes to the handler.
 */
function serveTestDrain(listener: HttpListener): void {
  const sessions = listener.handler.sessions;
  if (sessions === null) return;
  const http = listener.server;
  http.removeListener("request", listener.handler);
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== "/__test_drain__" || (req.method !== "POST" && req.method !== "DELETE")) {
      listener.handler(req, res);
      return;
    }
    sessions.setDraining(req.method === "POST");
    req.resume();
    res.writeHead(204).end();
  });
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    let positionals: string[];
    ({ values, positionals } = parseArgs({
      allowPositionals: true,
      options: {
        pipe: { type: "boolean" },
        http: { type: "boolean" },
        host: { type: "string" },
        port: { type: "string" },
        unix: { type: "string" },
        "idle-timeout": { type: "string" },
        tcp: { type: "string" },
        ws: { type: "boolean" },
        "access-log": { type: "string" },
        "access-log-debug": { type: "boolean" },
        "max-response-bytes": { type: "string" },
        "max-request-bytes": { type: "string" },
        "token-key": { type: "string" },
        auth: { type: "string" },
        identity: { type: "string" },
        "no-compression": { type: "boolean" },
        "cors-origin": { type: "string", multiple: true },
        "proxy-proof-mode": { type: "string" },
        "proxy-proof-origin": { type: "string" },
        "proxy-proof-secrets": { type: "string" },
        "proxy-proof-skew": { type: "string" },
        "no-proxy-proof-replay-cache": { type: "boolean" },
        "serve-start-fail-once": { type: "boolean" },
        "transport-kind-probe": { type: "boolean" },
        "max-externalized-response-bytes": { type: "string" },
        sticky: { type: "boolean" },
        "sticky-ttl": { type: "string" },
        "sticky-auth": { type: "boolean" },
        "no-sticky-echo": { type: "boolean" },
        describe: { type: "boolean" },
        "no-shm": { type: "boolean" },
        "fake-storage": { type: "string" },
        "externalize-threshold": { type: "string" },
        "external-compression": { type: "string" },
        "external-max-fetch-bytes": { type: "string" },
        "external-max-decompressed-bytes": { type: "string" },
        "external-url-host": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
    // `--http PORT`, as the reference worker spells it.
    if (positionals.length > 0) {
      if (values.http === true && positionals.length === 1 && values.port === undefined) values.port = positionals[0];
      else fail(`unexpected argument '${positionals[0]}'`);
    }
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(
      "usage: quiver-conformance [--pipe | --http [PORT] [--host H] [--port P] [--max-response-bytes N] [--max-request-bytes N] [--token-key HEX] [--auth reject|reason] [--identity off|both|introspect-only|grants] [--no-compression] [--cors-origin ORIGIN]... [--serve-start-fail-once] [--proxy-proof-mode require|allow --proxy-proof-origin ID --proxy-proof-secrets kid:hex,... [--proxy-proof-skew S] [--no-proxy-proof-replay-cache]] [--max-externalized-response-bytes N] [--sticky] [--sticky-ttl SECONDS] [--sticky-auth] [--no-sticky-echo] | --unix PATH [--idle-timeout SEC] | --tcp [HOST:]PORT [--idle-timeout SEC] | --ws [--host H] [--port P]] [--access-log PATH] [--access-log-debug] [--no-shm] [--transport-kind-probe] [--fake-storage URL [--externalize-threshold N] [--external-compression zstd|gzip] [--external-max-fetch-bytes N] [--external-max-decompressed-bytes N] [--external-url-host H]]\n",
    );
    return;
  }
  // stdout carries IPC only (in stdio mode); diagnostics and console exporters go to stderr.
  consoleToStderr();
  const stopTelemetry = await startTelemetry("quiver-conformance");
  const thresholdRaw = values["externalize-threshold"];
  const threshold = typeof thresholdRaw === "string" ? Number(thresholdRaw) : 4096;
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    fail(`--externalize-threshold must be >= 0, got '${String(thresholdRaw)}'`);
  }
  const storage = typeof values["fake-storage"] === "string" ? new FakeStorage(values["fake-storage"]) : null;
  const algorithm = values["external-compression"];
  if (algorithm !== undefined && algorithm !== "zstd" && algorithm !== "gzip") {
    fail(`--external-compression wants 'zstd' or 'gzip', got '${String(algorithm)}'`);
  }
  const compression = algorithm === undefined ? undefined : { algorithm: algorithm as "zstd" | "gzip" };
  const cap = (name: string): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) fail(`--${name} wants a positive integer, got '${String(raw)}'`);
    return n;
  };
  const maxFetchBytes = cap("external-max-fetch-bytes");
  const maxDecompressedBytes = cap("external-max-decompressed-bytes");
  const onlyHost = values["external-url-host"];
  // Client-sent pointers are fetched from loopback only (the reference worker's policy), or from
  // the one host named.
  const urlValidator = (url: string): void => {
    loopbackOnly(url);
    if (typeof onlyHost === "string" && new URL(url).hostname !== onlyHost) {
      throw new Error(`refusing external location host ${new URL(url).hostname} (only ${onlyHost} is allowed)`);
    }
  };
  const fetch = {
    urlValidator,
    ...(maxFetchBytes === undefined ? {} : { maxFetchBytes }),
    ...(maxDecompressedBytes === undefined ? {} : { maxDecompressedBytes }),
  };
  const external =
    storage === null
      ? null
      : { storage, thresholdBytes: threshold, fetch, ...(compression === undefined ? {} : { compression }) };
  const identityMode = values.identity ?? "off";
  if (
    identityMode !== "off" &&
    identityMode !== "both" &&
    identityMode !== "introspect-only" &&
    identityMode !== "grants"
  ) {
    fail(`--identity wants 'off', 'both', 'introspect-only' or 'grants', got '${String(identityMode)}'`);
  }
  // The fixture's callers are named by request headers, which only HTTP carries.
  if (identityMode !== "off" && values.http !== true) fail("--identity needs --http");
  if (identityMode !== "off" && values.auth !== undefined) fail("--identity and --auth exclude each other");
  const identity = identityMode === "off" ? null : conformanceIdentity(identityMode);
  const server = createServer({
    // The reference sends tracebacks by default and its suites check for them
    // (TestTracebackPolicy); quiver's default is off, so this worker opts in.
    includeTracebacks: true,
    // No-op until OTEL_METRICS_EXPORTER starts the SDK (see telemetry.ts).
    interceptors: [metricsInterceptor()],
    ...(external === null ? {} : { external }),
    protocols: [
      bind(ConformanceService, createConformanceImplementation(external)),
      bind(SecondaryProtocol, createSecondaryImplementation()),
      ...(values["transport-kind-probe"] === true
        ? [bind(TransportKindProbe, { transport_kind: (_p, ctx) => ctx.transport })]
        : []),
      // The grant worker also hosts the probe reporting how a request was authenticated.
      ...(identityMode === "grants" ? [bind(WhoamiProtocol, createWhoamiImplementation())] : []),
    ],
    ...(identity === null ? {} : { identity }),
    // The reference's lifecycle fixture: the start hook fails once, then succeeds.
    ...(values["serve-start-fail-once"] === true ? { onServeStart: failOnce() } : {}),
  });
  const log =
    typeof values["access-log"] === "string"
      ? createAccessLog({ path: values["access-log"], serverVersion: server.serverVersion })
      : null;
  if (log !== null) {
    server.observe(log.observer);
    process.on("SIGHUP", () => log.reopen());
  }
  /** Closes every listener (calls in progress get 5 s), flushes the access log, then exits. */
  const shutdown = async (code: number): Promise<never> => {
    await server.close({ graceMs: 5_000 });
    await log?.close();
    await stopTelemetry();
    process.exit(code);
  };
  const stop = () => void shutdown(0);
  const idleRaw = values["idle-timeout"];
  const idleSeconds = typeof idleRaw === "string" ? Number(idleRaw) : 0;
  if (!Number.isFinite(idleSeconds) || idleSeconds < 0) {
    fail(`--idle-timeout wants seconds >= 0, got '${String(idleRaw)}'`);
  }
  /**
   * The launcher's contract: a socket worker with no connection for `--idle-timeout` seconds
   * exits. Ignored without --unix or --tcp, as the reference worker does.
   */
  const idle = idleSeconds > 0 ? { idleTimeoutMs: idleSeconds * 1000, onIdle: stop } : {};
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  if (values.http === true) {
    const int = (name: string): number | null => {
      const raw = values[name];
      if (typeof raw !== "string") return null;
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} wants a non-negative integer, got '${raw}'`);
      return n;
    };
    const port = int("port") ?? 0;
    if (port > 65535) fail(`--port wants 0-65535, got ${port}`);
    const keyHex = values["token-key"];
    if (keyHex !== undefined && (typeof keyHex !== "string" || !/^[0-9a-fA-F]{64}$/.test(keyHex))) {
      fail("--token-key wants 64 hex characters (32 bytes)");
    }
    const maxRequest = int("max-request-bytes");
    const maxExternalized = int("max-externalized-response-bytes");
    const authMode = values.auth;
    if (authMode !== undefined && authMode !== "reject" && authMode !== "reason") {
      fail(`--auth wants 'reject' or 'reason', got '${String(authMode)}'`);
    }
    const stickyTtl = int("sticky-ttl");
    if (stickyTtl === 0) fail("--sticky-ttl wants a positive number of seconds");
    const stickyAuth = values["sticky-auth"] === true;
    if (stickyAuth && authMode !== undefined) fail("--sticky-auth and --auth are exclusive");
    const sticky =
      values.sticky === true || stickyTtl !== null || stickyAuth || values["no-sticky-echo"] === true
        ? {
            ...(stickyTtl === null ? {} : { defaultTtlSeconds: stickyTtl }),
            // The reference worker's fixed marker, which its echo-header conformance case checks.
            ...(values["no-sticky-echo"] === true
              ? {}
              : { echoHeaders: { "x-vgi-conformance-echo": "conformance-fixed-marker" } }),
          }
        : null;
    const requestable = new Set([
      "missing_credential",
      "invalid_credential",
      "expired_credential",
      "insufficient_scope",
    ]);
    const authenticate: Authenticator | undefined = stickyAuth
      ? (request) => {
          // The sticky principal-binding fixture (sticky-sessions-spec §9.1): anonymous without the header.
          const principal = request.headers.get("x-conformance-principal");
          return principal ? authenticated("conformance", principal) : ANONYMOUS;
        }
      : authMode === "reject"
        ? () => {
            throw new Error("this conformance worker refuses every caller");
          }
        : authMode === "reason"
          ? (request) => {
              const want = request.headers.get("x-conformance-auth-reason") ?? "";
              if (requestable.has(want)) throw new AuthFailure(want as AuthReason, `refused as requested (${want})`);
              throw new Error("refused without a classified reason");
            }
          : identity !== null
            ? conformanceHeaderAuthenticate
            : undefined;
    const proofMode = values["proxy-proof-mode"];
    let gated = authenticate;
    if (proofMode !== undefined) {
      if (proofMode !== "require" && proofMode !== "allow") {
        fail(`--proxy-proof-mode wants 'require' or 'allow', got '${String(proofMode)}'`);
      }
      // The identity bearers would be an OR beside the proxy's proof (identityAuthenticate refuses it).
      if (identity !== null) fail("--proxy-proof-* and --identity exclude each other");
      try {
        const gate = proxyProofGate({
          mode: proofMode,
          originId: String(values["proxy-proof-origin"] ?? ""),
          secrets: parseProofSecrets(String(values["proxy-proof-secrets"] ?? "")),
          skewSeconds: int("proxy-proof-skew") ?? 30,
          replayCache: values["no-proxy-proof-replay-cache"] !== true,
          onReject: (reason, diagnosis) =>
            server.logger.warn({ proof_reason: reason, proof_detail: diagnosis }, "proxy proof rejected"),
        });
        gated = requireAll(gate, authenticate);
      } catch (err) {
        fail(`--proxy-proof-*: ${(err as Error).message}`);
      }
    }
    const corsOrigins = values["cors-origin"] as string[] | undefined;
    const listener = await listenHttp(server, {
      host: typeof values.host === "string" ? values.host : "127.0.0.1",
      port,
      prefix: "",
      maxResponseBytes: int("max-response-bytes"),
      ...(maxRequest === null ? {} : { maxRequestBytes: maxRequest }),
      ...(typeof keyHex === "string" ? { tokenKey: Buffer.from(keyHex, "hex") } : {}),
      ...(gated ? { authenticate: gated } : {}),
      compressResponses: values["no-compression"] !== true,
      // With fake storage, clients may also upload large inputs through vended URL pairs.
      ...(storage === null ? {} : { uploadUrls: storage, maxUploadBytes: 256 * 1024 * 1024 }),
      ...(maxExternalized === null ? {} : { maxExternalizedResponseBytes: maxExternalized }),
      ...(corsOrigins === undefined ? {} : { cors: { origins: corsOrigins.includes("*") ? "*" : corsOrigins } }),
      ...(sticky === null ? {} : { sticky }),
    });
    if (sticky !== null) serveTestDrain(listener);
    process.stdout.write(`PORT:${listener.port}\n`);
    return;
  }
  if (values.ws === true) {
    const port = Number(typeof values.port === "string" ? values.port : 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port wants 0-65535, got '${String(values.port)}'`);
    const listener = await listenWebSocket(server, {
      host: typeof values.host === "string" ? values.host : "127.0.0.1",
      port,
      onRequest: createHttpHandler(server, { prefix: "" }),
    });
    process.stdout.write(`WS:${listener.url}\n`);
    return;
  }
  if (typeof values.unix === "string") {
    await listenSocket(server, { path: values.unix, ...idle });
    process.stdout.write(`UNIX:${values.unix}\n`);
    return;
  }
  if (typeof values.tcp === "string") {
    const spec = values.tcp;
    const colon = spec.lastIndexOf(":");
    const host = colon >= 0 ? spec.slice(0, colon) || "127.0.0.1" : "127.0.0.1";
    const port = Number(colon >= 0 ? spec.slice(colon + 1) : spec);
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--tcp wants [HOST:]PORT, got '${spec}'`);
    const sock = await listenSocket(server, { host, port, ...idle });
    const addr = sock.address as { host: string; port: number };
    process.stdout.write(`TCP:${addr.host}:${addr.port}\n`);
    return;
  }
  await serveStdio(server, { sharedMemory: values["no-shm"] !== true });
  await shutdown(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`quiver-conformance: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
