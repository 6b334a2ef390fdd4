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
 * Send buffer asked for (the kernel doubles it, and caps it at net.core.wmem_max): room for one
 * 10k-row batch with margin. Larger is worse for large batches: with 1 MiB asked, bytes wait in
 * the kernel long enough to leave the CPU caches (bench/send-buffer.ts, 30 MB messages: reader
 * 2.4-2.8 -> 3.7-4.0 ms each; the bench's 1M-row borrowed producer 0.71 -> 0.61 of raw on Unix).
 * A limit on bytes queued for a slow reader, not memory set aside.
 */
export const UNIX_SEND_BUFFER_BYTES = 384 * 1024;

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
