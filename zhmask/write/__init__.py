"""Writing a build: record batches (:mod:`zhmask.write.arrays`), shard files
(:mod:`zhmask.write.shards`), the build-wide shuffle and the tokenizer files.

A shard's bytes come from a **writer**: the one class that knows an output format.  It is
registered here under a versioned name, and :class:`zhmask.write.shards.ShardWriter` picks it
from :data:`WRITERS` by that name; everything else a shard needs is the writer's protocol
(:class:`Writer`) and shared by every format: record batches of ``BATCH_ROWS`` rows built from
the pipeline's rows and blocks, the temporary name, fsync, the sha256 and row count the manifest
records, the rename into place, and one-line errors.  A new output format is one module that
defines a class with the members of :class:`Writer` and registers it::

    from zhmask.write import register

    @register("parquet", version=1)
    class ParquetWriter:
        suffix = ".parquet"
        def open(self, sink, schema, compression): ...
        def write_batch(self, batch): ...
        def close(self): ...

and one import line at the end of this file.  See docs/schema.md, "Schema and writers".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from zhmask.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

WRITERS = Registry("writer")
# ``@register(name, version=N)`` on a class with the members of :class:`Writer`.
register = WRITERS.register
FORMAT = "arrow"  # the output format of every build (the only one the reader reads)


class Writer(Protocol):
    """One shard's encoder.  :class:`zhmask.write.shards.ShardWriter` creates it without
    arguments, calls :meth:`open` once, :meth:`write_batch` for each record batch in order (every
    batch has the schema given to :meth:`open`) and :meth:`close` once at the end, also after a
    failure; then it closes the sink itself and, after a failure, removes the file, so a writer
    needs no clean-up of its own.  An ``OSError`` it raises becomes one line naming the shard."""

    suffix: ClassVar[str]  # the shard file's extension, e.g. ".arrow"

    def open(self, sink: "pa.NativeFile", schema: "pa.Schema", compression: str | None) -> None:
        """Start writing to ``sink`` (an open binary file); ``compression``: None or a codec name
        the build accepted (``zstd``, ``lz4``)."""

    def write_batch(self, batch: "pa.RecordBatch") -> None:
        """Append ``batch`` (rows in order)."""

    def close(self) -> None:
        """Finish the file (footer, end-of-stream); the sink is closed by the caller."""


def writer_class(name: str = FORMAT) -> type:
    """The registered writer ``name``; a :class:`zhmask.errors.ZhmaskError` for an unknown one."""
    try:
        return WRITERS[name]
    except KeyError:
        from zhmask.errors import ZhmaskError

        raise ZhmaskError(f"unknown output format {name!r} (known: {', '.join(sorted(WRITERS))})") from None


from zhmask.write import shards  # noqa: E402,F401  (registers "arrow")
