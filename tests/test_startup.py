"""Start-up stays lean (docs/performance.md, "Start-up"): a build imports no heavy package its
options do not need, and the command modules load only when one of them is asked for.

Nothing here is timed: the test looks at what a fresh process has imported when it exits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent

# packages a build-corpus run never needs (trainers, Ray, plots, spaCy, pandas through pyarrow's
# conversions), and modules whose import is costly and avoidable on this path
NEVER = ("torch", "ray", "datasets", "transformers", "matplotlib", "spacy", "pandas", "numba", "sklearn", "scipy")
AVOIDED = ("pyarrow.compute", "concurrent.futures.process", "jieba", "numpy.ma")  # numpy.ma: np.unique imports it

_PROBE = """
import atexit, json, sys
seen = sys.argv[1]
atexit.register(lambda: open(seen, "w").write(json.dumps(sorted(sys.modules))))
from zhmask.cli import main, run
*first, last = json.loads(sys.argv[2])
for args in first:
    main(args)
sys.argv = ["zhmask", *last]
run()  # the console script's way out: exit handlers (the one above included), then os._exit
"""


def test_build_corpus_imports_only_what_it_needs(tmp_path):
    lines = (ROOT / "zhmask" / "data" / "pd1998_sample.txt").read_text(encoding="utf-8").splitlines()[:20]
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = [["build-corpus", str(tiny), *opts, "--out", str(tmp_path / f"out{i}"), "-q"]
            for i, opts in enumerate((["--masking", "wwm", "--tasks", "mlm"], ["--masking", "knowledge", "--tasks", "sop"],
                                      ["--pipeline", "ernie1"]))]
    seen = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", _PROBE, str(seen), json.dumps(runs)], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    modules = set(json.loads(seen.read_text()))
    assert "zhmask.pipeline" in modules and "rjieba" in modules  # the probe saw the builds
    for i in range(3):
        assert (tmp_path / f"out{i}" / "manifest.json").is_file()
    code, out, _ = run_cli("verify", str(tmp_path / "out2"))  # the build run() ended is whole
    assert code == 0 and "OK" in out
    heavy = sorted(m for m in modules if m.split(".")[0] in NEVER)
    assert not heavy, f"build-corpus imported {heavy[:10]}"
    assert not [m for m in AVOIDED if m in modules]
    # the other commands' modules stay unimported
    assert not [m for m in modules if m.startswith("zhmask.commands.")]


def test_commands_in_their_own_modules_load_when_asked_for():
    code, out, _ = run_cli("--help")
    assert code == 0
    for name in ("build-corpus", "verify", "export", "inspect", "presets", "pretrain"):
        assert name in out
    code, out, _ = run_cli("presets")
    assert code == 0 and "ernie1" in out
    code, _, err = run_cli("verfy")
    assert code == 2 and "Did you mean 'verify'" in err


_BLAS = """
import atexit, os, sys
from zhmask.cli import run
assert "numpy" not in sys.modules, "importing the CLI imported numpy"
def report():
    pool = sys.modules["pyarrow"].default_memory_pool().backend_name if "pyarrow" in sys.modules else None
    print("BLAS", os.environ.get("OPENBLAS_NUM_THREADS"), "numpy" in sys.modules, "ARROW", pool)
atexit.register(report)
sys.argv = ["zhmask", *sys.argv[1:]]
run()
"""


def test_a_build_sets_numpys_blas_to_one_thread_before_numpy_loads(tmp_path):
    """numpy's OpenBLAS spins a thread per core at import (docs/performance.md, "Start-up"):
    the console script sets OPENBLAS_NUM_THREADS=1 for build-corpus, before anything imports
    numpy, unless the user set it; other commands (trainers, spaCy) keep their BLAS threads."""
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("今天北京的天气很好，我们去天安门广场散步。\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OPENBLAS_NUM_THREADS", None)

    def blas(*args: str, **extra: str) -> str:
        r = subprocess.run([sys.executable, "-c", _BLAS, *args], env={**env, **extra}, cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    build = ["build-corpus", str(tiny), "--out", str(tmp_path / "o"), "-q", "--overwrite"]
    assert blas(*build) == "BLAS 1 True ARROW system"  # numpy was loaded by the build, after the setting
    assert blas(*build, OPENBLAS_NUM_THREADS="3") == "BLAS 3 True ARROW system"
    assert blas("presets").startswith("BLAS None ")


def test_a_build_takes_arrows_buffers_from_the_system_allocator(tmp_path):
    """Arrow's mimalloc pool kept what a unit freed apart from numpy's heap: a build sets
    ARROW_DEFAULT_MEMORY_POOL=system unless the user chose a pool, and a Ray worker of another
    node (which does not inherit it) sets the variable before its first task imports pyarrow;
    a process that has loaded pyarrow keeps its pool (never buffers of two pools at once)."""
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("今天北京的天气很好，我们去天安门广场散步。\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    probe = ("import pyarrow as pa\nfrom zhmask.engines.base import arrow_system_pool\n"
             "before = pa.default_memory_pool().backend_name\narrow_system_pool()\n"
             "print(before, pa.default_memory_pool().backend_name)")
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    native, now = r.stdout.split()  # pyarrow's own default (mimalloc or jemalloc in the wheels)
    assert now == native  # pyarrow loaded first: the process keeps its pool (never two pools at once)
    early = ("import os, sys\nfrom zhmask.engines.base import arrow_system_pool\n"
             "assert 'pyarrow' not in sys.modules\narrow_system_pool()\nimport pyarrow as pa\n"
             "print(os.environ['ARROW_DEFAULT_MEMORY_POOL'], pa.default_memory_pool().backend_name)")
    r = subprocess.run([sys.executable, "-c", early], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["system", "system"], r.stderr  # before: the variable
    if native != "system":  # the user's choice is kept
        build = ["build-corpus", str(tiny), "--out", str(tmp_path / "o"), "-q", "--overwrite"]
        r = subprocess.run([sys.executable, "-c", _BLAS, *build], env={**env, "ARROW_DEFAULT_MEMORY_POOL": native},
                           cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip().endswith(f"ARROW {native}"), r.stderr
