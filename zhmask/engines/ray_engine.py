"""The Ray engine: the same per-unit job as the local engine, run as Ray tasks.

``--engine ray`` starts a local Ray instance (``--workers`` CPUs), or connects to a cluster
with ``--ray-address ADDR`` (or the ``RAY_ADDRESS`` environment variable, as ``ray job submit``
sets it).  A Ray already initialised in the calling process is used as it is and left running.

Each unit is one Ray task (:func:`_unit_job`, one CPU) that receives the unit's descriptor
(file ranges, never documents), reads and decodes its own input, and writes its shard and stats
file.  The driver plans units lazily and keeps ``IN_FLIGHT_PER_WORKER * workers`` tasks
submitted, so a worker starts its next unit as soon as it finishes one and the driver holds a
bounded number of descriptors whatever the input size; it waits in ``ray.wait`` (no polling)
and hands each result on as it comes.  Each worker process builds one
:class:`~zhmask.pipeline.Pipeline` (segmenter, tokenizer, lexicons) and keeps it for every
later unit of the build.  (Plain tasks rather than Ray Data, whose scheduling loop left each
worker idle about 0.15 s between units and kept the driver busy: docs/engines.md.)

Each task writes its shard and stats file into ``--out`` itself, so on a cluster ``--out`` must
be a directory every node can write and the driver can read (NFS or another shared
filesystem): the driver checks that each finished shard is visible to it and fails the build,
naming the unit, when it is not.  Resume, the manifest and byte-identity come for free: a shard
is made by the same ``Pipeline.run_unit`` as with the local engine, whichever node runs it.

Failures never lose work silently: a document that crashes the pipeline ends the build with
``BuildFailed`` naming it (the worker returns the message instead of raising, so no Ray
traceback is printed); a worker process that dies (segfault, killed, out of memory) is retried
by Ray ``MAX_RETRIES`` times, then the units still in flight are rerun one at a time as plain
Ray tasks, then the guilty unit's documents (read again by the driver, each sent to its own
probe task, as the local engine does with its pool), to name the document that kills a worker.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

from zhmask import __version__
from zhmask.config import BuildConfig
from zhmask.engines.base import (Engine, Finish, Units, arrow_system_pool, config_json, payload, probe_job, run_job,
                                 worker_pipeline)
from zhmask.errors import BuildFailed, ZhmaskError
from zhmask.steps.plan import UnitDescriptor
from zhmask.steps.read import RawDoc

IN_FLIGHT_PER_WORKER = 2  # tasks submitted ahead per worker; bounds the driver's descriptors
MAX_RETRIES = 2  # Ray reruns a task whose worker process died this many times
INSTALL_HINT = "--engine ray needs Ray: pip install 'zhmask[ray]'"


# ---------------------------------------------------------------------------- transport
_RAW_FIELDS = [f.name for f in dataclasses.fields(RawDoc)]
_TUPLE_FIELDS = {f.name for f in dataclasses.fields(RawDoc) if isinstance(f.default, tuple)}


def encode_raws(raws: list[RawDoc]) -> bytes:
    """Records as UTF-8 JSON (what a probe task gets, to find a document that kills a worker):
    exact for every text the readers produce, lone surrogates included (``surrogatepass``), and
    no pickle.  Units themselves travel as descriptors (:func:`~zhmask.engines.base.payload`)."""
    rows = [[getattr(r, f) for f in _RAW_FIELDS] for r in raws]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def decode_raws(blob: bytes) -> list[RawDoc]:
    out = []
    for values in json.loads(bytes(blob).decode("utf-8", "surrogatepass")):
        d = dict(zip(_RAW_FIELDS, values))
        for f in _TUPLE_FIELDS:
            d[f] = tuple(d[f])
        out.append(RawDoc(**d))
    return out


# ---------------------------------------------------------------------------- worker side
def _pipeline(config_js: str, modules: list[str], version: str) -> Any:
    """The worker process's pipeline (:func:`~zhmask.engines.base.worker_pipeline`), after
    checking that it runs the driver's zhmask and importing the modules that register plugins."""
    arrow_system_pool()  # this process runs only this build's tasks; before a plugin imports pyarrow
    if version != __version__:  # another zhmask on this node would write other shards
        raise ZhmaskError(f"a Ray worker runs zhmask {__version__} but the driver runs {version}: install the "
                          "same zhmask on every node")
    import importlib

    for name in modules:  # modules that registered the selected tasks/strategies (plugins)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ZhmaskError(f"a Ray worker cannot import {name} (it registers a selected task or masking "
                              f"strategy): {exc}; install it on every node") from None
    return worker_pipeline(config_js)


def _unit_job(unit: int, job: str, config_json: str, out: str, modules: list[str], version: str,
              cwd: str = "") -> dict[str, Any]:
    """One unit (``job``: its descriptor as JSON) -> its input read here, its shard and stats
    file under ``out``: :func:`~zhmask.engines.base.run_job`'s result.  Input paths as the user
    gave them are relative to the driver's working directory ``cwd``: a worker elsewhere
    (another node) moves there first."""
    try:
        if cwd and os.getcwd() != cwd:
            try:
                os.chdir(cwd)  # this process only runs this build's tasks
            except OSError as exc:
                raise ZhmaskError(f"a Ray worker cannot enter the driver's directory {cwd} (relative input paths "
                                  f"are read from there; give absolute paths on a shared filesystem): "
                                  f"{exc.strerror or exc}") from None
        pipe = _pipeline(config_json, modules, version)
    except ZhmaskError as exc:
        return {"unit": unit, "stats": "", "error": str(exc), "kind": type(exc).__name__, "span": ""}
    return run_job(pipe, job, out)


# ---------------------------------------------------------------------------- driver side
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ZhmaskError(INSTALL_HINT) from None
    return ray


def registrant_modules(config: BuildConfig) -> list[str]:
    """Modules whose import registers the selected tasks and masking strategy.

    Ray workers are fresh processes (not forks of the driver): a task registered at run time
    must come from a module they can import.  Built-in entries come from zhmask itself."""
    from zhmask.labels import TASKS
    from zhmask.masking import STRATEGIES

    mods: list[str] = []
    for kind, reg, names in (("task", TASKS, config.tasks), ("masking strategy", STRATEGIES, [config.masking])):
        for name in names:
            mod = getattr(reg.entries[name].fn, "__module__", None) or "__main__"
            if mod == "__main__":
                raise ZhmaskError(f"--engine ray: {kind} {name!r} is registered in __main__, which Ray workers cannot "
                                  "import; register it in a module installed on every node")
            if not mod.startswith("zhmask.") and mod not in mods:
                mods.append(mod)
    return mods


def check_address(address: str, timeout: float = 5.0) -> None:
    """A Ray address must be reachable: ``ray.init`` would retry an unreachable one for minutes."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ZhmaskError(f"--ray-address {address!r}: expected HOST:PORT (the head node's GCS, e.g. 10.0.0.1:6379), "
                          "ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ZhmaskError(f"--engine ray: cannot connect to the Ray cluster at {address}: "
                          f"{exc.strerror or type(exc).__name__} (is `ray start --head` running there?)") from None


class _Session:
    """Start a local Ray, or connect to a cluster, for the build; leave a caller's Ray alone."""

    def __init__(self, ray: Any, config: BuildConfig) -> None:
        self.ray = ray
        self.config = config
        self.owned = False

    def __enter__(self) -> "_Session":
        ray = self.ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline; no usage reporting
        if not ray.is_initialized():
            address = self.config.ray_address or os.environ.get("RAY_ADDRESS") or None
            common = dict(log_to_driver=False, logging_level=logging.ERROR)
            if address:
                check_address(address)
            try:
                if address:
                    ray.init(address=address, **common)
                else:  # the object store holds only the tasks' small results (and a probe's document)
                    ray.init(address="local", num_cpus=self.config.workers, object_store_memory=128 << 20,
                             include_dashboard=False, **common)
            except Exception as exc:  # a bad address, an unreachable cluster, a version mismatch
                msg = " ".join(str(exc).split()) or type(exc).__name__
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ZhmaskError(f"--engine ray: cannot connect to {where}: {msg[:300]}") from None
            self.owned = True  # disconnect (a cluster keeps running) or stop the local instance
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            self.ray.shutdown()


class RayEngine(Engine):
    """Every unit a Ray task (:meth:`_run_tasks`); a dead worker is searched for with tasks
    without retries, on the cluster where it happened."""

    worker = "a Ray worker"

    def __init__(self, config: BuildConfig, out: Path, collect: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(config, Path(out).resolve(), collect)  # tasks run in other directories, on other nodes
        self.ray: Any = None
        self._stack: contextlib.ExitStack | None = None
        self._started = False
        self.job_kwargs = {"config_json": config_json(config), "out": str(self.out),
                           "modules": registrant_modules(config), "version": __version__, "cwd": os.getcwd()}

    def run(self, units: Units, finish: Finish) -> Any:
        self.ray = _import_ray()
        first = next(units, None)
        with contextlib.ExitStack() as self._stack:
            if first is not None:
                self._start()
                self._run_tasks(first, units)
            return finish(self.map)

    def _start(self) -> None:
        """Ray for this build, started (or connected to) once, at its first task: a rerun of a
        finished build never starts it."""
        if not self._started:
            self._stack.enter_context(_Session(self.ray, self.config))
            self._started = True

    def map(self, fn: Callable, jobs: list) -> list:
        """``fn`` over ``jobs`` as Ray tasks (the shuffle's scatter and gather jobs), the results
        in order; a job's ZhmaskError (a full disk) and a dead worker end the build in one line."""
        from ray.exceptions import RayError

        self._start()
        task = self.ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_call)
        refs = [task.remote(fn, job) for job in jobs]
        out = []
        for i, ref in enumerate(refs):
            try:
                error, value = self.ray.get(ref)
            except RayError as exc:
                error, value = True, BuildFailed(f"{self.worker} died while shuffling ({_ray_reason(exc)}); the "
                                                 "units' shards are kept: rerun to resume")
            if error:
                # the other jobs finish first (ray.cancel of a task whose reply is arriving can abort
                # the driver: a check in Ray's task manager, seen with Ray 2.x on the probes below)
                if refs[i + 1:]:
                    self.ray.wait(refs[i + 1:], num_returns=len(refs) - i - 1)
                raise value if isinstance(value, ZhmaskError) else ZhmaskError(value)
            out.append(value)
        return out

    def _run_tasks(self, first: UnitDescriptor, units: Units) -> None:
        """Every unit a task, ``IN_FLIGHT_PER_WORKER * workers`` submitted at a time; results
        handed on as they come.  When the build fails, the units still running finish (their
        shards are valid) before the error ends it; an interrupt stops at once."""
        from ray.exceptions import RayError

        ray = self.ray
        job = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_unit_job)
        kw = self.job_kwargs
        inflight: dict[Any, UnitDescriptor] = {}

        def drain(block_until: int) -> None:
            while len(inflight) > block_until:
                (ref,), _ = ray.wait(list(inflight), num_returns=1)
                desc = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                except RayError as exc:  # its worker process died (and Ray's retries)
                    suspects = [desc, *inflight.values()]
                    if inflight:  # the bystanders finish before each suspect is rerun alone
                        ray.wait(list(inflight), num_returns=len(inflight))
                        inflight.clear()
                    raise self._died(suspects, exc) from None
                if not res["error"]:
                    _check_visible(self.out, res["stats"])
                self.result(res)

        try:
            for desc in itertools.chain([first], units):
                inflight[job.remote(desc.unit, payload(desc), **kw)] = desc
                drain(IN_FLIGHT_PER_WORKER * self.config.workers - 1)
            drain(0)
        except KeyboardInterrupt:
            raise
        except BaseException:
            if inflight:  # let the running units finish: their shards are valid
                ray.wait(list(inflight), num_returns=len(inflight))
            raise

    def _died(self, suspects: list[UnitDescriptor], exc: BaseException) -> ZhmaskError:
        reason = _ray_reason(exc)
        if "No module named" in reason or "ModuleNotFoundError" in reason:
            return ZhmaskError(f"Ray workers cannot import zhmask's Ray engine ({reason}): install this zhmask "
                               f"({__version__}) on every node")
        return self.died(suspects, reason)

    def rerun_dies(self, desc: UnitDescriptor) -> bool:
        from ray.exceptions import RayError, RayTaskError

        run = self.ray.remote(num_cpus=1, max_retries=0)(_unit_job)
        try:
            self.ray.get(run.remote(desc.unit, payload(desc), **self.job_kwargs))
        except RayTaskError:
            return False
        except RayError:
            return True
        return False

    def first_killer(self, unit: int, raws: list[RawDoc]) -> RawDoc | None:
        """Every document a task at once, looked at in order once all have finished (they are
        not cancelled: ``ray.cancel`` of a probe whose worker was dying or replying aborted the
        driver now and then, "Check failed: it != submissible_tasks_.end()" in Ray's task
        manager; a probe is one document, so waiting costs little)."""
        from ray.exceptions import RayError, RayTaskError

        probe = self.ray.remote(num_cpus=1, max_retries=0)(_probe)
        kw = self.job_kwargs
        refs = [probe.remote(encode_raws([raw]), kw["config_json"], kw["modules"], kw["version"]) for raw in raws]
        if refs:
            self.ray.wait(refs, num_returns=len(refs))
        for raw, ref in zip(raws, refs):
            try:
                self.ray.get(ref)
            except RayTaskError:
                pass
            except RayError:
                return raw
        return None



def _check_visible(out: Path, stats: dict[str, Any]) -> None:
    shard = out / stats["shard"]["file"]
    table = stats.get("unigram")  # the unit's unigram table (--random-tokens unigram), written beside it
    if not (shard.exists() and shard.with_suffix(".stats.json").exists()
            and (table is None or (out / table["file"]).exists())):
        raise BuildFailed(f"unit {stats['unit']}: a Ray worker wrote {shard.name} but it is not in {out} on this "
                          "machine: with a Ray cluster, --out must be a shared filesystem (e.g. NFS) mounted at the "
                          "same path on every node")


def _call(fn: Callable, job: Any) -> tuple[bool, Any]:
    """A :meth:`RayEngine.map` job: ``(False, fn(job))``, or ``(True, message)`` for a ZhmaskError
    (so that no Ray traceback reaches the console)."""
    arrow_system_pool()  # a worker that ran no unit of this build yet
    try:
        return False, fn(job)
    except ZhmaskError as exc:
        return True, str(exc)


def _probe(blob: bytes, config_json: str, modules: list[str], version: str) -> None:
    """Run one document alone through every stage (to find a document that kills a worker)."""
    try:
        pipe = _pipeline(config_json, modules, version)
    except ZhmaskError:
        return  # raising is not dying
    (raw,) = decode_raws(blob)
    probe_job(pipe, raw)


def _ray_reason(exc: BaseException) -> str:
    """One line out of Ray's nested error: the innermost cause's class and first line."""
    seen = exc
    while True:
        nxt = getattr(seen, "cause", None) or seen.__cause__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    first = next((ln.strip() for ln in str(seen).splitlines() if ln.strip()), "")
    return f"{type(seen).__name__}: {first[:200]}" if first else type(seen).__name__
