/**
 * A larger kernel send buffer for Unix-domain stream sockets: the socket transport's Unix
 * connections (both ends), a worker's stdout socket pair (made by `connectSubprocess`, or by Node's
 * spawn: `serveStdio` widens its own stdout) and the worker's stdin.
 *
 * Linux gives a Unix socket 208 KiB of send buffer (net.core.wmem_default), less than one 10k-row
 * batch (about 280 KB): each such batch then leaves in two or three writes with a wait for
 * writability between them, and its reader wakes once more per batch. TCP sizes its buffers
 * itself and sends the batch in one write. Measured in bench/send-buffer.ts.
 */
import type { Socket } from "node:net";
import { loadSendBuffer } from "../shm/native.js";

/**
 * Send buffer asked for: several mid-size batches. The kernel caps it at net.core.wmem_max and
 * counts it doubled; it is a limit on bytes queued for a slow reader, not memory set aside.
 */
export const UNIX_SEND_BUFFER_BYTES = 1024 * 1024;

/** The descriptor under a Node socket, or null (not open yet, or a runtime without it). */
function socketFd(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}

/**
 * Raises `socket`'s send buffer to `UNIX_SEND_BUFFER_BYTES` when the native addon is there;
 * otherwise (or should the kernel refuse) the socket keeps its default. Returns the kernel's
 * value, or null when it was left alone.
 */
export function widenSendBuffer(socket: Socket, bytes = UNIX_SEND_BUFFER_BYTES): number | null {
  const set = loadSendBuffer();
  const fd = socketFd(socket);
  if (set === null || fd === null) return null;
  try {
    return set(fd, bytes);
  } catch {
    return null;
  }
}
