"""The local engine: units in this process (``--workers 1``) or in a pool of processes.

Each unit goes to a worker as its descriptor (:func:`~zhmask.engines.base.payload`), and the
worker reads its own input.  At most ``2 * workers`` units are in flight, so memory stays
bounded whatever the input size.
A worker that raises names the document that crashed it; a worker process that dies ends the
build with the document that kills it (:mod:`zhmask.engines.base`).  Either way the build fails
rather than dropping work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from zhmask.config import BuildConfig
from zhmask.engines.base import Engine, Finish, Units, config_json, map_here, payload, probe_job, run_job, worker_pipeline
from zhmask.errors import BuildFailed
from zhmask.steps.plan import UnitDescriptor
from zhmask.steps.read import RawDoc


def _job(config_js: str, job: str, out: str) -> dict[str, Any]:
    return run_job(worker_pipeline(config_js), job, out)


def _probe(config_js: str, raw: RawDoc) -> None:
    probe_job(worker_pipeline(config_js), raw)


class LocalEngine(Engine):
    worker = "a worker process"

    def __init__(self, config: BuildConfig, out: Path, collect: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(config, out, collect)
        self.config_js = config_json(config)

    def _pool(self, workers: int):
        # the process pool's modules only when there are workers (their import is start-up time)
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=workers, initializer=worker_pipeline, initargs=(self.config_js,))

    def run(self, units: Units, finish: Finish) -> Any:
        if self.config.workers == 1:
            from zhmask.pipeline import Pipeline

            pipe = None
            for desc in units:
                if pipe is None:
                    pipe = Pipeline(self.config)
                self.result(run_job(pipe, payload(desc), self.out), where="this process")
            return finish(map_here)
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        with self._pool(self.config.workers) as pool:
            inflight: dict[Any, UnitDescriptor] = {}

            def drain(block_until: int) -> None:
                while len(inflight) > block_until:
                    done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                    for fut in done:
                        desc = inflight.pop(fut)
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            suspects = [desc] + list(inflight.values())
                            inflight.clear()
                            pool.shutdown(wait=True, cancel_futures=True)
                            raise self.died(suspects) from None
                        self.result(res)

            for desc in units:
                fut = pool.submit(_job, self.config_js, payload(desc), str(self.out))
                inflight[fut] = desc
                drain(2 * self.config.workers - 1)
            drain(0)

            def pool_map(fn: Callable, jobs: list) -> list:
                try:
                    return list(pool.map(fn, jobs))
                except BrokenProcessPool:  # out of memory, killed: one line, and the units stay
                    raise BuildFailed(f"{self.worker} died while shuffling; the units' shards are kept: rerun to "
                                      "resume") from None

            return finish(pool_map)

    def rerun_dies(self, desc: UnitDescriptor) -> bool:
        """The unit in a fresh single-process pool."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            with self._pool(1) as pool:
                pool.submit(_job, self.config_js, payload(desc), str(self.out)).result()
        except BrokenProcessPool:
            return True
        return False

    def first_killer(self, unit: int, raws: list[RawDoc]) -> RawDoc | None:
        """The documents one by one in one fresh single-process pool (a probe that raises does
        not break it)."""
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool(1)
        try:
            for raw in raws:
                try:
                    pool.submit(_probe, self.config_js, raw).result()
                except BrokenProcessPool:
                    return raw
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return None
