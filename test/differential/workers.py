"""The two conformance workers, each behind the reference's own client, over pipe, Unix socket and HTTP.

A :class:`Side` is one worker process plus the reference client connected to
it.  Everything the worker sends back is recorded as it is read (a tee on the
pipe or socket reader; the decoded body of every RPC POST on HTTP), so a case
can be compared at the level of the Arrow IPC streams on the wire as well as
the values the typed client hands back.

Every process is started with a deadline for its address line, killed if a
case overruns its timeout, and terminated (then killed) when the side closes.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from vgi_rpc.log import Message
from vgi_rpc.rpc import RpcConnection
from vgi_rpc.rpc._transport import UnixTransport, _clamped, _exact

from .gen import PROTOCOLS

TRANSPORTS = ("pipe", "unix", "http")
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one implementation's conformance worker."""

    name: str
    argv: tuple[str, ...]


class _Tee(io.RawIOBase):
    """A reader that keeps a copy of every byte read through it."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner
        self.seen = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self._inner.read(n)
        self.seen += data
        return bytes(data)

    def readinto(self, buf: Any) -> int:
        data = self._inner.read(len(buf))
        buf[: len(data)] = data
        self.seen += data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._inner.close()
        super().close()


class _TeeTransport:
    """An RpcTransport whose reader is teed."""

    def __init__(self, reader: Any, writer: Any, closer: Callable[[], None]) -> None:
        self._reader = _Tee(reader)
        self._writer = writer
        self._closer = closer

    @property
    def reader(self) -> Any:
        return self._reader

    @property
    def writer(self) -> Any:
        return self._writer

    def close(self) -> None:
        self._closer()


class _TeeResponse:
    """An httpx2 response whose streamed body is recorded once fully read."""

    def __init__(self, inner: Any, record: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        body = bytearray()
        try:
            for chunk in self._inner.iter_bytes(chunk_size=chunk_size):
                body += chunk
                yield chunk
        finally:
            self._record(bytes(body))


class _RecordingClient:
    """An httpx2 client that records (path, status, decoded body) of every RPC POST."""

    def __init__(self, inner: Any, sink: list[tuple[str, int, bytes]]) -> None:
        self._inner = inner
        self._sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def post(self, url: str, **kwargs: Any) -> Any:
        resp = self._inner.post(url, **kwargs)
        self._sink.append((url, resp.status_code, resp.content))
        return resp

    @contextlib.contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Generator[Any]:
        with self._inner.stream(method, url, **kwargs) as resp:
            yield _TeeResponse(resp, lambda body: self._sink.append((url, resp.status_code, body)))


def _read_announce(proc: subprocess.Popen[bytes], prefix: str, timeout: float) -> str:
    """The rest of the first stdout line starting with *prefix*; stdout is drained to nowhere after."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            for line in buf.split(b"\n")[:-1]:
                text = line.decode(errors="replace").strip()
                if text.startswith(prefix):
                    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
                    return text[len(prefix) :]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker did not print {prefix} within {timeout}s")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"worker exited (code {proc.poll()}) before printing {prefix}")
            buf += chunk
    finally:
        sel.close()


def _drain(stream: Any) -> None:
    with contextlib.suppress(Exception):
        while stream.read(65536):
            pass


def _load_prctl() -> Callable[[int, int], int] | None:
    try:
        import ctypes

        return typing.cast("Callable[[int, int], int]", ctypes.CDLL("libc.so.6", use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: be killed if the driver dies (a SIGKILLed driver runs no cleanup)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=grace)


class Side:
    """One worker and the reference client connected to it over one transport."""

    def __init__(self, spec: WorkerSpec, transport: str, workdir: str) -> None:
        self.spec = spec
        self.transport = transport
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.on_log: Callable[[Message], None] | None = None
        self.http_wire: list[tuple[str, int, bytes]] = []
        self._tee: _Tee | None = None
        self._stack = contextlib.ExitStack()
        self._proxies: dict[str, Any] = {}
        self.starts = 0
        self.stderr_path = os.path.join(workdir, f"{spec.name}-{transport}.stderr")

    # -- lifecycle ---------------------------------------------------------

    def _spawn(self, extra: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "VGI_RPC_CONFORMANCE_PROBE_FILE"}
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the child, closed below
        try:
            return subprocess.Popen(
                [*self.spec.argv, *extra],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                bufsize=0,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl runs there, nothing that locks
            )
        finally:
            stderr.close()

    def start(self) -> None:
        """Start the worker and connect the client (both protocols on one connection)."""
        self.starts += 1
        self._stack = contextlib.ExitStack()
        log = self._log
        if self.transport == "pipe":
            proc = self.proc = self._spawn([])
            assert proc.stdin is not None and proc.stdout is not None
            reader = _clamped(os.fdopen(proc.stdout.fileno(), "rb", closefd=False))
            transport = _TeeTransport(reader, _exact(typing.cast("io.IOBase", proc.stdin)), lambda: None)
            self._tee = transport.reader
            self._connect_session(transport, log)
        elif self.transport == "unix":
            path = os.path.join(self.workdir, f"{self.spec.name}-{self.starts}.sock")
            proc = self.proc = self._spawn(["--unix", path])
            assert proc.stdin is not None
            proc.stdin.close()
            bound = _read_announce(proc, "UNIX:", START_TIMEOUT)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(bound)
            unix = UnixTransport(sock)
            transport = _TeeTransport(unix.reader, unix.writer, unix.close)
            self._tee = transport.reader
            self._stack.callback(unix.close)
            self._connect_session(transport, log)
        elif self.transport == "http":
            import httpx2
            from vgi_rpc.http import http_connect

            proc = self.proc = self._spawn(["--http"])
            assert proc.stdin is not None
            proc.stdin.close()
            port = _read_announce(proc, "PORT:", START_TIMEOUT)
            inner = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=300.0)
            self._stack.callback(inner.close)
            client = _RecordingClient(inner, self.http_wire)
            for key, (cls, _impl) in PROTOCOLS.items():
                self._proxies[key] = self._stack.enter_context(http_connect(cls, client=client, on_log=log))  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown transport {self.transport!r}")

    def _connect_session(self, transport: _TeeTransport, log: Callable[[Message], None]) -> None:
        for key, (cls, _impl) in PROTOCOLS.items():
            # RpcConnection.__exit__ would close the transport; the proxies share it, so enter only.
            self._proxies[key] = RpcConnection(cls, transport, on_log=log).__enter__()

    def _log(self, msg: Message) -> None:
        if self.on_log is not None:
            self.on_log(msg)

    def close(self) -> None:
        """Disconnect and stop the worker (SIGTERM, then SIGKILL after a grace period)."""
        proc = self.proc
        if proc is not None and proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        with contextlib.suppress(Exception):
            self._stack.close()
        if proc is not None and self.transport == "pipe":
            # EOF on stdin is the pipe worker's signal to exit; give it a moment before SIGTERM.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        _stop(proc)
        if proc is not None and proc.stdout is not None:
            with contextlib.suppress(Exception):
                proc.stdout.close()
        self.proc = None
        self._proxies = {}
        self._tee = None

    def restart(self) -> None:
        """Stop and start again (after a broken connection or a timeout)."""
        self.close()
        self.start()

    def kill(self) -> None:
        """Kill the worker at once (a case overran its timeout); the blocked read then fails."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    # -- per case ----------------------------------------------------------

    def proxy(self, protocol: str) -> Any:
        """The client proxy bound to *protocol*."""
        return self._proxies[protocol]

    def begin(self) -> None:
        """Forget what was read so far (the next case records from here)."""
        if self._tee is not None:
            self._tee.seen.clear()
        self.http_wire.clear()

    def wire(self) -> tuple[bytes | None, list[tuple[str, int, bytes]]]:
        """What the worker sent since :meth:`begin`: the byte stream (pipe, unix) or the POST bodies (http)."""
        if self._tee is not None:
            return bytes(self._tee.seen), []
        return None, list(self.http_wire)


def reference_spec(root: str, name: str = "reference") -> WorkerSpec:
    """The reference's conformance worker from the project venv."""
    return WorkerSpec(name, (os.path.join(root, ".venv-conformance", "bin", "vgi-rpc-conformance"),))


def quiver_spec(root: str, node: str = "node") -> WorkerSpec:
    """Quiver's conformance worker from dist/ (``npm run build``)."""
    return WorkerSpec("quiver", (node, os.path.join(root, "dist", "bin", "quiver-conformance.js")))
