"""Masking strategies, selected with ``--masking NAME``.

A strategy is built once per worker by a factory ``make(config, ctx) -> MaskFn`` (``ctx``: :class:`zhmask.pipeline.TaskContext`) and is a pure
function ``mask(example, rng) -> MaskResult`` (see :mod:`zhmask.masking.base`).  The static
path (writing shards) and the dynamic path (:mod:`zhmask.masking.dynamic`, at load time) call
the same function.
"""
from __future__ import annotations

from zhmask.registry import Registry

STRATEGIES = Registry("masking strategy", traits=("whole_word", "uses_segmentation", "uses_entities", "random_tokens",
                                                   "no_masks"))
# ``@register(name, options={knob: default}, validate=fn, traits=(...), version=1, help=...)``;
# read knobs with ``STRATEGIES.option(name, config, knob)``.  Traits: ``whole_word`` (a word is
# predicted whole or not at all, always: ``zhmask verify`` checks it), ``uses_segmentation`` (its
# units follow the segmenter's words), ``uses_entities`` (and the entity detector's spans),
# ``random_tokens`` (its random replacements draw as --random-tokens says; mac's are similar words),
# ``no_masks`` (its rows carry no masks: labels all -100, for masking at load time).
# Row checks for ``zhmask verify``: ``@STRATEGIES.add_check(name)``; every strategy's rows also
# get :func:`zhmask.masking.checks.check_masked_row`.
register = STRATEGIES.register


from zhmask.masking import none  # noqa: E402,F401
from zhmask.masking import char  # noqa: E402,F401
from zhmask.masking import whole_word  # noqa: E402,F401
from zhmask.masking import ngram  # noqa: E402,F401
from zhmask.masking import similar_word  # noqa: E402,F401
from zhmask.masking import knowledge  # noqa: E402,F401
from zhmask.masking import span  # noqa: E402,F401
from zhmask.masking.checks import check_masked_row  # noqa: E402

STRATEGIES.common_checks.append(check_masked_row)
