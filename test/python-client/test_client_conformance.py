"""The reference's pytest conformance suite (vgi-rpc 0.52.2), run through quiver's *client*.

Every call the suite makes goes through ``vgi_rpc.conformance.client_driver.ClientDriver`` to
``src/bin/quiver-client-driver.ts``: quiver's client does the transport I/O, framing, stream
lockstep and log/error envelopes against the reference's own conformance worker. The fixtures in
``conftest.py`` decide which transports run.
"""

from vgi_rpc.conformance._pytest_suite import *  # noqa: F403
