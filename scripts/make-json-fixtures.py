"""JSON text the reference writes for error details and log extras, for quiver to match byte for byte.

    .venv-conformance/bin/python scripts/make-json-fixtures.py > test/fixtures/json-numbers.json

Each case is a value in a tagged form both sides can rebuild: plain JSON for strings, booleans,
null, arrays and objects; ``{"$int": "<digits>"}`` for an integer of any size (a JS bigint);
``{"$float": "<hex of the double's bits>"}`` for a double (a JS number).  JS has one number type,
so a whole-number double stands for the integer it holds -- which is also what the reference's
``RetryInfo.to_json()`` sends for a whole-number delay -- and is rebuilt here as that ``int``.

Recorded per case:

``details``      ``encode_error_details([...])`` (the ``vgi_rpc.error_details`` value; null
                 when the reference drops the array)
``extra``        ``json.dumps(value)`` (how ``vgi_rpc.log_extra`` is written)
``retry_info``   for a float case, ``encode_error_details([RetryInfo(retry_delay_seconds=x)])``
"""

import json
import math
import struct
import sys

from vgi_rpc.errors import RetryInfo, encode_error_details


def f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def bits(x: float) -> str:
    return f"{struct.unpack('<Q', struct.pack('<d', x))[0]:016x}"


def build(tagged):
    """The Python value a tagged JS value stands for."""
    if isinstance(tagged, dict) and set(tagged) == {"$int"}:
        return int(tagged["$int"])
    if isinstance(tagged, dict) and set(tagged) == {"$float"}:
        x = f64(int(tagged["$float"], 16))
        return int(x) if math.isfinite(x) and x.is_integer() else x
    if isinstance(tagged, dict):
        return {k: build(v) for k, v in tagged.items()}
    if isinstance(tagged, list):
        return [build(v) for v in tagged]
    return tagged


def flt(x: float) -> dict:
    return {"$float": bits(x)}


def big(n: int) -> dict:
    return {"$int": str(n)}


FLOATS = [
    2.0**60, 1e21, 1e300, 1.5, 7.0, 0.1, 1e-7, 5e-324, float(2**53 + 1), 123456789.125, 1e16, 1e22,
    2.0**70, 0.5, 30.0, 1e-5, 0.0001, 1.0000000000000002, 12345678901234567.0, 1.7976931348623157e308,
    -0.0, 0.0, -2.5, 1e15 + 0.5, 4.35, 2.0**-1074,
]

VALUES = [
    ("nested numbers", {"a": flt(1e21), "b": [flt(2.0**60), flt(0.25), big(2**64 + 1), big(-(2**80))], "c": flt(-3.0)}),
    ("strings", {"q": 'say "hi"\\', "c": "\x00\x1f\x7f\b\f\n\r\t", "u": "é中😀", "s": "\u2028"}),
    ("booleans and null", [True, False, None, {"n": None}]),
    ("empty", {"o": {}, "a": []}),
    ("nan", {"x": flt(math.nan)}),
    ("infinity", {"x": flt(math.inf), "y": flt(-math.inf)}),
]


def main() -> None:
    cases = []
    for x in FLOATS:
        tagged = {"@type": "conformance.Probe", "v": flt(x)}
        value = build(tagged)
        cases.append({
            "label": f"float {x!r}",
            "value": tagged,
            "details": encode_error_details([value]),
            "extra": json.dumps(value),
            "retry_info": encode_error_details([RetryInfo(retry_delay_seconds=x)]) if x >= 0 else None,
        })
    for label, tagged in VALUES:
        detail = {"@type": "conformance.Probe", "v": tagged}
        value = build(detail)
        cases.append({
            "label": label,
            "value": detail,
            "details": encode_error_details([value]),
            "extra": json.dumps(value),
            "retry_info": None,
        })
    json.dump(cases, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
