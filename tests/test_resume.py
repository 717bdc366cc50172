"""Resume: a build killed with SIGKILL and rerun gives the shards of a build never interrupted.

The kill test runs the real CLI in a subprocess (its own process group, killed with SIGKILL
together with any workers) part-way through, twice, then lets a third run finish.  The state
tests build every on-disk state a kill can leave (a partial temporary shard, a renamed shard
without its stats file, a partial stats file, no manifest, a damaged shard) and check that a
rerun repairs exactly what is missing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from zhmask.commands.verify import verify_build

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, fixtures) -> Path:
    """600 real news documents (the 150 iNews fixtures four times, ids differ by line)."""
    src = tmp_path_factory.mktemp("resume") / "news.jsonl"
    lines = (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
    return src


def _args(corpus: Path, out: Path, *extra: str) -> list[str]:
    """Unit-level resume: ``--no-shuffle``, so that each unit's shard is a shard of the build
    (test_kill_9_and_resume_with_the_shuffle covers the default, shuffled build)."""
    return ["build-corpus", str(corpus), "--docs-per-shard", "4", "--masking", "none", "--out", str(out), "-q",
            "--no-shuffle", *extra]


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("clean") / "o"
    code, _, err = run_cli(*_args(corpus, out))
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text())


def _snapshot(out: Path, folder: str = "data") -> dict[str, tuple[int, int]]:
    """inode and mtime of every finished unit shard (shard and stats file both present)."""
    snap = {}
    for st in (out / folder).glob("*.stats.json"):
        shard = st.with_name(st.name.replace(".stats.json", ".arrow"))
        if shard.exists():
            s = shard.stat()
            snap[shard.name] = (s.st_ino, s.st_mtime_ns)
    return snap


def _run_and_kill(args: list[str], out: Path, after_shards: int, workers: int, folder: str = "data") -> bool:
    """Start the CLI, SIGKILL its process group once ``after_shards`` stats files exist in ``folder``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from zhmask.cli import main; main()", *args,
                             "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False  # finished before we could kill it
            data = out / folder
            if data.is_dir() and len(list(data.glob("*.stats.json"))) >= after_shards:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        raise AssertionError("the build made no progress")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_and_resume_gives_identical_shards(corpus, clean, tmp_path, workers):
    out = tmp_path / "o"
    args = _args(corpus, out)
    n_units = len(clean["shards"])
    assert n_units == 150
    killed = _run_and_kill(args, out, after_shards=5, workers=workers)
    assert killed, "the build finished before it could be killed"
    assert not (out / "manifest.json").exists()
    first = _snapshot(out)
    assert 5 <= len(first) < n_units
    killed = _run_and_kill(args, out, after_shards=len(first) + 40, workers=workers)
    assert killed
    second = _snapshot(out)
    assert len(second) > len(first)
    assert {k: second[k] for k in first} == first  # finished shards were not redone
    code, _, err = run_cli(*args, "--workers", str(workers))
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["shards"] == clean["shards"]  # same files, rows and sha256 as a build never interrupted
    final = _snapshot(out)
    assert {k: final[k] for k in second} == second
    for k in ("documents_read", "documents_written", "documents_rejected", "examples_by_task", "events"):
        assert m[k] == clean[k]
    assert not list((out / "data").glob("*.tmp-*")) and not list(out.glob("*.tmp-*"))
    assert verify_build(out) == []


def test_kill_9_and_resume_with_the_shuffle(corpus, tmp_path):
    """The default build shuffles: its units go to units/ first; killed there and rerun, it gives
    the shards of a build never interrupted, and units/ is gone."""
    args = [a for a in _args(corpus, tmp_path / "o") if a != "--no-shuffle"]
    clean_out = tmp_path / "clean"
    code, _, err = run_cli(*[a if a != str(tmp_path / "o") else str(clean_out) for a in args])
    assert code == 0, err
    out = tmp_path / "o"
    assert _run_and_kill(args, out, after_shards=20, workers=2, folder="units")
    first = _snapshot(out, "units")
    assert 20 <= len(first) < 150 and not (out / "manifest.json").exists()
    code, _, err = run_cli(*args, "--workers", "2")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["shards"] == json.loads((clean_out / "manifest.json").read_text())["shards"]
    assert not (out / "units").exists() and verify_build(out) == []


def _finished(corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "o"
    code, _, err = run_cli(*_args(corpus, out))
    assert code == 0, err
    return out


def test_every_state_a_kill_can_leave_is_repaired(corpus, clean, tmp_path):
    out = _finished(corpus, tmp_path)
    data = out / "data"
    before = _snapshot(out)
    # killed while writing shard 7: only a partial temporary file
    (data / "shard-00007.arrow").rename(data / "shard-00007.arrow.tmp-4242")
    (data / "shard-00007.stats.json").unlink()
    (data / "shard-00007.arrow.tmp-4242").write_bytes(b"ARROW partial")
    # killed between renaming shard 8 and writing its stats
    (data / "shard-00008.stats.json").unlink()
    # killed while writing the stats file of shard 9
    (data / "shard-00009.stats.json").rename(data / "shard-00009.stats.json.tmp-4242")
    (data / "shard-00009.stats.json.tmp-4242").write_text('{"docum')
    # shard 10 damaged after it was finished (its sha256 no longer matches its stats)
    with open(data / "shard-00010.arrow", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    # killed before the manifest was written
    (out / "manifest.json").unlink()
    (out / "manifest.json.tmp-4242").write_text("{")
    code, _, err = run_cli(*_args(corpus, out))
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["shards"] == clean["shards"]
    after = _snapshot(out)
    redone = {k for k in before if after.get(k) != before[k]}
    assert redone == {"shard-00007.arrow", "shard-00008.arrow", "shard-00009.arrow", "shard-00010.arrow"}
    assert not list(data.glob("*.tmp-*")) and not list(out.glob("*.tmp-*"))
    assert verify_build(out) == []


def test_rerun_of_a_finished_build_redoes_nothing(corpus, clean, tmp_path):
    out = _finished(corpus, tmp_path)
    before = _snapshot(out)
    code, _, err = run_cli(*_args(corpus, out))
    assert code == 0, err
    assert _snapshot(out) == before
    assert json.loads((out / "manifest.json").read_text())["shards"] == clean["shards"]


def test_another_configuration_in_a_partial_build_is_refused(corpus, clean, tmp_path):
    out = tmp_path / "o"
    assert _run_and_kill(_args(corpus, out), out, after_shards=3, workers=1)
    code, _, err = run_cli(*_args(corpus, out, "--seed", "99"))
    assert code == 2 and "another configuration" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    # execution-only options (workers) are not a different configuration
    code, _, err = run_cli(*_args(corpus, out, "--workers", "2"))
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["shards"] == clean["shards"]
    code, _, err = run_cli(*_args(corpus, out, "--seed", "99", "--overwrite"))
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["shards"] != clean["shards"]
    assert verify_build(out) == []


def test_changed_input_is_not_resumed_from_stale_shards(tmp_path, fixtures):
    src = tmp_path / "news.jsonl"
    src.write_text((fixtures / "inews_150.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "o"
    args = ["build-corpus", str(src), "--docs-per-shard", "50", "--out", str(out), "-q"]
    code, _, err = run_cli(*args)
    assert code == 0, err
    lines = src.read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")  # the input shrank
    code, _, err = run_cli(*args)
    assert code == 2 and "news.jsonl was added, removed or modified" in err and "--overwrite" in err
    code, _, err = run_cli(*args, "--overwrite")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["documents_read"] == 100 and len(m["shards"]) == 2
    assert verify_build(out) == []


def test_shards_of_another_schema_version_are_not_resumed(tmp_path, fixtures, monkeypatch):
    """An output directory written by a zhmask with another shard schema is refused, not mixed."""
    from zhmask import schema
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.errors import ZhmaskError

    cfg = dict(inputs=[str(fixtures / "inews_150.jsonl")], docs_per_shard=50, out=str(tmp_path / "o"))
    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", "0")
        build_corpus(BuildConfig(**cfg))
    with pytest.raises(ZhmaskError, match="another configuration"):
        build_corpus(BuildConfig(**cfg))
    result = build_corpus(BuildConfig(**cfg, overwrite=True))
    assert result.units_skipped == 0 and verify_build(tmp_path / "o") == []
    import zhmask

    with monkeypatch.context() as m:  # the same for shards another zhmask version wrote
        m.setattr(zhmask, "__version__", "0.0.0")
        with pytest.raises(ZhmaskError, match="another configuration"):
            build_corpus(BuildConfig(**cfg))
