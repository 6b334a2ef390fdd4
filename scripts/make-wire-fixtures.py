"""Byte-level wire fixtures written by the pinned reference's own wire functions.

    .venv-conformance/bin/python scripts/make-wire-fixtures.py test/fixtures/wire

Each .bin file is exactly what the reference puts on a pipe; the TS tests decode them.
"""

import io
import sys
from pathlib import Path

import pyarrow as pa

from vgi_rpc.log import Level, Message
from vgi_rpc.rpc._wire import _write_error_stream, _write_message_batch, _write_request
from vgi_rpc.utils import new_ipc_stream


def request(method, schema, kwargs, protocol="ConformanceService", version="2.0.0"):
    buf = io.BytesIO()
    _write_request(buf, method, schema, kwargs, protocol=protocol, protocol_version=version)
    return buf.getvalue()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    echo = request("echo_string", pa.schema([pa.field("value", pa.utf8(), nullable=False)]), {"value": "hello"})
    (out / "request-echo-string.bin").write_bytes(echo)
    noop = request("void_noop", pa.schema([]), {})
    (out / "request-void-noop.bin").write_bytes(noop)
    # Two requests back to back, as a client sends them on one pipe.
    (out / "two-requests.bin").write_bytes(echo + noop)

    # A response stream: an INFO log batch, then the result.
    schema = pa.schema([pa.field("result", pa.utf8(), nullable=False)])
    buf = io.BytesIO()
    with new_ipc_stream(buf, schema) as writer:
        _write_message_batch(writer, schema, Message(Level.INFO, "info: hi", source="fixture"), server_id="abcdef012345")
        writer.write_batch(pa.record_batch([pa.array(["hi"])], schema=schema))
    (out / "response-log-then-result.bin").write_bytes(buf.getvalue())

    # An error stream on the empty schema.
    buf = io.BytesIO()
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        _write_error_stream(buf, pa.schema([]), exc, server_id="abcdef012345", include_traceback=True)
    (out / "error-value-error.bin").write_bytes(buf.getvalue())

    # A stream with a dictionary-encoded column across two batches (same dictionary).
    dschema = pa.schema([pa.field("status", pa.dictionary(pa.int16(), pa.utf8()), nullable=False)])
    dictionary = pa.array(["PENDING", "ACTIVE", "CLOSED"])
    buf = io.BytesIO()
    with new_ipc_stream(buf, dschema) as writer:
        for idx in ([0, 1], [2]):
            arr = pa.DictionaryArray.from_arrays(pa.array(idx, pa.int16()), dictionary)
            writer.write_batch(pa.record_batch([arr], schema=dschema), custom_metadata={"k": "v"})
    (out / "dictionary-stream.bin").write_bytes(buf.getvalue())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
