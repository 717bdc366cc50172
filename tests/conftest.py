from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# the lexicon cache (zhmask/lexcache.py) of a test session lives and dies with it, never in the
# user's ~/.cache (subprocesses inherit it)
if "ZHMASK_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="zhmask-test-cache-")
    os.environ["ZHMASK_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, True)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def pipeline():
    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline

    return Pipeline(BuildConfig())


@pytest.fixture(scope="session")
def tok(pipeline):
    return pipeline.tok


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    from zhmask.paths import default_corpus

    return [ln for ln in default_corpus().read_text(encoding="utf-8").splitlines() if ln.strip()]


@pytest.fixture(scope="session")
def inews_docs(fixtures) -> list[dict]:
    return [json.loads(ln) for ln in (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()]


def crash_input(tmp_path: Path, sentence: str) -> Path:
    """25 lines of ``sentence`` with one other sentence at line 18 (index 17): the document a
    test task crashes or kills a worker on (tests/test_reliability.py, tests/engines/test_ray.py)."""
    src = tmp_path / "in.txt"
    lines = [sentence] * 25
    lines[17] = "演员梁朝伟出演了这部电影。"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


def run_cli(*args: str):
    """Run the zhmask CLI in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from zhmask.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()
