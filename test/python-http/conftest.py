"""Fixtures pointing the reference's pytest conformance suite at quiver's HTTP worker.

The suite is ``vgi_rpc.conformance._pytest_suite`` (vgi-rpc 0.52.2), re-exported
by ``test_conformance.py``.  Here ``conformance_conn`` has one parametrisation,
``http``, and the HTTP fixtures the suite names are quiver workers started with
the matching flags:

``conformance_http_port``               ``--http --sticky`` (sticky on, as the reference worker's default)
``conformance_http_auth_port``          ``--http --auth reject``
``conformance_http_auth_reason_port``   ``--http --auth reason``
``conformance_http_strict_cap_port``    ``--http --max-response-bytes 65536``
``conformance_http_cold_call_cache_port`` ``--http`` (quiver keeps no call cache: every turn is cold)
``conformance_http_no_compression_port`` ``--http --no-compression``
``conformance_http_access_log``         ``--http --access-log PATH`` -> ``(port, path)``
``conformance_http_small_request_cap_port`` ``--http --max-request-bytes 4096``
``conformance_describe`` / ``conformance_protocol_connector``  the default worker, over HTTP

``conformance_http_identity_port``      ``--http --identity both``: ``vgi_rpc.Identity.v2`` with the
                                        resolve and mint hooks of IDENTITY_CONFORMANCE_FIXTURE.md,
                                        callers named by the fixture's X-Conformance-* headers
``conformance_http_identity_introspect_only_port`` ``--http --identity introspect-only`` (no mint hook)
``conformance_http_grant_port``         ``--http --identity grants``: the resolver, sealed grants under
                                        the fixture keys (no mint hook), ``conformance.Whoami.v1``

``conformance_fake_storage``            the reference's fake storage service (in this process)
``conformance_http_with_storage_port``  ``--http --fake-storage URL --max-request-bytes 32768``
                                        (threshold 4096; vends upload URLs)
``conformance_http_with_zstd_storage_port`` ``--fake-storage URL --external-compression zstd``
``conformance_http_external_security_port`` fake storage with 4 KiB / 8 KiB fetch caps, 127.0.0.1 only
``conformance_http_externalized_cap_port`` fake storage, ``--max-externalized-response-bytes 65536``
``conformance_http_cors_port``          ``--cors-origin https://conformance.example --sticky`` with fake storage
``conformance_http_sticky_short_ttl_port`` ``--http --sticky-ttl 1``
``conformance_http_sticky_peer_ports``  two ``--http --sticky --token-key K`` workers (one key, two server ids)
``conformance_http_sticky_auth_port``   ``--http --sticky-auth`` (principal from ``X-Conformance-Principal``)
``proof_worker_factory``                ``--proxy-proof-mode/-origin/-secrets/-skew`` per ``ProofWorkerConfig``

``TestExternalByteStream`` skips, naming the reason
(``_SKIPPED_BY_NAME`` at the end), which ``test/python`` runs.  Raw byte-stream
connections do not exist over HTTP; the pipe/unix/tcp harness in ``test/python``
covers them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vgi_rpc.conformance import ConformanceService
from vgi_rpc.http import http_connect
from vgi_rpc.log import Message

ROOT = Path(__file__).resolve().parents[2]
# Shared helpers with the byte-stream harness (test/python).
sys.path.insert(0, str(ROOT / "test" / "python"))
from _quiver_worker import fake_storage_service  # noqa: E402
ConnFactory = Callable[..., contextlib.AbstractContextManager[Any]]


def _worker_cmd() -> list[str]:
    override = os.environ.get("QUIVER_CONFORMANCE_CMD")
    if override:
        return shlex.split(override)
    return ["node", "--import", "tsx", str(ROOT / "src" / "bin" / "quiver-conformance.ts")]


@contextlib.contextmanager
def _http_worker(*flags: str, with_pid: bool = False) -> Iterator[Any]:
    """Start ``quiver-conformance --http FLAGS``, wait for ``PORT:<n>``, stop it afterwards; yields
    the port (or ``(pid, port)``)."""
    proc = subprocess.Popen(
        [*_worker_cmd(), "--http", *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout=30)
    try:
        if not line or not line[0].startswith("PORT:"):
            raise RuntimeError(f"HTTP worker {flags} did not print PORT:<n> (got {line!r})")
        port = int(line[0][len("PORT:") :].strip())
        yield (proc.pid, port) if with_pid else port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def conformance_http_port() -> Iterator[int]:
    # Sticky sessions on, as the reference's own conformance worker serves them by default.
    with _http_worker("--sticky") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_auth_port() -> Iterator[int]:
    with _http_worker("--auth", "reject") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_auth_reason_port() -> Iterator[int]:
    with _http_worker("--auth", "reason") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_strict_cap_port() -> Iterator[int]:
    with _http_worker("--max-response-bytes", "65536") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_identity_port() -> Iterator[int]:
    """Both identity hooks. Session-scoped: the fixture's hooks are pure, so one worker answers alike every time."""
    with _http_worker("--identity", "both") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_identity_introspect_only_port() -> Iterator[int]:
    """The resolve hook only: ``issue_grant`` is absent and the protocol hash narrows."""
    with _http_worker("--identity", "introspect-only") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_grant_port() -> Iterator[int]:
    """The grant worker: resolver, sealed grants under the fixture keys, ``conformance.Whoami.v1``."""
    with _http_worker("--identity", "grants") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_cold_call_cache_port(conformance_http_port: int) -> int:
    return conformance_http_port


@pytest.fixture(scope="session")
def conformance_http_no_compression_port() -> Iterator[int]:
    with _http_worker("--no-compression") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_access_log() -> Iterator[tuple[int, Path]]:
    with tempfile.TemporaryDirectory(prefix="quiver-http-log-") as tmp:
        path = Path(tmp) / "access.jsonl"
        with _http_worker("--access-log", str(path)) as port:
            yield port, path






@pytest.fixture(scope="session")
def conformance_fake_storage() -> Iterator[str]:
    """The reference's in-memory fake storage service, on loopback, for the whole session."""
    with fake_storage_service() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def conformance_http_with_storage_port(conformance_fake_storage: str) -> Iterator[int]:
    # A request cap under the suite's 40 000-character upload payload, so its client meets a 413
    # and uploads through the vended URLs.
    with _http_worker("--fake-storage", conformance_fake_storage, "--max-request-bytes", "32768") as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_externalized_cap_port(conformance_fake_storage: str) -> Iterator[int]:
    """Storage wired, 64 KiB of uploads per response, no wire cap (so the external cap is what fails)."""
    flags = ("--fake-storage", conformance_fake_storage, "--max-externalized-response-bytes", "65536")
    with _http_worker(*flags) as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_external_security_port(conformance_fake_storage: str) -> Iterator[int]:
    """Client-sent pointers fetched under 4 KiB encoded / 8 KiB decoded caps, from 127.0.0.1 only."""
    flags = (
        "--fake-storage",
        conformance_fake_storage,
        "--external-max-fetch-bytes",
        "4096",
        "--external-max-decompressed-bytes",
        "8192",
        "--external-url-host",
        "127.0.0.1",
    )
    with _http_worker(*flags) as port:
        yield port


@pytest.fixture(scope="session")
def conformance_http_with_zstd_storage_port(conformance_fake_storage: str) -> Iterator[int]:
    with _http_worker("--fake-storage", conformance_fake_storage, "--external-compression", "zstd") as port:
        yield port

@pytest.fixture(scope="session")
def conformance_http_cors_port(conformance_fake_storage: str) -> Iterator[int]:
    # Storage wired too: the suite checks that every capability the worker advertises (the upload
    # and externalization ones among them) is exposed to browsers.
    # Sticky on too: the session headers must be exposed with the rest.
    flags = ("--cors-origin", "https://conformance.example", "--fake-storage", conformance_fake_storage, "--sticky")
    with _http_worker(*flags) as port:
        yield port


@pytest.fixture(scope="session")
def proof_worker_factory() -> Callable[[Any], contextlib.AbstractContextManager[Any]]:
    """Spawns a proxy-proof worker (``--proxy-proof-*``) for a ``ProofWorkerConfig``."""
    from vgi_rpc.conformance.proof_harness import ProofWorker

    @contextlib.contextmanager
    def factory(config: Any) -> Iterator[Any]:
        flags = [
            "--proxy-proof-mode",
            config.mode,
            "--proxy-proof-origin",
            config.origin_id,
            "--proxy-proof-secrets",
            config.secrets,
            "--proxy-proof-skew",
            str(config.skew_seconds),
        ]
        if not config.replay_cache:
            flags.append("--no-proxy-proof-replay-cache")
        with _http_worker(*flags) as port:
            yield ProofWorker(port=port, prefix="", config=config)

    return factory


@pytest.fixture(scope="session")
def conformance_http_serve_start_fail_once_port() -> Iterator[int]:
    """A worker whose start hook fails on the first call (500), then succeeds."""
    with _http_worker("--serve-start-fail-once") as port:
        yield port


@pytest.fixture
def conformance_transport_kind_probes() -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """The HTTP probe: a ``--transport-kind-probe`` worker reports ``http`` for a call over HTTP."""
    from _quiver_worker import TransportKindProbe

    with _http_worker("--transport-kind-probe") as port:

        def probe() -> str:
            with http_connect(TransportKindProbe, f"http://127.0.0.1:{port}") as proxy:
                return str(proxy.transport_kind())

        yield [("http", probe)]


@pytest.fixture
def conformance_resource_soak_target() -> Iterator[Any]:
    """A dedicated HTTP worker, its PID and a fresh-client factory, for ``TestResourceSoak``
    (the reference's default limits, none loosened)."""
    from vgi_rpc.conformance._resource_soak_pytest import ResourceSoakLimits, ResourceSoakTarget

    with _http_worker(with_pid=True) as (pid, port):
        yield ResourceSoakTarget(
            name="quiver-http",
            pid=pid,
            connect=lambda: http_connect(ConformanceService, f"http://127.0.0.1:{port}"),
            limits=ResourceSoakLimits(),
        )


# The sticky failure-path fixtures (sticky-sessions-spec.md §9.1).
_STICKY_PEER_TOKEN_KEY = "5f" * 32


@pytest.fixture(scope="class")
def conformance_http_sticky_short_ttl_port() -> Iterator[int]:
    """A sticky worker advertising a 1 s default session lifetime, for the expiry case."""
    with _http_worker("--sticky-ttl", "1") as port:
        yield port


@pytest.fixture(scope="class")
def conformance_http_sticky_peer_ports() -> Iterator[tuple[int, int]]:
    """Two sticky workers sharing one token key: a token opens on both, only its own worker honours it."""
    with (
        _http_worker("--sticky", "--token-key", _STICKY_PEER_TOKEN_KEY) as port_a,
        _http_worker("--sticky", "--token-key", _STICKY_PEER_TOKEN_KEY) as port_b,
    ):
        yield port_a, port_b


@pytest.fixture(scope="class")
def conformance_http_sticky_auth_port() -> Iterator[int]:
    """A sticky worker whose callers are the principals ``X-Conformance-Principal`` names."""
    with _http_worker("--sticky-auth") as port:
        yield port


@pytest.fixture(params=["http"])
def conformance_conn(request: pytest.FixtureRequest, conformance_http_port: int) -> ConnFactory:
    """``conformance_conn(on_log=None)`` -> a ConformanceService proxy over HTTP."""

    def factory(on_log: Callable[[Message], None] | None = None) -> contextlib.AbstractContextManager[Any]:
        return http_connect(ConformanceService, f"http://127.0.0.1:{conformance_http_port}", on_log=on_log)

    return factory


@pytest.fixture
def conformance_raw_conn() -> Any:
    pytest.skip("raw byte-stream connections are covered by test/python (pipe, unix, tcp)")


@pytest.fixture(params=["http"])
def conformance_describe(conformance_http_port: int) -> Any:
    """A ``ServiceDescription`` read over HTTP via ``vgi_rpc.Reflection.v1``."""
    from vgi_rpc.http import http_introspect

    return http_introspect(f"http://127.0.0.1:{conformance_http_port}")


@pytest.fixture
def conformance_protocol_connector(conformance_http_port: int) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``connect(transport, protocol, on_log=None)``: any hosted protocol on the same HTTP worker."""

    def connect(transport: str, protocol: type, on_log: Any = None) -> contextlib.AbstractContextManager[Any]:
        assert transport == "http", f"this harness serves only http, not {transport!r}"
        return http_connect(protocol, f"http://127.0.0.1:{conformance_http_port}", on_log=on_log)

    return connect


@pytest.fixture(scope="session")
def conformance_http_small_request_cap_port() -> Iterator[int]:
    with _http_worker("--max-request-bytes", "4096") as port:
        yield port


# ---------------------------------------------------------------------------
# External-storage items skipped by name, with the reason, so the rest of every
# external group runs.
# ---------------------------------------------------------------------------

_SKIPPED_BY_NAME: dict[str, str] = {
    # Byte-stream transports only: test/python runs this group over pipe, unix and tcp.
    "TestExternalByteStream": "byte-stream externalization is covered by test/python (pipe, unix, tcp)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip, naming the reason, the external-storage items listed in ``_SKIPPED_BY_NAME``."""
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None:
            continue
        name = item.name.split("[", 1)[0]
        reason = _SKIPPED_BY_NAME.get(f"{cls.__name__}::{name}") or _SKIPPED_BY_NAME.get(cls.__name__)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
