"""--engine local: the build's last step (manifest and shuffle) runs on the engine's own workers.

The byte-identity of builds across --workers and the reports of a crashing or dying unit are
tested in tests/test_reliability.py and tests/test_build.py; here, what `finish(map)` gets."""
from __future__ import annotations

import os

import pytest

from zhmask.config import BuildConfig
from zhmask.engines.local import LocalEngine
from zhmask.errors import BuildFailed


def _pid(_job: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_finish_runs_its_jobs_where_the_units_ran(tmp_path, workers):
    engine = LocalEngine(BuildConfig(workers=workers, segmenter="char", entities="none"), tmp_path, lambda st: None)
    pids = engine.run(iter([]), lambda pmap: pmap(_pid, list(range(8))))
    assert len(pids) == 8
    if workers == 1:
        assert set(pids) == {os.getpid()}
    else:  # the pool's processes, not this one and not a second pool
        assert os.getpid() not in pids and len(set(pids)) <= workers


def test_a_worker_dying_in_the_shuffle_is_one_line(tmp_path):
    engine = LocalEngine(BuildConfig(workers=2, segmenter="char", entities="none"), tmp_path, lambda st: None)
    with pytest.raises(BuildFailed, match="^a worker process died while shuffling; the units' shards are kept: "
                                          "rerun to resume$"):
        engine.run(iter([]), lambda pmap: pmap(os._exit, [3]))
