"""The reference (vgi-rpc 0.52.2) hosting vgi_rpc.Identity.v2 under the conformance fixture policy, over HTTP.

The reference's own conformance worker hosts Identity only with ``VGI_RPC_GRANT_KEYS`` set, and
then only ``issue_grant`` behind no authenticator.  This worker is what quiver's client needs to
call *both* methods on the reference: the fixture's resolver and minter
(``vgi_rpc.conformance.identity_fixture``), its introspector allowlist, and its header
authentication -- ``X-Conformance-Principal`` names the caller, ``X-Conformance-Auth-Time`` goes
verbatim into ``claims["auth_time"]``.  TEST FIXTURE: that authentication is spoofable.

    python identity_reference_worker.py [--grants]     prints PORT:<n>, serves until killed

``--grants`` configures the fixture's sealed-grant keys instead of the mint hook, so the
reference mints sealed grants and accepts them (and quiver's) back as bearers.
"""

from __future__ import annotations

import socket
import sys

import falcon
import waitress

from vgi_rpc.conformance import ConformanceService, ConformanceServiceImpl
from vgi_rpc.conformance.identity_fixture import (
    AUTH_TIME_HEADER,
    INTROSPECTOR_PRINCIPAL,
    MAX_AUTH_AGE,
    PRINCIPAL_HEADER,
    conformance_grant_keys,
    conformance_mint_grant,
    conformance_resolve_token,
)
from vgi_rpc.http import make_wsgi_app
from vgi_rpc.http._unauthorized import AuthFailure, AuthReason
from vgi_rpc.rpc import AuthContext, RpcServer
from vgi_rpc.rpc._token_identity import IdentityImpl


def authenticate(req: falcon.Request) -> AuthContext:
    """The fixture's header authentication; a bearer without the header falls through to identity."""
    principal = req.get_header(PRINCIPAL_HEADER)
    if principal is None:
        if req.get_header("Authorization"):
            raise AuthFailure(AuthReason.INVALID_CREDENTIAL, "no conformance principal header")
        return AuthContext.anonymous()
    auth_time = req.get_header(AUTH_TIME_HEADER)
    return AuthContext(
        domain="conformance",
        authenticated=True,
        principal=principal,
        claims={} if auth_time is None else {"auth_time": auth_time},
    )


def main() -> None:
    grants = "--grants" in sys.argv[1:]
    keys = conformance_grant_keys() if grants else None
    identity = IdentityImpl(
        resolve_token=conformance_resolve_token,
        mint_grant=None if grants else conformance_mint_grant,
        introspect_principals=[INTROSPECTOR_PRINCIPAL],
        max_auth_age=MAX_AUTH_AGE,
        grant_keys=keys,
    )
    server = RpcServer(
        ConformanceService,
        ConformanceServiceImpl(),
        enable_describe=True,
        identity=identity,
        grant_keys=keys,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    wsgi = waitress.create_server(make_wsgi_app(server, authenticate=authenticate), host="127.0.0.1", port=port)
    print(f"PORT:{port}", flush=True)
    wsgi.run()


if __name__ == "__main__":
    main()
