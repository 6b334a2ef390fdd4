"""Fixtures that route the reference's conformance suite through quiver's client.

The server is the reference's own worker (``vgi-rpc-conformance --describe``); the client is
quiver's, reached through the reference's ``ClientDriver`` and quiver's driver process
(``QUIVER_CLIENT_DRIVER``, default ``node --import tsx src/bin/quiver-client-driver.ts``).
Transports: ``stdio`` (a fresh worker per connection), ``unix`` and ``tcp`` (one threaded
worker per session). Groups that need HTTP, raw byte access to the transport, or a server
process to sample skip, naming why. ``TestExternalByteStream`` runs on each transport against
a reference worker externalizing through the reference's fake storage, quiver's client resolving.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vgi_rpc.conformance import ConformanceService
from vgi_rpc.conformance.client_driver import ClientDriver
from vgi_rpc.introspect import ServiceDescription
from vgi_rpc.log import Message

ROOT = Path(__file__).resolve().parents[2]
# Shared helpers with the byte-stream harness (test/python).
sys.path.insert(0, str(ROOT / "test" / "python"))
from _quiver_worker import fake_storage_service  # noqa: E402
_BIN = Path(sys.executable).parent
_WORKER = [str(_BIN / "vgi-rpc-conformance"), "--describe"]
_DRIVER = shlex.split(
    os.environ.get("QUIVER_CLIENT_DRIVER") or f"node --import tsx {ROOT / 'src/bin/quiver-client-driver.ts'}"
)
_TRANSPORTS = [t for t in os.environ.get("QUIVER_CLIENT_TRANSPORTS", "stdio,unix,tcp").split(",") if t]


def _driver(service: type = ConformanceService) -> ClientDriver:
    return ClientDriver(_DRIVER, service=service, cwd=str(ROOT))


def _spawn_socket_worker(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([*_WORKER, "--threaded", *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line:
        proc.kill()
        raise RuntimeError("reference worker printed no address")
    return proc, line


@pytest.fixture(scope="session")
def quiver_ref_unix() -> Iterator[str]:
    path = os.path.join(tempfile.mkdtemp(prefix="quiver-client-"), "ref.sock")
    proc, _ = _spawn_socket_worker(["--unix", path])
    try:
        yield path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def quiver_ref_tcp() -> Iterator[str]:
    proc, line = _spawn_socket_worker(["--tcp", "127.0.0.1:0"])
    try:
        yield line.removeprefix("TCP:")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _target(request: pytest.FixtureRequest, transport: str) -> tuple[str, object]:
    if transport == "stdio":
        return "stdio", [*_WORKER, "--pipe"]
    if transport == "shm":
        # A fresh worker per connection, as stdio, with a segment the client offers beside the pipe.
        return "shm", [*_WORKER, "--pipe"]
    if transport == "unix":
        return "unix", request.getfixturevalue("quiver_ref_unix")
    if transport == "tcp":
        return "tcp", request.getfixturevalue("quiver_ref_tcp")
    raise AssertionError(f"no such transport {transport!r}")


def _connect(request: pytest.FixtureRequest, transport: str, protocol: type, on_log: Any) -> Any:
    kind, target = _target(request, transport)
    return _driver(protocol).connect(kind, target, on_log)


@pytest.fixture(params=_TRANSPORTS)
def conformance_conn(request: pytest.FixtureRequest) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    transport = str(request.param)

    def factory(on_log: Callable[[Message], None] | None = None) -> contextlib.AbstractContextManager[Any]:
        return _connect(request, transport, ConformanceService, on_log)

    return factory


@pytest.fixture(params=_TRANSPORTS)
def conformance_describe(request: pytest.FixtureRequest) -> ServiceDescription:
    with _connect(request, str(request.param), ConformanceService, None) as proxy:
        return proxy.describe()


@pytest.fixture
def conformance_protocol_connector(request: pytest.FixtureRequest) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    def connect(transport: str, protocol: type, on_log: Any = None) -> contextlib.AbstractContextManager[Any]:
        return _connect(request, "stdio" if transport == "pipe" else transport, protocol, on_log)

    return connect


_RAW = "writes raw bytes onto the transport: a server-side group, not applicable through a client driver"


@pytest.fixture
def conformance_raw_conn() -> Any:
    pytest.skip(_RAW)


_NO_HTTP = "quiver's client has no HTTP transport yet; HTTP-only group"


@pytest.fixture(scope="session")
def conformance_http_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_auth_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_strict_cap_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_externalized_cap_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_with_storage_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_with_zstd_storage_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_external_security_port() -> int:
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_fake_storage() -> Iterator[str]:
    """The reference's in-memory fake storage service, on loopback, for the whole session."""
    with fake_storage_service() as base_url:
        yield base_url


# ---------------------------------------------------------------------------
# Byte-stream externalization (TestExternalByteStream) with quiver's client
# resolving: the reference worker externalizes through the fake storage at
# threshold 1; the group runs once per selected transport.
# ---------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the byte-stream externalization group over the selected transports."""
    if metafunc.cls is not None and metafunc.cls.__name__ == "TestExternalByteStream":
        # Not shm: with a segment the reference worker sends data through it, not through storage.
        metafunc.fixturenames.append("quiver_external_transport")
        metafunc.parametrize("quiver_external_transport", [t for t in _TRANSPORTS if t != "shm"])


def _external_flags(storage_url: str) -> list[str]:
    return ["--fake-storage", storage_url, "--externalize-threshold", "1"]


@pytest.fixture(scope="session")
def quiver_ref_external_workers(conformance_fake_storage: str) -> Iterator[Callable[[str], str]]:
    """Externalizing reference socket workers, started on first use, one per transport."""
    procs: list[subprocess.Popen[bytes]] = []
    addresses: dict[str, str] = {}
    tmp = tempfile.mkdtemp(prefix="quiver-client-ext-")

    def get(transport: str) -> str:
        if transport not in addresses:
            where = ["--unix", os.path.join(tmp, "ref.sock")] if transport == "unix" else ["--tcp", "127.0.0.1:0"]
            proc, line = _spawn_socket_worker([*where, *_external_flags(conformance_fake_storage)])
            procs.append(proc)
            addresses[transport] = where[1] if transport == "unix" else line.removeprefix("TCP:")
        return addresses[transport]

    try:
        yield get
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def conformance_bytestream_external_target(request: pytest.FixtureRequest, conformance_fake_storage: str) -> Any:
    """quiver's client (with its resolver) against an externalizing reference worker."""
    from vgi_rpc.conformance._external_bytestream_pytest import ByteStreamExternalTarget
    from vgi_rpc.external import ClientExternalConfig

    transport = str(request.getfixturevalue("quiver_external_transport"))
    storage = conformance_fake_storage

    def connect(on_log: Callable[[Message], None] | None = None) -> Any:
        if transport == "stdio":
            target: object = [*_WORKER, "--pipe", *_external_flags(storage)]
        else:
            target = request.getfixturevalue("quiver_ref_external_workers")(transport)
        # Only the presence of the config crosses to the driver: quiver's client resolves.
        return _driver().connect(transport, target, on_log, external_config=ClientExternalConfig())

    def uploaded_objects() -> int:
        import httpx2

        return int(httpx2.get(f"{storage}/_stats", timeout=5.0).json()["object_count"])

    return ByteStreamExternalTarget(name=f"quiver-client-{transport}", connect=connect, uploaded_objects=uploaded_objects)


# Per-test outcomes, by transport, for scripts/run-client-conformance.mjs.
_RESULTS: dict[str, dict[str, Any]] = {}


def _transport_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for name in ("conformance_conn", "conformance_describe", "quiver_external_transport"):
        if name in callspec.params:
            return str(callspec.params[name])
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    report.quiver_transport = _transport_of(item)  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _RESULTS.setdefault(
        report.nodeid, {"transport": getattr(report, "quiver_transport", None), "outcome": "passed"}
    )
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry.setdefault("longrepr", str(report.longrepr)[-3000:])
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["skip_reason"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("QUIVER_PYTEST_RESULTS")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"transports": _TRANSPORTS, "tests": _RESULTS}, fh, indent=1)
