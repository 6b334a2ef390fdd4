/**
 * OpenTelemetry for the executables (never the library, which depends on the API only): when
 * the standard `OTEL_*` variables ask for traces, start `@opentelemetry/sdk-node`, which reads
 * them itself (e.g. `OTEL_TRACES_EXPORTER=console`, `OTEL_EXPORTER_OTLP_ENDPOINT=...`).
 */
import { Console } from "node:console";

/** True when the environment configures a trace exporter. */
function tracesRequested(env: NodeJS.ProcessEnv): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter !== undefined) return exporter !== "none";
  return env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;
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

/** Starts the SDK if asked to; returns a shutdown function that flushes spans. */
export async function startTelemetry(serviceName: string): Promise<() => Promise<void>> {
  if (!tracesRequested(process.env)) return async () => {};
  try {
    const { NodeSDK } = await import("@opentelemetry/sdk-node");
    const sdk = new NodeSDK({ serviceName: process.env.OTEL_SERVICE_NAME ?? serviceName });
    sdk.start();
    return () => sdk.shutdown();
  } catch (err) {
    process.stderr.write(`telemetry: OTEL_* is set but @opentelemetry/sdk-node could not start: ${String(err)}\n`);
    return async () => {};
  }
}
