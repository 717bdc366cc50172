"""What hf, parquet and jsonl share: the shard's columns, optionally unmasked and decoded."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from zhmask.export._base import SPLITS, Writer, batch_original_ids, decode_text, flat_list, list_array


class TableWriter(Writer):
    """Rows keep the shard's columns.  ``--unmask``: ``input_ids`` holds the original ids (the
    target masks while training) and ``labels`` is left out; ``--decode``: a ``text`` column
    with the decoded ``input_ids`` (as exported)."""

    @property
    def unmasked(self) -> bool:
        return bool(self.opts.unmask)

    def rows(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` as this export writes it."""
        if self.opts.unmask:
            starts, ids = batch_original_ids(batch)
            i = batch.schema.get_field_index("input_ids")
            batch = batch.set_column(i, "input_ids", list_array(starts, ids, batch.schema.field(i).type.value_type))
            batch = batch.drop_columns(["labels"])
        if self.opts.decode:
            starts, ids = flat_list(batch, "input_ids")
            tok = self.build.tokenizer
            text = [decode_text(tok, ids[starts[k]:starts[k + 1]]) for k in range(batch.num_rows)]
            batch = batch.append_column("text", pa.array(text, pa.string()))
        return batch.replace_schema_metadata(None)

    def empty(self) -> pa.RecordBatch:
        """An empty batch of the exported schema (a split that gets no row)."""
        return self.rows(pa.RecordBatch.from_pylist([], schema=self.build.schema))

    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.opts.validation > 0 else SPLITS[:1]


class PartFiles:
    """One open file per (split, shard) at a time: ``OUT/<split>/part-NNNNN.<suffix>``; a
    split's file of an earlier shard is closed when the next shard's rows arrive."""

    def __init__(self, out: Path, suffix: str, open_file, close_file) -> None:
        self.out, self.suffix, self.open_file, self.close_file = out, suffix, open_file, close_file
        self.current: dict[str, tuple[int, object]] = {}
        self.files: list[Path] = []

    def get(self, split: str, part: int):
        cur = self.current.get(split)
        if cur is not None and cur[0] == part:
            return cur[1]
        if cur is not None:
            self.close_file(cur[1])
        path = self.out / split / f"part-{part:05d}.{self.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.open_file(path)
        self.current[split] = (part, handle)
        self.files.append(path)
        return handle

    def close(self) -> list[Path]:
        for _, handle in self.current.values():
            self.close_file(handle)
        self.current = {}
        return list(self.files)
