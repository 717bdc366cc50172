"""``--format jsonl``: ``OUT/<split>/part-NNNNN.jsonl``, one file per shard, a JSON object a
row with the shard's non-null columns (``--unmask``, ``--decode``: see
:class:`~zhmask.export._table.TableWriter`); read with ``json.loads`` per line or
``datasets.load_dataset("json", data_dir=OUT)``."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from zhmask.export._table import PartFiles, TableWriter


class Writer(TableWriter):
    name = "jsonl"

    def __init__(self, build, out: Path, opts) -> None:
        super().__init__(build, out, opts)
        self.parts = PartFiles(out, "jsonl", lambda p: open(p, "w", encoding="utf-8"), lambda f: f.close())

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        f = self.parts.get(split, part)
        for row in self.rows(batch).to_pylist():
            f.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False,
                               separators=(",", ":")))
            f.write("\n")

    def finish(self) -> list[Path]:
        return self.parts.close()
