"""The reference's ``vgi-rpc-test`` CLI with its client resolving external-location pointers.

The stock CLI (``vgi_rpc.conformance._test_cli``) opens its connection with no
``external_location`` configuration, so against any worker started with
``--fake-storage URL`` (the reference's own ``vgi-rpc-conformance`` included) the
results that worker externalizes come back as unresolved zero-row pointer batches
and fail.  This runs the same CLI, arguments and tests unchanged, with the one
difference that every connection it opens carries ``ClientExternalConfig`` with the
reference's loopback-only URL validator: the configuration the reference's pytest
suite gives its client for the same workers.

    python vgi_rpc_test_external.py [vgi-rpc-test arguments...]
"""

from __future__ import annotations

import functools

import vgi_rpc.conformance._test_cli as cli
import vgi_rpc.http as vgi_http
import vgi_rpc.rpc as vgi_rpc_rpc
from vgi_rpc.conformance._cli import _loopback_only_validator
from vgi_rpc.external import ClientExternalConfig, FetchConfig

# large_payload.echo_binary_over_int32_max sends a value of just over 2 GiB: its externalized
# object is that large, over the fetcher's default 256 MiB cap, so the cap is raised to 3 GiB.
CONFIG = ClientExternalConfig(
    url_validator=_loopback_only_validator,
    fetch_config=FetchConfig(max_fetch_bytes=3 << 30),
)

# The pipe opener uses the RpcConnection it imported; unix, tcp and http import their
# connect functions from these modules when called.
cli.RpcConnection = functools.partial(cli.RpcConnection, external_location=CONFIG)
vgi_rpc_rpc.unix_connect = functools.partial(vgi_rpc_rpc.unix_connect, external_location=CONFIG)
vgi_rpc_rpc.tcp_connect = functools.partial(vgi_rpc_rpc.tcp_connect, external_location=CONFIG)
vgi_http.http_connect = functools.partial(vgi_http.http_connect, external_location=CONFIG)

if __name__ == "__main__":
    cli.main()
