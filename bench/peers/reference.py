"""The bench service on the Python reference (vgi-rpc 0.52.2), server and client in one file.

    python reference.py serve            # stdio worker
    python reference.py serve-http       # HTTP server; prints PORT:<n>
    python reference.py client pipe SECONDS SIZES         # spawns `serve`, runs the figures
    python reference.py client http URL SECONDS SIZES     # against a running `serve-http`

The client prints one JSON object: unary calls/s and p50/p99 (us) for ``noop`` and ``three``, and
rows/s for the producer (``rows``) and the exchange (``echo``) at each batch size in SIZES (comma
separated). The surface and the batches match bench/service.ts: row k is (k, k / 2, "row-k").
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from vgi_rpc.rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    OutputCollector,
    ProducerState,
    RpcServer,
    Stream,
    connect,
)
from vgi_rpc.rpc._transport import serve_stdio

ROW_SCHEMA = pa.schema([pa.field("i", pa.int64()), pa.field("f", pa.float64()), pa.field("s", pa.utf8())])

_BATCHES: dict[int, pa.RecordBatch] = {}


def bench_batch(n: int) -> pa.RecordBatch:
    """The bench batch of ``n`` rows, built once per size."""
    b = _BATCHES.get(n)
    if b is None:
        b = pa.record_batch(
            [
                pa.array(range(n), pa.int64()),
                pa.array([k * 0.5 for k in range(n)], pa.float64()),
                pa.array([f"row-{k}" for k in range(n)], pa.utf8()),
            ],
            schema=ROW_SCHEMA,
        )
        _BATCHES[n] = b
    return b


class BenchService(Protocol):
    """The bench surface."""

    def noop(self) -> None:
        """Does nothing."""
        ...

    def three(self, i: int, f: float, s: str) -> str:
        """Returns ``s``."""
        ...

    def rows(self, batches: int, rows: int) -> Stream[ProducerState]:
        """Emits ``batches`` batches of ``rows`` rows."""
        ...

    def echo(self) -> Stream[ExchangeState]:
        """Answers each input batch with itself."""
        ...


@dataclass
class RowsState(ProducerState):
    """Producer state: batches left to emit."""

    left: int
    rows: int

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Emits the prebuilt batch or finishes."""
        if self.left <= 0:
            out.finish()
            return
        self.left -= 1
        out.emit(bench_batch(self.rows))


@dataclass
class EchoState(ExchangeState):
    """Exchange state: none."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        """Emits the input batch."""
        out.emit(input.batch)


class BenchImpl:
    """The bench implementation."""

    def noop(self) -> None:
        return None

    def three(self, i: int, f: float, s: str) -> str:
        return s

    def rows(self, batches: int, rows: int) -> Stream[RowsState]:
        return Stream(output_schema=ROW_SCHEMA, state=RowsState(left=batches, rows=rows))

    def echo(self) -> Stream[EchoState]:
        return Stream(output_schema=ROW_SCHEMA, state=EchoState(), input_schema=ROW_SCHEMA)


def timed(op: Any, seconds: float, warmup: float = 0.3) -> dict[str, float]:
    """Sequential calls of ``op`` for ``seconds`` after a warm-up: calls/s, p50 and p99 in us."""
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        op()
    lat: list[float] = []
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        s = time.perf_counter()
        op()
        lat.append(time.perf_counter() - s)
    secs = time.perf_counter() - t0
    lat.sort()
    return {
        "rate": len(lat) / secs,
        "p50": lat[len(lat) // 2] * 1e6,
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e6,
    }


WINDOWS = 3
"""Timed windows per stream figure; the best counts, as for quiver's figures (bench/net.ts)."""


def producer_rate(proxy: Any, rows: int, seconds: float) -> float:
    """Rows/s reading producer streams of growing length, best of ``WINDOWS`` windows of ``seconds``."""
    for _ in proxy.rows(batches=1, rows=rows):
        pass
    n = 1
    best = 0.0
    for _ in range(WINDOWS):
        got = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            s = time.perf_counter()
            for b in proxy.rows(batches=n, rows=rows):
                got += b.batch.num_rows
            if time.perf_counter() - s < 0.05:
                n *= 2
        best = max(best, got / (time.perf_counter() - t0))
    return best


def exchange_rate(proxy: Any, rows: int, seconds: float) -> float:
    """Rows/s echoing one batch at a time through one exchange stream, best of ``WINDOWS`` windows."""
    batch = AnnotatedBatch(batch=bench_batch(rows))
    best = 0.0
    with proxy.echo() as session:
        session.exchange(batch)
        for _ in range(WINDOWS):
            got = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                got += session.exchange(batch).batch.num_rows
            best = max(best, got / (time.perf_counter() - t0))
    return best


def figures(proxy: Any, seconds: float, sizes: list[int]) -> dict[str, Any]:
    """Every figure of one client connection."""
    out: dict[str, Any] = {
        "noop": timed(lambda: proxy.noop(), seconds),
        "three": timed(lambda: proxy.three(i=7, f=0.5, s="row-7"), seconds),
    }
    stream_secs = seconds / 2
    for n in sizes:
        out[f"producer {n}"] = producer_rate(proxy, n, stream_secs)
        out[f"exchange {n}"] = exchange_rate(proxy, n, stream_secs)
    return out


def main() -> None:
    """Entry point (see the module docstring)."""
    mode = sys.argv[1]
    server = RpcServer(BenchService, BenchImpl())
    if mode == "serve":
        serve_stdio(server)
    elif mode == "serve-http":
        from vgi_rpc.http import serve_http

        serve_http(server, compression_level=None, install_signal_handlers=False)
    elif mode == "client":
        where = sys.argv[2]
        if where == "pipe":
            seconds, sizes = float(sys.argv[3]), [int(x) for x in sys.argv[4].split(",")]
            with connect(BenchService, [sys.executable, __file__, "serve"]) as proxy:
                result = figures(proxy, seconds, sizes)
        else:
            from vgi_rpc.http import http_connect

            url, seconds, sizes = sys.argv[3], float(sys.argv[4]), [int(x) for x in sys.argv[5].split(",")]
            with http_connect(BenchService, url, compression_level=None) as proxy:
                result = figures(proxy, seconds, sizes)
        print(json.dumps(result), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
