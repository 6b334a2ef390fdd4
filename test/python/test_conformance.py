"""The reference's pytest conformance suite (vgi-rpc 0.52.2), run against quiver's worker.

Nothing is overridden or filtered here: every group the suite defines is
collected, and the fixtures in ``conftest.py`` decide which transports it runs on.
"""

from vgi_rpc.conformance._pytest_suite import *  # noqa: F403
