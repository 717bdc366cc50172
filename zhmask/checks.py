"""Row invariants that ``zhmask verify`` checks on every shard row, declared by the parts.

A check is ``check(row, ctx) -> list[str]`` (violations, empty when the row is fine); ``row``
is one shard row as a dict of Python values, ``ctx`` a dict with at least ``vocab_size``, the
special-token ids and the build's ``config``.  Tasks register theirs with :func:`register_check`
(their entry in ``zhmask.labels.TASKS``), masking strategies with ``STRATEGIES.add_check``;
:func:`row_checks` gathers those a row gets.  Checks common to every row (lengths, word ids,
labels) live in :mod:`zhmask.commands.verify`.
"""
from __future__ import annotations

from typing import Any, Callable

Check = Callable[[dict[str, Any], dict[str, Any]], list[str]]


def register_check(task: str):
    """Decorator: a row check of task ``task`` (registered in ``zhmask.labels.TASKS`` first)."""
    from zhmask.labels import TASKS

    return TASKS.add_check(task)


def row_checks(task: str, masking: str) -> list[Check]:
    """The checks of a row of ``task`` in a build masked with ``masking``: the task's, then the
    masking strategy's, from their registries (none for a name no registry holds)."""
    from zhmask.labels import TASKS
    from zhmask.masking import STRATEGIES

    return [*TASKS.checks_of(task), *STRATEGIES.checks_of(masking)]
