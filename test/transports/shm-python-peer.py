"""The reference's side of the shm segment cross-checks (test/transports/shm-segment.test.ts).

Talks JSON lines on stdin/stdout. Every command answers one line; the process ends on "bye"
(or stdin closing), closing and, for segments it created, unlinking the segment.

  create <size>            create a segment, fill it (see fill()), answer its name and table
  attach <name> <size>     attach a segment the test created (not tracked: the test owns it)
  table                    the allocator's table as [[offset, length], ...]
  read <off> <len> <kind>  sha256 of the region, and the batch in it decoded ("raw": bytes only)
  allocate <n>             allocate n bytes; answer the offset (or null)
  free <off>               free; answer {"ok": true} or {"error": "..."}
"""

import hashlib
import json
import sys

import pyarrow as pa

from vgi_rpc.shm import ShmSegment, _deserialize_from_shm

PLAIN = pa.schema([("i", pa.int64()), ("s", pa.utf8())])
DICT = pa.schema([("d", pa.dictionary(pa.int32(), pa.utf8()))])


def plain_batch(rows):
    return pa.record_batch([pa.array(range(rows), pa.int64()), pa.array([f"row {k}" for k in range(rows)])], schema=PLAIN)


def dict_batch(rows):
    return pa.record_batch([pa.array([["red", "green", "blue"][k % 3] for k in range(rows)]).dictionary_encode()], schema=DICT)


def summary(batch):
    col = batch.column(0)
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.utf8())
    values = col.to_pylist()
    return {"rows": batch.num_rows, "first": values[0], "last": values[-1], "schema": str(batch.schema.field(0).type)}


def fill(seg):
    """A table with a gap: raw (1000 bytes, pattern), a freed hole, a plain batch, a dict batch."""
    raw = seg.allocator.allocate(1000)
    pattern = bytes((k * 7 + 3) % 256 for k in range(1000))
    seg.buf[raw : raw + 1000] = pattern
    hole = seg.allocator.allocate(5000)
    plain = seg.allocate_and_write(plain_batch(20000))
    dictionary = seg.allocate_and_write(dict_batch(3000))
    seg.free(hole)
    return {
        "raw": [raw, 1000],
        "hole": [hole, 5000],
        "plain": list(plain),
        "dict": list(dictionary),
    }


def main():
    seg = None
    owner = False
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "bye":
            break
        if cmd == "create":
            seg = ShmSegment.create(int(args[0]))
            owner = True
            out = {"name": seg.name, "size": seg.size, **fill(seg)}
        elif cmd == "attach":
            seg = ShmSegment.attach(args[0], int(args[1]), track=False)
            out = {"name": seg.name, "size": seg.size}
        elif cmd == "table":
            out = {"table": [list(a) for a in seg.allocator._read_allocs()]}
        elif cmd == "read":
            off, length, kind = int(args[0]), int(args[1]), args[2]
            buf = seg.read_buffer(off, length)
            out = {"sha256": hashlib.sha256(buf.to_pybytes()).hexdigest()}
            if kind != "raw":
                out["batch"] = summary(_deserialize_from_shm(buf, PLAIN if kind == "plain" else DICT))
        elif cmd == "allocate":
            out = {"offset": seg.allocator.allocate(int(args[0]))}
        elif cmd == "free":
            try:
                seg.free(int(args[0]))
                out = {"ok": True}
            except ValueError as exc:
                out = {"error": str(exc)}
        else:
            out = {"error": f"unknown command {cmd}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    if seg is not None:
        seg.close()
        if owner:
            seg.unlink()


if __name__ == "__main__":
    main()
