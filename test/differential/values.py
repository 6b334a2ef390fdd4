"""Seeded random values at the extremes of every type the protocols and Arrow carry.

Two layers:

- :func:`py_value` draws a Python value for a parameter annotation (``int``,
  ``Annotated[int, ArrowType(pa.int8())]``, ``list[Point]``, ``Status | None``,
  a dataclass, ``pa.RecordBatch``...), the way the reference client expects it
  before it serializes the request.
- :func:`arrow_array` draws an Arrow array of any Arrow type, built from its
  buffers where Python values cannot say it (NaN payloads, float16, temporal
  values beyond Python's ``datetime`` range).

Every draw comes from the caller's ``random.Random`` so a case is reproduced
from its seed and index alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import struct
import types
import typing
from decimal import Decimal
from random import Random
from typing import Any

import pyarrow as pa
from vgi_rpc.utils import ArrowType

# ---------------------------------------------------------------------------
# Strings: every Unicode plane, U+FEFF first, no lone surrogates
# ---------------------------------------------------------------------------

#: Characters worth having on their own: BOM / zero-width, line and paragraph
#: separators, NEL, NUL, replacement, non-characters, bidi override, combining.
SPECIAL_CHARS = (
    "\ufeff",
    "\u200b",
    "\u200d",
    "\u2028",
    "\u2029",
    "\u0085",
    "\x00",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\U0001fffe",
    "\U0010ffff",
    "\u202e",
    "\u0301",
    "\xa0",
    "\xad",
    "\x7f",
    "\t",
    "\n",
    "\r",
    "'",
    '"',
    "\\",
    "\U0001f600",
    "\U0001f1fa\U0001f1f8",
    "\u00e9",
    "e\u0301",
)

#: Planes 0-16 with the surrogate block cut out.
_BMP_RANGES = ((0x20, 0x7E), (0xA0, 0xD7FF), (0xE000, 0xFFFD))


def _code_point(rng: Random) -> str:
    pick = rng.random()
    if pick < 0.35:
        return chr(rng.randint(0x20, 0x7E))
    if pick < 0.40:
        return chr(rng.choice((*range(0, 0x20), 0x7F)))
    if pick < 0.50:
        return rng.choice(SPECIAL_CHARS)
    if pick < 0.75:
        lo, hi = rng.choice(_BMP_RANGES)
        return chr(rng.randint(lo, hi))
    plane = rng.randint(1, 16)
    return chr(plane * 0x10000 + rng.randint(0, 0xFFFF))


def text(rng: Random, *, max_len: int = 48, allow_empty: bool = True, bom: float = 0.15) -> str:
    """A string mixing ASCII, controls, specials, the BMP and planes 1-16."""
    roll = rng.random()
    if allow_empty and roll < 0.08:
        out = ""
    elif roll < 0.12:
        out = "".join(_code_point(rng) for _ in range(rng.randint(200, 2000)))
    else:
        out = "".join(_code_point(rng) for _ in range(rng.randint(1, max_len)))
    if rng.random() < bom:
        out = "\ufeff" + out
    return out


def name(rng: Random) -> str:
    """A field name or metadata key: short, sometimes ASCII, sometimes anything, sometimes U+FEFF first."""
    roll = rng.random()
    if roll < 0.4:
        base = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 10)))
    else:
        base = text(rng, max_len=12, allow_empty=roll < 0.45, bom=0.0)
    if rng.random() < 0.25:
        base = "\ufeff" + base
    return base


def blob(rng: Random, *, max_len: int = 64) -> bytes:
    """Random bytes: empty, short, long, all-zero, all-0xff or a UTF-8 BOM first."""
    roll = rng.random()
    if roll < 0.08:
        return b""
    if roll < 0.12:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1000, 5000)))
    if roll < 0.16:
        return bytes([rng.choice((0, 0xFF))]) * rng.randint(1, 64)
    out = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, max_len)))
    if roll < 0.22:
        out = b"\xef\xbb\xbf" + out
    return out


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


def integer(rng: Random, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``, a third of the time one of the range's edges."""
    roll = rng.random()
    if roll < 0.35:
        edges = [lo, hi, lo + 1, hi - 1, 0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**31, 2**32, 2**62]
        return rng.choice([e for e in edges if lo <= e <= hi])
    if roll < 0.55:
        k = rng.randint(0, max(1, (max(abs(lo), abs(hi))).bit_length()))
        v = rng.choice((1, -1)) * (1 << k) + rng.choice((-1, 0, 1))
        return min(hi, max(lo, v))
    if roll < 0.75:
        return rng.randint(max(lo, -1000), min(hi, 1000))
    return rng.randint(lo, hi)


#: float64 bit patterns that matter: signed zeros, subnormals, the normal
#: boundaries, infinities, and NaNs with several payloads, negative included.
F64_BITS = (
    0x0000000000000000,
    0x8000000000000000,
    0x0000000000000001,
    0x8000000000000001,
    0x000FFFFFFFFFFFFF,
    0x0010000000000000,
    0x7FEFFFFFFFFFFFFF,
    0xFFEFFFFFFFFFFFFF,
    0x7FF0000000000000,
    0xFFF0000000000000,
    0x7FF8000000000000,
    0xFFF8000000000000,
    0x7FF8000000000001,
    0x7FF0000000000001,
    0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
    0x7FF8DEADBEEF0000,
    0x3FF0000000000000,
    0xBFF0000000000000,
    0x3FB999999999999A,
)

#: Whole-number and boundary doubles whose decimal printing differs between languages.
F64_VALUES = (2.0**53, 2.0**53 + 2, 2.0**60, 2.0**63, 2.0**64, 1e21, 1e-7, 1e300, 1e16, 123456789.125, 0.5, 1.5)

F32_BITS = (
    0x00000000,
    0x80000000,
    0x00000001,
    0x007FFFFF,
    0x00800000,
    0x7F7FFFFF,
    0xFF7FFFFF,
    0x7F800000,
    0xFF800000,
    0x7FC00000,
    0xFFC00000,
    0x7FC00001,
    0x3F800000,
)

F16_BITS = (0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7E01, 0x3C00)


def f64_from_bits(bits: int) -> float:
    """The double with IEEE-754 bit pattern *bits*."""
    return typing.cast("float", struct.unpack("<d", struct.pack("<Q", bits))[0])


def _bits64(x: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", x))[0])


def f64_bits(rng: Random) -> int:
    """A float64 bit pattern: an edge, a printing-sensitive value, a plain number, or random bits."""
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(F64_BITS)
    if roll < 0.5:
        return _bits64(rng.choice(F64_VALUES) * rng.choice((1, -1)))
    if roll < 0.8:
        v = rng.randint(-(10**6), 10**6) / rng.choice((1, 2, 4, 8, 10, 100, 3))
        return _bits64(v)
    return rng.getrandbits(64)


def f64(rng: Random) -> float:
    """A Python float from :func:`f64_bits` (NaN payloads survive: CPython keeps the bits)."""
    return f64_from_bits(f64_bits(rng))


def f32_bits(rng: Random) -> int:
    """A float32 bit pattern."""
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(F32_BITS)
    if roll < 0.75:
        v = rng.randint(-(10**4), 10**4) / rng.choice((1, 2, 4, 8, 3))
        return int(struct.unpack("<I", struct.pack("<f", v))[0])
    return rng.getrandbits(32)


def f32(rng: Random) -> float:
    """A Python float that a float32 column holds exactly (NaNs may be quieted by the C conversion)."""
    return typing.cast("float", struct.unpack("<f", struct.pack("<I", f32_bits(rng)))[0])


def f16_bits(rng: Random) -> int:
    """A float16 bit pattern."""
    return rng.choice(F16_BITS) if rng.random() < 0.5 else rng.getrandbits(16)


def decimal_value(rng: Random, precision: int, scale: int) -> Decimal:
    """A Decimal that fits ``decimal(precision, scale)``: the largest, the smallest, zero, -0, short fractions."""
    roll = rng.random()
    if roll < 0.3:
        digits = rng.choice((10**precision - 1, 0, 1, 10 ** max(0, precision - 1)))
        sign = rng.choice((1, -1))
    elif roll < 0.5:
        digits = rng.randint(0, 10**precision - 1)
        sign = rng.choice((1, -1))
    else:
        digits = rng.randint(0, 10 ** min(precision, 6) - 1)
        sign = rng.choice((1, -1))
    with decimal.localcontext(prec=200):
        d = Decimal(sign * digits).scaleb(-scale)
        if roll > 0.9 and scale > 0:
            # Fewer fractional digits than the scale: the client rescales.
            d = d.quantize(Decimal(1).scaleb(-rng.randint(0, scale)), rounding=decimal.ROUND_DOWN)
        if sign < 0 and digits == 0:
            d = -Decimal(0).scaleb(-scale)
    return d


# ---------------------------------------------------------------------------
# Python values for parameter annotations
# ---------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_UTC = dt.UTC


def _date(rng: Random) -> dt.date:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice((dt.date.min, dt.date.max, dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2000, 2, 29)))
    return dt.date.fromordinal(rng.randint(1, dt.date.max.toordinal()))


def _timestamp_us(rng: Random) -> dt.datetime:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(
            (
                dt.datetime.min,
                dt.datetime.max,
                _EPOCH,
                _EPOCH - dt.timedelta(microseconds=1),
                dt.datetime(2038, 1, 19, 3, 14, 8),
                dt.datetime(1900, 1, 1),
            )
        )
    span = (dt.datetime.max - dt.datetime.min) // dt.timedelta(microseconds=1)
    return dt.datetime.min + dt.timedelta(microseconds=rng.randint(0, span))


def _time(rng: Random) -> dt.time:
    if rng.random() < 0.4:
        return rng.choice((dt.time.min, dt.time.max, dt.time(12), dt.time(0, 0, 0, 1)))
    return dt.time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999))


def _duration(rng: Random) -> dt.timedelta:
    # pyarrow's timedelta conversion overflows within a day of int64's minimum (the client refuses
    # to send those); the full int64 range is reached through raw duration columns instead.
    lo, hi = -(2**63) + 2 * 86_400_000_000, 2**63 - 1
    return dt.timedelta(microseconds=integer(rng, lo, hi))


def _arrow_of(annotation: object) -> tuple[object, pa.DataType | None]:
    """Split ``Annotated[T, ArrowType(x)]`` into ``(T, x)``."""
    base, marker = _arrow_marker(annotation)
    return base, None if marker is None else marker.arrow_type


def _arrow_marker(annotation: object) -> tuple[object, ArrowType | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((e for e in extras if isinstance(e, ArrowType)), None)
    return annotation, None


def _optional_inner(annotation: object) -> object | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return typing.cast("object", args[0])
    return None


def py_value(rng: Random, annotation: object, arrow: pa.DataType | None = None, depth: int = 0) -> Any:
    """A random Python value the reference client serializes for *annotation*."""
    base, declared = _arrow_of(annotation)
    arrow = declared if declared is not None else arrow
    inner = _optional_inner(base)
    if inner is not None:
        # `Annotated[T, ArrowType(x, nullable=False)] | None`: the client refuses None itself.
        _t, marker = _arrow_marker(inner)
        if rng.random() < 0.3 and (marker is None or marker.nullable is not False):
            return None
        return py_value(rng, inner, arrow, depth)
    origin = typing.get_origin(base)
    if origin in (list, frozenset, set, tuple):
        (elem,) = typing.get_args(base)[:1]
        elem_arrow = arrow.value_type if isinstance(arrow, pa.ListType | pa.LargeListType) else None
        n = rng.choice((0, 0, 1, 2, 3, rng.randint(0, 12 if depth < 2 else 3)))
        items = [py_value(rng, elem, elem_arrow, depth + 1) for _ in range(n)]
        return frozenset(items) if origin is frozenset else items
    if origin is dict:
        key_t, val_t = typing.get_args(base)
        val_arrow = arrow.item_type if isinstance(arrow, pa.MapType) else None
        n = rng.choice((0, 1, 2, 3, rng.randint(0, 10)))
        return {py_value(rng, key_t, None, depth + 1): py_value(rng, val_t, val_arrow, depth + 1) for _ in range(n)}
    if isinstance(base, type):
        if issubclass(base, enum.Enum):
            return rng.choice(list(base))
        if dataclasses.is_dataclass(base):
            hints = typing.get_type_hints(base, include_extras=True)
            return base(**{f.name: py_value(rng, hints[f.name], None, depth + 1) for f in dataclasses.fields(base)})
        if base is bool:
            return rng.random() < 0.5
        if base is int:
            lo, hi = INT_RANGES.get(str(arrow) if arrow is not None else "int64", INT_RANGES["int64"])
            return integer(rng, lo, hi)
        if base is float:
            return f32(rng) if arrow is not None and pa.types.is_float32(arrow) else f64(rng)
        if base is str:
            return text(rng)
        if base is bytes:
            if arrow is not None and pa.types.is_fixed_size_binary(arrow):
                return bytes(rng.getrandbits(8) for _ in range(arrow.byte_width))
            return blob(rng)
        if base is Decimal:
            p, s = (arrow.precision, arrow.scale) if isinstance(arrow, pa.Decimal128Type) else (20, 4)
            return decimal_value(rng, p, s)
        if base is dt.datetime:
            value = _timestamp_us(rng)
            if arrow is not None and getattr(arrow, "tz", None):
                value = value.replace(tzinfo=_UTC)
            return value
        if base is dt.date:
            return _date(rng)
        if base is dt.time:
            return _time(rng)
        if base is dt.timedelta:
            return _duration(rng)
        if base is pa.RecordBatch:
            return random_batch(rng)
        if base is pa.Schema:
            return random_batch(rng).schema
    raise TypeError(f"no generator for annotation {annotation!r}")


# ---------------------------------------------------------------------------
# Arrow types and arrays
# ---------------------------------------------------------------------------

_TIMEZONES = (None, "UTC", "+05:30", "-00:00", "America/New_York", "Asia/Kathmandu")


def _leaf_types(rng: Random) -> list[pa.DataType]:
    p128 = rng.randint(1, 38)
    p256 = rng.randint(1, 76)
    return [
        pa.null(),
        pa.bool_(),
        *(pa.type_for_alias(n) for n in INT_RANGES),
        pa.float16(),
        pa.float32(),
        pa.float64(),
        pa.decimal128(p128, rng.randint(0, p128)),
        pa.decimal256(p256, rng.randint(0, p256)),
        pa.date32(),
        pa.date64(),
        pa.time32(rng.choice(("s", "ms"))),
        pa.time64(rng.choice(("us", "ns"))),
        pa.timestamp(rng.choice(("s", "ms", "us", "ns")), tz=rng.choice(_TIMEZONES)),
        pa.duration(rng.choice(("s", "ms", "us", "ns"))),
        pa.month_day_nano_interval(),
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.large_binary(),
        pa.binary(rng.randint(0, 16)),
        pa.string_view(),
        pa.binary_view(),
    ]


#: Groups a random type is drawn from; a case names the group it exercises.
TYPE_GROUPS = (
    "null",
    "bool",
    "int",
    "float",
    "decimal",
    "temporal",
    "interval",
    "string",
    "binary",
    "view",
    "list",
    "struct",
    "map",
    "dictionary",
    "union",
    "run_end",
)


def _group_of(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_interval(t):
        return "interval"
    if pa.types.is_temporal(t):
        return "temporal"
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return "view"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    return "binary"


def arrow_type(rng: Random, group: str, depth: int = 0) -> pa.DataType:
    """A random Arrow type from *group* (nested groups nest any group, two levels at most)."""
    if group in ("list", "struct", "map", "dictionary", "union", "run_end") and depth < 2:
        child_group = rng.choice([g for g in TYPE_GROUPS if depth < 1 or g not in ("union", "run_end")])
        child = arrow_type(rng, child_group, depth + 1)
        if group == "list":
            field = pa.field(rng.choice(("item", "element", name(rng))), child, nullable=_nullable(rng, child))
            kind = rng.choice(("list", "large_list", "fixed", "view", "large_view"))
            if kind == "list":
                return pa.list_(field)
            if kind == "large_list":
                return pa.large_list(field)
            if kind == "fixed":
                return pa.list_(field, rng.randint(0, 4))
            if kind == "view":
                return pa.list_view(field)
            return pa.large_list_view(field)
        if group == "struct":
            n = rng.randint(0, 4)
            names = _distinct_names(rng, n)
            kinds = [arrow_type(rng, rng.choice(TYPE_GROUPS[:10]), depth + 1) for _ in range(n)]
            return pa.struct(
                [
                    pa.field(names[i], kinds[i], nullable=_nullable(rng, kinds[i]), metadata=_field_metadata(rng))
                    for i in range(n)
                ]
            )
        if group == "map":
            key = rng.choice((pa.string(), pa.int32(), pa.int64(), pa.binary(), pa.large_string()))
            return pa.map_(key, child, keys_sorted=rng.random() < 0.2)
        if group == "dictionary":
            index = pa.type_for_alias(rng.choice(list(INT_RANGES)))
            value = rng.choice((pa.string(), pa.large_string(), pa.binary(), pa.int64(), pa.float64(), pa.int8()))
            return pa.dictionary(index, value, ordered=rng.random() < 0.3)
        if group == "union":
            n = rng.randint(1, 3)
            names = _distinct_names(rng, n)
            kids = [pa.field(names[i], arrow_type(rng, rng.choice(TYPE_GROUPS[:8]), depth + 1)) for i in range(n)]
            codes = sorted(rng.sample(range(0, 127), n))
            return pa.union(kids, rng.choice(("sparse", "dense")), type_codes=codes)
        ends = rng.choice((pa.int16(), pa.int32(), pa.int64()))
        return pa.run_end_encoded(ends, arrow_type(rng, rng.choice(TYPE_GROUPS[:8]), depth + 1))
    if group in ("list", "struct", "map", "dictionary", "union", "run_end"):
        group = "int"
    return rng.choice([t for t in _leaf_types(rng) if _group_of(t) == group])


def _nullable(rng: Random, t: pa.DataType) -> bool:
    return pa.types.is_null(t) or rng.random() < 0.8


def _distinct_names(rng: Random, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        candidate = name(rng)
        if candidate not in out:
            out.append(candidate)
    return out


def _field_metadata(rng: Random) -> dict[bytes, bytes] | None:
    if rng.random() < 0.7:
        return None
    return {name(rng).encode(): text(rng, max_len=16).encode() for _ in range(rng.randint(1, 3))}


def _validity(rng: Random, n: int, nullable: bool) -> list[bool]:
    if not nullable:
        return [True] * n
    roll = rng.random()
    if roll < 0.1:
        return [False] * n
    if roll < 0.5:
        return [True] * n
    return [rng.random() < 0.7 for _ in range(n)]


def _bitmap(valid: list[bool]) -> pa.Buffer | None:
    if all(valid):
        return None
    raw = bytearray((len(valid) + 7) // 8)
    for i, v in enumerate(valid):
        if v:
            raw[i // 8] |= 1 << (i % 8)
    return pa.py_buffer(bytes(raw))


def _mask(valid: list[bool]) -> pa.Array:
    return pa.array([not v for v in valid], type=pa.bool_())


def _fixed_bits_array(t: pa.DataType, fmt: str, words: list[int], valid: list[bool]) -> pa.Array:
    data = pa.py_buffer(struct.pack("<" + fmt * len(words), *words))
    return pa.Array.from_buffers(t, len(words), [_bitmap(valid), data], null_count=valid.count(False))


def arrow_array(rng: Random, t: pa.DataType, n: int, nullable: bool = True) -> pa.Array:
    """A random array of type *t* and length *n*, values at the type's extremes."""
    valid = _validity(rng, n, nullable and not pa.types.is_null(t))
    if pa.types.is_null(t):
        return pa.nulls(n)
    if pa.types.is_float64(t):
        return _fixed_bits_array(t, "Q", [f64_bits(rng) for _ in range(n)], valid)
    if pa.types.is_float32(t):
        return _fixed_bits_array(t, "I", [f32_bits(rng) for _ in range(n)], valid)
    if pa.types.is_float16(t):
        return _fixed_bits_array(t, "H", [f16_bits(rng) for _ in range(n)], valid)
    if pa.types.is_integer(t):
        lo, hi = INT_RANGES[str(t)]
        return pa.array([integer(rng, lo, hi) if v else None for v in valid], type=t)
    if pa.types.is_time32(t):
        top = 86_399 if t.unit == "s" else 86_399_999
        return pa.array(
            [rng.choice((0, top, rng.randint(0, top))) if v else None for v in valid], type=pa.int32()
        ).view(t)
    if pa.types.is_time64(t):
        top = 86_399_999_999 if t.unit == "us" else 86_399_999_999_999
        return pa.array(
            [rng.choice((0, top, rng.randint(0, top))) if v else None for v in valid], type=pa.int64()
        ).view(t)
    if pa.types.is_date32(t):
        lo, hi = INT_RANGES["int32"]
        return pa.array([integer(rng, lo, hi) if v else None for v in valid], type=pa.int32()).view(t)
    if pa.types.is_date64(t):
        # date64 counts milliseconds but holds whole days.
        days = [integer(rng, -(2**36), 2**36) for _ in range(n)]
        return pa.array(
            [d * 86_400_000 if v else None for d, v in zip(days, valid, strict=True)], type=pa.int64()
        ).view(t)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        lo, hi = INT_RANGES["int64"]
        return pa.array([integer(rng, lo, hi) if v else None for v in valid], type=pa.int64()).view(t)
    if pa.types.is_interval(t):
        return pa.array(
            [
                pa.MonthDayNano(
                    [
                        integer(rng, *INT_RANGES["int32"]),
                        integer(rng, *INT_RANGES["int32"]),
                        integer(rng, *INT_RANGES["int64"]),
                    ]
                )
                if v
                else None
                for v in valid
            ],
            type=t,
        )
    if pa.types.is_boolean(t):
        return pa.array([rng.random() < 0.5 if v else None for v in valid], type=t)
    if pa.types.is_decimal(t):
        return pa.array([decimal_value(rng, t.precision, t.scale) if v else None for v in valid], type=t)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.array([text(rng) if v else None for v in valid], type=t)
    if pa.types.is_fixed_size_binary(t):
        return pa.array([bytes(rng.getrandbits(8) for _ in range(t.byte_width)) if v else None for v in valid], type=t)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.array([blob(rng) if v else None for v in valid], type=t)
    if pa.types.is_dictionary(t):
        dict_len = rng.randint(1, 6)
        lo, hi = INT_RANGES[str(t.index_type)]
        dictionary = arrow_array(rng, t.value_type, dict_len, nullable=False)
        top = min(hi, dict_len - 1)
        indices = pa.array([rng.randint(max(lo, 0), top) if v else None for v in valid], type=t.index_type)
        return pa.DictionaryArray.from_arrays(indices, dictionary, ordered=t.ordered)
    if pa.types.is_fixed_size_list(t):
        child = arrow_array(rng, t.value_type, n * t.list_size, t.value_field.nullable)
        # from_buffers, not from_arrays: pyarrow divides by the list size there (SIGFPE at size 0).
        return pa.Array.from_buffers(t, n, [_bitmap(valid)], null_count=valid.count(False), children=[child])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        lengths = [rng.choice((0, 1, 2, 3)) for _ in range(n)]
        offsets = [0]
        for length in lengths:
            offsets.append(offsets[-1] + length)
        child = arrow_array(rng, t.value_type, offsets[-1], t.value_field.nullable)
        mask = _mask(valid)
        if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
            cls = pa.ListViewArray if pa.types.is_list_view(t) else pa.LargeListViewArray
            return cls.from_arrays(offsets[:-1], lengths, child, type=t, mask=mask)
        cls2 = pa.ListArray if pa.types.is_list(t) else pa.LargeListArray
        return cls2.from_arrays(offsets, child, type=t, mask=mask)
    if pa.types.is_map(t):
        lengths = [rng.choice((0, 1, 2)) for _ in range(n)]
        offsets = [0]
        for length in lengths:
            offsets.append(offsets[-1] + length)
        keys = arrow_array(rng, t.key_type, offsets[-1], nullable=False)
        items = arrow_array(rng, t.item_type, offsets[-1], t.item_field.nullable)
        return pa.MapArray.from_arrays(offsets, keys, items, type=t, mask=_mask(valid))
    if pa.types.is_struct(t):
        kids = [arrow_array(rng, t.field(i).type, n, t.field(i).nullable) for i in range(t.num_fields)]
        return pa.StructArray.from_arrays(kids, fields=[t.field(i) for i in range(t.num_fields)], mask=_mask(valid))
    if pa.types.is_union(t):
        codes = list(t.type_codes)
        which = [rng.randrange(len(codes)) for _ in range(n)]
        type_ids = pa.array([codes[w] for w in which], type=pa.int8())
        if t.mode == "sparse":
            kids = [arrow_array(rng, t.field(i).type, n) for i in range(t.num_fields)]
            return pa.UnionArray.from_sparse(type_ids, kids, [t.field(i).name for i in range(t.num_fields)], codes)
        counts = [which.count(i) for i in range(len(codes))]
        kids = [arrow_array(rng, t.field(i).type, counts[i]) for i in range(t.num_fields)]
        seen = [0] * len(codes)
        offs = []
        for w in which:
            offs.append(seen[w])
            seen[w] += 1
        return pa.UnionArray.from_dense(
            type_ids, pa.array(offs, type=pa.int32()), kids, [t.field(i).name for i in range(t.num_fields)], codes
        )
    if pa.types.is_run_end_encoded(t):
        runs: list[int] = []
        total = 0
        while total < n:
            total += rng.randint(1, 3)
            runs.append(min(total, n))
        values = arrow_array(rng, t.value_type, len(runs))
        return pa.RunEndEncodedArray.from_arrays(pa.array(runs, type=t.run_end_type), values, type=t)
    raise TypeError(f"no array generator for {t}")


def random_batch(rng: Random, *, group: str | None = None) -> pa.RecordBatch:
    """A record batch of 0-4 columns (one of them from *group* when given), names and metadata anywhere in Unicode."""
    n_cols = rng.randint(0, 4)
    names = _distinct_names(rng, max(n_cols, 1))
    groups = [rng.choice(TYPE_GROUPS) for _ in range(n_cols)]
    if group is not None:
        if n_cols == 0:
            n_cols, groups = 1, [group]
        else:
            groups[rng.randrange(n_cols)] = group
    n_rows = rng.choice((0, 1, 2, 3, rng.randint(0, 20)))
    fields = []
    arrays = []
    for i in range(n_cols):
        t = arrow_type(rng, groups[i])
        nullable = _nullable(rng, t)
        fields.append(pa.field(names[i], t, nullable=nullable, metadata=_field_metadata(rng)))
        arrays.append(arrow_array(rng, t, n_rows, nullable))
    schema_md = (
        None
        if rng.random() < 0.6
        else {name(rng).encode(): text(rng, max_len=16).encode() for _ in range(rng.randint(1, 3))}
    )
    schema = pa.schema(fields, metadata=schema_md)
    if n_cols == 0:
        return pa.RecordBatch.from_pydict({}, schema=schema) if n_rows == 0 else _zero_column_batch(schema, n_rows)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _zero_column_batch(schema: pa.Schema, n_rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_struct_array(pa.array([{}] * n_rows, type=pa.struct([]))).replace_schema_metadata(
        schema.metadata
    )
