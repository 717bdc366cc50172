"""The export driver: a build's record batches, streamed through one format's writer.

A writer (:class:`Writer`, one module per format in this package) gets record batches already
filtered to its tasks and cut into the ``train`` and ``validation`` splits, shard by shard in
manifest order, and never the whole build: memory is bounded by a record batch (2,048 rows)
plus what a format keeps per open file.  Output goes to ``OUT.partial`` first and is renamed to
``OUT`` when the export succeeded, so a failed export leaves no half-written ``OUT``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zhmask.errors import ZhmaskError
from zhmask.reader import DEFAULT_VALIDATION, Build, batch_selection, open_shard, original_ids

SPLITS = ("train", "validation")
Progress = Callable[[int, int], None]  # (rows read, rows in the build)


@dataclass
class ExportOptions:
    """What ``zhmask export`` takes besides the format and OUT (each format reads its own)."""

    validation: float = DEFAULT_VALIDATION  # held out by document, as the trainers do
    tasks: Sequence[str] | None = None  # None: the format's default (see Writer.default_tasks)
    decode: bool = False  # hf/parquet/jsonl: a "text" column with the decoded input_ids
    unmask: bool = False  # hf/parquet/jsonl: original ids in input_ids (the trainer masks)
    layout: str = "bert"  # tfrecord: bert | electra
    max_seq_length: int | None = None  # tfrecord: padded length (default: the build's)
    max_predictions: int | None = None  # tfrecord bert: masked_lm_* length (default: the build's most)
    word_marks: bool = True  # paddle: continuation characters of a word as ##X (ERNIE's WWM input)
    salt: str = ""  # the validation hash's key (zhmask.reader.is_validation)


@dataclass
class ExportResult:
    out: Path
    format: str
    rows: dict[str, int] = field(default_factory=dict)  # exported rows per split
    files: list[Path] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def summary(self) -> str:
        rows = sum(self.rows.values())
        per = ", ".join(f"{k} {v:,}" for k, v in self.rows.items())
        return (f"zhmask export {self.format}: {rows:,} rows ({per}) -> {self.out}: "
                f"{len(self.files)} files, {self.bytes:,} bytes")


class Writer:
    """One output format.  Subclasses set ``name``, override :meth:`write` and :meth:`finish`
    and, where the target masks at training time, return True from :attr:`unmasked`.

    ``write(split, part, batch)`` gets a non-empty record batch of one split (``part`` is the
    shard's index, for formats that write a file per shard); ``finish()`` closes everything and
    returns the files written (under ``self.out``)."""

    name = ""

    def __init__(self, build: Build, out: Path, opts: ExportOptions) -> None:
        self.build, self.out, self.opts = build, out, opts

    @property
    def unmasked(self) -> bool:
        """Whether the export carries the original (unmasked) ids: the target masks at training."""
        return False

    def default_tasks(self) -> list[str] | None:
        """The tasks exported without ``--tasks`` (None: every task of the build)."""
        return None

    def check_tasks(self, tasks: list[str]) -> None:
        """ZhmaskError when the format cannot take one of ``tasks``."""

    def prepare(self, tasks: list[str] | None) -> None:
        """Called once before the first batch (a format may read the build first, column-wise)."""

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def finish(self) -> list[Path]:
        raise NotImplementedError


# ---------------------------------------------------------------------- batch helpers
def flat_list(batch: pa.RecordBatch, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, values) of list column ``name``: row ``i`` is ``values[starts[i]:starts[i + 1]]``
    (a null row is empty); zero-copy where Arrow allows it."""
    col = batch.column(name)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    return starts, values


def batch_original_ids(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ids) of the batch's rows before static masking (:func:`zhmask.reader.original_ids`)."""
    starts, ids = flat_list(batch, "input_ids")
    _, labels = flat_list(batch, "labels")
    return starts, original_ids(ids, labels)


def list_array(starts: np.ndarray, values: np.ndarray, typ: pa.DataType = pa.int32()) -> pa.Array:
    """A list<typ> array from :func:`flat_list`'s (starts, values)."""
    return pa.ListArray.from_arrays(pa.array(starts.astype(np.int32)), pa.array(values, type=typ))


def copy_index(example_id: str) -> int:
    """Which ``--dupe-factor`` copy an example id names (``...#mlm3@2`` -> 2; 0 without ``@``)."""
    tail = example_id[example_id.rfind("#") + 1:]
    k = tail.rfind("@")
    return int(tail[k + 1:]) if k >= 0 and tail[k + 1:].isdigit() else 0


def decode_text(tok, ids) -> str:
    """The text of ``ids`` for reading: word pieces joined (``##`` dropped), a space only between
    two ASCII letters or digits of different words; [CLS], [SEP] and [PAD] left out, [MASK] and
    [UNK] kept."""
    skip = {tok.cls_id, tok.sep_id, tok.pad_id}
    out: list[str] = []
    for i in np.asarray(ids).tolist():
        if i in skip:
            continue
        t = tok.id_to_token[i]
        if t.startswith("##"):
            out.append(t[2:])
            continue
        if out and out[-1][-1:].isascii() and out[-1][-1:].isalnum() and t[:1].isascii() and t[:1].isalnum():
            out.append(" ")
        out.append(t)
    return "".join(out)


# ---------------------------------------------------------------------- the driver
def _prepare_out(out: Path, build: Build, overwrite: bool) -> Path:
    out = Path(out)
    src = build.out.resolve()
    dst = out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise ZhmaskError(f"--out {out} overlaps the build {build.out}; export to another directory")
    if out.exists() and not out.is_dir():
        raise ZhmaskError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ZhmaskError(f"--out {out} exists and is not empty (pass --overwrite to replace it)")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _select_tasks(writer: Writer, build: Build, tasks: Sequence[str] | None) -> list[str]:
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    chosen = list(tasks) if tasks else writer.default_tasks()
    if chosen is None:
        return sorted(build.tasks)
    unknown = [t for t in chosen if t not in build.tasks]
    if unknown:
        raise ZhmaskError(f"task(s) {', '.join(unknown)} not in the build {build.out} "
                          f"(it has {', '.join(sorted(build.tasks)) or 'none'})")
    writer.check_tasks(chosen)
    return chosen


def export(build: Build | str | Path, fmt: str, out: str | Path, opts: ExportOptions | None = None,
           overwrite: bool = False, progress: Progress | None = None) -> ExportResult:
    """Export the build in ``build`` as format ``fmt`` (see :data:`zhmask.export.FORMATS`) to ``out``."""
    from zhmask.export import writer_class

    opts = opts or ExportOptions()
    if not 0.0 <= float(opts.validation) <= 1.0:
        raise ZhmaskError(f"--validation must be a fraction in [0, 1], got {opts.validation!r}")
    cls = writer_class(fmt)
    b = build if isinstance(build, Build) else Build(build)
    out = Path(out)
    partial = _prepare_out(out, b, overwrite)
    try:
        writer = cls(b, partial, opts)
        tasks = _select_tasks(writer, b, opts.tasks)
        writer.prepare(tasks)
        rows = _stream(b, writer, tasks, opts, progress)
        files = [out / p.relative_to(partial) for p in writer.finish()]
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return ExportResult(out=out, format=fmt, rows=rows, files=sorted(files))


def _stream(b: Build, writer: Writer, tasks: list[str], opts: ExportOptions,
            progress: Progress | None) -> dict[str, int]:
    total = b.rows
    done = 0
    counts = {s: 0 for s in SPLITS}
    first_copy_only = writer.unmasked and int(b.config.get("dupe_factor", 1) or 1) > 1
    for part, path in enumerate(b.shards):
        with open_shard(path) as reader:
            for batch in reader:
                done += batch.num_rows
                # the readers' split and task filter (zhmask.reader.batch_selection), a batch at a time
                keep = batch_selection(batch, None, 0.0, tasks)
                if first_copy_only:  # the unmasked copies of a --dupe-factor build are the same text
                    ids = batch.column("example_id").to_pylist()
                    keep &= np.fromiter((copy_index(e) == 0 for e in ids), dtype=bool, count=len(ids))
                val = np.zeros(batch.num_rows, dtype=bool)
                if opts.validation > 0:  # by document, as the trainers' ShardDataset splits
                    val = batch_selection(batch, "validation", opts.validation, None, opts.salt)
                for split, mask in (("train", keep & ~val), ("validation", keep & val)):
                    if mask.any():
                        sub = batch.filter(pa.array(mask))
                        writer.write(split, part, sub)
                        counts[split] += sub.num_rows
                if progress is not None:
                    progress(done, total)
    return counts if opts.validation > 0 else {"train": counts["train"]}
