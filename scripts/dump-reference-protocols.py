"""Dump the pinned reference's conformance protocols as a JSON fixture.

Run with the conformance venv's python:
    .venv-conformance/bin/python scripts/dump-reference-protocols.py > test/fixtures/reference-protocols.json

The output is the reference's own view of every protocol its conformance
worker hosts: Arrow schemas as base64 IPC, type tokens, parameter defaults
and protocol hashes.  quiver's contract tests compare its declarations to it.
"""

import base64
import json
import sys

from importlib.metadata import version
from vgi_rpc.conformance import ConformanceService, ConformanceServiceImpl
from vgi_rpc.conformance.secondary import conformance_extra_protocols
from vgi_rpc.rpc import RpcServer
from vgi_rpc.rpc._type_tokens import schema_tokens


def b64(schema):
    return "" if schema is None else base64.b64encode(schema.serialize().to_pybytes()).decode()


def jsonable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "name") and hasattr(v, "value"):
        return v.name
    return repr(v)


def main():
    server = RpcServer(
        ConformanceService,
        ConformanceServiceImpl(),
        enable_describe=True,
        extra_protocols=conformance_extra_protocols(),
    )
    out = {"vgi_rpc_version": version("vgi-rpc"), "protocols": []}
    for binding in server.bindings.values():
        methods = []
        for name, info in sorted(binding.methods.items()):
            header = info.header_type.ARROW_SCHEMA if info.header_type is not None else None
            methods.append(
                {
                    "name": name,
                    "method_type": info.method_type.value,
                    "is_exchange": info.is_exchange,
                    "has_return": bool(info.has_return),
                    "params_schema": b64(info.params_schema),
                    "params_tokens": schema_tokens(info.params_schema),
                    "result_schema": b64(info.result_schema),
                    "result_tokens": schema_tokens(info.result_schema),
                    "header_schema": b64(header),
                    "header_tokens": None if header is None else schema_tokens(header),
                    "param_defaults": {k: jsonable(v) for k, v in info.param_defaults.items()},
                }
            )
        out["protocols"].append(
            {
                "name": binding.name,
                "version": binding.version or "",
                "protocol_hash": binding.protocol_hash,
                "methods": methods,
            }
        )
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
