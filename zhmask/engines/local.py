"""The local engine: units in this process (``--workers 1``) or in a pool of processes.

At most ``2 * workers`` units are in flight, so memory stays bounded whatever the input size.
A worker that raises names the document that crashed it; a worker process that dies ends the
build with the unit it was running.  Either way the build fails rather than dropping work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask.config import BuildConfig
from zhmask.errors import BuildFailed, ZhmaskError
from zhmask.steps.read import RawDoc

_PIPE = None


def _init(config_dict: dict[str, Any]) -> None:
    global _PIPE
    from zhmask.pipeline import Pipeline

    _PIPE = Pipeline(BuildConfig.from_dict(config_dict))


def _job(unit: int, raws: list[RawDoc], out: str) -> dict[str, Any]:
    return _PIPE.run_unit(unit, raws, Path(out))  # type: ignore[union-attr]


def _probe(raw: RawDoc) -> None:
    """Run one document alone through every stage (used to find a document that kills a worker)."""
    _PIPE.probe(raw)  # type: ignore[union-attr]


def find_killer(config: BuildConfig, suspects: list[tuple[int, list[RawDoc]]], out: Path) -> str:
    """After a worker process died: rerun the units that were in flight one at a time, each in a
    fresh single-process pool, then the guilty unit's documents one by one; name what kills it."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    init = dict(initializer=_init, initargs=(config.to_dict(),))
    for unit, raws in sorted(suspects, key=lambda ur: ur[0]):
        span = f"{raws[0].id} .. {raws[-1].id}" if raws else "none"
        try:
            with ProcessPoolExecutor(max_workers=1, **init) as pool:
                pool.submit(_job, unit, raws, str(out)).result()
            continue  # this unit was only a bystander (its shard is now finished)
        except BrokenProcessPool:
            pass
        except Exception:
            continue
        pool = ProcessPoolExecutor(max_workers=1, **init)
        try:
            for raw in raws:
                try:
                    pool.submit(_probe, raw).result()
                except BrokenProcessPool:
                    return f"document {raw.id} (unit {unit}, documents {span})"
                except Exception:
                    pass
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return f"unit {unit} (documents {span}; no single document kills it alone)"
    units = ", ".join(str(u) for u, _ in sorted(suspects, key=lambda ur: ur[0]))
    return f"one of units {units} (none dies when rerun alone: out of memory?)"


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
                raise BuildFailed(str(exc)) from exc
        return
    # the process pool's modules only when there are workers (their import is start-up time)
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=config.workers, initializer=_init,
                             initargs=(config.to_dict(),)) as pool:
        inflight: dict[Any, tuple[int, str, list[RawDoc]]] = {}

        def drain(block_until: int) -> None:
            while len(inflight) > block_until:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    unit, first, raws = inflight.pop(fut)
                    try:
                        collect(fut.result())
                    except DocumentCrash as exc:
                        raise BuildFailed(str(exc)) from None
                    except BrokenProcessPool:
                        suspects = [(unit, raws)] + [(u, r) for u, _, r in inflight.values()]
                        inflight.clear()
                        pool.shutdown(wait=True, cancel_futures=True)
                        who = find_killer(config, suspects, out)
                        raise BuildFailed(f"a worker process died on {who}; finished shards are kept: "
                                          "rerun to resume") from None
                    except ZhmaskError:
                        raise
                    except Exception as exc:
                        raise BuildFailed(f"unit {unit} (documents {first}) failed in a worker: "
                                          f"{type(exc).__name__}: {exc}") from None

        for unit, raws in units:
            fut = pool.submit(_job, unit, raws, str(out))
            inflight[fut] = (unit, f"{raws[0].id} .. {raws[-1].id}" if raws else "none", raws)
            drain(2 * config.workers - 1)
        drain(0)
