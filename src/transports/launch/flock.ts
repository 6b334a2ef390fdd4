/**
 * An exclusive `flock(2)` on a lock file, compatible with the reference launcher's (`filelock`'s
 * `UnixFileLock`, which flocks `<hash>.lock` and leaves the file in place), so quiver's launcher
 * and the reference's serialise against each other. Node has no `flock`: the lock is taken by
 * the util-linux `flock(1)` command on a descriptor this process opened and passes to it as fd 3.
 * A flock belongs to the open file description, not the process, so it outlives the command and
 * is held until this process closes its descriptor (or exits: the kernel releases it then).
 */
import { spawn } from "node:child_process";
import { closeSync, constants, fstatSync, openSync, statSync } from "node:fs";
import { frameworkError } from "../../errors.js";

/** A held lock; `release()` closes the descriptor, which releases the flock. Idempotent. */
export interface FileLock {
  readonly path: string;
  release(): void;
}

/** `flock(1)` on `fd` (as its fd 3): exit 0 when locked, 1 when not within the wait. */
function runFlock(fd: number, waitSeconds: number | null, command: string): Promise<number> {
  const args = ["--exclusive", ...(waitSeconds === null ? ["--nonblock"] : ["--wait", String(waitSeconds)]), "3"];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe", fd] });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.once("error", (err) =>
      reject(
        frameworkError(
          "transport_error",
          `cannot run '${command}' to lock a file (the launcher needs util-linux flock(1) on PATH): ${err.message}`,
          { cause: err },
        ),
      ),
    );
    child.once("close", (code) => {
      if (code === 0 || code === 1) resolve(code);
      else reject(frameworkError("transport_error", `'${command}' failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

/**
 * Takes an exclusive flock on `path` (created 0644 if missing), waiting up to `timeoutMs`
 * (0: do not wait). Resolves to the held lock, or null when another holder kept it that long.
 * `command` is the flock(1) executable (default: `flock` on PATH).
 */
export async function acquireFileLock(path: string, timeoutMs: number, command = "flock"): Promise<FileLock | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    let held = false;
    try {
      const left = Math.max(0, deadline - performance.now());
      const code = await runFlock(fd, timeoutMs === 0 ? null : Math.max(0.001, left / 1000), command);
      if (code !== 0) return null;
      // Someone may have unlinked the file (an older filelock, or --gc) between our open and the
      // lock: then we hold a lock nobody else will look at; take the one at the path instead.
      let same = false;
      try {
        same = statSync(path).ino === fstatSync(fd).ino;
      } catch {
        same = false;
      }
      if (!same) continue;
      held = true;
      let open = true;
      return {
        path,
        release() {
          if (!open) return;
          open = false;
          closeSync(fd);
        },
      };
    } finally {
      if (!held) closeSync(fd);
    }
  }
}
