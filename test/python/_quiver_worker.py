"""Spawning and addressing quiver's conformance worker for the reference pytest suite.

The worker is ``src/bin/quiver-conformance.ts`` run through tsx (no build step).
Three raw transports exist today: stdin/stdout (``pipe``), a Unix socket and TCP.
HTTP does not exist yet, so nothing here starts an HTTP worker.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from vgi_rpc.rpc import StderrMode, SubprocessTransport

#: Repository root (test/python/ -> ../..).
ROOT = Path(__file__).resolve().parents[2]

#: Every transport this harness can drive, in report order.
ALL_TRANSPORTS = ("pipe", "unix", "tcp")


def worker_cmd() -> list[str]:
    """Argv that starts the worker on stdin/stdout.

    ``QUIVER_CONFORMANCE_CMD`` overrides it (e.g. to point at a built ``dist/`` worker).
    """
    override = os.environ.get("QUIVER_CONFORMANCE_CMD")
    if override:
        return shlex.split(override)
    return ["node", "--import", "tsx", str(ROOT / "src" / "bin" / "quiver-conformance.ts")]


def selected_transports() -> list[str]:
    """Transports to parametrize over, narrowed by ``QUIVER_CONFORMANCE_TRANSPORTS``.

    An empty selection is an error: pytest would otherwise collect zero
    parametrizations and report a green run over nothing.
    """
    requested = os.environ.get("QUIVER_CONFORMANCE_TRANSPORTS", "").strip()
    if not requested:
        return list(ALL_TRANSPORTS)
    wanted = [t.strip() for t in requested.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in ALL_TRANSPORTS]
    if unknown:
        raise RuntimeError(f"unknown transport(s) {unknown}; known: {list(ALL_TRANSPORTS)}")
    if not wanted:
        raise RuntimeError("QUIVER_CONFORMANCE_TRANSPORTS selects no transport")
    return [t for t in ALL_TRANSPORTS if t in wanted]


_STDERR_LOGGER = logging.getLogger("quiver.worker.stderr")


def spawn_pipe_worker(flags: tuple[str, ...] = ()) -> SubprocessTransport:
    """Start one stdio worker; its stderr lines go to a logger pytest captures per test."""
    return SubprocessTransport([*worker_cmd(), *flags], stderr=StderrMode.PIPE, stderr_logger=_STDERR_LOGGER)


class SharedPipeWorker:
    """One long-lived stdio worker, replaced after any test that fails on it.

    Mirrors the reference harness's session-scoped ``subprocess`` worker: the
    worker is exercised as a long-lived process, one call after another.  A
    failing test may leave the byte stream mid-message, which would make every
    later test fail for a reason that is not its own; so a failure retires the
    process and the next test gets a fresh one.  The failing test still fails.
    """

    def __init__(self) -> None:
        self._transport: SubprocessTransport | None = None
        self.spawned = 0

    def get(self) -> SubprocessTransport:
        if self._transport is not None and self._transport.proc.poll() is not None:
            # The worker died on its own: record nothing, just replace it.
            self._retire()
        if self._transport is None:
            self._transport = spawn_pipe_worker()
            self.spawned += 1
        return self._transport

    def mark_dirty(self) -> None:
        if self._transport is not None:
            self._retire()

    def _retire(self) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        proc = transport.proc
        # close() sends EOF and waits up to 10s; a wedged worker gets killed sooner.
        if proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
        transport.close()

    def close(self) -> None:
        self._retire()


def short_unix_path(name: str) -> str:
    """A short /tmp socket path (AF_UNIX paths are length-limited)."""
    fd, path = tempfile.mkstemp(prefix=f"quiver-{name}-", suffix=".sock", dir="/tmp")
    os.close(fd)
    os.unlink(path)
    return path


def _wait_for(connect: callable, what: str, timeout: float = 10.0) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not accept connections within {timeout}s") from None
            time.sleep(0.05)


def _probe_unix(path: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    finally:
        sock.close()


def _probe_tcp(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=1.0):
        pass


@contextmanager
def _spawn_listening(args: list[str], startup_timeout: float = 30.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start a socket worker, yield it with its first stdout line (the address line)."""
    stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen([*worker_cmd(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file)
    lines: queue.Queue[bytes] = queue.Queue(maxsize=1)
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            raise RuntimeError(f"worker {args} printed no address within {startup_timeout}s") from None
        if not line:
            proc.wait(timeout=5)
            stderr_file.seek(0)
            raise RuntimeError(
                f"worker {args} exited before listening (rc={proc.returncode}): "
                f"{stderr_file.read().decode(errors='replace')[-4000:]}"
            )
        yield proc, line.decode().strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        stderr_file.close()


@contextmanager
def unix_worker(*, with_pid: bool = False, flags: tuple[str, ...] = ()) -> Iterator[Any]:
    """A worker listening on a fresh Unix socket; yields the path (or ``(pid, path)``)."""
    path = short_unix_path("conf")
    try:
        with _spawn_listening(["--unix", path, *flags]) as (proc, line):
            assert line == f"UNIX:{path}", f"expected UNIX:{path}, got {line!r}"
            _wait_for(lambda: _probe_unix(path), f"unix worker at {path}")
            yield (proc.pid, path) if with_pid else path
    finally:
        if os.path.exists(path):
            os.unlink(path)


@contextmanager
def tcp_worker(*, with_pid: bool = False, flags: tuple[str, ...] = ()) -> Iterator[Any]:
    """A worker on an OS-chosen loopback TCP port; yields ``(host, port)`` (or ``(pid, (host, port))``)."""
    with _spawn_listening(["--tcp", "127.0.0.1:0", *flags]) as (proc, line):
        assert line.startswith("TCP:"), f"expected TCP:<host>:<port>, got {line!r}"
        host, _, port_text = line[len("TCP:") :].rpartition(":")
        host = host or "127.0.0.1"
        port = int(port_text)
        _wait_for(lambda: _probe_tcp(host, port), f"tcp worker at {host}:{port}")
        yield (proc.pid, (host, port)) if with_pid else (host, port)


@contextmanager
def fake_storage_service() -> Iterator[str]:
    """The reference's in-memory fake storage service on loopback; yields its base URL."""
    from vgi_rpc.conformance.fake_storage import serve_in_thread

    base_url, shutdown = serve_in_thread()
    try:
        yield base_url
    finally:
        shutdown()


class TransportKindProbe(Protocol):
    """What quiver's worker also hosts with ``--transport-kind-probe``: the transport a call saw."""

    def transport_kind(self) -> str:
        """The call's ``ctx.transport``."""
        ...
