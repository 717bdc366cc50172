"""Shard files, written under a temporary name and renamed when complete, in the format of a
registered writer (:mod:`zhmask.write`; every build writes Arrow IPC streams, :class:`ArrowWriter`).

A shard ``data/shard-00042.arrow`` is complete when it has been renamed into place and its
``data/shard-00042.stats.json`` (the unit's counters, the shard's row count and sha256) has
been written: a rerun skips units that have both.

No partial file ever carries a final name: the shard is written to ``shard-NNNNN.arrow.tmp-PID``,
flushed to disk (fsync), hashed, and renamed; a write error (a full disk, an I/O error) removes
the temporary file and ends the build with one line naming the shard, leaving every finished
shard as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from zhmask.errors import ZhmaskError
from zhmask.write import FORMAT, register, writer_class
from zhmask.write.arrays import Block, blocks_to_batch

BATCH_ROWS = 2048


def shard_name(unit: int) -> str:
    return f"shard-{unit:05d}"


def shard_file(unit: int, fmt: str = FORMAT) -> str:
    """The file name of unit (or output shard) ``unit`` in format ``fmt``: ``shard-00042.arrow``."""
    return shard_name(unit) + writer_class(fmt).suffix


@register("arrow", version=1)
class ArrowWriter:
    """Arrow IPC stream format (``pyarrow.ipc.new_stream``), buffers compressed with
    ``compression`` (None: uncompressed, so that ``datasets`` can memory-map the shard)."""

    suffix = ".arrow"

    def open(self, sink: pa.NativeFile, schema: pa.Schema, compression: str | None) -> None:
        self._stream = ipc.new_stream(sink, schema, options=ipc.IpcWriteOptions(compression=compression))

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._stream.write_batch(batch)

    def close(self) -> None:
        self._stream.close()


def unit_dir(shuffle: bool) -> str:
    """Where a unit writes its shard and stats: ``data/`` (its shard is a shard of the build), or
    ``units/`` when the build shuffles them into the shards of ``data/`` afterwards."""
    return "units" if shuffle else "data"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """``with ShardWriter(path, schema) as w: w.write_block(block)``; renames into place on
    success, then ``w.record()`` is what the manifest lists for the shard (its rows and sha256).

    ``compression`` -- buffer compression, ``"zstd"`` or ``"lz4"`` (``lz4_frame``), or
    None / ``"none"``: uncompressed, so that ``datasets`` can memory-map the shard.
    ``fmt`` -- the registered writer (:data:`zhmask.write.WRITERS`) that encodes the batches.

    ``w.write_block(block)`` writes many rows given as columns (:class:`zhmask.write.arrays.Block`),
    in record batches of ``BATCH_ROWS`` rows whatever the blocks' sizes; ``w.write_table(table)``
    an Arrow table's."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str | None = None, fmt: str = FORMAT) -> None:
        self.path = Path(path)
        self.compression = None if compression in (None, "none") else compression
        self._format = writer_class(fmt)
        self.tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        self.schema = schema
        self.rows = 0
        self._blocks: list[Block] = []  # pending blocks, fewer than BATCH_ROWS rows
        self._pending = 0  # rows in _blocks
        self._sink = None
        self._writer: Any = None
        self.sha256: str | None = None

    def __enter__(self) -> "ShardWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = self._open_sink()
            self._writer = self._format()
            self._writer.open(self._sink, self.schema, self.compression)
        except OSError as err:
            self._discard()
            raise ZhmaskError(f"cannot write {self.path}: {err}") from None
        return self

    def _open_sink(self):
        return pa.OSFile(str(self.tmp), "wb")

    def write_block(self, block: Block) -> None:
        a = 0
        while block.n - a >= BATCH_ROWS - self._pending:  # completes a record batch
            b = a + BATCH_ROWS - self._pending
            self._blocks.append(block.slice(a, b) if (a, b) != (0, block.n) else block)
            self._pending = BATCH_ROWS
            self._flush()
            a = b
        if a < block.n:
            self._blocks.append(block.slice(a, block.n) if a else block)
            self._pending += block.n - a

    def write_table(self, table: pa.Table) -> None:
        """Write the rows of an Arrow table of this schema (in record batches of ``BATCH_ROWS``)."""
        self._flush()
        for batch in table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS):
            self._writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=self.schema))
            self.rows += batch.num_rows

    def _flush(self) -> None:
        if self._blocks:
            self._writer.write_batch(blocks_to_batch(self._blocks, self.schema))
            self.rows += self._pending
            self._blocks = []
            self._pending = 0

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
            self._writer.close()
            self._sink.close()
        except OSError as err:
            self._discard()
            if exc_type is not None and not issubclass(exc_type, OSError):
                return  # the original error is the one to report
            raise ZhmaskError(f"cannot write {self.path}: {err}") from None
        if exc_type is not None:
            self._discard()
            if issubclass(exc_type, OSError):  # e.g. no space left while writing a batch
                raise ZhmaskError(f"cannot write {self.path}: {exc}") from None
            return
        try:
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())
            self.sha256 = sha256_file(self.tmp)
            os.replace(self.tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as err:
            self._discard()
            raise ZhmaskError(f"cannot write {self.path}: {err}") from None

    def record(self) -> dict[str, Any]:
        """The shard's row count and sha256, as the manifest and the unit's stats list them."""
        return {"rows": self.rows, "sha256": self.sha256}

    def _discard(self) -> None:
        try:
            self.tmp.unlink()
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: some filesystems refuse fsync on directories)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise ZhmaskError(f"cannot write {path}: {err}") from None
