"""The local engine: units in this process (``--workers 1``) or in a pool of processes.

At most ``2 * workers`` units are in flight, so memory stays bounded whatever the input size.
A worker that raises names the document that crashed it; a worker process that dies ends the
build with the unit it was running.  Either way the build fails rather than dropping work.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.steps.read import RawDoc

_PIPE = None


def _init(config_dict: dict[str, Any]) -> None:
    global _PIPE
    from zhmask.pipeline import Pipeline

    _PIPE = Pipeline(BuildConfig.from_dict(config_dict))


def _job(unit: int, raws: list[RawDoc], out: str) -> dict[str, Any]:
    return _PIPE.run_unit(unit, raws, Path(out))  # type: ignore[union-attr]


def run_units_local(config: BuildConfig, units: Iterator[tuple[int, list[RawDoc]]], out: Path,
                    collect: Callable[[dict[str, Any]], None]) -> None:
    from zhmask.pipeline import DocumentCrash, Pipeline

    if config.workers == 1:
        pipe = None
        for unit, raws in units:
            if pipe is None:
                pipe = Pipeline(config)
            try:
                collect(pipe.run_unit(unit, raws, out))
            except DocumentCrash as exc:
                raise ZhmaskError(str(exc)) from exc
        return
    with ProcessPoolExecutor(max_workers=config.workers, initializer=_init,
                             initargs=(config.to_dict(),)) as pool:
        inflight: dict[Any, tuple[int, str]] = {}

        def drain(block_until: int) -> None:
            while len(inflight) > block_until:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    unit, first = inflight.pop(fut)
                    try:
                        collect(fut.result())
                    except DocumentCrash as exc:
                        raise ZhmaskError(str(exc)) from None
                    except BrokenProcessPool:
                        raise ZhmaskError(f"a worker process died while building unit {unit} (first document {first}); "
                                          "rerun to resume, or use --workers 1 to find the document") from None

        for unit, raws in units:
            fut = pool.submit(_job, unit, raws, str(out))
            inflight[fut] = (unit, raws[0].id if raws else "-")
            drain(2 * config.workers - 1)
        drain(0)
