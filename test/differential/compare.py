"""Exact comparison of two outcomes, difference signatures, and the one accepted kind of known difference.

Outcomes are the JSON-able structures :mod:`encode` builds, already
normalized; comparing them is structural equality.  A difference is reported
as the paths where the two disagree; its *signature* (method, case label, the
paths with indices folded to ``*``) groups differences with one cause.

The only difference that may be accepted as known is a string that differs
solely because Python's and Node's Unicode versions disagree on which
characters ``repr`` prints (a character unassigned in Python's Unicode
database is escaped by Python and printed by a Node that knows it).  It is
accepted only when a ``--known`` file lists that cause for the two Unicode
versions actually running, and each differing string passes
:func:`printability_only`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_DIFFS = 40

Diff = tuple[str, Any, Any]


def diff(a: Any, b: Any, path: str = "", out: list[Diff] | None = None) -> list[Diff]:
    """Every path where *a* and *b* differ (at most MAX_DIFFS)."""
    out = [] if out is None else out
    if len(out) >= MAX_DIFFS:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                out.append((f"{path}.{k}", a.get(k, "<absent>"), b.get(k, "<absent>")))
            else:
                diff(a[k], b[k], f"{path}.{k}", out)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b) and not _same_shape_prefix(a, b):
            out.append((f"{path}", _brief(a), _brief(b)))
            return out
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b):
                out.append((f"{path}[{i}]", a[i] if i < len(a) else "<absent>", b[i] if i < len(b) else "<absent>"))
            else:
                diff(a[i], b[i], f"{path}[{i}]", out)
        return out
    if a != b or type(a) is not type(b):
        out.append((path, a, b))
    return out


def _same_shape_prefix(a: list[Any], b: list[Any]) -> bool:
    # Event lists: compare element by element so the first divergent event is named.
    return bool(a) and bool(b) and isinstance(a[0], list) and isinstance(b[0], list)


def _brief(v: Any, limit: int = 300) -> Any:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return v if len(text) <= limit else text[: limit - 3] + "..."


_INDEX = re.compile(r"\[\d+\]")


def _folded(diffs: list[Diff]) -> list[str]:
    return sorted({_INDEX.sub("[*]", p) for p, _a, _b in diffs})


def _errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [e[1] for e in outcome.get("events", []) if e and e[0] == "error"]


def _first_error(outcome: dict[str, Any]) -> int | None:
    """How many batches came back before the first error."""
    batches = 0
    for e in outcome.get("events", []):
        if e and e[0] == "error":
            return batches
        if e and e[0] == "batch":
            batches += 1
    return None


def _tags(outcome: dict[str, Any]) -> list[str]:
    return [e[0] for e in outcome.get("events", []) if e]


def _bom_only(a: Any, b: Any) -> bool:
    if not isinstance(a, str) or not isinstance(b, str) or a == b:
        return False
    if a.removeprefix("\ufeff") == b.removeprefix("\ufeff"):
        return True
    # exchange_input_metadata reports keys sorted and comma-joined: a lost U+FEFF also reorders them.
    return sorted(p.removeprefix("\ufeff") for p in a.split(",")) == sorted(
        p.removeprefix("\ufeff") for p in b.split(",")
    )


def classify(ref: dict[str, Any], other: dict[str, Any], diffs: list[Diff]) -> str:
    """What kind of difference this is, in a few words (the cause part of a signature)."""
    ref_err, q_err = _errors(ref), _errors(other)
    if bool(ref_err) != bool(q_err):
        if ref_err:
            return f"reference raises {ref_err[0]['type']}, quiver does not"
        return f"quiver raises {q_err[0]['type']}, reference does not"
    if ref_err and q_err and (ref_err[0]["type"], ref_err[0]["code"]) != (q_err[0]["type"], q_err[0]["code"]):
        return f"error type differs ({ref_err[0]['type']} vs {q_err[0]['type']})"
    if _tags(ref) != _tags(other):
        ref_at, q_at = _first_error(ref), _first_error(other)
        if ref_at is not None and q_at is not None and ref_at != q_at:
            sooner = "quiver" if q_at < ref_at else "reference"
            return f"{sooner} raises sooner (the other accepts more input first)"
        return "event sequence differs"
    event_diffs = [d for d in diffs if d[0].startswith(".events")] or diffs
    paths = _folded(event_diffs)
    if all(_bom_only(a, b) for _p, a, b in event_diffs):
        return "leading U+FEFF lost"
    if all(p.endswith(".message") or "exception_message" in p or p.endswith("log_message") for p in paths):
        return "error message text differs"
    if all(isinstance(a, str) and isinstance(b, str) and len(a) == len(b) == 16 for _p, a, b in event_diffs):
        try:
            if all(int(a, 16) >> 52 & 0x7FF == 0x7FF for _p, a, _b in event_diffs):
                return "float bits differ (NaN payload)"
        except ValueError:
            pass
    if all(a == "<absent>" or b == "<absent>" for _p, a, b in event_diffs):
        keys = sorted({p.rsplit(".", 1)[-1] for p in paths})
        return f"key present on one side only: {', '.join(keys)}"
    shown = ", ".join(paths[:2]) + (f", +{len(paths) - 2}" if len(paths) > 2 else "")
    return f"values differ at {shown}"


def signature(method: str, label: str, ref: dict[str, Any], other: dict[str, Any], diffs: list[Diff]) -> str:
    """A short cause key: method, the case's label (input variant), what kind of difference."""
    cause = classify(ref, other, diffs)
    if not cause.startswith(("reference raises", "quiver raises", "event sequence")) and label.startswith("cast:"):
        label = "cast"
    return f"{method} [{label}] {cause}"


# ---------------------------------------------------------------------------
# The accepted known difference: Unicode printability in repr
# ---------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")


def _unescape_unassigned(s: str) -> str:
    r"""Undo ``\xNN``/``\uNNNN``/``\UNNNNNNNN`` escapes of characters unassigned in Python's Unicode database."""

    def sub(m: re.Match[str]) -> str:
        ch = chr(int(next(g for g in m.groups() if g), 16))
        return ch if unicodedata.category(ch) == "Cn" else m.group(0)

    return _ESCAPE.sub(sub, s)


def printability_only(ref: Any, other: Any) -> bool:
    """True when two strings differ only by escapes of characters unassigned in Python's Unicode version."""
    if not isinstance(ref, str) or not isinstance(other, str) or ref == other:
        return False
    return _unescape_unassigned(ref) == _unescape_unassigned(other)


@dataclass(frozen=True)
class Known:
    """The accepted known-difference list (``--known FILE``)."""

    python_unicode: str
    node_unicode: str
    reason: str

    @staticmethod
    def load(path: str) -> Known:
        """Read FILE; refuse any cause but ``unicode-printability``."""
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
        if not isinstance(entries, list) or len(entries) != 1:
            raise ValueError(f"{path}: want a list with one entry (the unicode-printability cause)")
        (entry,) = entries
        if entry.get("cause") != "unicode-printability":
            raise ValueError(
                f"{path}: only the 'unicode-printability' cause may be listed as known, got {entry.get('cause')!r}"
            )
        return Known(str(entry["python_unicode"]), str(entry["node_unicode"]), str(entry.get("reason", "")))

    def applies(self, python_unicode: str, node_unicode: str) -> bool:
        """Whether the listed versions are the ones running."""
        return self.python_unicode == python_unicode and self.node_unicode == node_unicode

    @staticmethod
    def covers(diffs: list[Diff]) -> bool:
        """Whether every difference is a string differing only in Unicode printability."""
        return bool(diffs) and all(printability_only(a, b) for _p, a, b in diffs)
