"""Tasks that fail on one document, for tests/engines/test_ray.py.

Ray workers are fresh processes, so a task a test registers must come from a module they can
import (the Ray engine imports the module that registered each selected task in every worker).
"""
from __future__ import annotations

import os

from zhmask.labels import TASKS
from zhmask.labels.mlm import generate

KILLER = "梁朝伟"


@TASKS.register("ray_crash_test")
def crash(docs, ctx):
    for doc in docs:
        if KILLER in doc.text:
            raise RuntimeError("boom")
        yield from generate([doc], ctx)


@TASKS.register("ray_kill_test")
def kill(docs, ctx):
    for doc in docs:
        if KILLER in doc.text:
            os._exit(3)  # the worker process dies
        yield from generate([doc], ctx)


def shuffle_like_job(x: int) -> int:
    """A job for ``RayEngine.map``: a full disk on job 2, as the shuffle's jobs report it."""
    from zhmask.errors import ZhmaskError

    if x == 2:
        raise ZhmaskError("shuffle: cannot write /out/data/shard-00002.arrow: No space left on device")
    return 10 * x
