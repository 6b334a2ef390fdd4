"""The reference's conformance service over HTTP with sticky sessions on, for http-sticky.test.ts.

The reference's own conformance CLI (``vgi-rpc-conformance --http``) serves no sticky sessions, so
this builds the same app its test worker does (``make_wsgi_app(..., enable_sticky=True)`` with the
conformance echo header) under the token key given as the one argument (64 hex chars), and prints
``PORT:<n>`` once it listens.
"""

from __future__ import annotations

import sys

import waitress

from vgi_rpc.conformance import ConformanceService, ConformanceServiceImpl
from vgi_rpc.http import make_wsgi_app
from vgi_rpc.rpc import RpcServer


def main() -> None:
    """Serve until killed."""
    key = bytes.fromhex(sys.argv[1])
    server = RpcServer(ConformanceService, ConformanceServiceImpl())
    app = make_wsgi_app(
        server,
        token_key=key,
        enable_sticky=True,
        sticky_echo_headers={"x-vgi-conformance-echo": "conformance-fixed-marker"},
    )
    wsgi = waitress.create_server(app, host="127.0.0.1", port=0)
    print(f"PORT:{wsgi.effective_port}", flush=True)
    wsgi.run()


if __name__ == "__main__":
    main()
