"""Fixtures that point the reference's pytest conformance suite at quiver's worker.

The suite itself is ``vgi_rpc.conformance._pytest_suite`` (vgi-rpc 0.52.2),
re-exported by ``test_conformance.py``.  The suite names the fixtures a runner
provides; this file provides them for the transports quiver serves today:

``pipe``  the worker on stdin/stdout, one long-lived process (replaced after a
          failing test so a desynchronised stream cannot fail later tests);
          isolation-sensitive fixtures (``conformance_raw_conn``) get a fresh one.
``unix``  one worker listening on a Unix socket for the session; a new
          connection per ``conformance_conn()``.
``tcp``   the same over loopback TCP.

HTTP groups run in ``test/python-http``, against quiver's HTTP worker.  Here,
groups that take an HTTP worker fixture as a direct argument get a fixture that
skips, naming the reason -- the same mechanism the reference's own non-HTTP
runner (``_hosted_pytest.conformance_http_port``) uses.  The identity and grant
groups (``vgi_rpc.Identity.v2``) are HTTP-only by the reference's design
(IDENTITY_CONFORMANCE_FIXTURE.md §2: their callers are named by request
headers), so their fixtures skip here the same way.  Other groups that look
their fixture up optionally (``request.getfixturevalue`` ->
``FixtureLookupError`` -> skip) find nothing here and skip on their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _quiver_worker import (
    SharedPipeWorker,
    TransportKindProbe,
    fake_storage_service,
    selected_transports,
    spawn_pipe_worker,
    tcp_worker,
    unix_worker,
)

from vgi_rpc.conformance import ConformanceService
from vgi_rpc.introspect import ServiceDescription
from vgi_rpc.log import Message
from vgi_rpc.rpc import _RpcProxy, tcp_connect, unix_connect

ConnFactory = Callable[..., contextlib.AbstractContextManager[Any]]

_TRANSPORTS = selected_transports()

# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def quiver_shared_pipe() -> Iterator[SharedPipeWorker]:
    """The long-lived stdio worker behind the ``pipe`` transport."""
    shared = SharedPipeWorker()
    _SHARED_WORKERS.append(shared)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture(scope="session")
def quiver_unix_path() -> Iterator[str]:
    """One worker serving a Unix socket for the whole session."""
    with unix_worker() as path:
        yield path


@pytest.fixture(scope="session")
def quiver_tcp_addr() -> Iterator[tuple[str, int]]:
    """One worker serving loopback TCP for the whole session."""
    with tcp_worker() as addr:
        yield addr


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Retire the shared stdio worker after any failure, and tag reports with their transport."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    report.quiver_transport = _transport_of(item)  # type: ignore[attr-defined]
    if report.failed and _transport_of(item) == "pipe":
        shared = getattr(item, "funcargs", {}).get("quiver_shared_pipe")
        if shared is None:
            with contextlib.suppress(Exception):
                shared = item._request.getfixturevalue("quiver_shared_pipe")  # type: ignore[attr-defined]
        if shared is not None:
            shared.mark_dirty()


def _transport_of(item: pytest.Item) -> str | None:
    if getattr(item, "cls", None) is not None and item.cls.__name__ == "TestResourceSoak":
        return _SOAK_TRANSPORT
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for name in ("conformance_conn", "conformance_raw_conn", "conformance_describe", "quiver_external_transport"):
        if name in callspec.params:
            return str(callspec.params[name])
    return None


# ---------------------------------------------------------------------------
# The fixtures the suite names
# ---------------------------------------------------------------------------


def _connect(
    request: pytest.FixtureRequest,
    transport: str,
    protocol: type,
    on_log: Callable[[Message], None] | None,
    *,
    fresh_pipe: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A proxy bound to *protocol* on the worker *transport* reaches."""
    if transport == "pipe":
        if fresh_pipe:

            @contextlib.contextmanager
            def _fresh() -> Iterator[Any]:
                sub = spawn_pipe_worker()
                try:
                    yield _RpcProxy(protocol, sub, on_log)
                finally:
                    sub.close()

            return _fresh()
        shared: SharedPipeWorker = request.getfixturevalue("quiver_shared_pipe")

        @contextlib.contextmanager
        def _shared() -> Iterator[Any]:
            yield _RpcProxy(protocol, shared.get(), on_log)

        return _shared()
    if transport == "unix":
        return unix_connect(protocol, request.getfixturevalue("quiver_unix_path"), on_log=on_log)
    if transport == "tcp":
        host, port = request.getfixturevalue("quiver_tcp_addr")
        return tcp_connect(protocol, host, port, on_log=on_log)
    raise AssertionError(f"no such quiver transport: {transport!r}")


@pytest.fixture(params=_TRANSPORTS)
def conformance_conn(request: pytest.FixtureRequest) -> ConnFactory:
    """``conformance_conn(on_log=None)`` -> context manager yielding a ConformanceService proxy."""
    transport = str(request.param)

    def factory(on_log: Callable[[Message], None] | None = None) -> contextlib.AbstractContextManager[Any]:
        return _connect(request, transport, ConformanceService, on_log)

    return factory


@pytest.fixture(params=_TRANSPORTS)
def conformance_raw_conn(request: pytest.FixtureRequest) -> ConnFactory:
    """Persistent byte-stream connections for the adversarial request-contract group.

    That group writes hand-built malformed requests onto the transport and then
    reuses it, so on ``pipe`` each test gets its own worker: a worker that
    mishandles the request must not take the shared one (and every later test)
    down with it.  Unix and TCP connections are per-test anyway.
    """
    transport = str(request.param)

    def factory(on_log: Callable[[Message], None] | None = None) -> contextlib.AbstractContextManager[Any]:
        return _connect(request, transport, ConformanceService, on_log, fresh_pipe=True)

    return factory


@pytest.fixture(params=_TRANSPORTS)
def conformance_describe(request: pytest.FixtureRequest) -> ServiceDescription:
    """A ``ServiceDescription`` read off the running worker via ``vgi_rpc.Reflection.v1``."""
    from vgi_rpc.introspect import introspect
    from vgi_rpc.rpc import TcpTransport, UnixTransport

    transport = str(request.param)
    if transport == "pipe":
        shared: SharedPipeWorker = request.getfixturevalue("quiver_shared_pipe")
        return introspect(shared.get())
    if transport == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(request.getfixturevalue("quiver_unix_path"))
        except BaseException:
            sock.close()
            raise
        unix_transport = UnixTransport(sock)
        try:
            return introspect(unix_transport)
        finally:
            unix_transport.close()
    host, port = request.getfixturevalue("quiver_tcp_addr")
    tcp_transport = TcpTransport(socket.create_connection((host, port)))
    try:
        return introspect(tcp_transport)
    finally:
        tcp_transport.close()


@pytest.fixture
def conformance_protocol_connector(request: pytest.FixtureRequest) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``connect(transport, protocol, on_log=None)``: any hosted protocol on the SAME worker.

    Function-scoped (the suite asks for it per test) so it can reach the
    session's workers through this test's request.
    """

    def connect(transport: str, protocol: type, on_log: Any = None) -> contextlib.AbstractContextManager[Any]:
        return _connect(request, transport, protocol, on_log)

    return connect


#: The soak target is looked up with getfixturevalue(), so it cannot be
#: parametrized; it runs on the first selected socket transport.
_SOAK_TRANSPORT = next((t for t in _TRANSPORTS if t in ("unix", "tcp")), None)


@pytest.fixture
def conformance_resource_soak_target() -> Iterator[Any]:
    """A dedicated socket worker, its PID and a fresh-connection factory, for ``TestResourceSoak``.

    The soak group is transport-agnostic; it needs one isolated process it can
    sample and a way to open many connections to it.  A socket worker gives
    both (``pipe`` cannot: a stdio worker serves exactly one connection for its
    life), so this uses Unix, or TCP when Unix is not selected.  The limits are
    the reference's ``ResourceSoakLimits`` defaults, which its own Python
    target uses; none is loosened for Node.
    """
    from vgi_rpc.conformance._resource_soak_pytest import ResourceSoakLimits, ResourceSoakTarget

    transport = _SOAK_TRANSPORT
    if transport is None:
        pytest.skip("resource soak needs a socket worker; neither unix nor tcp is selected")
    spawn = unix_worker if transport == "unix" else tcp_worker
    with spawn(with_pid=True) as (pid, address):

        def connect() -> contextlib.AbstractContextManager[Any]:
            if transport == "unix":
                return unix_connect(ConformanceService, address)
            return tcp_connect(ConformanceService, address[0], address[1])

        yield ResourceSoakTarget(
            name=f"quiver-{transport}",
            pid=pid,
            connect=connect,
            limits=ResourceSoakLimits(),
        )


@pytest.fixture
def conformance_transport_kind_probes() -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """One probe per selected transport: a worker started with ``--transport-kind-probe`` reports
    the transport its call saw (``TransportKindProbe.transport_kind``, outside ConformanceService)."""
    flags = ("--transport-kind-probe",)
    with contextlib.ExitStack() as stack:
        probes: list[tuple[str, Callable[[], str]]] = []
        for transport in _TRANSPORTS:
            if transport == "pipe":

                def pipe_probe() -> str:
                    sub = spawn_pipe_worker(flags)
                    try:
                        return str(_RpcProxy(TransportKindProbe, sub, None).transport_kind())
                    finally:
                        sub.close()

                probes.append(("pipe", pipe_probe))
            elif transport == "unix":
                path = stack.enter_context(unix_worker(flags=flags))
                probes.append(("unix", lambda path=path: _probe_with(unix_connect(TransportKindProbe, path))))
            elif transport == "tcp":
                host, port = stack.enter_context(tcp_worker(flags=flags))
                probes.append(("tcp", lambda h=host, p=port: _probe_with(tcp_connect(TransportKindProbe, h, p))))
        yield probes


def _probe_with(connection: contextlib.AbstractContextManager[Any]) -> str:
    with connection as proxy:
        return str(proxy.transport_kind())


# ---------------------------------------------------------------------------
# HTTP worker fixtures the suite requests.  This harness serves pipe, unix and
# tcp; test/python-http runs the HTTP groups against quiver's HTTP worker.  Each
# fixture skips with that reason rather than erroring with "fixture not found".
# Other optional fixtures the suite looks up with getfixturevalue() are not
# defined: their groups skip by the suite's own FixtureLookupError handling.
# ---------------------------------------------------------------------------

_NO_HTTP = "HTTP-only group: test/python-http runs it against quiver's HTTP worker"
_HTTP_IDENTITY = (
    "vgi_rpc.Identity.v2 group: HTTP-only by design (its callers are named by request headers, "
    "IDENTITY_CONFORMANCE_FIXTURE.md §2); test/python-http runs it against quiver's HTTP identity workers"
)


@pytest.fixture(scope="session")
def conformance_http_identity_port() -> int:
    """The both-hooks identity worker (HTTP-only)."""
    pytest.skip(_HTTP_IDENTITY)


@pytest.fixture(scope="session")
def conformance_http_identity_introspect_only_port() -> int:
    """The introspect-only identity worker (HTTP-only)."""
    pytest.skip(_HTTP_IDENTITY)


@pytest.fixture(scope="session")
def conformance_http_grant_port() -> int:
    """The sealed-grant worker (HTTP-only)."""
    pytest.skip(_HTTP_IDENTITY)


@pytest.fixture(scope="session")
def conformance_http_port() -> int:
    """The default HTTP worker."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_auth_port() -> int:
    """HTTP worker that refuses every RPC with 401."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_strict_cap_port() -> int:
    """HTTP worker with strict response caps."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_externalized_cap_port() -> int:
    """HTTP worker with a tight externalized-response cap."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_with_storage_port() -> int:
    """HTTP worker externalizing through fake storage."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_with_zstd_storage_port() -> int:
    """HTTP worker externalizing through fake storage with zstd."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_http_external_security_port() -> int:
    """HTTP worker with external-fetch caps and per-hop URL validation."""
    pytest.skip(_NO_HTTP)


@pytest.fixture(scope="session")
def conformance_fake_storage() -> Iterator[str]:
    """The reference's in-memory fake storage service, on loopback, for the whole session."""
    with fake_storage_service() as base_url:
        yield base_url


# ---------------------------------------------------------------------------
# Byte-stream externalization (TestExternalByteStream): the group asks for one
# ``conformance_bytestream_external_target``; here it runs once per selected
# transport, against a worker started with ``--fake-storage URL
# --externalize-threshold 1`` and a reference client resolving pointers from
# loopback only.
# ---------------------------------------------------------------------------

_EXTERNAL_GROUP = "TestExternalByteStream"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the byte-stream externalization group over the selected transports."""
    if metafunc.cls is not None and metafunc.cls.__name__ == _EXTERNAL_GROUP:
        metafunc.fixturenames.append("quiver_external_transport")
        metafunc.parametrize("quiver_external_transport", _TRANSPORTS)


def _external_flags(storage_url: str) -> tuple[str, ...]:
    return ("--fake-storage", storage_url, "--externalize-threshold", "1")


@pytest.fixture(scope="session")
def quiver_external_workers(conformance_fake_storage: str) -> Iterator[dict[str, Any]]:
    """Externalizing socket workers, started on first use, one per transport."""
    with contextlib.ExitStack() as stack:
        workers: dict[str, Any] = {}

        def get(transport: str) -> Any:
            if transport not in workers:
                flags = _external_flags(conformance_fake_storage)
                spawn = unix_worker if transport == "unix" else tcp_worker
                workers[transport] = stack.enter_context(spawn(flags=flags))
            return workers[transport]

        yield {"get": get}


@pytest.fixture
def conformance_bytestream_external_target(
    request: pytest.FixtureRequest, conformance_fake_storage: str
) -> Any:
    """A connection to an externalizing quiver worker over this item's transport."""
    from vgi_rpc.conformance._external_bytestream_pytest import ByteStreamExternalTarget
    from vgi_rpc.conformance._cli import _loopback_only_validator
    from vgi_rpc.external import ClientExternalConfig

    transport = str(request.getfixturevalue("quiver_external_transport"))
    config = ClientExternalConfig(url_validator=_loopback_only_validator)
    storage = conformance_fake_storage

    @contextlib.contextmanager
    def connect(on_log: Callable[[Message], None] | None = None) -> Iterator[Any]:
        if transport == "pipe":
            sub = spawn_pipe_worker(_external_flags(storage))
            try:
                yield _RpcProxy(ConformanceService, sub, on_log, external_config=config)
            finally:
                sub.close()
            return
        address = request.getfixturevalue("quiver_external_workers")["get"](transport)
        if transport == "unix":
            with unix_connect(ConformanceService, address, on_log=on_log, external_location=config) as proxy:
                yield proxy
        else:
            with tcp_connect(ConformanceService, address[0], address[1], on_log=on_log, external_location=config) as proxy:
                yield proxy

    def uploaded_objects() -> int:
        import httpx2

        return int(httpx2.get(f"{storage}/_stats", timeout=5.0).json()["object_count"])

    return ByteStreamExternalTarget(name=f"quiver-{transport}", connect=connect, uploaded_objects=uploaded_objects)


# ---------------------------------------------------------------------------
# Per-transport result file for scripts/run-pytest-conformance.mjs
# ---------------------------------------------------------------------------

_RESULTS: dict[str, dict[str, Any]] = {}
_SHARED_WORKERS: list[SharedPipeWorker] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how often the shared stdio worker had to be (re)started: >1 means a failure retired it."""
    for shared in _SHARED_WORKERS:
        terminalreporter.write_line(f"quiver: shared pipe worker started {shared.spawned} time(s)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Fold setup/call/teardown reports into one outcome per test."""
    entry = _RESULTS.setdefault(
        report.nodeid,
        {"transport": getattr(report, "quiver_transport", None), "outcome": "passed", "phases": {}},
    )
    entry["phases"][report.when] = report.outcome
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry.setdefault("longrepr", str(report.longrepr)[-3000:])
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["skip_reason"] = (
            report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the per-test outcomes where the runner script asked for them."""
    path = os.environ.get("QUIVER_PYTEST_RESULTS")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"transports": _TRANSPORTS, "tests": _RESULTS}, fh, indent=1)



