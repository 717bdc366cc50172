"""``--format hf``: a ``datasets.DatasetDict`` (``train``, and ``validation`` unless
``--validation 0``) written with ``save_to_disk``; ``datasets.load_from_disk(OUT)`` reads it.

Rows keep the shard's columns (``--unmask``, ``--decode``: see
:class:`~zhmask.export._table.TableWriter`).  Each split is first streamed, record batch by
record batch, into an Arrow stream file that ``datasets.Dataset.from_file`` memory-maps, and
``save_to_disk`` copies it from there: the rows never sit in memory together."""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from zhmask.errors import ZhmaskError
from zhmask.export._table import TableWriter


class Writer(TableWriter):
    name = "hf"

    def __init__(self, build, out: Path, opts) -> None:
        super().__init__(build, out, opts)
        try:
            import datasets  # noqa: F401
        except ModuleNotFoundError:
            raise ZhmaskError("--format hf needs the datasets library: pip install 'zhmask[hf]'") from None
        self.tmp = out / ".stream"
        self.sinks: dict[str, tuple] = {}

    def _sink(self, split: str):
        s = self.sinks.get(split)
        if s is None:
            self.tmp.mkdir(parents=True, exist_ok=True)
            f = pa.OSFile(str(self.tmp / f"{split}.arrow"), "wb")
            s = self.sinks[split] = (f, ipc.new_stream(f, self.empty().schema))
        return s[1]

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        self._sink(split).write_batch(self.rows(batch))

    def finish(self) -> list[Path]:
        from datasets import Dataset, DatasetDict

        for split in self.splits():
            self._sink(split)  # a split without rows is an empty dataset
        for f, w in self.sinks.values():
            w.close()
            f.close()
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        dd = DatasetDict({s: Dataset.from_file(str(self.tmp / f"{s}.arrow")) for s in self.splits()})
        quiet = are_progress_bars_disabled()
        disable_progress_bars()  # zhmask export reports its own progress
        try:
            dd.save_to_disk(str(self.out))
        finally:
            if not quiet:
                enable_progress_bars()
        del dd
        shutil.rmtree(self.tmp)
        return sorted(p for p in self.out.rglob("*") if p.is_file())
