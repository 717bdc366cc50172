"""``zhmask export``: a build's shards in the input formats of other frameworks.

One module per format in this package, each defining a :class:`~zhmask.export._base.Writer`
subclass named ``Writer``; the registry is the package's modules themselves (a name not
starting with ``_`` is a format), so a new format is one new file.  Modules are imported only
when their format is used (``datasets``, ``tfrecord`` ... are optional).

=========  =============================================================  ==========
format     output                                                         masks
=========  =============================================================  ==========
hf         ``datasets.DatasetDict`` (train, validation), ``save_to_disk``  as built
parquet    ``train/part-NNNNN.parquet`` per shard                          as built
jsonl      ``train/part-NNNNN.jsonl`` per shard                            as built
megatron   Megatron-LM indexed dataset ``.bin``/``.idx``, a sequence a      unmasked
           sentence, document boundaries
tfrecord   google-research/bert (``--layout bert``) or ELECTRA features     bert: as built
paddle     PaddleNLP ERNIE ``_ids.npy`` + ``_idx.npz`` (``lens``, ``docs``)  unmasked
=========  =============================================================  ==========

hf, parquet and jsonl take ``--unmask`` (original ids, for a trainer that masks itself).
See docs/export.md.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from zhmask.errors import ZhmaskError

__all__ = ["FORMATS", "ExportOptions", "ExportResult", "Writer", "export", "writer_class"]
_LAZY = ("ExportOptions", "ExportResult", "Writer", "export")  # from _base, on first use: the CLI lists
# the formats without importing pyarrow

FORMATS: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                                        if not m.name.startswith("_")))


def writer_class(fmt: str) -> type:
    """The ``Writer`` of format ``fmt``; ZhmaskError (one line) for an unknown format."""
    if fmt not in FORMATS:
        raise ZhmaskError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{fmt}").Writer


def __getattr__(name: str):
    if name in _LAZY:
        from zhmask.export import _base

        return getattr(_base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
