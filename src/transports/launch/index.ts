/**
 * `quiver-rpc/launch`: the launcher (`quiver launch`, the reference's `vgi-rpc launch`) as a
 * library: one warm Unix-socket worker per command, shared by every caller and either language's
 * launcher, started under a file lock and ending itself after its idle timeout.
 *
 * @module quiver-rpc/launch
 */
export {
  connectLaunched,
  defaultStateDir,
  gcStateDir,
  type LauncherGcOptions,
  type LauncherGcResult,
  type LauncherStatusRow,
  type LaunchOptions,
  launcherHash,
  launcherStatus,
  launchWorker,
  probeSocket,
} from "./launcher.js";
