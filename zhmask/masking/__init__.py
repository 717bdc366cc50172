"""Masking strategies, selected with ``--masking NAME``.

A strategy is built once per worker by a factory ``make(config, ctx) -> MaskFn`` (``ctx``: :class:`zhmask.pipeline.TaskContext`) and is a pure
function ``mask(example, rng) -> MaskResult`` (see :mod:`zhmask.masking.base`).  The static
path (writing shards) and the dynamic path (:mod:`zhmask.masking.dynamic`, at load time) call
the same function.
"""
from __future__ import annotations

from zhmask.registry import Registry

STRATEGIES = Registry("masking strategy")
# ``@register(name, options={knob: default}, validate=fn)``; read knobs with
# ``STRATEGIES.option(name, config, knob)``.
register = STRATEGIES.register


from zhmask.masking import none  # noqa: E402,F401
from zhmask.masking import char  # noqa: E402,F401
from zhmask.masking import whole_word  # noqa: E402,F401
from zhmask.masking import ngram  # noqa: E402,F401
from zhmask.masking import similar_word  # noqa: E402,F401
from zhmask.masking import knowledge  # noqa: E402,F401
from zhmask.masking import span  # noqa: E402,F401
from zhmask.masking.checks import register_for_tasks as _register_checks  # noqa: E402

_register_checks()
