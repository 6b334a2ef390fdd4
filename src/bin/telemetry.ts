/**
 * OpenTelemetry for the executables (never the library, which depends on the API only): when
 * the standard `OTEL_*` variables ask for traces or metrics, start `@opentelemetry/sdk-node`,
 * which reads them itself (e.g. `OTEL_TRACES_EXPORTER=console`, `OTEL_METRICS_EXPORTER=console|otlp|prometheus`,
 * `OTEL_EXPORTER_OTLP_ENDPOINT=...`). A signal not asked for is turned off (`none`) rather than
 * left to the SDK's default, which would export it over OTLP to a collector nobody set up.
 *
 * The SDK is not a dependency of the package (it brings some 70 packages): it is loaded only
 * when telemetry is asked for, from wherever Node resolves it next to quiver-rpc, and a missing SDK
 * is reported with the command that adds it; the executable then runs without telemetry.
 */
import { Console } from "node:console";

const SDK = "@opentelemetry/sdk-node";

/** The variable that asks for one signal (as `NAME=value`), or null when none does. */
function signalRequested(env: NodeJS.ProcessEnv, signal: "TRACES" | "METRICS"): string | null {
  const exporter = env[`OTEL_${signal}_EXPORTER`];
  if (exporter !== undefined) return exporter === "none" ? null : `OTEL_${signal}_EXPORTER=${exporter}`;
  for (const name of [`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, "OTEL_EXPORTER_OTLP_ENDPOINT"]) {
    if (env[name] !== undefined) return `${name}=${env[name]}`;
  }
  return null;
}

/** True when `err` says the SDK package itself cannot be found (not one of its own imports). */
function sdkMissing(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes(`'${SDK}'`)
  );
}

/**
 * Keeps stdout for IPC bytes: exporters such as `console` print with `console.*`, which is
 * pointed at stderr here.
 */
export function consoleToStderr(): void {
  const err = new Console({ stdout: process.stderr, stderr: process.stderr });
  for (const m of ["log", "info", "debug", "dir", "table", "trace"] as const) {
    (console as unknown as Record<string, unknown>)[m] = err[m].bind(err);
  }
}

/**
 * Starts the SDK if the environment asks for traces or metrics; returns a shutdown function that
 * flushes spans and metrics (a `console` metrics exporter prints its last reading then). Without
 * the SDK installed, says so on stderr (with how to add it) and records nothing.
 */
export async function startTelemetry(serviceName: string): Promise<() => Promise<void>> {
  const traces = signalRequested(process.env, "TRACES");
  const metrics = signalRequested(process.env, "METRICS");
  if (traces === null && metrics === null) return async () => {};
  const asked = [traces, metrics].filter((a) => a !== null).join(" and ");
  const what = traces === null ? "metrics" : metrics === null ? "traces" : "traces and metrics";
  // The SDK exports a signal left unset over OTLP by default: only the ones asked for run.
  if (traces === null) process.env.OTEL_TRACES_EXPORTER = "none";
  if (metrics === null) process.env.OTEL_METRICS_EXPORTER = "none";
  let NodeSDK: typeof import("@opentelemetry/sdk-node").NodeSDK;
  try {
    ({ NodeSDK } = await import("@opentelemetry/sdk-node"));
  } catch (err) {
    process.stderr.write(
      sdkMissing(err)
        ? `telemetry: ${asked} asks for ${what}, but ${SDK} is not installed, so none are recorded; add it next to quiver-rpc with \`npm install ${SDK}\`\n`
        : `telemetry: ${asked} asks for ${what}, but ${SDK} could not be loaded: ${String(err)}\n`,
    );
    return async () => {};
  }
  try {
    const sdk = new NodeSDK({ serviceName: process.env.OTEL_SERVICE_NAME ?? serviceName });
    sdk.start();
    return () => sdk.shutdown();
  } catch (err) {
    process.stderr.write(`telemetry: ${asked} asks for ${what}, but ${SDK} could not start: ${String(err)}\n`);
    return async () => {};
  }
}
