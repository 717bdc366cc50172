"""Example generators ("tasks"), selected with ``--tasks``.

A task is a function ``generate(docs, ctx) -> Iterator[Example]`` over the documents of one
work unit (so that draws from "another document" never depend on scheduling).  ``ctx`` is the
:class:`zhmask.pipeline.TaskContext`: config, tokenizer, per-document generators and counters.
Register a task with :func:`register`.
"""
from __future__ import annotations

from zhmask.registry import Registry

TASKS = Registry("task", traits=("pairs", "sentence_label", "token_labels", "generation", "unmasked", "full_packing",
                                 "other_documents"))
# ``@register(name, options={knob: default}, validate=fn, traits=(...), version=1, help=...)``; read
# knobs with ``TASKS.option(name, config, knob)``.  Traits: ``pairs`` (rows hold two segments,
# [CLS] A [SEP] B [SEP]), ``sentence_label`` (a class per row), ``token_labels`` (a class per
# token), ``generation`` (source and target rows), ``unmasked`` (rows carry no masks: --masking
# none), ``full_packing`` (rows may be filled across documents, so --packing full applies),
# ``other_documents`` (an example draws on other documents of its unit: another document's
# sentences, the unit's passages, rows filled across documents; a task without it gives a unit
# the examples its documents give as units of one, tests/labels/test_units_of_one.py).  A
# task that declares the ``span_bounds`` column writes it itself; ``--masking span`` keeps them.
register = TASKS.register
# ``columns=(...)``: the shard columns a task fills besides those every row has
# (:data:`zhmask.schema.ROW_COLUMNS`); ``zhmask verify`` reports any other filled column.


def tasks_filling(column: str) -> frozenset[str]:
    """The tasks that declare ``column`` (e.g. ``span_bounds``: ernie_gen, seq2seq, sentence_reorder)."""
    return frozenset(name for name, entry in TASKS.entries.items() if column in entry.columns)


def check_unmasked(config, task: str, why: str) -> None:
    """The settings of a task whose rows carry no masks (``clm``, ``plm``): ``--masking none``,
    and ``--dupe-factor 1`` (copies of an unmasked row would be identical); ``why`` says what the
    task predicts instead."""
    from zhmask.errors import ZhmaskError
    from zhmask.masking import STRATEGIES

    if not STRATEGIES.has(config.masking, "no_masks"):
        raise ZhmaskError(f"--tasks {task} {why}: it takes no masks (--masking none, not {config.masking})")
    if config.dupe_factor != 1:
        raise ZhmaskError(f"--tasks {task} rows have no masks, so --dupe-factor {config.dupe_factor} would write "
                          "identical copies: use --dupe-factor 1")


from zhmask.labels import mlm  # noqa: E402,F401
from zhmask.labels import ernie_gen  # noqa: E402,F401
from zhmask.labels import seq2seq  # noqa: E402,F401
from zhmask.labels import nsp  # noqa: E402,F401
from zhmask.labels import sop  # noqa: E402,F401
from zhmask.labels import sentence_reorder  # noqa: E402,F401
from zhmask.labels import sentence_distance  # noqa: E402,F401
from zhmask.labels import ir_relevance  # noqa: E402,F401
from zhmask.labels import discourse_relation  # noqa: E402,F401
from zhmask.labels import token_document_relation  # noqa: E402,F401
from zhmask.labels import capitalization  # noqa: E402,F401
from zhmask.labels import clm  # noqa: E402,F401
from zhmask.labels import plm  # noqa: E402,F401
