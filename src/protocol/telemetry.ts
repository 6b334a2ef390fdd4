/** What the client's and the server's OpenTelemetry metrics share. No `node:` imports (the browser entry's client uses it). */

/**
 * Bucket boundaries of the call-duration histograms (`rpc.server.duration`, `rpc.client.duration`),
 * in seconds: 100 us to 10 s. The SDK's default ones (0, 5, 10, … 10 000) are made for milliseconds
 * and would put nearly every call in the first bucket. An SDK view can still replace them.
 */
export const DURATION_BOUNDARIES_S: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
