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

    (out / "every-type.bin").write_bytes(every_type_stream())


def every_type_stream() -> bytes:
    """Two batches of a column of every type pyarrow writes that arrow-js reads, nulls and nesting included."""
    import datetime
    import decimal

    n = 5
    def ints(t):
        return pa.array([None if i == 2 else i for i in range(n)], t)
    columns = {
        "null": pa.nulls(n),
        "bool": pa.array([True, None, False, True, False]),
        "i8": ints(pa.int8()), "i16": ints(pa.int16()), "i32": ints(pa.int32()), "i64": ints(pa.int64()),
        "u8": ints(pa.uint8()), "u16": ints(pa.uint16()), "u32": ints(pa.uint32()), "u64": ints(pa.uint64()),
        "f32": pa.array([1.5, None, -2.0, 0.0, 3.25], pa.float32()),
        "f64": pa.array([1.5, None, -2.0, 0.0, 3.25], pa.float64()),
        "dec128": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.50"), decimal.Decimal("0"), decimal.Decimal("9.99")], pa.decimal128(5, 2)),
        "dec256": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.50"), decimal.Decimal("0"), decimal.Decimal("9.99")], pa.decimal256(40, 2)),
        "date32": pa.array([datetime.date(2024, 1, i + 1) if i != 2 else None for i in range(n)], pa.date32()),
        "date64": pa.array([datetime.date(2024, 1, i + 1) if i != 2 else None for i in range(n)], pa.date64()),
        "time32s": ints(pa.time32("s")), "time32ms": ints(pa.time32("ms")),
        "time64us": ints(pa.time64("us")), "time64ns": ints(pa.time64("ns")),
        "ts_s": ints(pa.timestamp("s")), "ts_ms_tz": ints(pa.timestamp("ms", tz="UTC")),
        "ts_us": ints(pa.timestamp("us")), "ts_ns_tz": ints(pa.timestamp("ns", tz="Europe/Paris")),
        "dur_s": ints(pa.duration("s")), "dur_ns": ints(pa.duration("ns")),
        "interval_mdn": pa.array([pa.MonthDayNano([1, 2, 3]), None, pa.MonthDayNano([0, 0, 0]), pa.MonthDayNano([-1, 5, 7]), pa.MonthDayNano([2, 2, 2])], pa.month_day_nano_interval()),
        "binary": pa.array([b"a", None, b"", b"\x00\xff", b"xyz"], pa.binary()),
        "large_binary": pa.array([b"a", None, b"", b"\x00\xff", b"xyz"], pa.large_binary()),
        "utf8": pa.array(["a", None, "", "\ufeffb", "\U0001f600"], pa.utf8()),
        "large_utf8": pa.array(["a", None, "", "\ufeffb", "\U0001f600"], pa.large_utf8()),
        "fsb": pa.array([b"ab", None, b"cd", b"ef", b"gh"], pa.binary(2)),
        "list": pa.array([[1, 2], None, [], [3], [4, None]], pa.list_(pa.int32())),
        "large_list": pa.array([[1, 2], None, [], [3], [4, None]], pa.large_list(pa.int32())),
        "fixed_list": pa.array([[1, 2], None, [3, 4], [5, 6], [7, None]], pa.list_(pa.int32(), 2)),
        "map": pa.array([[("a", 1)], None, [], [("b", 2), ("c", None)], [("d", 4)]], pa.map_(pa.utf8(), pa.int32())),
        "struct": pa.array([{"x": 1, "y": "a"}, None, {"x": None, "y": "c"}, {"x": 4, "y": None}, {"x": 5, "y": "e"}], pa.struct([("x", pa.int64()), ("y", pa.utf8())])),
        "nested": pa.array([[{"l": [1]}], None, [], [{"l": None}, {"l": []}], [{"l": [2, 3]}]], pa.list_(pa.struct([("l", pa.list_(pa.int8()))]))),
        "sparse_union": pa.UnionArray.from_sparse(pa.array([0, 1, 0, 1, 0], pa.int8()), [pa.array([1, 2, 3, 4, 5], pa.int32()), pa.array(["a", "b", "c", "d", "e"])]),
        "dense_union": pa.UnionArray.from_dense(pa.array([0, 1, 0, 1, 0], pa.int8()), pa.array([0, 0, 1, 1, 2], pa.int32()), [pa.array([1, 2, 3], pa.int32()), pa.array(["a", "b"])]),
        "dict_utf8": pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 1, 0], pa.int8()), pa.array(["x", "y"])),
        "dict_i64": pa.DictionaryArray.from_arrays(pa.array([2, 1, 0, None, 0], pa.uint32()), pa.array([10, 20, 30], pa.int64())),
    }
    batch = pa.record_batch(list(columns.values()), names=list(columns.keys()))
    buf = io.BytesIO()
    with new_ipc_stream(buf, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata={"batch": "0"})
        writer.write_batch(batch.slice(1, 3), custom_metadata={"batch": "1"})
    return buf.getvalue()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
