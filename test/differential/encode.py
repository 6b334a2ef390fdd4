"""Outcomes as plain JSON-able structures that compare exactly.

Every float is its IEEE-754 bit pattern, every value is tagged with its Python
type, Arrow types are spelled out with their children's names, nullability and
metadata, and metadata values are shown as text.  The few things that
legitimately differ between two implementations are replaced by placeholders
here, each one listed in :data:`NORMALIZATIONS` (the driver prints the list).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import struct
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: What the comparison deliberately ignores, and why. Printed with every report.
NORMALIZATIONS = (
    "vgi_rpc.server_id / vgi_rpc.request_id metadata values and log extras -> '<present>' "
    "(random per process / per call); presence is still compared",
    "vgi_rpc.log_extra 'traceback' and 'frames' -> '<present>' (stack text is implementation-specific); "
    "presence compared. RpcError.remote_traceback and request_id: compared as present/absent",
    "vgi_rpc.log_extra 'cause' and 'context' dropped: the formatted chain of the exception's internal causes "
    "(Python's traceback of, e.g., the pyarrow cast that failed), which only the implementation's internals decide",
    "binary values holding an Arrow IPC stream (dataclass results, embedded batches) are compared decoded "
    "(schema, batches, metadata), not byte for byte: flatbuffer layout is free",
    "vgi_rpc.log_extra and vgi_rpc.error_details are compared as parsed JSON (key order and whitespace "
    "of the serialization are free); number types are kept (1.0 vs 1 differs)",
    "metadata maps are compared as maps (a sorted list when a key repeats): key order is not significant",
    "HTTP: vgi_rpc.stream_state#b64 / vgi_rpc.call_state#b64 token values -> '<token>' (signed, "
    "random per server); presence compared. Only RPC POST bodies and their status are recorded",
    "dictionary-encoded arrays are compared by their decoded values (plus the dictionary type); "
    "the dictionary's own layout is not significant",
    "values under a null struct/list/map parent are not compared (undefined in Arrow)",
    "in nested IPC, the lists of fields the protocols declare frozenset[...] are compared sorted "
    "(a set has no order; Python writes hash order), as typed frozensets are",
    "strings and bytes over 4096 and arrays over 2048 rows are compared by length + SHA-256",
)

_VOLATILE_KEYS = {b"vgi_rpc.server_id", b"vgi_rpc.request_id", "server_id", "request_id"}
_TOKEN_KEYS = {b"vgi_rpc.stream_state#b64", b"vgi_rpc.call_state#b64"}
_JSON_KEYS = {b"vgi_rpc.log_extra", b"vgi_rpc.error_details"}
_TRACE_KEYS = {"traceback", "frames"}
_CHAIN_KEYS = {"cause", "context"}
_BIG_TEXT = 4096
_BIG_ARRAY = 2048


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def text_value(s: str) -> Any:
    """A string, or its length and digest when long."""
    if len(s) > _BIG_TEXT:
        return ["str#", len(s), _digest(s.encode("utf-8", "surrogatepass")), s[:16]]
    return s


def bytes_value(b: bytes) -> Any:
    """Bytes as hex, or length and digest when long."""
    if len(b) > _BIG_TEXT:
        return ["bytes#", len(b), _digest(b), b[:16].hex()]
    return b.hex()


def float_bits(x: float) -> str:
    """A double's bit pattern in hex (what makes -0.0, NaN payloads and subnormals comparable)."""
    return struct.pack(">d", x).hex()


# ---------------------------------------------------------------------------
# Python values (what the typed client hands back)
# ---------------------------------------------------------------------------


def value(v: Any) -> Any:
    """A Python value as a tagged JSON structure."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, enum.Enum):
        return [type(v).__name__, v.name]
    if isinstance(v, int):
        return ["int", v]
    if isinstance(v, float):
        return ["float", float_bits(v)]
    if isinstance(v, str):
        return ["str", text_value(v)]
    if isinstance(v, bytes | bytearray | memoryview):
        return ["bytes", bytes_value(bytes(v))]
    if isinstance(v, Decimal):
        return ["Decimal", str(v)]
    if isinstance(v, dt.datetime):
        return ["datetime", v.isoformat(), repr(v.tzinfo)]
    if isinstance(v, dt.date):
        return ["date", v.isoformat()]
    if isinstance(v, dt.time):
        return ["time", v.isoformat(), repr(v.tzinfo)]
    if isinstance(v, dt.timedelta):
        return ["timedelta", v.days, v.seconds, v.microseconds]
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return [type(v).__name__, {f.name: value(getattr(v, f.name)) for f in dataclasses.fields(v)}]
    if isinstance(v, list | tuple):
        return [type(v).__name__, [value(x) for x in v]]
    if isinstance(v, frozenset | set):
        return [type(v).__name__, sorted(json.dumps(value(x), sort_keys=True) for x in v)]
    if isinstance(v, dict):
        return ["dict", [[value(k), value(x)] for k, x in v.items()]]
    if isinstance(v, pa.RecordBatch):
        return ["RecordBatch", batch(v, None)]
    if isinstance(v, pa.Schema):
        return ["Schema", schema(v)]
    return ["repr", type(v).__name__, repr(v)]


def json_value(v: Any) -> Any:
    """Parsed JSON (log extras, error details) with number types kept apart."""
    if isinstance(v, dict):
        return {
            k: ("<present>" if k in _TRACE_KEYS or k in _VOLATILE_KEYS else json_value(x))
            for k, x in v.items()
            if k not in _CHAIN_KEYS
        }
    if isinstance(v, list):
        return [json_value(x) for x in v]
    return value(v)


# ---------------------------------------------------------------------------
# Arrow: types, schemas, metadata, arrays, batches
# ---------------------------------------------------------------------------


def _md_text(b: bytes) -> Any:
    try:
        return text_value(b.decode("utf-8"))
    except UnicodeDecodeError:
        return ["hex", bytes_value(b)]


def metadata(md: pa.KeyValueMetadata | dict[bytes, bytes] | None) -> Any:
    """A metadata map as {key: value} (sorted; a list when keys repeat); volatile values replaced."""
    if not md:
        return None
    items = md.items() if isinstance(md, dict) else list(md.items())
    out = []
    for raw_k, raw_v in items:
        k = raw_k if isinstance(raw_k, bytes) else str(raw_k).encode()
        v = raw_v if isinstance(raw_v, bytes) else str(raw_v).encode()
        shown: Any
        if k in _VOLATILE_KEYS:
            shown = "<present>"
        elif k in _TOKEN_KEYS:
            shown = "<token>"
        elif k in _JSON_KEYS:
            try:
                shown = ["json", json_value(json.loads(v))]
            except ValueError:
                shown = _md_text(v)
        else:
            shown = _md_text(v)
        out.append([_md_text(k), shown])
    keys = [json.dumps(k, ensure_ascii=False) if not isinstance(k, str) else k for k, _v in out]
    if len(set(keys)) == len(keys):
        # Unique keys (the usual case): a map, so a missing or extra key is named as such.
        return {k: v for k, (_k, v) in sorted(zip(keys, out, strict=True))}
    return ["duplicate-keys", sorted(out, key=lambda kv: json.dumps(kv, sort_keys=True))]


def arrow_type(t: pa.DataType) -> Any:
    """An Arrow type with every child field spelled out."""
    out: dict[str, Any] = {"id": str(t)}
    if pa.types.is_dictionary(t):
        out["index"] = arrow_type(t.index_type)
        out["value"] = arrow_type(t.value_type)
        out["ordered"] = t.ordered
    elif t.num_fields:
        out["children"] = [field(t.field(i)) for i in range(t.num_fields)]
    return out


def field(f: pa.Field) -> Any:
    """A field: name, type, nullability, metadata."""
    return {
        "name": text_value(f.name),
        "type": arrow_type(f.type),
        "nullable": f.nullable,
        "metadata": metadata(f.metadata),
    }


def schema(s: pa.Schema) -> Any:
    """A schema: fields and schema-level metadata."""
    return {"fields": [field(s.field(i)) for i in range(len(s))], "metadata": metadata(s.metadata)}


def _bits_rows(arr: pa.Array, width: int, fmt: str) -> list[Any]:
    data = arr.buffers()[1]
    raw = b"" if data is None else data.to_pybytes()
    start = arr.offset
    valid = arr.is_valid().to_pylist()
    out: list[Any] = []
    for i in range(len(arr)):
        if not valid[i]:
            out.append(None)
        else:
            (word,) = struct.unpack_from("<" + fmt, raw, (start + i) * width)
            out.append(f"{word:0{width * 2}x}")
    return out


def _int_view(arr: pa.Array, width: int) -> list[Any]:
    return list(arr.view(pa.int32() if width == 4 else pa.int64()).to_pylist())


#: Field names the protocols declare as ``frozenset[...]``: a set's element order on the wire is the
#: writer's (Python's is hash order, per process), so those lists are compared sorted.  Filled by
#: :func:`declare_set_fields`.
SET_FIELDS: set[str] = set()


def declare_set_fields(annotations: list[object]) -> None:
    """Record every dataclass field typed ``frozenset[...]`` reachable from *annotations*."""
    import typing

    seen: set[object] = set()

    def walk(t: object) -> None:
        if t in seen:
            return
        seen.add(t)
        origin = typing.get_origin(t)
        for arg in typing.get_args(t):
            walk(arg)
        if origin is not None:
            return
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            hints = typing.get_type_hints(t, include_extras=True)
            for f in dataclasses.fields(t):
                hint = hints[f.name]
                base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
                if typing.get_origin(base) in (frozenset, set):
                    SET_FIELDS.add(f.name)
                walk(hint)

    for a in annotations:
        walk(a)


def _sort_set_columns(streams: list[Any]) -> list[Any]:
    for stream in streams:
        for b in stream.get("batches", []):
            for i, f in enumerate(b["schema"]["fields"]):
                if f["name"] in SET_FIELDS and "columns" in b:
                    b["columns"][i] = [
                        sorted(row, key=lambda v: json.dumps(v, sort_keys=True)) if isinstance(row, list) else row
                        for row in b["columns"][i]
                    ]
    return streams


def _binary(b: bytes) -> Any:
    """Bytes, or the IPC stream they hold (decoded: its byte layout is the writer's choice)."""
    if b[:4] == b"\xff\xff\xff\xff":
        streams = ipc_streams(b)
        if streams and "unparsed" not in streams[-1]:
            return ["ipc", _sort_set_columns(streams)]
    return bytes_value(b)


def rows(arr: pa.Array) -> list[Any]:
    """One JSON value per row; nulls are None."""
    t = arr.type
    if len(arr) == 0:
        # Nothing to read, and an empty array may legally omit buffers pyarrow's accessors assume.
        return []
    if pa.types.is_null(t):
        return [None] * len(arr)
    if pa.types.is_float64(t):
        return _bits_rows(arr, 8, "Q")
    if pa.types.is_float32(t):
        return _bits_rows(arr, 4, "I")
    if pa.types.is_float16(t):
        return _bits_rows(arr, 2, "H")
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        return list(arr.to_pylist())
    if pa.types.is_decimal(t):
        return [None if x is None else str(x) for x in arr.to_pylist()]
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return _int_view(arr, 4)
    if pa.types.is_date64(t) or pa.types.is_time64(t) or pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return _int_view(arr, 8)
    if pa.types.is_interval(t):
        return [None if x is None else [x.months, x.days, x.nanoseconds] for x in arr.to_pylist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return [None if x is None else text_value(x) for x in arr.to_pylist()]
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return [None if x is None else _binary(x) for x in arr.to_pylist()]
    if pa.types.is_dictionary(t):
        dictionary = rows(arr.dictionary)
        return [None if i is None else dictionary[i] for i in arr.indices.to_pylist()]
    if pa.types.is_struct(t):
        kids = [rows(arr.field(j)) for j in range(t.num_fields)]
        valid = arr.is_valid().to_pylist()
        return [[k[i] for k in kids] if valid[i] else None for i in range(len(arr))]
    if pa.types.is_map(t):
        valid = arr.is_valid().to_pylist()
        return [rows(arr[i].values) if valid[i] else None for i in range(len(arr))]
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return [rows(arr[i].values) if arr[i].is_valid else None for i in range(len(arr))]
    if pa.types.is_union(t):
        codes = arr.type_codes.to_pylist()
        child_index = {c: j for j, c in enumerate(t.type_codes)}
        kids = [rows(arr.field(j)) for j in range(t.num_fields)]
        offsets = arr.offsets.to_pylist() if t.mode == "dense" else list(range(len(arr)))
        return [[c, kids[child_index[c]][offsets[i]]] for i, c in enumerate(codes)]
    if pa.types.is_run_end_encoded(t):
        return rows(pc.run_end_decode(arr))
    return [["repr", repr(x)] for x in arr.to_pylist()]


def column(arr: pa.Array) -> Any:
    """A column's rows, or its length and a digest when long."""
    out = rows(arr)
    if len(out) > _BIG_ARRAY:
        return ["rows#", len(out), _digest(json.dumps(out, sort_keys=True).encode())]
    return out


def batch(b: pa.RecordBatch, custom_metadata: pa.KeyValueMetadata | None) -> Any:
    """A batch: schema, row count, every column, its custom metadata (an invalid batch: why, not its rows)."""
    try:
        # Full validation first: reading a batch whose buffers contradict its type crashes pyarrow.
        b.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        return {
            "schema": schema(b.schema),
            "num_rows": b.num_rows,
            "invalid": str(exc)[:300],
            "metadata": metadata(custom_metadata),
        }
    return {
        "schema": schema(b.schema),
        "num_rows": b.num_rows,
        "columns": [column(b.column(i)) for i in range(b.num_columns)],
        "metadata": metadata(custom_metadata),
    }


def ipc_streams(data: bytes) -> Any:
    """Every IPC stream in *data*, back to back: schema and batches (what the peer put on the wire)."""
    out: list[Any] = []
    reader_source = pa.BufferReader(data)
    while reader_source.tell() < len(data):
        start = reader_source.tell()
        try:
            reader = pa.ipc.open_stream(reader_source)
            stream: dict[str, Any] = {"schema": schema(reader.schema), "batches": []}
            while True:
                try:
                    b, md = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    break
                stream["batches"].append(batch(b, md))
            out.append(stream)
        except (pa.ArrowInvalid, OSError) as exc:
            out.append({"unparsed": len(data) - start, "error": str(exc)[:200]})
            break
    return out


def log(level: str, message: str, extra: dict[str, Any] | None) -> Any:
    """A client-delivered log message: level, text, extras (volatile ones replaced)."""
    return ["log", level, text_value(message), json_value(dict(extra or {}))]
