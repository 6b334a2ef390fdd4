"""External-location fixtures written by the pinned reference's own functions.

    .venv-conformance/bin/python scripts/make-external-fixtures.py test/fixtures/external

pointer-*.bin  IPC streams holding one pointer batch (make_external_location_batch)
object-*.bin   externalized objects as the reference uploads them (_serialize_single_batch,
               a collector cycle of a log batch plus a data batch, each raw, zstd and gzip)
fixtures.json  the URLs and SHA-256 digests the TS tests check against
"""

import hashlib
import io
import json
import sys
from pathlib import Path

import pyarrow as pa

from vgi_rpc._codec import Encoding, compress
from vgi_rpc.external import _serialize_single_batch, make_external_location_batch
from vgi_rpc.log import Level, Message
from vgi_rpc.rpc._wire import _write_message_batch
from vgi_rpc.utils import new_ipc_stream

URL = "https://storage.example/bucket/obj-1?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA"


def stream_of(schema: pa.Schema, batch: pa.RecordBatch, metadata: pa.KeyValueMetadata | None) -> bytes:
    buf = io.BytesIO()
    with new_ipc_stream(buf, schema) as writer:
        writer.write_batch(batch, custom_metadata=metadata)
    return buf.getvalue()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    facts: dict[str, object] = {"url": URL}

    # A unary result, externalized by the single-batch path.
    result_schema = pa.schema([pa.field("result", pa.utf8(), nullable=False)])
    result = pa.RecordBatch.from_pydict({"result": ["x" * 5000]}, schema=result_schema)
    single = _serialize_single_batch(result, None)
    digest = hashlib.sha256(single).hexdigest()
    (out / "object-unary.bin").write_bytes(single)
    (out / "object-unary.zstd").write_bytes(compress(Encoding.ZSTD, single, level=3))
    (out / "object-unary.gzip").write_bytes(compress(Encoding.GZIP, single, level=6))
    facts["unary_sha256"] = digest
    facts["unary_value_length"] = 5000

    pointer, pointer_md = make_external_location_batch(result_schema, URL, sha256=digest)
    (out / "pointer-unary.bin").write_bytes(stream_of(result_schema, pointer, pointer_md))

    # A stream turn as maybe_externalize_collector uploads it: a log batch, then the data batch
    # with its own metadata.
    turn_schema = pa.schema([pa.field("index", pa.int64(), nullable=False), pa.field("value", pa.int64(), nullable=False)])
    buf = io.BytesIO()
    with new_ipc_stream(buf, turn_schema) as writer:
        _write_message_batch(writer, turn_schema, Message(Level.INFO, "turn 0", source="fixture"), server_id="abcdef012345")
        data = pa.RecordBatch.from_pydict({"index": [0, 1, 2], "value": [0, 10, 20]}, schema=turn_schema)
        writer.write_batch(data, custom_metadata=pa.KeyValueMetadata({b"conformance.batch_index": b"0"}))
    turn = buf.getvalue()
    (out / "object-turn.bin").write_bytes(turn)
    facts["turn_sha256"] = hashlib.sha256(turn).hexdigest()

    # A pointer without a digest, on a dictionary-encoded schema.
    dict_schema = pa.schema([pa.field("result", pa.dictionary(pa.int16(), pa.utf8()), nullable=False)])
    dict_pointer, dict_md = make_external_location_batch(dict_schema, URL)
    (out / "pointer-dict.bin").write_bytes(stream_of(dict_schema, dict_pointer, dict_md))

    (out / "fixtures.json").write_text(json.dumps(facts, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
