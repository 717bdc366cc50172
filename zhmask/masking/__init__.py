"""Masking strategies, selected with ``--masking NAME``.

A strategy is built once per worker by a factory ``make(config, tok) -> MaskFn`` and is a pure
function ``mask(example, rng) -> MaskResult`` (see :mod:`zhmask.masking.base`).  The static
path (writing shards) and the dynamic path (:mod:`zhmask.masking.dynamic`, at load time) call
the same function.
"""
from __future__ import annotations

from typing import Callable

STRATEGIES: dict[str, Callable] = {}


def register(name: str):
    def deco(factory):
        STRATEGIES[name] = factory
        return factory
    return deco


from zhmask.masking import none  # noqa: E402,F401
