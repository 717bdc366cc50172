"""Per-task invariants that ``zhmask verify`` checks on every shard row.

A task module registers ``check(row, ctx) -> list[str]`` (violations, empty when the row is
fine) with :func:`register_check`; ``row`` is one shard row as a dict of Python values, ``ctx``
a dict with at least ``vocab_size`` and the special-token ids.  Checks common to every row
(lengths, word ids, labels) live in :mod:`zhmask.commands.verify`.
"""
from __future__ import annotations

from typing import Any, Callable

CHECKS: dict[str, list[Callable[[dict[str, Any], dict[str, Any]], list[str]]]] = {}


def register_check(task: str):
    def deco(fn):
        CHECKS.setdefault(task, []).append(fn)
        return fn
    return deco
