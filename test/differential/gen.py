"""Seeded cases for every method the reference's conformance worker hosts.

The method list is read from the reference's own protocol classes
(``rpc_methods(ConformanceService)``, ``rpc_methods(Secondary)``), arguments
are drawn from each parameter's declared annotation (:func:`values.py_value`),
and an exchange's input schema is read off the reference implementation's
``Stream`` for those arguments -- so a method added to the reference is covered
without touching this file.  Hand-written generators exist only where a method
needs structured input or bounded arguments (stream lengths, sizes, error
codes, tick and input metadata, input casts, big payloads).

A case depends on ``(seed, index)`` alone: ``Random(f"{seed}:{index}")``.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import struct
from collections.abc import Callable
from functools import partial
from random import Random
from typing import Any

import pyarrow as pa
from vgi_rpc.conformance._impl import ConformanceServiceImpl
from vgi_rpc.conformance._protocol import ConformanceService
from vgi_rpc.conformance.secondary import Secondary, SecondaryImpl
from vgi_rpc.errors import Code
from vgi_rpc.rpc import MethodType, RpcMethodInfo, rpc_methods

from . import encode, values

PRIMARY = "ConformanceService"
SECONDARY = "conformance.Secondary.v1"
PROTOCOLS: dict[str, tuple[type, object]] = {
    PRIMARY: (ConformanceService, ConformanceServiceImpl()),
    SECONDARY: (Secondary, SecondaryImpl()),
}

#: Producer ticks a case sends at most (a stream still open after them is closed).
MAX_TICKS = 12


@dataclasses.dataclass
class Method:
    """One method of one hosted protocol."""

    protocol: str
    name: str
    info: RpcMethodInfo

    @property
    def kind(self) -> str:
        """``unary``, ``producer`` or ``exchange``."""
        if self.info.method_type == MethodType.UNARY:
            return "unary"
        return "exchange" if self.info.is_exchange else "producer"


@dataclasses.dataclass
class Case:
    """One call: its arguments and, for streams, the ticks or inputs the client sends."""

    seed: int
    index: int
    method: Method
    kwargs: dict[str, Any]
    label: str = "plain"
    ticks: list[dict[bytes, bytes] | None] = dataclasses.field(default_factory=list)
    inputs: list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]] = dataclasses.field(default_factory=list)
    finish: str = "close"
    timeout: float = 20.0

    def describe(self, limit: int = 600) -> str:
        """The call as one line: method, arguments (repr, shortened), ticks or inputs."""
        r = _Repr(maxstring=120, maxother=200, maxlist=8, maxdict=8, maxlevel=4)
        args = ", ".join(f"{k}={_short(r, v)}" for k, v in self.kwargs.items())
        out = f"{self.method.protocol}.{self.method.name}({args})"
        if self.method.kind == "producer":
            out += f" ticks={len(self.ticks)}"
            md = [m for m in self.ticks if m]
            if md:
                out += f" tick_metadata={r.repr(md)}"
        if self.method.kind == "exchange":
            shown = [
                f"<{b.num_rows} rows {b.schema.to_string(show_schema_metadata=True)!r}"
                + (f" md={r.repr(m)}" if m else "")
                + (f" values={_rows_text(r, b)}" if 0 < b.num_rows <= 4 else "")
                + ">"
                for b, m in self.inputs
            ]
            out += f" inputs=[{', '.join(shown)}]"
        if self.finish != "close":
            out += f" then {self.finish}"
        if len(out) > limit:
            out = out[: limit - 3] + "..."
        return out


class _Repr(reprlib.Repr):
    """reprlib with NaNs spelled as ``f64(0x...)`` (their payload matters, and --call accepts it)."""

    def repr_float(self, x: float, level: int) -> str:
        if math.isnan(x):
            return f"f64(0x{struct.unpack('<Q', struct.pack('<d', x))[0]:016x})"
        return repr(x)


def _rows_text(r: reprlib.Repr, b: pa.RecordBatch) -> str:
    try:
        return r.repr(b.to_pylist())
    except (OverflowError, ValueError, pa.ArrowException):
        # Temporal values beyond Python's datetime range have no Python value.
        return " ".join(col.to_string(window=4) for col in b.columns).replace("\n", "")


def _short(r: reprlib.Repr, v: Any) -> str:
    if isinstance(v, str | bytes) and len(v) > 4096:
        return f"<{type(v).__name__} of {len(v)}>"
    if isinstance(v, pa.RecordBatch):
        return f"<RecordBatch {v.num_rows} rows {v.schema.to_string()!r}>"
    return r.repr(v)


def all_methods() -> list[Method]:
    """Every method of every protocol the conformance worker hosts, in a stable order."""
    out = []
    for protocol, (cls, _impl) in PROTOCOLS.items():
        for name, info in sorted(rpc_methods(cls).items()):
            out.append(Method(protocol, name, info))
    encode.declare_set_fields(
        [t for m in out for t in (*m.info.param_types.values(), m.info.result_type, m.info.header_type)]
    )
    return out


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def _small_count(rng: Random) -> int:
    return rng.choice((-1, 0, 0, 1, 1, 2, 3, rng.randint(0, 10)))


def _rows(rng: Random) -> int:
    return rng.choice((0, 1, 2, 3, rng.randint(0, 300)))


def _seed(rng: Random) -> int:
    if rng.random() < 0.6:
        return rng.randint(-50, 1000)
    return values.integer(rng, *values.INT_RANGES["int64"])


def _code(rng: Random) -> str:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(list(Code.__members__))
    if roll < 0.8:
        return rng.choice(list(Code.__members__)).lower()
    return values.text(rng, max_len=12)


#: Arguments a method's semantics bound: stream lengths, sizes, seeds, error codes.
#: Keyed by parameter name, or (method, parameter) where one method differs.
ARG_OVERRIDES: dict[str | tuple[str, str], Callable[[Random], Any]] = {
    "count": _small_count,
    "emit_before_error": _small_count,
    "batch_count": _small_count,
    "rows_per_batch": _rows,
    "fail_on": lambda rng: rng.choice((-1, 0, 1, 2, 3, 4)),
    "target_bytes": lambda rng: rng.choice((-1, 0, 1, rng.randint(0, 5000))),
    "seed": _seed,
    ("fail", "code"): _code,
    ("fail", "kind"): lambda rng: rng.choice(("", "", values.text(rng, max_len=12))),
    # The delay goes into RetryInfo (JSON): whole numbers, huge and tiny values, NaN and infinities.
    ("fail", "retry_delay_seconds"): lambda rng: rng.choice(
        (0.0, -0.0, -1.0, 0.5, 1.0, 2.0**53, 2.0**60, 1e21, 1e300, 5e-324, float("nan"), float("inf"), values.f64(rng))
    ),
}


def arguments(rng: Random, method: Method) -> dict[str, Any]:
    """Keyword arguments for *method*: overrides first, the declared annotation otherwise."""
    info = method.info
    kwargs: dict[str, Any] = {}
    for pname, annotation in info.param_types.items():
        if pname in info.param_defaults and rng.random() < 0.4:
            continue  # leave it to the default
        gen = ARG_OVERRIDES.get((method.name, pname)) or ARG_OVERRIDES.get(pname)
        if gen is not None:
            kwargs[pname] = gen(rng)
            continue
        hint = info.params_schema.field(pname).type if pname in info.params_schema.names else None
        kwargs[pname] = values.py_value(rng, annotation, hint)
    return kwargs


# ---------------------------------------------------------------------------
# Stream inputs
# ---------------------------------------------------------------------------

#: What the client sends a producer tick's metadata under (produce_tick_metadata reports it).
TICK_KEY = b"vgi.conformance.tick"
#: What exchange_input_metadata reports.
INPUT_KEY = b"vgi.conformance.input"


def _metadata(rng: Random, key: bytes) -> dict[bytes, bytes] | None:
    if rng.random() < 0.55:
        return None
    md: dict[bytes, bytes] = {}
    if rng.random() < 0.8:
        md[key] = values.text(rng, max_len=24).encode() if rng.random() < 0.85 else values.blob(rng, max_len=8)
    for _ in range(rng.choice((0, 0, 1, 2))):
        md[values.name(rng).encode()] = values.text(rng, max_len=16).encode()
    return md or None


def declared_input_schema(method: Method, kwargs: dict[str, Any]) -> pa.Schema:
    """The input schema the reference implementation declares for this exchange call."""
    _cls, impl = PROTOCOLS[method.protocol]
    try:
        schema = getattr(getattr(impl, method.name)(**kwargs), "input_schema", None)
    except Exception:  # noqa: BLE001 - an init that raises still takes float64 input
        schema = None
    return schema if isinstance(schema, pa.Schema) else pa.schema([pa.field("value", pa.float64())])


#: Input types an exchange is sent in place of its declared column type.
CAST_TYPES: tuple[pa.DataType, ...] = (
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.decimal128(5, 2),
    pa.decimal128(38, 10),
    pa.string(),
    pa.large_string(),
    pa.bool_(),
    pa.null(),
    pa.dictionary(pa.int32(), pa.float64()),
    pa.dictionary(pa.int8(), pa.string()),
    pa.date32(),
    pa.timestamp("us"),
    pa.binary(),
    pa.list_(pa.float64()),
    pa.struct([pa.field("value", pa.float64())]),
)

#: Strings a float64 cast may or may not parse.
NUMERIC_TEXT = ("1.5", "-0", "0", "nan", "NaN", "inf", "-inf", "1e400", " 2 ", "0x10", "1_000", "", "abc", "\ufeff1")


def _random_column(rng: Random, t: pa.DataType, nullable: bool, n: int) -> pa.Array:
    return values.arrow_array(rng, t, n, nullable)


def _cast_column(rng: Random, t: pa.DataType, n: int) -> pa.Array:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.array([rng.choice(NUMERIC_TEXT) if rng.random() < 0.8 else None for _ in range(n)], type=t)
    if pa.types.is_int64(t) and rng.random() < 0.5:
        return pa.array([rng.choice((2**53 + 1, -(2**53) - 1, 2**63 - 1, 7)) for _ in range(n)], type=t)
    if pa.types.is_uint64(t) and rng.random() < 0.5:
        return pa.array([rng.choice((2**64 - 1, 2**53 + 1, 3)) for _ in range(n)], type=t)
    if pa.types.is_dictionary(t) and pa.types.is_string(t.value_type):
        indices = pa.array([rng.randint(0, 2) for _ in range(n)], type=t.index_type)
        return pa.DictionaryArray.from_arrays(indices, pa.array(["1.5", "x", "-2"]))
    return values.arrow_array(rng, t, n)


def exchange_inputs(
    rng: Random, method: Method, kwargs: dict[str, Any]
) -> tuple[str, list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]]]:
    """A label and 0-4 input batches: the declared schema at its extremes, or a cast/rename/metadata variant."""
    declared = declared_input_schema(method, kwargs)
    schema = declared
    label = "plain"
    roll = rng.random()
    columns: list[Callable[[int], pa.Array]] = [partial(_random_column, rng, f.type, f.nullable) for f in declared]
    if roll < 0.35 and len(declared) > 0:
        i = rng.randrange(len(declared))
        t = rng.choice(CAST_TYPES)
        label = f"cast:{t}"
        schema = declared.set(i, pa.field(declared.field(i).name, t))
        columns[i] = partial(_cast_column, rng, t)
    elif roll < 0.42 and len(declared) > 0:
        i = rng.randrange(len(declared))
        new = rng.choice(("\ufeff" + declared.field(i).name, declared.field(i).name.upper(), "", values.name(rng)))
        label = "rename"
        schema = declared.set(i, declared.field(i).with_name(new))
    elif roll < 0.47:
        label = "extra-column"
        extra_t = rng.choice(CAST_TYPES)
        schema = declared.append(pa.field(values.name(rng), extra_t))
        columns.append(partial(_random_column, rng, extra_t, True))
    elif roll < 0.50 and len(declared) > 0:
        label = "missing-column"
        schema = pa.schema([])
        columns = []
    elif roll < 0.56:
        label = "field-metadata"
        md = {values.name(rng).encode(): values.text(rng, max_len=12).encode()}
        schema = pa.schema(
            [f.with_metadata(md) if rng.random() < 0.7 else f for f in declared],
            metadata={values.name(rng).encode(): values.text(rng, max_len=12).encode()},
        )
    elif roll < 0.62 and len(declared) > 0:
        label = "non-nullable"
        schema = pa.schema([f.with_nullable(False) for f in declared])
        columns = [partial(_random_column, rng, f.type, False) for f in declared]
    inputs = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
        n = rng.choice((0, 1, 1, 2, 3, rng.randint(0, 16)))
        if len(schema) == 0:
            b = pa.RecordBatch.from_pydict({}, schema=schema)
            if n:
                b = pa.RecordBatch.from_struct_array(pa.array([{}] * n, type=pa.struct([])))
        else:
            b = pa.RecordBatch.from_arrays([make(n) for make in columns], schema=schema)
        inputs.append((b, _metadata(rng, INPUT_KEY)))
    return label, inputs


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def _embedded_group(rng: Random, kwargs: dict[str, Any]) -> str:
    """For echo_embedded_arrow: redraw the batch so each case exercises one named type group."""
    group = rng.choice(values.TYPE_GROUPS)
    for key, val in kwargs.items():
        fields = dataclasses.fields(val) if dataclasses.is_dataclass(val) else ()
        if any(isinstance(getattr(val, f.name), pa.RecordBatch) for f in fields):
            batch = values.random_batch(rng, group=group)
            schema = values.random_batch(rng, group=rng.choice(values.TYPE_GROUPS)).schema
            replaced = {
                f.name: batch if isinstance(getattr(val, f.name), pa.RecordBatch) else schema
                for f in dataclasses.fields(val)
                if isinstance(getattr(val, f.name), pa.RecordBatch | pa.Schema)
            }
            kwargs[key] = dataclasses.replace(val, **replaced)
    return f"types:{group}"


def make_case(seed: int, index: int, method: Method) -> Case:
    """The case at *index* of run *seed* for *method*."""
    rng = Random(f"{seed}:{index}:{method.protocol}.{method.name}")
    kwargs = arguments(rng, method)
    case = Case(seed=seed, index=index, method=method, kwargs=kwargs)
    if any(isinstance(v, pa.RecordBatch | pa.Schema) for v in _walk(kwargs)):
        case.label = _embedded_group(rng, kwargs)
    if method.kind == "producer":
        if method.name == "cancellable_producer":
            case.ticks = [_metadata(rng, TICK_KEY) for _ in range(rng.randint(0, 4))]
            case.finish = "cancel"
        else:
            case.ticks = [_metadata(rng, TICK_KEY) for _ in range(MAX_TICKS)]
            case.finish = "cancel" if rng.random() < 0.1 else "close"
            if case.finish == "cancel":
                case.ticks = case.ticks[: rng.randint(0, 3)]
    elif method.kind == "exchange":
        case.label, case.inputs = exchange_inputs(rng, method, kwargs)
        case.finish = "cancel" if method.name == "cancellable_exchange" or rng.random() < 0.1 else "close"
    return case


def _walk(v: Any) -> list[Any]:
    out = [v]
    if isinstance(v, dict):
        for x in v.values():
            out.extend(_walk(x))
    elif isinstance(v, list | tuple | frozenset):
        for x in v:
            out.extend(_walk(x))
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        for f in dataclasses.fields(v):
            out.extend(_walk(getattr(v, f.name)))
    return out


def _weight(method: Method) -> int:
    w = 1 + min(3, len(method.info.param_types))
    if method.kind == "exchange":
        w += 3
    if any("RecordBatch" in str(t) or "Embedded" in str(t) for t in method.info.param_types.values()):
        w += 3
    return w


def method_for(seed: int, index: int, methods: list[Method]) -> Method:
    """The method of case *index*: the first len(methods) cases visit each once (seeded order), then weighted draws."""
    if index < len(methods):
        order = list(methods)
        Random(f"{seed}:order").shuffle(order)
        return order[index]
    rng = Random(f"{seed}:{index}:method")
    return rng.choices(methods, weights=[_weight(m) for m in methods])[0]


def cases(seed: int, count: int, methods: list[Method] | None = None) -> list[Case]:
    """The first *count* cases of run *seed*."""
    methods = methods if methods is not None else all_methods()
    return [make_case(seed, i, method_for(seed, i, methods)) for i in range(count)]


# ---------------------------------------------------------------------------
# Big payloads (10-50 MB), only on demand
# ---------------------------------------------------------------------------


#: Big cases are numbered from here, apart from the ordinary ones (so --only reaches them whatever --cases is).
BIG_BASE = 1_000_000


def big_cases(seed: int, count: int) -> list[Case]:
    """*count* cases with 10-50 MB payloads, indexed from BIG_BASE."""
    by_name = {(m.protocol, m.name): m for m in all_methods()}
    shapes = (
        "echo_bytes",
        "echo_string",
        "echo_large_binary",
        "produce_large_batches",
        "exchange_scale",
        "oversized_unary",
    )
    out = []
    for k in range(count):
        index = BIG_BASE + k
        rng = Random(f"{seed}:{index}:big")
        shape = shapes[k % len(shapes)]
        method = by_name[(PRIMARY, shape)]
        size = rng.randint(10, 50) * 1_000_000
        case = Case(seed=seed, index=index, method=method, kwargs={}, label="big", timeout=180.0)
        if shape in ("echo_bytes", "echo_large_binary"):
            key = "data" if shape == "echo_bytes" else "value"
            case.kwargs = {key: rng.randbytes(size)}
        elif shape == "echo_string":
            unit = "".join(values.text(rng, max_len=64, allow_empty=False) for _ in range(64))
            case.kwargs = {"value": (unit * (size // max(1, len(unit.encode())) + 1))[: size // 2]}
        elif shape == "produce_large_batches":
            case.kwargs = {"rows_per_batch": size // 16, "batch_count": rng.randint(1, 2)}
            case.ticks = [None] * 4
        elif shape == "exchange_scale":
            n = size // 8
            data = rng.randbytes(8 * n)
            column = pa.Array.from_buffers(pa.float64(), n, [None, pa.py_buffer(data)])
            case.kwargs = {"factor": values.f64(rng)}
            case.inputs = [(pa.RecordBatch.from_arrays([column], names=["value"]), None)]
        else:
            case.kwargs = {"target_bytes": size}
        out.append(case)
    return out


# ---------------------------------------------------------------------------
# A hand-written call (--call), for minimal reproductions
# ---------------------------------------------------------------------------


def _call_namespace() -> dict[str, Any]:
    import datetime
    import decimal
    import math

    import vgi_rpc.conformance._types as conformance_types

    ns: dict[str, Any] = {
        "pa": pa,
        "math": math,
        "dt": datetime,
        "datetime": datetime,
        "Decimal": decimal.Decimal,
        "f64": values.f64_from_bits,
        "nan": float("nan"),
        "inf": float("inf"),
    }
    for name in ("Point", "BoundingBox", "AllTypes", "WideTypes", "ContainerWideTypes", "DeepNested", "EmbeddedArrow"):
        ns[name] = getattr(conformance_types, name)
    ns["Status"] = conformance_types.Status
    return ns


def call_case(call: str, inputs: str = "", ticks: str = "", finish: str = "close") -> Case:
    """A case from text: ``METHOD(k=v, ...)`` (``secondary.METHOD(...)`` for conformance.Secondary.v1).

    Arguments are Python expressions evaluated with ``pa``, ``f64(bits)``, ``Decimal``, ``dt``,
    ``nan``, ``inf`` and the conformance dataclasses in scope.  *inputs* (exchanges) is a list of
    record batches, or of ``(batch, {b"key": b"value"})`` pairs; *ticks* (producers) is a count or a
    list of tick metadata dicts (None for none).  Evaluated locally: run only calls you wrote.
    """
    head, sep, rest = call.partition("(")
    if not sep or not rest.rstrip().endswith(")"):
        raise ValueError(f"--call wants METHOD(k=v, ...), got {call!r}")
    protocol = PRIMARY
    name = head.strip()
    if name.startswith(("secondary.", SECONDARY + ".")):
        protocol, name = SECONDARY, name.rsplit(".", 1)[1]
    by_name = {(m.protocol, m.name): m for m in all_methods()}
    method = by_name.get((protocol, name))
    if method is None:
        raise ValueError(f"{protocol} has no method {name!r}")
    ns = _call_namespace()
    kwargs = eval(f"dict({rest.rstrip()[:-1]})", ns)  # noqa: S307 - the operator's own expression
    case = Case(seed=0, index=-1, method=method, kwargs=kwargs, label="call", finish=finish)
    if method.kind == "producer":
        spec = eval(ticks, ns) if ticks else MAX_TICKS  # noqa: S307
        case.ticks = [None] * spec if isinstance(spec, int) else [dict(m) if m else None for m in spec]
    if method.kind == "exchange":
        spec = eval(inputs, ns) if inputs else []  # noqa: S307
        case.inputs = [(x, None) if isinstance(x, pa.RecordBatch) else (x[0], x[1]) for x in spec]
    return case
