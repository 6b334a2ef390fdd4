"""The differential driver: the same seeded calls on the reference's worker and quiver's, answers compared exactly.

    python -m differential.run --seed 1 --cases 100 --transports pipe,unix,http
    python -m differential.run --seed 7 --only 17 --transports pipe --show     # one case, both outcomes

(``npm run differential -- ...`` runs this with the project venv and PYTHONPATH=test.)

For each transport both workers are started once and reused; each case runs on
the reference first, then on quiver, through the reference's own client.  A
case that breaks a connection or overruns its timeout restarts both workers, so
their histories stay alike (the cancel-probe counters are process state).

Exit status: 0 when every case agreed (or differed only by the listed known
cause), 1 on any other difference, 2 when the harness itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from vgi_rpc.rpc import AnnotatedBatch, RpcError

from . import compare, encode, gen
from .workers import TRANSPORTS, Side, quiver_spec, reference_spec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ---------------------------------------------------------------------------
# One case on one side
# ---------------------------------------------------------------------------


def rpc_error(e: RpcError) -> dict[str, Any]:
    """The client-visible parts of a remote error (traceback and request id as present/absent)."""
    return {
        "type": e.error_type,
        "message": encode.text_value(e.error_message),
        "code": e.error_code,
        "kind": e.error_kind,
        "details": encode.json_value(e.error_details),
        "traceback": bool(e.remote_traceback),
        "request_id": bool(e.request_id),
    }


def _annotated(ab: AnnotatedBatch) -> Any:
    return encode.batch(ab.batch, ab.custom_metadata)


def _call(proxy: Any, case: gen.Case, events: list[Any]) -> None:
    method = getattr(proxy, case.method.name)
    if case.method.kind == "unary":
        events.append(["result", encode.value(method(**case.kwargs))])
        return
    session = method(**case.kwargs)
    events.append(["header", encode.value(session.header)])
    finished = False
    try:
        if case.method.kind == "producer":
            for md in case.ticks:
                # Over HTTP the init response may already hold the first batch; a tick that only
                # takes it from the buffer sends no request, so it cannot carry metadata.
                send = None if getattr(session, "_pending_batches", None) else md
                try:
                    ab = session.tick(pa.KeyValueMetadata(send) if send else None)
                except StopIteration:
                    events.append(["finished"])
                    finished = True
                    break
                events.append(["batch", _annotated(ab)])
        else:
            for batch, md in case.inputs:
                try:
                    ab = session.exchange(AnnotatedBatch(batch, pa.KeyValueMetadata(md) if md else None))
                except StopIteration:
                    events.append(["finished"])
                    finished = True
                    break
                events.append(["batch", _annotated(ab)])
    finally:
        if case.finish == "cancel" and not finished:
            session.cancel()
            events.append(["cancelled"])
        else:
            session.close()
            events.append(["closed"])


def _wire(side: Side) -> Any:
    stream, posts = side.wire()
    if stream is not None:
        return encode.ipc_streams(stream)
    return [{"path": path, "status": status, "streams": encode.ipc_streams(body)} for path, status, body in posts]


def execute(side: Side, case: gen.Case) -> tuple[dict[str, Any], bool]:
    """Run *case* on *side*; the outcome, and whether the connection must be restarted."""
    events: list[Any] = []
    # Cancellation cases read the server's cancel-probe counters afterwards. The counters are process
    # state: they start from zero for every case that reads them, so a count reflects that case alone
    # (not an earlier case that already differed).
    probe = case.method.name.startswith("cancellable_")
    if probe or case.method.name == "cancel_probe_counters":
        with contextlib.suppress(Exception):
            side.proxy(gen.PRIMARY).reset_cancel_probe()
    side.on_log = lambda m: events.append(encode.log(m.level.value, m.message, m.extra))
    side.begin()
    fired = threading.Event()

    def overrun() -> None:
        fired.set()
        side.kill()

    timer = threading.Timer(case.timeout, overrun)
    timer.daemon = True
    timer.start()
    broken = False
    try:
        _call(side.proxy(case.method.protocol), case, events)
    except RpcError as e:
        events.append(["error", rpc_error(e)])
        broken = e.error_type == "TransportError"
    except Exception as e:  # noqa: BLE001 - any client-side failure is an outcome to compare
        # Whether the connection survived is for the health probe to say.
        events.append(["client_error", type(e).__name__, encode.text_value(str(e)[:300])])
    if probe and not fired.is_set():
        try:
            events.append(["cancel_probe", encode.value(side.proxy(gen.PRIMARY).cancel_probe_counters())])
        except Exception as e:  # noqa: BLE001
            events.append(["cancel_probe_failed", type(e).__name__])
    timer.cancel()
    side.on_log = None
    if fired.is_set():
        events.append(["timeout", case.timeout])
        broken = True
    outcome: dict[str, Any] = {"events": events}
    if not fired.is_set():
        outcome["wire"] = _wire(side)
    return outcome, broken


def healthy(side: Side) -> bool:
    """Whether the connection still answers a plain call correctly."""
    try:
        return bool(side.proxy(gen.PRIMARY).echo_string(value="differential-probe") == "differential-probe")
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------


@dataclass
class Difference:
    """One case whose outcomes differ."""

    transport: str
    case: gen.Case
    diffs: list[compare.Diff]
    reference: Any
    quiver: Any
    known: bool = False

    @property
    def signature(self) -> str:
        """Method, case label and kind of difference: what groups differences with one cause."""
        return compare.signature(self.case.method.name, self.case.label, self.reference, self.quiver, self.diffs)


@dataclass
class TransportResult:
    """What one transport's run found."""

    transport: str
    cases: int = 0
    same: int = 0
    restarts: int = 0
    restart_notes: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unexpected(self) -> list[Difference]:
        """The differences not accepted as known."""
        return [d for d in self.differences if not d.known]


def node_unicode(node: str) -> str:
    """The Unicode version of the Node quiver runs on."""
    r = subprocess.run(
        [node, "-p", "process.versions.unicode"], capture_output=True, text=True, timeout=30, check=False
    )
    return r.stdout.strip() or "unknown"


def run_transport(
    transport: str,
    cases: list[gen.Case],
    *,
    args: argparse.Namespace,
    known: compare.Known | None,
    workdir: str,
    deadline: float,
) -> TransportResult:
    """Every case over one transport, both workers started once (and again only after a break)."""
    result = TransportResult(transport)
    started = time.monotonic()
    other = reference_spec(ROOT, "reference-2") if args.self_check else quiver_spec(ROOT, args.node)
    sides = [Side(reference_spec(ROOT), transport, workdir), Side(other, transport, workdir)]
    try:
        for side in sides:
            side.start()
            healthy(side)  # the first call per client does its discovery (HTTP capabilities) off the record
        for case in cases:
            if time.monotonic() > deadline:
                print(f"  {transport}: time budget spent after {result.cases} cases", flush=True)
                break
            if args.verbose:
                print(f"  {transport} case {case.index}: {case.describe(200)}", flush=True)
            (ref, ref_broken), (qv, qv_broken) = (execute(side, case) for side in sides)
            result.cases += 1
            diffs = compare.diff(ref, qv)
            if args.show:
                _show(transport, case, ref, qv, diffs)
            if diffs:
                d = Difference(transport, case, diffs, ref, qv)
                d.known = known is not None and compare.Known.covers(diffs)
                result.differences.append(d)
            else:
                result.same += 1
            # A stream or a failed call can leave bytes unread (the reference client's close() stops
            # draining at an error batch, before the stream's end): probe, and restart on a bad answer.
            suspect = case.method.kind != "unary" or any(
                e[0] in ("error", "client_error", "timeout") for e in ref["events"] + qv["events"]
            )
            if ref_broken or qv_broken or (suspect and not all(healthy(s) for s in sides)):
                result.restarts += 1
                last = [o["events"][-1] if o["events"] else None for o in (ref, qv)]
                result.restart_notes.append(
                    f"seed {case.seed} case {case.index} {case.method.name}: {_text(last, 300)}"
                )
                for side in sides:
                    side.restart()
                    healthy(side)
    finally:
        for side in sides:
            side.close()
    result.seconds = time.monotonic() - started
    return result


def _show(transport: str, case: gen.Case, ref: Any, qv: Any, diffs: list[compare.Diff]) -> None:
    print(f"--- {transport} seed={case.seed} case={case.index} [{case.label}] {case.describe(4000)}")
    print("reference:", json.dumps(ref, ensure_ascii=False, default=str))
    print("quiver:   ", json.dumps(qv, ensure_ascii=False, default=str))
    print("same" if not diffs else f"DIFFERENT at {len(diffs)} path(s)")
    for p, a, b in diffs:
        print(f"  {p}:\n    reference {_text(a)}\n    quiver    {_text(b)}")


def _text(v: Any, limit: int = 400) -> str:
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def repro(d: Difference, args: argparse.Namespace) -> str:
    """The one command that reruns this case alone and prints both outcomes."""
    if d.case.label == "call":
        return "(the --call given)"
    extra = f" --method {args.method}" if args.method else ""
    return (
        f"npm run differential -- --seed {d.case.seed} --only {d.case.index} --transports {d.transport}{extra}"
        + (f" --big {args.big}" if d.case.label == "big" else "")
        + " --show"
    )


def report(results: list[TransportResult], args: argparse.Namespace, known_note: str) -> int:
    """Print per transport: cases, same, different (grouped by cause); the exit status."""
    print("\nnormalized before comparing:")
    for n in encode.NORMALIZATIONS:
        print(f"  - {n}")
    if known_note:
        print(f"known differences: {known_note}")
    unexpected = 0
    for r in results:
        known = sum(1 for d in r.differences if d.known)
        print(
            f"\n{r.transport}: {r.cases} cases, {r.same} same, {len(r.differences)} different"
            f" ({known} known, {len(r.unexpected)} unexpected), {r.restarts} restarts, {r.seconds:.1f}s"
        )
        for note in r.restart_notes[:10]:
            print(f"  restarted both workers after {note}")
        groups: dict[str, list[Difference]] = defaultdict(list)
        for d in r.differences:
            groups[("known: " if d.known else "") + d.signature].append(d)
        for sig, ds in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            first = ds[0]
            print(f"  [{len(ds)}x] {sig}")
            print(f"      e.g. seed={first.case.seed} case={first.case.index}: {first.case.describe(300)}")
            for p, a, b in first.diffs[:3]:
                print(f"        {p}: reference {_text(a, 200)} | quiver {_text(b, 200)}")
            print(f"      repro: {repro(first, args)}")
        unexpected += len(r.unexpected)
    total = sum(r.cases for r in results)
    status = "PASS" if unexpected == 0 else "FAIL"
    print(f"\ndifferential: {unexpected} unexpected difference(s) over {total} case(s) -- {status}")
    if args.json:
        _write_json(args.json, results, args)
    return 0 if unexpected == 0 else 1


def _write_json(path: str, results: list[TransportResult], args: argparse.Namespace) -> None:
    out = {
        "seeds": args.seed,
        "normalizations": encode.NORMALIZATIONS,
        "transports": [
            {
                "transport": r.transport,
                "cases": r.cases,
                "same": r.same,
                "restarts": r.restarts,
                "differences": [
                    {
                        "seed": d.case.seed,
                        "case": d.case.index,
                        "method": d.case.method.name,
                        "label": d.case.label,
                        "call": d.case.describe(4000),
                        "signature": d.signature,
                        "known": d.known,
                        "diffs": [[p, a, b] for p, a, b in d.diffs],
                        "reference": d.reference,
                        "quiver": d.quiver,
                        "repro": repro(d, args),
                    }
                    for d in r.differences
                ],
            }
            for r in results
        ],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1, default=str)
    print(f"full report: {path}")


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run every transport, print the report."""
    p = argparse.ArgumentParser(prog="npm run differential --", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", default="1", help="seed, or a comma list of seeds (default 1)")
    p.add_argument("--cases", type=int, default=100, help="cases per seed and transport (default 100)")
    p.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list of pipe,unix,http")
    p.add_argument("--big", type=int, default=0, help="add this many 10-50 MB payload cases per seed (default 0)")
    p.add_argument("--only", default="", help="comma list of case indices to run (with the same --seed)")
    p.add_argument("--method", default="", help="comma list of method names: draw cases from these only")
    p.add_argument(
        "--call",
        default="",
        help="run one hand-written call instead of seeded cases, e.g. 'echo_float(value=f64(0xfff8000000000000))' "
        'or \'secondary.fail(code="X", kind="", retry_delay_seconds=2.0**60)\'',
    )
    p.add_argument("--inputs", default="", help="with --call on an exchange: a list of record batches or (batch, md)")
    p.add_argument("--ticks", default="", help="with --call on a producer: a tick count or a list of tick metadata")
    p.add_argument("--finish", default="close", choices=("close", "cancel"), help="with --call: how a stream ends")
    p.add_argument("--repeat", type=int, default=1, help="with --call: make the call this many times (JIT warm-up)")
    p.add_argument("--show", action="store_true", help="print both outcomes of every case run")
    p.add_argument("--verbose", action="store_true", help="print each case as it starts")
    p.add_argument("--json", default="", help="write the full report (every difference, both outcomes) here")
    p.add_argument("--known", default="", help="accepted known differences (only the unicode-printability cause)")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop starting cases after this long")
    p.add_argument("--node", default=os.environ.get("QUIVER_NODE", "node"), help="node binary for quiver's worker")
    p.add_argument(
        "--self-check",
        action="store_true",
        help="compare the reference's worker with a second reference worker: any difference is the harness's own",
    )
    args = p.parse_args(argv)

    transports = [t for t in args.transports.split(",") if t]
    for t in transports:
        if t not in TRANSPORTS:
            p.error(f"unknown transport {t!r} (want {', '.join(TRANSPORTS)})")
    if not os.path.exists(os.path.join(ROOT, "dist", "bin", "quiver-conformance.js")):
        print("dist/bin/quiver-conformance.js is missing: run `npm run build` first", file=sys.stderr)
        return 2
    methods = gen.all_methods()
    if args.method:
        wanted = set(args.method.split(","))
        methods = [m for m in methods if m.name in wanted]
        if not methods:
            p.error(f"no method named {args.method!r}")
    seeds = _ints(args.seed)
    only = set(_ints(args.only))
    cases: list[gen.Case] = []
    if args.call:
        for i in range(args.repeat):
            case = gen.call_case(args.call, args.inputs, args.ticks, args.finish)
            case.index = i
            cases.append(case)
        seeds = []
    for seed in seeds:
        big = gen.big_cases(seed, args.big)
        if only:
            ordinary = [
                gen.make_case(seed, i, gen.method_for(seed, i, methods)) for i in sorted(only) if i < gen.BIG_BASE
            ]
            cases += ordinary + [c for c in big if c.index in only]
        else:
            cases += gen.cases(seed, args.cases, methods) + big

    py_uni, node_uni = unicodedata.unidata_version, node_unicode(args.node)
    known: compare.Known | None = None
    known_note = ""
    if args.known:
        k = compare.Known.load(args.known)
        if k.applies(py_uni, node_uni):
            known = k
            known_note = f"unicode-printability (Python {py_uni} vs Node {node_uni}): {k.reason}"
        else:
            known_note = (
                f"{args.known} lists Python {k.python_unicode} / Node {k.node_unicode};"
                f" running {py_uni} / {node_uni}: not applied"
            )

    per_kind = Counter(c.method.kind for c in cases)
    print(
        f"differential: {'seeds ' + ','.join(map(str, seeds)) if seeds else 'one --call'},"
        f" {len(cases)} case(s) per transport"
        f" ({', '.join(f'{n} {k}' for k, n in sorted(per_kind.items()))}),"
        f" {len({c.method.name for c in cases})} methods,"
        f" transports {','.join(transports)}; Python {sys.version.split()[0]} (Unicode {py_uni}),"
        f" pyarrow {pa.__version__}, Node Unicode {node_uni}",
        flush=True,
    )
    # A SIGTERM (the npm wrapper's timeout) unwinds through the finally blocks that stop the workers.
    signal.signal(signal.SIGTERM, _terminate)
    workdir = tempfile.mkdtemp(prefix="quiver-diff-")
    deadline = time.monotonic() + args.max_seconds
    results = []
    try:
        for t in transports:
            r = run_transport(t, cases, args=args, known=known, workdir=workdir, deadline=deadline)
            print(
                f"  {t}: {r.cases} cases, {r.same} same, {len(r.differences)} different ({r.seconds:.1f}s)", flush=True
            )
            results.append(r)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        print(f"differential harness failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for name in sorted(os.listdir(workdir)):
            if name.endswith(".stderr"):
                with open(os.path.join(workdir, name), errors="replace") as f:
                    tail = f.read()[-2000:]
                if tail.strip():
                    print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(results, args, known_note)


if __name__ == "__main__":
    sys.exit(main())
