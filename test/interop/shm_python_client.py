"""The reference's Python client, with a shared-memory segment, against a worker given as argv.

Prints one JSON object: what came back, and what the reference's own segment code observed
(regions the client allocated and freed, the pipe bytes each way), so the Node test can assert
that the batches really travelled through the segment.
"""

from __future__ import annotations

import json
import sys
from io import RawIOBase

import pyarrow as pa

from vgi_rpc.conformance._protocol import ConformanceService
from vgi_rpc.rpc import AnnotatedBatch, RpcConnection, SubprocessTransport
from vgi_rpc.shm import ShmAllocator, ShmSegment

MiB = 1024 * 1024
counts = {"allocate": 0, "free": 0}

_allocate = ShmAllocator.allocate
_free = ShmAllocator.free


def _counting_allocate(self: ShmAllocator, size: int) -> int | None:
    counts["allocate"] += 1
    return _allocate(self, size)


def _counting_free(self: ShmAllocator, offset: int) -> None:
    counts["free"] += 1
    _free(self, offset)


ShmAllocator.allocate = _counting_allocate  # type: ignore[method-assign]
ShmAllocator.free = _counting_free  # type: ignore[method-assign]


class Counting(RawIOBase):
    """A pass-through file object that counts the bytes crossing it."""

    def __init__(self, inner: object) -> None:
        super().__init__()
        self.inner = inner
        self.n = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        got = self.inner.readinto(b)  # type: ignore[attr-defined]
        self.n += got or 0
        return got

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)  # type: ignore[attr-defined]
        self.n += len(data)
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.inner.write(data)  # type: ignore[attr-defined]
        n = len(memoryview(data)) if n is None else n
        self.n += n
        return n

    def flush(self) -> None:
        if not self.inner.closed:  # type: ignore[attr-defined]
            self.inner.flush()  # type: ignore[attr-defined]


class ShmTransport:
    """A subprocess pipe with a segment beside it (what `vgi-rpc-test --shm` builds)."""

    def __init__(self, inner: SubprocessTransport, shm: ShmSegment) -> None:
        self.inner = inner
        self.shm = shm
        self.reader = Counting(inner.reader)
        self.writer = Counting(inner.writer)

    def close(self) -> None:
        self.inner.close()


def pattern(n: int) -> bytes:
    return bytes((i * 131 + 7) & 0xFF for i in range(256)) * (n // 256)


def main() -> None:
    cmd = json.loads(sys.argv[1])
    segment = ShmSegment.create(256 * MiB)
    transport = ShmTransport(SubprocessTransport(cmd), segment)
    out: dict[str, object] = {"segment": segment.name}
    try:
        with RpcConnection(ConformanceService, transport) as svc:  # type: ignore[type-abstract]
            data = pattern(64 * MiB)
            before = (transport.reader.n, transport.writer.n, dict(counts))
            echoed = svc.echo_bytes(data=data)
            out["unary"] = {
                "identical": echoed == data,
                "pipe_in": transport.reader.n - before[0],
                "client_allocated": counts["allocate"] - before[2]["allocate"],
                "client_freed": counts["free"] - before[2]["free"],
            }
            values = [i + 0.5 for i in range(1024 * 1024)]
            before = (transport.reader.n, transport.writer.n, dict(counts))
            with svc.exchange_scale(factor=2.0) as session:
                result = session.exchange(AnnotatedBatch.from_pydict({"value": values}))
                got = result.batch.column("value").to_pylist()
                result.release()
            out["exchange"] = {
                "correct": got == [v * 2.0 for v in values],
                "pipe_in": transport.reader.n - before[0],
                "pipe_out": transport.writer.n - before[1],
                "client_allocated": counts["allocate"] - before[2]["allocate"],
                "client_freed": counts["free"] - before[2]["free"],
            }
            out["echo_after"] = svc.echo_string(value="still usable")
            out["live_allocations"] = segment.allocator.num_allocs
    finally:
        segment.unlink()
        try:
            segment.close()
        except BufferError:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
