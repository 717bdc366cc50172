"""--engine ray: byte-identical to the local engine, resumable, failures named as one line.

One local Ray instance (2 CPUs) is started for the module; every build below reuses it (the
engine leaves a Ray that the caller initialised running).  Skipped only when Ray is not
installed (it is in the dev extra, so these run in CI).
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import crash_input, run_cli
from zhmask.write.shards import sha256_file

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'zhmask[ray]')")

TESTS = Path(__file__).resolve().parents[1]  # tests/, where ray_plugin_tasks.py lives
SENT = "今天北京的天气很好，我们去天安门广场散步。"


@pytest.fixture(scope="module")
def ray_local():
    import logging

    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers inherit the environment of the Ray instance: they must import zhmask and the
    # test-only task module next to this file.
    root = str(TESTS.parent)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), root] + ([old] if old else []))
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, object_store_memory=200 << 20)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    yield ray
    ray.shutdown()


@pytest.fixture
def plugin_tasks():
    """Register the failing tasks of tests/ray_plugin_tasks.py for one test."""
    from zhmask.labels import TASKS

    mod = importlib.reload(importlib.import_module("ray_plugin_tasks"))
    yield mod
    for name in ("ray_crash_test", "ray_kill_test"):
        TASKS.pop(name, None)
        TASKS.entries.pop(name, None)


def _build(out: Path, *args: str) -> dict:
    code, _, err = run_cli("build-corpus", *args, "--out", str(out), "-q")
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text())


def _files(out: Path, folder: str = "data") -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((out / folder).iterdir())}


INEWS = ("--title-field", "title", "--tasks", "mlm", "--masking", "wwm", "--docs-per-shard", "20")


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, fixtures):
    out = tmp_path_factory.mktemp("local") / "o"
    return out, _build(out, str(fixtures / "inews_150.jsonl"), *INEWS, "--workers", "2")


def test_ray_output_is_byte_identical_to_local(ray_local, local_build, tmp_path, fixtures):
    local_out, local_m = local_build
    out = tmp_path / "ray"
    m = _build(out, str(fixtures / "inews_150.jsonl"), *INEWS, "--engine", "ray", "--workers", "2")
    assert len(m["shards"]) == 8
    assert _files(out) == _files(local_out)  # every shard and stats file, byte for byte
    assert _files(out, "unigram") == _files(local_out, "unigram") and len(_files(out, "unigram")) == 8  # unit tables
    assert m["shards"] == local_m["shards"]
    # the manifests differ only where they record how the build ran
    for mm in (m, local_m):
        for k in ("engine", "out"):
            mm["config"].pop(k)
    assert m == local_m
    assert ray.is_initialized()  # the caller's Ray is left running
    from zhmask.commands.verify import verify_build

    assert verify_build(out) == []


def test_cli_starts_and_stops_its_own_ray_quietly(local_build, tmp_path, fixtures):
    """What a user runs: a fresh process starts a private local Ray, builds, and stops it;
    nothing but zhmask's summary is printed."""
    import subprocess

    local_out, _ = local_build
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-m", "zhmask.cli", "build-corpus", str(fixtures / "inews_150.jsonl"), *INEWS,
                        "--engine", "ray", "--workers", "2", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    assert r.stdout.startswith("zhmask ") and "examples" in r.stdout
    assert _files(out) == _files(local_out)


def test_ray_resumes_a_local_build(ray_local, tmp_path, fixtures):
    """Unit-level resume (``--no-shuffle``: each unit's shard is a shard of the build; the shuffled
    default resumes from the same unit files under units/)."""
    local_out = tmp_path / "local"
    _build(local_out, str(fixtures / "inews_150.jsonl"), *INEWS, "--no-shuffle")
    out = tmp_path / "o"
    shutil.copytree(local_out, out)
    for unit in (2, 5):
        for p in (out / "data").glob(f"shard-0000{unit}.*"):
            p.unlink()
    keep = (out / "data" / "shard-00000.arrow").stat().st_mtime_ns
    code, stdout, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), *INEWS, "--no-shuffle",
                                "--engine", "ray", "--workers", "2", "--out", str(out))
    assert code == 0, err
    assert "(6 finished shards reused)" in stdout
    assert _files(out) == _files(local_out)
    assert (out / "data" / "shard-00000.arrow").stat().st_mtime_ns == keep


def test_finished_build_does_not_start_ray(local_build, tmp_path, fixtures, monkeypatch):
    local_out, _ = local_build
    out = tmp_path / "o"
    shutil.copytree(local_out, out)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started for a finished build"))
    code, stdout, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), *INEWS, "--engine", "ray",
                                "--workers", "2", "--out", str(out))
    assert code == 0, err
    assert "(8 finished shards reused)" in stdout
    assert _files(out) == _files(local_out)


def _crash_input(tmp_path: Path) -> Path:
    return crash_input(tmp_path, SENT)


def test_ray_crash_names_the_document(ray_local, plugin_tasks, tmp_path):
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(_crash_input(tmp_path)), "--tasks", "ray_crash_test",
                           "--docs-per-shard", "5", "--engine", "ray", "--workers", "2", "--out", str(out))
    assert code == 1, err
    assert "unit 3" in err and "in.txt:16 .. in.txt:20" in err and "RuntimeError: boom" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (out / "manifest.json").exists()
    assert not any((out / d / "shard-00003.arrow").exists() for d in ("data", "units"))


def test_ray_dead_worker_is_reported_with_the_document(ray_local, plugin_tasks, tmp_path, monkeypatch):
    from zhmask.engines import ray_engine

    monkeypatch.setattr(ray_engine, "MAX_RETRIES", 0)  # Ray's retries of the dead task only cost time here
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(_crash_input(tmp_path)), "--tasks", "ray_kill_test",
                           "--docs-per-shard", "5", "--engine", "ray", "--workers", "2", "--out", str(out))
    assert code == 1, err
    assert "a Ray worker died on document in.txt:18 (unit 3, documents in.txt:16 .. in.txt:20)" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (out / "manifest.json").exists()


def test_task_registered_in_main_is_refused(monkeypatch, tmp_path):
    from zhmask.config import BuildConfig
    from zhmask.engines.ray_engine import registrant_modules
    from zhmask.errors import ZhmaskError
    from zhmask.labels import TASKS
    from zhmask.labels.mlm import generate

    def gen(docs, ctx):
        yield from generate(docs, ctx)

    gen.__module__ = "__main__"
    monkeypatch.setitem(TASKS, "main_task", gen)
    monkeypatch.setitem(TASKS.entries, "main_task", type(TASKS.entries["mlm"])("main_task", gen))
    with pytest.raises(ZhmaskError, match="registered in __main__"):
        registrant_modules(BuildConfig(tasks=["main_task"]))
    assert registrant_modules(BuildConfig(tasks=["mlm"], masking="wwm")) == []


def test_raw_records_cross_to_workers_exactly():
    from zhmask.engines.ray_engine import decode_raws, encode_raws
    from zhmask.steps.read import RawDoc

    raws = [RawDoc("a.txt:1", "好\ud800文\x00\u2028", title="题", meta={"n": 1, "x": 0.1, "b": True, "s": "字"},
                   where="a.txt:1", nbytes=9, events=("invalid_utf8_replaced",)),
            RawDoc("a.txt:2", "", reject="empty")]
    assert decode_raws(encode_raws(raws)) == raws


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "--engine ray: cannot connect to the Ray cluster at 127.0.0.1:1: Connection refused"),
    ("headnode", "--ray-address 'headnode': expected HOST:PORT"),
])
def test_bad_ray_address_is_one_line(tmp_path, monkeypatch, address, message):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init on a bad address"))
    code, _, err = run_cli("build-corpus", "--engine", "ray", "--ray-address", address, "--out", str(tmp_path / "o"))
    assert code == 2, err
    assert err.startswith(f"zhmask: error: {message}"), err
    assert len(err.strip().splitlines()) == 1


def test_engine_ray_without_ray_installed_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, _, err = run_cli("build-corpus", "--engine", "ray", "--out", str(tmp_path / "o"))
    assert code == 2
    assert err.strip() == "zhmask: error: --engine ray needs Ray: pip install 'zhmask[ray]'"


def test_worker_refuses_another_zhmask_version_and_missing_plugins():
    from zhmask.config import BuildConfig
    from zhmask.engines.ray_engine import _pipeline
    from zhmask.errors import ZhmaskError

    cfg = json.dumps(BuildConfig().to_dict())
    with pytest.raises(ZhmaskError, match="runs zhmask .* but the driver runs 0.0.0"):
        _pipeline(cfg, [], "0.0.0")
    with pytest.raises(ZhmaskError, match="cannot import no_such_plugin_module .* install it on every node"):
        _pipeline(cfg, ["no_such_plugin_module"], __import__("zhmask").__version__)


def test_map_runs_jobs_in_order_and_reports_a_job_error_in_one_line(ray_local, tmp_path):
    """The shuffle's jobs run as Ray tasks (``RayEngine.map``): results in job order; a job's
    ZhmaskError reaches the driver as itself, its message without a Ray traceback."""
    import contextlib

    from ray_plugin_tasks import shuffle_like_job
    from zhmask.config import BuildConfig
    from zhmask.engines.ray_engine import RayEngine
    from zhmask.errors import ZhmaskError

    engine = RayEngine(BuildConfig(workers=2), tmp_path, lambda st: None)
    engine.ray = ray_local
    with contextlib.ExitStack() as engine._stack:
        assert engine.map(shuffle_like_job, [3, 1, 4, 1, 5]) == [30, 10, 40, 10, 50]
        with pytest.raises(ZhmaskError) as err:
            engine.map(shuffle_like_job, [1, 2, 3])
    assert type(err.value) is ZhmaskError
    assert str(err.value) == "shuffle: cannot write /out/data/shard-00002.arrow: No space left on device"
    assert ray_local.is_initialized()  # a Ray the caller started is left running


class _FakeRay:
    """Just enough of ``ray`` for the engine's task loop: a task runs when the driver waits for
    it (the submission order, the bound on tasks in flight and their arguments are tested)."""

    def __init__(self):
        self.calls, self.inflight = [], []

    def remote(self, num_cpus, max_retries):
        fake = self

        class _Remote:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args, **kwargs):
                fake.calls.append(args)
                ref = _FakeRef(self.fn, args, kwargs)
                fake.inflight.append(ref)
                return ref

        return _Remote

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        self.inflight.remove(ref)
        return ref.fn(*ref.args, **ref.kwargs)


class _FakeRef:
    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs


def test_driver_holds_a_bounded_number_of_units(tmp_path, fixtures):
    """Units are planned lazily: never more than 2 x --workers tasks in flight ahead of the
    finished ones, each unit submitted once, in order.  Tasks get descriptors, not documents."""
    from zhmask.api import _inputs
    from zhmask.config import BuildConfig
    from zhmask.engines.ray_engine import IN_FLIGHT_PER_WORKER, RayEngine
    from zhmask.steps.plan import UnitDescriptor, plan_units

    cfg = BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], docs_per_shard=5, workers=2, out=str(tmp_path))
    read, done, held = [], [], []

    def units():
        for desc in plan_units(cfg, _inputs(cfg)[0], []):
            read.append(desc.unit)
            held.append(len(read) - len(done))
            yield desc

    fake = _FakeRay()
    engine = RayEngine(cfg, tmp_path, lambda st: done.append(st["unit"]))
    engine.ray = fake
    units_iter = units()
    engine._run_tasks(next(units_iter), units_iter)
    assert done == list(range(30)) and len(read) == 30 and not fake.inflight
    assert max(held) == IN_FLIGHT_PER_WORKER * cfg.workers  # planned while tasks run, no further ahead
    # each task's argument is the unit's descriptor (JSON, bounded), never its documents' text
    assert [unit for unit, _ in fake.calls] == list(range(30))
    assert all(len(job) < 400 and UnitDescriptor.from_json(job).unit == unit for unit, job in fake.calls)
    assert not any("红星" in job for _, job in fake.calls)  # the first record's text


def test_a_task_on_another_node_reads_relative_inputs_from_the_driver_directory(tmp_path, monkeypatch):
    """Relative input paths are the driver's: a task whose process runs elsewhere (another
    node) moves to the driver's directory before reading, or fails in one line."""
    from zhmask import __version__
    from zhmask.config import BuildConfig
    from zhmask.engines.base import config_json, payload
    from zhmask.engines.ray_engine import _unit_job
    from zhmask.steps.plan import UnitDescriptor
    from zhmask.steps.read import Segment

    (tmp_path / "in.txt").write_text(f"{SENT}\n{SENT}\n", encoding="utf-8")
    (tmp_path / "node").mkdir()
    monkeypatch.chdir(tmp_path / "node")  # not where the driver was
    job = payload(UnitDescriptor(0, (Segment("in.txt", "in.txt", "text", 0, (tmp_path / "in.txt").stat().st_size),)))
    cfg = config_json(BuildConfig(segmenter="char", entities="none", masking="none", tasks=["mlm"], shuffle=False))
    res = _unit_job(0, job, cfg, str(tmp_path / "out"), [], __version__, cwd=str(tmp_path))
    assert res["error"] == "" and res["stats"]["documents_read"] == 2
    assert Path.cwd() == tmp_path
    res = _unit_job(0, job, cfg, str(tmp_path / "out"), [], __version__, cwd=str(tmp_path / "nowhere"))
    assert res["kind"] == "ZhmaskError" and "cannot enter the driver's directory" in res["error"]
