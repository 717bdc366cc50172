"""What every engine shares: the job a worker runs on one unit, the mapping of its failures to
one line, and the search for the document that kills a worker process.

A unit reaches a worker as a :class:`~zhmask.steps.plan.UnitDescriptor` (its file ranges, as
JSON: :func:`payload`), never as documents: the worker reads and decodes its own input.
A worker runs :func:`run_job`: the unit's shard and stats, or its failure as data (a
:class:`~zhmask.pipeline.DocumentCrash` naming the document, a :class:`~zhmask.errors.ZhmaskError`
such as a full disk, anything else), so that the driver reports it as one line (no worker
traceback) and no engine retries a deterministic failure.  The driver hands each result to
:meth:`Engine.result`.  When a worker process dies instead (segfault, killed, out of memory),
:meth:`Engine.find_killer` reruns the units that were in flight one at a time, then the guilty
unit's documents one by one (read again by the driver), each where the engine runs work
(:meth:`Engine.rerun_dies`, :meth:`Engine.first_killer`), and names what kills a worker.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask.config import BuildConfig
from zhmask.errors import BuildFailed, ZhmaskError
from zhmask.steps.plan import UnitDescriptor, read_unit
from zhmask.steps.read import RawDoc

Units = Iterator[UnitDescriptor]
_PIPES: dict[str, Any] = {}  # per worker process: config JSON -> Pipeline


def span(raws: list[RawDoc]) -> str:
    """The documents of a unit, as messages name them: ``first .. last``."""
    return f"{raws[0].id} .. {raws[-1].id}" if raws else "none"


def payload(desc: UnitDescriptor) -> str:
    """What a worker receives for a unit: its descriptor as JSON (a few hundred bytes)."""
    return desc.to_json()


def config_json(config: BuildConfig) -> str:
    """The configuration as workers receive it (and key their pipeline by)."""
    return json.dumps(config.to_dict(), sort_keys=True)


def arrow_system_pool() -> None:
    """Arrow's buffers from the system allocator in this process (``ARROW_DEFAULT_MEMORY_POOL=
    system``) unless the user set that variable: ``zhmask build-corpus`` before anything loads
    (:func:`zhmask.cli.run`; its ``--workers`` processes and a local Ray inherit it), and Ray
    workers that do not inherit the driver's environment (a cluster's).  Only before pyarrow is
    imported (it reads the variable when it loads; a Ray worker has not imported it when its
    first task starts); after, the process keeps its pool.  Switching with ``pa.set_memory_pool`` mid-process is
    not done: it moves only pyarrow's own allocations, not those of Arrow's C++ IPC and compute
    paths (a 40 MB build switched that way peaked at 308 MiB, with the variable at 253 MiB and
    with neither at 372), and a process then holds buffers of two pools."""
    import os
    import sys

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and "pyarrow" not in sys.modules:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"


def worker_pipeline(config_js: str) -> Any:
    """The :class:`~zhmask.pipeline.Pipeline` of this worker process for a configuration
    (:func:`config_json`), built once (segmenter, tokenizer, lexicons) and kept for every later
    unit of the build; one build at a time per worker process."""
    pipe = _PIPES.get(config_js)
    if pipe is None:
        from zhmask.pipeline import Pipeline

        _PIPES.clear()
        pipe = _PIPES[config_js] = Pipeline(BuildConfig.from_dict(json.loads(config_js)))
    return pipe


def run_job(pipe: Any, job: str, out: str | Path) -> dict[str, Any]:
    """One unit (its :func:`payload`) -> read its input, write its shard and stats file under
    ``out``: ``{"unit", "stats", "error", "kind", "span"}`` with the stats (and the unit's
    input ranges with their sha256 in them), or the error and its kind (``crash``: a document
    crashed the pipeline, the message names it; the name of a ZhmaskError class, such as a bad
    input file or a full disk; ``other``) and the unit's documents (``first .. last``)."""
    from zhmask.pipeline import DocumentCrash

    desc = UnitDescriptor.from_json(job)
    unit, raws = desc.unit, []
    try:
        got = read_unit(pipe.config, desc)
        raws = got.raws
        extra = {"input_ranges": got.ranges, **({"bad_files": got.bad_files} if got.bad_files else {})}
        return {"unit": unit, "stats": pipe.run_unit(unit, raws, Path(out), extra), "error": "", "kind": "",
                "span": ""}
    except DocumentCrash as exc:
        return {"unit": unit, "stats": None, "error": str(exc), "kind": "crash", "span": span(raws)}
    except ZhmaskError as exc:  # a bad input, a write error (full disk, ...): exit code of its class
        return {"unit": unit, "stats": None, "error": str(exc), "kind": type(exc).__name__, "span": span(raws)}
    except Exception as exc:
        return {"unit": unit, "stats": None, "error": f"{type(exc).__name__}: {exc}", "kind": "other",
                "span": span(raws) if raws else desc.where()}


def probe_job(pipe: Any, raw: RawDoc) -> None:
    """Run one document alone through every stage, writing nothing (to find a document that
    kills a worker: raising is not dying, so errors are dropped)."""
    try:
        pipe.probe(raw)
    except Exception:
        pass


Finish = Callable[[Callable[[Callable, list], list]], Any]  # finish(map): the build's last step


def map_here(fn: Callable, jobs: list) -> list:
    """An engine's :meth:`Engine.map` in this process."""
    return [fn(job) for job in jobs]


class Engine:
    """An engine runs a build's units and hands each unit's stats to ``collect``; then, with its
    workers still up, ``finish(self.map)`` (the manifest and the shuffle, whose jobs run where
    the units ran).

    Subclasses implement :meth:`run` (units, then ``finish``), a ``map(fn, jobs)`` that runs a
    module-level function over picklable jobs on their workers and returns the results in order,
    and, to name a document that kills a worker process, :meth:`rerun_dies` and
    :meth:`first_killer`.  ``worker`` names where a unit runs in messages."""

    worker = "a worker process"

    def __init__(self, config: BuildConfig, out: Path, collect: Callable[[dict[str, Any]], None]) -> None:
        self.config, self.out, self.collect = config, out, collect

    def run(self, units: Units, finish: Finish) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ results and errors
    def result(self, res: dict[str, Any], where: str | None = None) -> None:
        """A :func:`run_job` result: its stats collected, or its error raised as one line
        (``where`` the unit ran, in words: default :attr:`worker`)."""
        if res["error"]:
            raise self.error(res, where)
        self.collect(res["stats"])

    def error(self, res: dict[str, Any], where: str | None = None) -> ZhmaskError:
        """The exception a failed :func:`run_job` result ends the build with."""
        kind, msg = res["kind"], res["error"]
        if kind == "crash":
            return BuildFailed(msg)
        if kind == "other":
            return BuildFailed(f"unit {res['unit']} (documents {res['span']}) failed in {where or self.worker}: {msg}")
        from zhmask import errors

        cls = getattr(errors, kind, ZhmaskError)
        return (cls if isinstance(cls, type) and issubclass(cls, ZhmaskError) else ZhmaskError)(msg)

    def died(self, suspects: list[UnitDescriptor], reason: str = "") -> BuildFailed:
        """The error of a build whose worker process died while ``suspects`` were in flight,
        naming what kills it (:meth:`find_killer`)."""
        who = self.find_killer(suspects)
        return BuildFailed(f"{self.worker} died on {who}{f' ({reason})' if reason else ''}; finished shards are "
                           "kept: rerun to resume")

    # ------------------------------------------------------------------ finding the killer
    def rerun_dies(self, desc: UnitDescriptor) -> bool:
        """Rerun one unit alone, without retries; whether its worker process died (a unit that
        finishes writes its shard; one that fails otherwise is not the killer)."""
        raise NotImplementedError

    def first_killer(self, unit: int, raws: list[RawDoc]) -> RawDoc | None:
        """The first of ``raws`` whose :func:`probe_job` alone kills a worker process, or None."""
        raise NotImplementedError

    def find_killer(self, suspects: list[UnitDescriptor]) -> str:
        """After a worker process died: the units that were in flight rerun one at a time, then
        the guilty unit's documents (read again here, by the readers the workers use) one by
        one; what kills a worker, in words."""
        suspects = sorted(suspects, key=lambda d: d.unit)
        for desc in suspects:
            if not self.rerun_dies(desc):
                continue  # a bystander (its shard is now finished), or an ordinary error reported on rerun
            raws = read_unit(self.config, desc).raws
            raw = self.first_killer(desc.unit, raws)
            if raw is not None:
                return f"document {raw.id} (unit {desc.unit}, documents {span(raws)})"
            return f"unit {desc.unit} (documents {span(raws)}; no single document kills it alone)"
        units = ", ".join(str(d.unit) for d in suspects)
        return f"one of units {units} (none dies when rerun alone: out of memory?)"
