"""``--format parquet``: ``OUT/<split>/part-NNNNN.parquet``, one file per shard, the shard's
columns (``--unmask``, ``--decode``: see :class:`~zhmask.export._table.TableWriter`); read with
``pyarrow.parquet.read_table`` or ``datasets.load_dataset("parquet", data_dir=OUT)``."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from zhmask.export._table import PartFiles, TableWriter


class Writer(TableWriter):
    name = "parquet"

    def __init__(self, build, out: Path, opts) -> None:
        super().__init__(build, out, opts)
        self.parts = PartFiles(out, "parquet", self._open, lambda w: w.close())

    def _open(self, path: Path) -> pq.ParquetWriter:
        return pq.ParquetWriter(str(path), self.empty().schema, compression="zstd")

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        self.parts.get(split, part).write_batch(self.rows(batch))

    def finish(self) -> list[Path]:
        return self.parts.close()
