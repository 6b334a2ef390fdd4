"""NaN bits through the reference's conformance arithmetic, for quiver's port to match.

    .venv-conformance/bin/python scripts/make-nan-fixtures.py > test/fixtures/nan-arithmetic.json

Runs the reference implementation in process (``serve_pipe``) and records, as hex of the
float64 bits, what ``exchange_scale`` (``pc.multiply``), ``exchange_accumulate`` (``pc.sum`` then
``running_sum += ...``) and ``add_floats`` (``a + b``) return for inputs with NaNs of either sign,
with payloads, signalling NaNs, infinities and zeros.  Nulls are recorded as null.

CPython picks between two NaN operands of ``a + b`` differently the first time a bytecode site
runs (the generic ``float_add``: the second operand's NaN) and afterwards (the specialised
``BINARY_OP_ADD_FLOAT``: the first operand's). A worker serves many calls, so the fixture records
the steady state: each Python-level addition is run once first with ordinary numbers.
"""

import json
import struct
import sys

import pyarrow as pa

from vgi_rpc.conformance import ConformanceService
from vgi_rpc.conformance._impl import ConformanceServiceImpl
from vgi_rpc.rpc import AnnotatedBatch, serve_pipe

NEG_NAN = "fff8000000000000"
NEG_NAN_PAYLOAD = "fff8000000000123"
NAN_PAYLOAD = "7ff8000000000456"
SNAN = "7ff0000000000001"
NEG_SNAN = "fff0000000000001"
INF = "7ff0000000000000"
NEG_INF = "fff0000000000000"
ONE = "3ff0000000000000"
ZERO = "0000000000000000"
NEG_ZERO = "8000000000000000"
BIG = "7fe1ccf385ebc8a0"  # 1e308


def f64(hexbits: str) -> float:
    return struct.unpack("<d", struct.pack("<Q", int(hexbits, 16)))[0]


def column(values: list[str | None]) -> pa.Array:
    raw = b"".join(struct.pack("<Q", int(v or "0", 16)) for v in values)
    nulls = sum(v is None for v in values)
    validity = pa.array([v is not None for v in values]).buffers()[1] if nulls else None
    return pa.Array.from_buffers(pa.float64(), len(values), [validity, pa.py_buffer(raw)], nulls)


def bits(arr: pa.Array) -> list[str | None]:
    raw = arr.buffers()[1].to_pybytes()
    return [
        f"{struct.unpack_from('<Q', raw, (arr.offset + i) * 8)[0]:016x}" if arr[i].is_valid else None
        for i in range(len(arr))
    ]


def batch(values: list[str | None]) -> AnnotatedBatch:
    return AnnotatedBatch(batch=pa.record_batch([column(values)], names=["value"]))


SCALE_INPUT = [NEG_NAN, NEG_NAN_PAYLOAD, NAN_PAYLOAD, SNAN, NEG_SNAN, INF, NEG_INF, ONE, ZERO, NEG_ZERO, None, BIG]
FACTORS = [ONE, "4000000000000000", "bff0000000000000", ZERO, NEG_ZERO, NEG_NAN, NAN_PAYLOAD, SNAN, INF]

ACCUMULATE = [
    [[NEG_NAN], [NAN_PAYLOAD], [ONE]],
    [[NAN_PAYLOAD], [NEG_NAN]],
    [[ONE, NAN_PAYLOAD, NEG_NAN_PAYLOAD]],
    [[INF, NEG_INF]],
    [[ONE] * 20 + [NEG_SNAN] + [NAN_PAYLOAD] * 3],
    [[NAN_PAYLOAD] * 17 + [NEG_NAN]],
    [[None, NEG_NAN, None, NAN_PAYLOAD]],
    [[ONE], [SNAN]],
]

ACCUMULATE += [
    # pc.sum's additions: inside a block the running block sum is the first operand; where blocks
    # are combined (and runs of valid values), the later block's sum is (see arrowSumFloat64).
    [[NEG_NAN] + [ONE] * 15 + [NAN_PAYLOAD]],
    [[NAN_PAYLOAD] + [ONE] * 15 + [NEG_NAN]],
    [[NEG_NAN] + [ONE] * 31 + [NAN_PAYLOAD] + [ONE] * 31],
    [[NEG_NAN] + [ONE] * 31 + [NAN_PAYLOAD]],
    [[NAN_PAYLOAD] + [ONE] * 31 + [NEG_NAN]],
    [[NAN_PAYLOAD] + [ONE] * 14 + [NEG_NAN]],
]

ADD = [(NEG_NAN, NAN_PAYLOAD), (NAN_PAYLOAD, NEG_NAN), (ONE, NEG_NAN_PAYLOAD), (INF, NEG_INF), (SNAN, ONE), (ONE, NEG_SNAN), (NEG_ZERO, NEG_ZERO)]


def main() -> None:
    out: dict = {"scale": [], "accumulate": [], "add_floats": []}
    with serve_pipe(ConformanceService, ConformanceServiceImpl()) as proxy:
        # Warm the Python-level additions (see the module note).
        proxy.add_floats(a=1.0, b=2.0)
        with proxy.exchange_accumulate() as session:
            session.exchange(batch([ONE]))
        for factor in FACTORS:
            with proxy.exchange_scale(factor=f64(factor)) as session:
                result = session.exchange(batch(SCALE_INPUT))
                out["scale"].append({"factor": factor, "input": SCALE_INPUT, "output": bits(result.batch.column(0))})
        for turns in ACCUMULATE:
            sums = []
            with proxy.exchange_accumulate() as session:
                for values in turns:
                    result = session.exchange(batch(values))
                    sums.append(bits(result.batch.column("running_sum"))[0])
            out["accumulate"].append({"turns": turns, "running_sums": sums})
        for a, b in ADD:
            result = proxy.add_floats(a=f64(a), b=f64(b))
            out["add_floats"].append({"a": a, "b": b, "result": f"{struct.unpack('<Q', struct.pack('<d', result))[0]:016x}"})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
