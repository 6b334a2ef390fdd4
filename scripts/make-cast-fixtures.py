"""Fixtures for exchange-input coercion, written by the pinned reference's own pyarrow.

    .venv-conformance/bin/python scripts/make-cast-fixtures.py test/fixtures/casts

Three files, each holding what pyarrow (and vgi-rpc's ``_coerce_input_batch``) actually
answered, so the TS tests compare against the reference rather than a guess:

``type-names.json``  IPC streams of schemas pyarrow wrote, and ``str()`` of each field's type
                     and of the whole schema as pyarrow prints them after reading them back.
``casts.json``       for source columns of many types (a zero-row batch, an all-null batch,
                     one batch per probe value, then all values together) and each target type
                     quiver casts to, what ``Array.cast(target)`` (safe, as ``RecordBatch.cast``
                     calls it) returned: the values, or the exception type and message.
``coerce.json``      whole input batches against declared input schemas through the
                     reference's ``_coerce_input_batch``: the batch it returns, or the exception
                     (type, message, and the chained cause).

Values are encoded so that nothing is lost: integers as decimal strings, floats as the hex of
their bits (NaN payloads included), binary as hex.
"""

import base64
import decimal
import json
import struct
import sys
from pathlib import Path

import pyarrow as pa

from vgi_rpc.rpc._wire import _coerce_input_batch

D = decimal.Decimal


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def stream_bytes(schema: pa.Schema, batches: list[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def float_array(t: pa.DataType, values: list) -> pa.Array:
    """A float column with exactly these bit patterns (float16 and float32 take bit patterns,
    float64 takes Python floats, whose bits pyarrow would keep anyway); None is null."""
    fmt = {2: "<H", 4: "<I", 8: "<d"}[t.byte_width]
    raw = b"".join(struct.pack(fmt, 0 if v is None else v) for v in values)
    nulls = sum(v is None for v in values)
    validity = pa.array([v is not None for v in values]).buffers()[1] if nulls else None
    return pa.Array.from_buffers(t, len(values), [validity, pa.py_buffer(raw)], nulls)


# ---------------------------------------------------------------------------------------------
# Value encoding


def float_bits(arr: pa.Array, width: int) -> list[str | None]:
    raw = arr.buffers()[1].to_pybytes()
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[width]
    out: list[str | None] = []
    for i in range(len(arr)):
        if not arr[i].is_valid:
            out.append(None)
        else:
            (bits,) = struct.unpack_from(fmt, raw, (arr.offset + i) * width)
            out.append(f"{bits:0{width * 2}x}")
    return out


def encode(arr: pa.Array) -> list:
    t = arr.type
    if pa.types.is_float16(t):
        return float_bits(arr, 2)
    if pa.types.is_float32(t):
        return float_bits(arr, 4)
    if pa.types.is_float64(t):
        return float_bits(arr, 8)
    values = arr.to_pylist()
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in values]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else v.hex() for v in values]
    if pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return values
    raise TypeError(f"no encoding for {t}")


def error(exc: BaseException) -> dict:
    return {"error": type(exc).__name__, "message": str(exc)}


# ---------------------------------------------------------------------------------------------
# Type names


def type_name_schemas() -> list[tuple[str, pa.Schema]]:
    f = pa.field
    simple = [
        pa.null(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
        pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.string(), pa.large_string(),
        pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view(), pa.binary(1), pa.binary(8),
        pa.date32(), pa.date64(), pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns"),
        pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"), pa.timestamp("ns"),
        pa.timestamp("ms", tz="-00:00"), pa.timestamp("ns", tz="UTC"), pa.timestamp("us", tz="Europe/Paris"),
        pa.timestamp("s", tz="+05:30"), pa.duration("s"), pa.duration("ms"), pa.duration("us"), pa.duration("ns"),
        pa.month_day_nano_interval(), pa.decimal32(5, 2), pa.decimal64(12, 2), pa.decimal128(5, 2),
        pa.decimal128(38, 0), pa.decimal128(5, -2), pa.decimal256(40, 3), pa.decimal256(76, 76),
        pa.list_(pa.int8()), pa.large_list(pa.int8()), pa.list_(f("element", pa.int8(), nullable=False)),
        pa.list_(pa.int8(), 3), pa.list_(f("x", pa.string(), nullable=False), 2),
        pa.map_(pa.string(), pa.int32()), pa.map_(pa.string(), pa.int32(), keys_sorted=True),
        pa.map_(pa.string(), f("v", pa.int32(), nullable=False)), pa.map_(pa.int8(), pa.list_(pa.int8())),
        pa.struct([("a", pa.int8()), f("b", pa.string(), nullable=False)]), pa.struct([]),
        pa.struct([("s", pa.struct([("t", pa.list_(pa.int8()))]))]),
        pa.dictionary(pa.int16(), pa.string()), pa.dictionary(pa.int8(), pa.string(), ordered=True),
        pa.dictionary(pa.uint32(), pa.int64()), pa.dictionary(pa.int32(), pa.float64()),
        pa.sparse_union([f("a", pa.int8()), f("b", pa.string())]),
        pa.dense_union([f("a", pa.int8()), f("b", pa.string())], type_codes=[5, 7]),
        pa.list_(pa.dictionary(pa.int8(), pa.string())),
        pa.uuid(), pa.json_(), pa.bool8(), pa.opaque(pa.int8(), "t", "v"),
        pa.fixed_shape_tensor(pa.float32(), [2, 2]),
        pa.fixed_shape_tensor(pa.int8(), [2, 3], dim_names=["x", "y"], permutation=[1, 0]),
        pa.list_(pa.uuid()), pa.struct([("u", pa.json_())]),
    ]
    schemas = [(str(t), pa.schema([f("v", t)])) for t in simple]
    schemas += [(f"{t} not null", pa.schema([f("v", t, nullable=False)])) for t in simple[1:3] + simple[47:60]]
    schemas += [
        ("two fields", pa.schema([f("a", pa.float64()), f("b", pa.int64(), nullable=False)])),
        ("empty", pa.schema([])),
        ("field metadata", pa.schema([f("a", pa.int8(), metadata={"k": "v", "key2": "value two"})])),
        ("schema metadata", pa.schema([f("a", pa.int8())], metadata={"x": "y"})),
        ("both metadata", pa.schema([f("a", pa.int8(), metadata={"k": "v"}), f("b", pa.utf8())], metadata={"s": "t"})),
        ("long metadata", pa.schema([f("a", pa.int8(), metadata={"k": "v" * 100})], metadata={"x": "y" * 100, "k" * 80: "z" * 20})),
        ("metadata boundary", pa.schema([f("a", pa.int8(), metadata={"kk": "v" * 66, "k3": "w" * 67})], metadata={"kk": "v" * 68, "k3": "w" * 69})),
        ("nested field metadata", pa.schema([f("a", pa.list_(f("item", pa.int8(), metadata={"m": "n"})))])),
        ("deep nesting", pa.schema([f("a", pa.list_(pa.struct([f("b", pa.list_(pa.int8()), nullable=False)])), metadata={"k": "v"})])),
        ("non-ascii metadata", pa.schema([f("a", pa.int8())], metadata={"ключ": "значение" * 10})),
        ("unknown extension", pa.schema([f("a", pa.int32(), metadata={"ARROW:extension:name": "my.ext", "ARROW:extension:metadata": "m"})])),
        ("odd names", pa.schema([f("", pa.int8()), f("with space", pa.int8()), f("ünï", pa.int8())])),
        ("metadata cut inside a character", pa.schema([f("a", pa.int8(), metadata={"k": "é" * 40})])),
        ("long field name", pa.schema([f("n" * 150, pa.int8())])),
        ("map with its own child names", pa.schema([f("m", pa.map_(f("k", pa.string(), nullable=False), f("v", pa.int32(), metadata={"q": "r"})))])),
    ]
    return schemas


def type_names() -> list[dict]:
    out = []
    for label, schema in type_name_schemas():
        data = stream_bytes(schema, [])
        read = pa.ipc.open_stream(data).schema
        out.append({
            "label": label,
            "stream": b64(data),
            "schema": str(read),
            "types": [str(fld.type) for fld in read],
        })
    return out


# ---------------------------------------------------------------------------------------------
# Casts

INT_TARGETS = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
TARGETS = INT_TARGETS + [pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.null()]

STRINGS = [
    "1", "-1", "0", "+1", "-0", "00012", "-00", "127", "128", "-128", "-129", "255", "256", "300", "65535", "65536",
    "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "9007199254740993", "16777217", "16777217.000000000001",
    "0x7f", "0xff", "0X10", "0xFFFF", "0x10000", "0xFFFFFFFF", "0xFFFFFFFFFFFFFFFF", "0x1FFFFFFFFFFFFFFFF", "0x",
    "0x1g", "-0x1", "1.5", "-1.5", "1.0", ".5", "5.", ".", "+.5", "-.5e-2", "1e5", "1E5", "1e+5", "1e-5", "1e",
    "1e+", "e5", "1.5e+3", "0.1", "1e400", "-1e400", "1e-400", "3.4028235677973366e38", "3.4028235677973362e38",
    "65504", "65520", "1e-8", "4.9e-324", "2.4e-324", "nan", "NaN", "-nan", "+nan", "nan(123)", "inf", "-inf", "+inf",
    "Infinity", "-INFINITY", "infinit", "", " 1", "1 ", "abc", "1_000", "1,5", "٣", "１", "true", "false",
    "TRUE", "False", "t", "yes", "\ufeff1", "1.7976931348623157e308", "1.7976931348623159e308", "0.000000059604644775390625",
]


def sources() -> list[tuple[str, pa.DataType, list]]:
    """(label, type, probe values); values may be pa.Array pieces for types built from bits."""
    return [
        ("null", pa.null(), []),
        ("bool", pa.bool_(), [True, False]),
        ("int8", pa.int8(), [0, 1, -1, 127, -128]),
        ("int16", pa.int16(), [0, -1, 300, 32767, -32768]),
        ("int32", pa.int32(), [0, -1, 300, 65536, 2**31 - 1, -(2**31), 2**24, 2**24 + 1, -(2**24) - 1]),
        ("int64", pa.int64(), [0, 1, -1, 300, 2**24 + 1, 2**40, 2**53, 2**53 + 1, -(2**53), -(2**53) - 1, 2**63 - 1, -(2**63)]),
        ("uint8", pa.uint8(), [0, 1, 128, 255]),
        ("uint16", pa.uint16(), [0, 300, 65535]),
        ("uint32", pa.uint32(), [0, 2**24 + 1, 2**31, 2**32 - 1]),
        ("uint64", pa.uint64(), [0, 300, 2**53, 2**53 + 1, 2**63, 2**64 - 1]),
        ("float16", pa.float16(), [0x0000, 0x8000, 0x3E00, 0x7BFF, 0xBC00, 0x4000, 0x7E00, 0xFE00, 0x7C01, 0x7C00, 0xFC00, 0x2E66, 0x0001, 0x5BF8]),
        ("float32", pa.float32(), [
            0x00000000, 0x80000000, 0x3FC00000, 0x3DCCCCCD, 0x42FE0000, 0x43000000, 0xC3010000, 0x4F000000,
            0x5F000000, 0x7149F2CA, 0x4B800001 - 1, 0x7FC00000, 0xFFC00000, 0x7FC00123, 0x7F800001, 0xFF800001,
            0x7F800000, 0xFF800000, 0x000116C2, 0x477FF000, 0x477FE000, 0x7F7FFFFF, 0x3F800001, 0x33000000,
        ]),
        ("float64", pa.float64(), [
            0.0, -0.0, 1.5, -1.5, 0.1, 1 / 3, 127.0, 128.0, -128.0, -129.0, 255.0, 256.0, 65535.0, 2.0**31,
            -(2.0**31), 2.0**32, 2.0**53, 2.0**63, -(2.0**63), 2.0**64, 1e20, 1e300, 5e-324, 1.0000000000000002,
            f64(0x7FF8000000000000), f64(0xFFF8000000000000), f64(0x7FF8000000000456), f64(0x7FF0000000000001),
            f64(0xFFF0000000000001), float("inf"), float("-inf"), 3.4028235677973366e38, 3.4028235677973362e38,
            1e-46, 65504.0, 65520.0, 65519.99, 0.0078125, 2.5e-7, 5e-7, 1.0000000596046448, 16777217.0,
            2.0**-24, 2.0**-25, 3 * 2.0**-26, 1e-300, 123456789.125,
        ]),
        ("decimal128(5, 2)", pa.decimal128(5, 2), [D("123.45"), D("-1.00"), D("0.00"), D("1.00"), D("-999.99"), D("0.01"), D("127.00"), D("128.00"), D("-128.00"), D("255.00"), D("256.00")]),
        ("decimal128(38, 0)", pa.decimal128(38, 0), [D(10**37 + 1), D(-(10**37)), D(2**63), D(2**64 + 1), D(127), D(2**53 + 1), D(-(2**63)), D(99999999999999999999999999999999999999)]),
        ("decimal128(38, 10)", pa.decimal128(38, 10), [D("1234567890123456789.0123456789"), D("0.0000000001"), D("-1.5"), D("0.1"), D("9007199254740993.0000000001"), D("1E+27")]),
        ("decimal128(5, -2)", pa.decimal128(5, -2), [D("1.2345E+6"), D("-1E+2"), D("0")]),
        ("decimal32(5, 2)", pa.decimal32(5, 2), [D("123.45"), D("-1.00"), D("999.99"), D("0.01"), D("1.00"), D("0.00"), D("-128.00")]),
        ("decimal64(18, 4)", pa.decimal64(18, 4), [D("12345678901234.5678"), D("-1.0000"), D("900719925474.0993"), D("0.0001"), D("1.0000"), D("0.0000"), D("5000000000.0000"), D("-5000000000.0000")]),
        ("decimal256(40, 2)", pa.decimal256(40, 2), [D("123.45"), D(10**37), D("-0.01"), D("1.00")]),
        ("decimal256(76, 0)", pa.decimal256(76, 0), [D(10**75), D(2**200), D(-(2**64)), D(1)]),
        ("decimal256(76, 40)", pa.decimal256(76, 40), [D("0.1"), D("-123456789012345678901234567890.0123456789")]),
        ("string", pa.string(), STRINGS),
        ("large_string", pa.large_string(), ["1", "1.5", "x", "true", "-128", "0x10"]),
        ("string_view", pa.string_view(), ["1", "1.5", "x", "true"]),
        ("binary", pa.binary(), [b"1", b"1.5", b"x", b"\xff", b"true", b""]),
        ("large_binary", pa.large_binary(), [b"1", b"2.5", b"y"]),
        ("binary_view", pa.binary_view(), [b"1", b"2.5", b"y"]),
        ("fixed_size_binary[2]", pa.binary(2), [b"12", b"ab"]),
        ("date32[day]", pa.date32(), [0, 19000]),
        ("date64[ms]", pa.date64(), [0, 86400000]),
        ("time32[s]", pa.time32("s"), [0, 3600]),
        ("time64[us]", pa.time64("us"), [0, 1]),
        ("timestamp[ms]", pa.timestamp("ms"), [0, 1]),
        ("timestamp[s, tz=UTC]", pa.timestamp("s", tz="UTC"), [0, 1]),
        ("duration[s]", pa.duration("s"), [0, -5]),
        ("month_day_nano_interval", pa.month_day_nano_interval(), [pa.MonthDayNano([1, 2, 3])]),
        ("list<item: int8>", pa.list_(pa.int8()), [[1, 2]]),
        ("struct<a: int8>", pa.struct([("a", pa.int8())]), [{"a": 1}]),
        ("dictionary<string, int8>", pa.dictionary(pa.int8(), pa.string()), ["1", "x", "2.5", "true"]),
        ("dictionary<int64, int32>", pa.dictionary(pa.int32(), pa.int64()), [1, 300, 2**53 + 1]),
        ("dictionary<double, int16>", pa.dictionary(pa.int16(), pa.float64()), [1.5, f64(0xFFF8000000000000), 2.0]),
        ("dictionary<bool, int8>", pa.dictionary(pa.int8(), pa.bool_()), [True, False]),
        ("dictionary<date32, int8>", pa.dictionary(pa.int8(), pa.date32()), [1]),
        ("dictionary<binary, uint8>", pa.dictionary(pa.uint8(), pa.binary()), [b"7", b"z"]),
        ("extension<arrow.json>", pa.json_(), ['1.5', 'x']),
        ("extension<arrow.uuid>", pa.uuid(), [b"0123456789abcdef"]),
        ("extension<arrow.bool8>", pa.bool8(), [1, 0, 2]),
        ("unknown extension on int32", "my.ext", [7, 2**30]),
    ]


def make_array(t, values: list) -> pa.Array:
    if t == "my.ext":
        return pa.array(values, pa.int32())
    if isinstance(t, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(t, pa.array(values, t.storage_type))
    if pa.types.is_floating(t):
        return float_array(t, values)
    if pa.types.is_dictionary(t):
        return pa.array(values, t.value_type).dictionary_encode().cast(t)
    return pa.array(values, t)


def null_array(t, n: int) -> pa.Array:
    if t == "my.ext":
        return pa.nulls(n, pa.int32())
    if isinstance(t, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(t, pa.nulls(n, t.storage_type))
    return pa.nulls(n, t)


def source_field(t) -> pa.Field:
    if t == "my.ext":
        return pa.field("v", pa.int32(), metadata={"ARROW:extension:name": "my.ext", "ARROW:extension:metadata": ""})
    return pa.field("v", t)


def with_null(values: list) -> list:
    return values[:1] + [None] + values[1:]


def casts() -> dict:
    targets = []
    for t in TARGETS:
        schema = pa.schema([pa.field("v", t)])
        targets.append({"name": str(t), "schema": b64(stream_bytes(schema, []))})
    out_sources = []
    for label, t, values in sources():
        field = source_field(t)
        schema = pa.schema([field])
        pieces = [("zero rows", null_array(t, 0)), ("all null", null_array(t, 2))]
        pieces += [(f"value {i}", make_array(t, [v])) for i, v in enumerate(values)]
        if len(values) > 1:
            pieces.append(("all values", make_array(t, with_null(values))))
        if label == "dictionary<string, int8>":
            # An unreferenced dictionary entry that would not parse: only taken rows are cast.
            dictionary = pa.array(["1", "x"])
            pieces.append(("unreferenced bad entry", pa.DictionaryArray.from_arrays(pa.array([0, None, 0], pa.int8()), dictionary)))
        batches = [pa.record_batch([arr], schema=schema) for _, arr in pieces]
        data = stream_bytes(schema, batches)
        read = pa.ipc.open_stream(data).read_all().to_batches()
        results = {}
        for target in TARGETS:
            per_batch = []
            for batch in read:
                column = batch.column(0)
                try:
                    per_batch.append({"ok": encode(column.cast(target))})
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    per_batch.append(error(exc))
            results[str(target)] = per_batch
        out_sources.append({
            "label": label,
            "type": str(read[0].schema.field(0).type),
            "stream": b64(data),
            "pieces": [name for name, _ in pieces],
            "results": results,
        })
    return {"pyarrow": pa.__version__, "targets": targets, "sources": out_sources}


# ---------------------------------------------------------------------------------------------
# _coerce_input_batch


def coerce_cases() -> list[tuple[str, pa.RecordBatch, pa.Schema]]:
    f = pa.field
    value = pa.schema([f("value", pa.float64())])
    two = pa.schema([f("a", pa.float64()), f("b", pa.string())])
    rb = pa.RecordBatch.from_arrays

    def one(arr, name="value", nullable=True, metadata=None, schema_metadata=None):
        schema = pa.schema([f(name, arr.type, nullable=nullable, metadata=metadata)], metadata=schema_metadata)
        return rb([arr], schema=schema)

    return [
        ("equal schema", one(pa.array([5.0, 10.0])), value),
        ("int32 to double", one(pa.array([1, 2, 3], pa.int32())), value),
        ("int64 exact to double", one(pa.array([10, 2**53, -(2**53)], pa.int64())), value),
        ("int64 2**53+1 to double", one(pa.array([1, 2**53 + 1], pa.int64())), value),
        ("uint64 max to double", one(pa.array([2**64 - 1], pa.uint64())), value),
        ("int64 min to double", one(pa.array([-(2**63)], pa.int64())), value),
        ("float32 to double", one(pa.array([1.5, 2.5], pa.float32())), value),
        ("string to double", one(pa.array(["1.5", "-2", None, "1e3"])), value),
        ("bad string to double", one(pa.array(["1.5", "x"])), value),
        ("bool to double", one(pa.array([True, False, None])), value),
        ("null to double", one(pa.nulls(3)), value),
        ("decimal to double", one(pa.array([D("123.45"), None], pa.decimal128(5, 2))), value),
        ("dictionary to double", one(pa.array(["1.5", "2", "1.5"]).dictionary_encode()), value),
        ("zero-row string", one(pa.array([], pa.string())), value),
        ("zero-row date32", one(pa.array([], pa.date32())), value),
        ("all-null int64", one(pa.array([None, None], pa.int64())), value),
        ("date32 refused", one(pa.array([1], pa.date32())), value),
        ("timestamp tz refused", one(pa.array([1], pa.timestamp("ms", tz="-00:00"))), value),
        ("fixed_size_binary refused", one(pa.array([b"12345678"], pa.binary(8))), value),
        ("large_list refused", one(pa.array([[1]], pa.large_list(pa.int8()))), value),
        ("struct refused", one(pa.array([{"x": 1, "y": "a"}], pa.struct([("x", pa.int8()), f("y", pa.string(), nullable=False)]))), value),
        ("dictionary of strings refused", one(pa.array(["a"]).dictionary_encode().cast(pa.dictionary(pa.int16(), pa.string()))), value),
        ("wrong name", one(pa.array([1.0]), name="wrong"), value),
        ("extra field", rb([pa.array([1.0]), pa.array([1])], names=["value", "extra"]), value),
        ("missing field", one(pa.array([1.0]), name="a"), two),
        ("reordered", rb([pa.array(["x", "y"]), pa.array([1, 2], pa.int32())], names=["b", "a"]), two),
        ("reordered then refused", rb([pa.array(["x"]), pa.array([1], pa.date32())], names=["b", "a"]), two),
        ("non-null target, no nulls", one(pa.array([1.0])), pa.schema([f("value", pa.float64(), nullable=False)])),
        ("non-null target, nulls", one(pa.array([1.0, None])), pa.schema([f("value", pa.float64(), nullable=False)])),
        ("non-null target, nulls, cast", one(pa.array([1, None])), pa.schema([f("value", pa.float64(), nullable=False)])),
        ("non-null source", one(pa.array([1.0]), nullable=False), value),
        ("non-null source, int", one(pa.array([1]), nullable=False), value),
        ("metadata on both", one(pa.array([1], pa.int8()), metadata={"k": "v"}, schema_metadata={"s": "t"}), pa.schema([f("value", pa.date32())], metadata={"x": "y"})),
        ("metadata, cast ok", one(pa.array([1], pa.int8()), metadata={"k": "v"}, schema_metadata={"s": "t"}), pa.schema([f("value", pa.int16())], metadata={"x": "y"})),
        ("long metadata", one(pa.array([1], pa.date32()), schema_metadata={"key": "v" * 200}), value),
        ("empty target", one(pa.array([1])), pa.schema([])),
        ("empty batch", rb([], names=[]), value),
        ("duplicate names", rb([pa.array([1.0]), pa.array([2.0])], names=["value", "value"]), value),
        ("int target, float source", one(pa.array([1.0, 2.5])), pa.schema([f("value", pa.int64())])),
        ("int target, string source", one(pa.array(["7", "-3"])), pa.schema([f("value", pa.int32())])),
        ("int8 target overflow", one(pa.array([1, 300])), pa.schema([f("value", pa.int8())])),
        ("bool target", one(pa.array(["true", "0"])), pa.schema([f("value", pa.bool_())])),
        ("two fields cast", rb([pa.array([1], pa.int8()), pa.array(["s"])], names=["a", "b"]), two),
        ("two fields, second refused", rb([pa.array([1.0]), pa.array([[1]], pa.list_(pa.int8()))], names=["a", "b"]), two),
        ("reordered with metadata, refused", rb([pa.array(["x"]), pa.array([1], pa.date32())], schema=pa.schema([f("b", pa.string(), metadata={"fm": "1"}), f("a", pa.date32())], metadata={"s": "t"})), two),
        ("repeated name, reordered", rb([pa.array(["x"]), pa.array([1.0]), pa.array([2.0])], names=["b", "a", "a"]), two),
        ("negative nan", one(float_array(pa.float32(), [0xFFC00000, 0x7FC00001])), value),
    ]


def coerce() -> list[dict]:
    out = []
    for label, batch, target in coerce_cases():
        data = stream_bytes(batch.schema, [batch])
        read = pa.ipc.open_stream(data).read_next_batch()
        case = {"label": label, "input": b64(data), "target": b64(stream_bytes(target, []))}
        try:
            result = _coerce_input_batch(read, target)
            case["ok"] = {
                "schema": str(result.schema),
                "columns": [encode(col) for col in result.columns],
                "same": result is read,
            }
        except BaseException as exc:  # noqa: BLE001 - the fixture records whatever the reference raised
            case.update(error(exc))
            cause = exc.__cause__
            if cause is not None:
                case["cause"] = error(cause)
        out.append(case)
    return out


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "type-names.json").write_text(json.dumps(type_names(), indent=1, ensure_ascii=False) + "\n")
    (out / "casts.json").write_text(json.dumps(casts(), separators=(",", ":"), ensure_ascii=False) + "\n")
    (out / "coerce.json").write_text(json.dumps(coerce(), indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
