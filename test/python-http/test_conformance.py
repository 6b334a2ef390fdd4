"""The reference's pytest conformance suite (vgi-rpc 0.52.2) against quiver's HTTP worker."""

from vgi_rpc.conformance._pytest_suite import *  # noqa: F403
