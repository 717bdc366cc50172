"""The Ray engine: the same per-unit job as the local engine, run on Ray Data.

``--engine ray`` starts a local Ray instance (``--workers`` CPUs), or connects to a cluster
with ``--ray-address ADDR`` (or the ``RAY_ADDRESS`` environment variable, as ``ray job submit``
sets it).  A Ray already initialised in the calling process is used as it is and left running.

Units stream through Ray Data in windows: the driver plans ``WINDOW_PER_WORKER * workers``
units (descriptors: file ranges, never documents), turns them into a dataset of one block per
unit (``ray.data.from_items``) and maps :func:`_unit_job` over it with ``--workers`` concurrent
tasks; each task reads and decodes its own unit's input.  The next window starts when the
current one is down to its last ``workers`` units (so no CPU waits for a window's slowest
unit), and the driver plans it while the current one runs; at most two windows run at once
and a third is being planned.  Each worker process builds one
:class:`~zhmask.pipeline.Pipeline` (segmenter, tokenizer, lexicons) and keeps it for every
later unit of the build.

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

import dataclasses
import itertools
import json
import logging
import os
import queue
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask import __version__
from zhmask.config import BuildConfig
from zhmask.engines.base import Engine, Units, config_json, payload, probe_job, run_job, worker_pipeline
from zhmask.errors import BuildFailed, ZhmaskError
from zhmask.steps.plan import UnitDescriptor
from zhmask.steps.read import RawDoc

WINDOW_PER_WORKER = 2  # units of a window per worker; bounds memory (see the module docstring)
MAX_RETRIES = 2  # Ray reruns a task whose worker process died this many times (Ray Data's default is forever)
INSTALL_HINT = "--engine ray needs Ray Data: pip install 'zhmask[ray]'"


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


def _unit_job(row: dict[str, Any], config_json: str, out: str, modules: list[str], version: str,
              cwd: str = "") -> dict[str, Any]:
    """One unit (a row ``{"unit", "job"}``: its descriptor as JSON) -> its input read here, its
    shard and stats file under ``out``: :func:`~zhmask.engines.base.run_job`'s result with the
    stats as JSON (a Ray Data row).  Input paths as the user gave them are relative to the
    driver's working directory ``cwd``: a worker elsewhere (another node) moves there first."""
    unit = int(row["unit"])
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
    res = run_job(pipe, row["job"], out)
    res["stats"] = json.dumps(res["stats"]) if res["stats"] is not None else ""
    return res


# ---------------------------------------------------------------------------- driver side
def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
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
        self.threads: list[threading.Thread] = []  # the driver's window threads
        self._saved: list[tuple[Any, str, Any]] = []

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
                else:
                    window = WINDOW_PER_WORKER * self.config.workers
                    store = min(2 << 30, max(128 << 20, 3 * window * (16 << 20)))  # the windows held at once
                    ray.init(address="local", num_cpus=self.config.workers, object_store_memory=store,
                             include_dashboard=False, **common)
            except Exception as exc:  # a bad address, an unreachable cluster, a version mismatch
                msg = " ".join(str(exc).split()) or type(exc).__name__
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ZhmaskError(f"--engine ray: cannot connect to {where}: {msg[:300]}") from None
            self.owned = True  # disconnect (a cluster keeps running) or stop the local instance
        self._quiet()
        return self

    def _quiet(self) -> None:
        """No progress bars or per-dataset INFO lines on the console (they go to Ray's log files)."""
        from ray.data import DataContext

        ctx = DataContext.get_current()
        for attr, value in (("enable_progress_bars", False), ("print_on_execution_start", False)):
            if hasattr(ctx, attr):
                self._saved.append((ctx, attr, getattr(ctx, attr)))
                setattr(ctx, attr, value)
        for h in logging.getLogger("ray.data").handlers:
            if not isinstance(h, logging.FileHandler) and "File" not in type(h).__name__:
                self._saved.append((h, "level", h.level))
                h.setLevel(logging.CRITICAL)  # failures are reported by zhmask itself

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            # After an interrupt, window threads may still call into Ray: they must not start a new
            # local Ray (Ray's automatic ray.init, RAY_ENABLE_AUTO_CONNECT=0, read once at import).
            hook = sys.modules.get("ray._private.auto_init_hook")
            auto = getattr(hook, "enable_auto_connect", None)
            if auto is not None:
                hook.enable_auto_connect = False  # type: ignore[union-attr]
            try:
                self.ray.shutdown()
                for t in self.threads:
                    t.join(timeout=10)  # they end on the error shutdown gives them
            finally:
                if auto is not None:
                    hook.enable_auto_connect = auto  # type: ignore[union-attr]
        for obj, attr, value in reversed(self._saved):
            if attr == "level":
                obj.setLevel(value)
            else:
                setattr(obj, attr, value)


def _map_compute(ray: Any, workers: int) -> dict[str, Any]:
    strategy = getattr(ray.data, "TaskPoolStrategy", None)
    try:
        return {"compute": strategy(size=workers)}  # Ray >= 2.51 (``concurrency`` is deprecated there)
    except TypeError:  # no TaskPoolStrategy, or one without a size
        return {"concurrency": workers}


class RayEngine(Engine):
    """The units on Ray Data (:class:`_Driver`); a dead worker is searched for as plain Ray tasks
    without retries, on the cluster where it happened."""

    worker = "a Ray worker"

    def __init__(self, config: BuildConfig, out: Path, collect: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(config, Path(out).resolve(), collect)  # tasks run in other directories, on other nodes
        self.ray: Any = None
        self.job_kwargs = {"config_json": config_json(config), "out": str(self.out),
                           "modules": registrant_modules(config), "version": __version__, "cwd": os.getcwd()}

    def run(self, units: Units) -> None:
        self.ray = _import_ray()
        first = next(units, None)
        if first is None:
            return  # every unit is finished already (resume): no need to start Ray
        with _Session(self.ray, self.config) as session:
            driver = _Driver(self)
            session.threads = driver.threads
            driver.run(itertools.chain([first], units))

    def rerun_dies(self, desc: UnitDescriptor) -> bool:
        from ray.exceptions import RayError, RayTaskError

        run = self.ray.remote(num_cpus=1, max_retries=0)(_unit_job)
        try:
            self.ray.get(run.remote({"unit": desc.unit, "job": payload(desc)}, **self.job_kwargs))
        except RayTaskError:
            return False
        except RayError:
            return True
        return False

    def first_killer(self, unit: int, raws: list[RawDoc]) -> RawDoc | None:
        """Every document a task at once, looked at in order."""
        from ray.exceptions import RayError, RayTaskError

        probe = self.ray.remote(num_cpus=1, max_retries=0)(_probe)
        kw = self.job_kwargs
        refs = [probe.remote(encode_raws([raw]), kw["config_json"], kw["modules"], kw["version"]) for raw in raws]
        for raw, ref in zip(raws, refs):
            try:
                self.ray.get(ref)
            except RayTaskError:
                pass
            except RayError:
                for other in refs:
                    try:
                        self.ray.cancel(other)
                    except Exception:  # already finished
                        pass
                return raw
        return None



def _windows(units: Units, size: int) -> Iterator[dict[int, UnitDescriptor]]:
    window: dict[int, UnitDescriptor] = {}
    for desc in units:
        window[desc.unit] = desc
        if len(window) >= size:
            yield window
            window = {}
    if window:
        yield window


class _Driver:
    """Windows of units on Ray Data, the next one started while the last units of the previous
    one finish (so no CPU waits for a window's slowest unit, and the driver plans the next
    window while the current one runs).  At most two windows run at once."""

    def __init__(self, engine: RayEngine) -> None:
        self.engine = engine
        self.ray, self.config, self.job_kwargs = engine.ray, engine.config, engine.job_kwargs
        self.results: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.active: dict[int, dict[int, UnitDescriptor]] = {}  # window -> its unfinished units
        self.threads: list[threading.Thread] = []

    def run(self, units: Units) -> None:
        ok = False
        try:
            for k, window in enumerate(_windows(units, WINDOW_PER_WORKER * self.config.workers)):
                # start this window once the previous ones are down to their last round of units
                while len(self.active) >= 2 or sum(map(len, self.active.values())) > self.config.workers:
                    self._handle(*self.results.get())
                self._start(k, window)
                del window
            while self.active:
                self._handle(*self.results.get())
            ok = True
        finally:
            self.stop.set()
            if ok or not isinstance(sys.exc_info()[1], KeyboardInterrupt):
                for t in self.threads:  # the units still running finish (their shards are valid), then stop
                    t.join()

    def _start(self, k: int, window: dict[int, UnitDescriptor]) -> None:
        items = [{"unit": unit, "job": payload(desc)} for unit, desc in window.items()]
        try:  # one unit a block, so a task a unit
            ds = self.ray.data.from_items(items, override_num_blocks=len(items))
        except TypeError:  # Ray < 2.10
            ds = self.ray.data.from_items(items, parallelism=len(items))
        del items
        with warnings.catch_warnings():  # max_retries has no named parameter yet (Ray 2.60)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            ds = ds.map(_unit_job, fn_kwargs=self.job_kwargs, num_cpus=1, max_retries=MAX_RETRIES,
                        **_map_compute(self.ray, min(self.config.workers, len(window))))
        self.active[k] = dict(window)
        t = threading.Thread(target=self._drain, args=(k, ds), name=f"zhmask-ray-window-{k}", daemon=True)
        self.threads.append(t)
        t.start()

    def _drain(self, k: int, ds: Any) -> None:
        rows = iter(ds.iter_rows())
        try:
            for row in rows:
                self.results.put((k, row, None))
                if self.stop.is_set():
                    break
        except BaseException as exc:  # a worker process died (and its retries)
            self.results.put((k, None, exc))
            return
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()  # stop the window's remaining tasks when the build fails part-way
        self.results.put((k, None, None))

    def _handle(self, k: int, row: dict[str, Any] | None, exc: BaseException | None) -> None:
        pending = self.active[k]
        if exc is not None:
            reason = _ray_reason(exc)
            if "No module named" in reason or "ModuleNotFoundError" in reason:
                raise ZhmaskError(f"Ray workers cannot import zhmask's Ray engine ({reason}): install this zhmask "
                                  f"({__version__}) on every node") from None
            raise self.engine.died([pending[u] for u in sorted(pending)], reason)
        if row is None:  # the window's dataset is exhausted
            del self.active[k]
            if pending:  # Ray Data returned fewer rows than units: never drop work silently
                raise BuildFailed(f"Ray returned no result for unit(s) {', '.join(map(str, sorted(pending)))}; "
                                  "finished shards are kept: rerun to resume")
            return
        unit = int(row["unit"])
        pending.pop(unit)
        if not row["error"]:
            row = {**row, "stats": json.loads(row["stats"])}
            _check_visible(self.engine.out, row["stats"])
        self.engine.result(row)


def _check_visible(out: Path, stats: dict[str, Any]) -> None:
    shard = out / stats["shard"]["file"]
    table = stats.get("unigram")  # the unit's unigram table (--random-tokens unigram), written beside it
    if not (shard.exists() and shard.with_suffix(".stats.json").exists()
            and (table is None or (out / table["file"]).exists())):
        raise BuildFailed(f"unit {stats['unit']}: a Ray worker wrote {shard.name} but it is not in {out} on this "
                          "machine: with a Ray cluster, --out must be a shared filesystem (e.g. NFS) mounted at the "
                          "same path on every node")


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
