"""Package data -- the embedded sample corpus and vocabulary (README.md here) -- and :func:`load`.

:func:`load` opens a finished build as a Hugging Face ``datasets.Dataset``::

    import zhmask.data
    ds = zhmask.data.load("out/")                                    # every row
    train = zhmask.data.load("out/", split="train", tasks=["mlm"])   # the trainers' split
    dev = zhmask.data.load("out/", split="validation")

``datasets`` is imported on the first call only (``pip install 'zhmask[hf]'``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from zhmask.errors import ZhmaskError
from zhmask.reader import DEFAULT_VALIDATION, Build, selected_rows

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["load"]


def load(out: "str | Path | Build", split: str | None = None, tasks: Sequence[str] | None = None,
         validation: float = DEFAULT_VALIDATION, salt: str = "") -> "datasets.Dataset":
    """The rows of the build in ``out`` as one ``datasets.Dataset``.

    Exactly the shards the manifest lists, in its order (through :class:`zhmask.reader.Build`,
    never a glob: the ``cache-*.arrow`` files ``datasets`` writes beside the shards when a
    loaded dataset is mapped are never read), each opened with ``Dataset.from_file`` and
    concatenated: memory-mapped, nothing copied, when the build was made with ``--compression
    none``; a compressed build (the default) is decoded into memory, about 10 bytes per token.  A build without static masks (``--masking none``)
    comes without its ``labels`` column (-100 everywhere): a collator masks at training time.

    ``split`` -- None (every row), ``"train"`` or ``"validation"``: the held-out split the
    trainers use (:func:`zhmask.reader.is_validation` on ``example_id`` with ``validation`` and
    ``salt``).  ``tasks`` -- keep only the rows of these tasks.  A build that is missing,
    unfinished or of another schema version, an unknown task or a bad split raise
    :class:`~zhmask.errors.ZhmaskError` with one line.
    """
    try:
        import datasets
    except ImportError:
        raise ZhmaskError("zhmask.data.load needs the datasets package: pip install 'zhmask[hf]'") from None
    build = out if isinstance(out, Build) else Build(out)
    parts = [datasets.Dataset.from_file(str(p)) for p in build.shards]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    from zhmask.masking import STRATEGIES

    if STRATEGIES.has(build.config.get("masking") or "none", "no_masks", unknown=False):
        # no static masks: no labels column (all -100), so that a collator that masks at training
        # time (transformers' DataCollatorForLanguageModeling, DynamicMasking) finds none to pad
        ds = ds.remove_columns(["labels"])
    if split is None and tasks is None:
        return ds
    if isinstance(tasks, str):
        tasks = [tasks]
    rows = selected_rows(build, split=split, validation=validation, tasks=tasks, salt=salt)
    return ds.select(rows)
