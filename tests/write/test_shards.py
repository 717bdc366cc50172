"""zhmask.write: the writer registry and protocol (a new output format is one registered class),
and the shard file lifecycle every format shares (one record batch per ``BATCH_ROWS`` rows, the
row count and sha256 the manifest lists)."""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from zhmask.errors import ZhmaskError
from zhmask.schema import schema_for
from zhmask.write import FORMAT, WRITERS, Writer, register, writer_class
from zhmask.write.arrays import rows_to_block
from zhmask.write.shards import ArrowWriter, ShardWriter, shard_file


def _rows(n: int) -> list[dict]:
    g = np.random.default_rng(3)
    out = []
    for i in range(n):
        k = int(g.integers(3, 12))
        out.append({"doc_id": f"d{i // 3}", "example_id": f"d{i // 3}#{i}", "task": "mlm",
                    "input_ids": g.integers(5, 100, k).astype(np.int32), "token_type_ids": np.zeros(k, np.int8),
                    "word_ids": np.arange(k, dtype=np.int32), "labels": np.full(k, -100, np.int32),
                    "next_sentence_label": -100, "entities": [(1, 2, "PER")] if i % 4 == 0 else [], "unit": 0})
    return out


def test_the_arrow_writer_is_registered_with_a_version_and_is_the_default():
    assert FORMAT == "arrow" and WRITERS[FORMAT] is ArrowWriter and writer_class() is ArrowWriter
    assert WRITERS.entries["arrow"].version == 1
    assert shard_file(42) == "shard-00042.arrow"
    for member in ("open", "write_batch", "close"):  # the members of the Writer protocol
        assert callable(getattr(ArrowWriter, member)) and member in Writer.__dict__
    assert ArrowWriter.suffix == ".arrow"


def test_an_unknown_format_is_one_line(tmp_path):
    with pytest.raises(ZhmaskError, match=r"^unknown output format 'nope' \(known: arrow"):
        ShardWriter(tmp_path / "x.bin", schema_for(100, 64), fmt="nope")


class _ParquetWriter:
    """A second format in a few lines (the example of docs/schema.md, "Schema and writers")."""

    suffix = ".parquet"

    def open(self, sink, schema, compression):
        import pyarrow.parquet as pq

        self._w = pq.ParquetWriter(sink, schema, compression=compression or "none")

    def write_batch(self, batch):
        self._w.write_batch(batch)

    def close(self):
        self._w.close()


def test_a_new_format_is_one_registered_class(tmp_path, monkeypatch):
    """Register a class with the Writer members and ShardWriter writes it: the rows of the Arrow
    stream shard of the same rows, with the row count and the sha256 of its own bytes."""
    import pyarrow.parquet as pq

    import zhmask.write.shards as shards

    monkeypatch.setattr(shards, "BATCH_ROWS", 8)
    monkeypatch.setitem(WRITERS, "parquet", None)  # removed again after the test
    monkeypatch.setitem(WRITERS.entries, "parquet", None)
    register("parquet", version=1)(_ParquetWriter)
    assert shard_file(3, "parquet") == "shard-00003.parquet"
    schema = schema_for(100, 64).with_metadata({"zhmask.schema_version": "test"})
    rows = _rows(21)
    made = {}
    for fmt in ("arrow", "parquet"):
        path = tmp_path / shard_file(0, fmt)
        with ShardWriter(path, schema, "zstd", fmt=fmt) as w:
            for a in range(0, len(rows), 5):  # blocks that straddle the record batches
                w.write_block(rows_to_block(rows[a:a + 5], schema))
        assert w.record() == {"rows": 21, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        assert not list(tmp_path.glob("*.tmp-*"))
        made[fmt] = path
    with pa.memory_map(str(made["arrow"])) as src:
        stream = ipc.open_stream(src).read_all()
    pf = pq.ParquetFile(made["parquet"])
    assert pf.metadata.num_row_groups == 3 and pf.metadata.row_group(0).column(0).compression == "ZSTD"  # 8 + 8 + 5 rows
    table = pf.read()
    assert table.equals(stream) and table.schema.metadata[b"zhmask.schema_version"] == b"test"
