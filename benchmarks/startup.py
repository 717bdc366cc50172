"""Start-up cost of ``zhmask build-corpus``: CPU seconds (user + sys) of a whole process on a tiny
input, the median of several runs, per preset family, beside the floors that no zhmask change can
remove (Python itself, numpy + pyarrow, the rjieba dictionary), and where the time goes.

CPU time, not wall time: the development machine is shared, so wall time measures the neighbours.
Every run is a fresh process; one untimed warm-up run of each command first writes Python's
bytecode caches and zhmask's lexicon cache (what an installed zhmask has after its first build),
unless ``--cold`` (an empty lexicon cache before every run).

    python benchmarks/startup.py                           # 20 documents of the embedded sample, 5 runs
    python benchmarks/startup.py --baseline ../main-copy   # before/after: another checkout, runs interleaved
    python benchmarks/startup.py --breakdown               # where one wwm build's CPU goes, step by step
    python benchmarks/startup.py --breakdown --baseline ../main-copy   # the same for both checkouts
    python benchmarks/startup.py --cold --family "wwm mlm"

Input: the first ``--docs`` lines of ``--input`` (default: zhmask's embedded People's Daily sample,
one paragraph a line), so it needs nothing from ../shared.  ``--baseline`` must be a source
checkout (its own ``zhmask/``, ``dictionaries/``, ``pipelines/``); it runs under this Python.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAMILIES = {
    "wwm mlm": ["--masking", "wwm", "--tasks", "mlm"],
    "ernie1 (knowledge)": ["--pipeline", "ernie1"],
    "mac (macbert)": ["--masking", "mac", "--tasks", "sop"],
    "ernie2 (six tasks)": ["--pipeline", "ernie2"],
    "wwm mlm, char segmenter (no rjieba)": ["--masking", "wwm", "--tasks", "mlm", "--segmenter", "char"],
}
FLOORS = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import numpy, pyarrow": "import numpy, pyarrow",
    "import numpy, pyarrow, rjieba": "import numpy, pyarrow, rjieba",
    "import numpy, pyarrow, rjieba, tokenizers, click": "import numpy, pyarrow, rjieba, tokenizers, click",
}

# --breakdown: the real command in one process, with the CPU of each part taken exclusively (a
# part's time excludes the parts it calls); the imports first, in the order a build needs them
_BREAKDOWN = r"""
import atexit, functools, json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
parts, order, stack = {}, [], []
def add(name, sec):
    if name not in parts:
        order.append(name)
    parts[name] = parts.get(name, 0.0) + sec
t = cpu()
def lap(name):
    global t
    now = cpu(); add(name, now - t); t = now
import numpy; lap("import numpy")
import pyarrow, pyarrow.ipc; lap("import pyarrow (+ ipc)")
import click; lap("import click")
import zhmask.cli, zhmask.api, zhmask.pipeline, zhmask.engines.local, zhmask.write.shuffle; lap("import zhmask (cli, api, pipeline: masking, labels, steps)")
import tokenizers; lap("import tokenizers")
import rjieba; lap("import rjieba (builds jieba's dictionary)")
def timed(owner, attr, name):
    f = getattr(owner, attr)
    @functools.wraps(f)
    def w(*a, **k):
        stack.append(0.0)
        t0 = cpu()
        try:
            return f(*a, **k)
        finally:
            spent = cpu() - t0
            inner = stack.pop()
            add(name, spent - inner)
            if stack:
                stack[-1] += spent
    setattr(owner, attr, w)
from zhmask import api, pipeline
from zhmask.steps import entities, tokenize
from zhmask.write import shards
timed(tokenize.WordTokenizer, "__init__", "tokenizer (vocab.txt, WordPiece), every time one is made")
timed(entities.LexiconEntities, "__init__", "entity lexicons: parsed (before) / read from the lexicon cache (after)")
timed(entities.LexiconEntities, "_hash_table", "entity hash table: built on first use (before) / in the cache (after)")
timed(pipeline.Pipeline, "__init__", "rest of Pipeline(): segmenter, normaliser, masking strategy, tasks")
timed(pipeline.Pipeline, "run_unit", "the 20 documents: segment, tokenize, entities, examples, masks")
timed(shards.ShardWriter, "__exit__", "shard write (Arrow IPC, zstd, fsync)")
timed(api, "shuffle_build", "shuffle (scatter, gather)")
timed(api, "save_build_tokenizer", "tokenizer files beside the shards")
timed(zhmask.cli, "main", "the rest of the command: options, config, inputs, manifest, run record")
def report():
    add("interpreter start-up and exit (the process's total minus the parts)", 0.0)
    print(json.dumps([(k, parts[k]) for k in order]), flush=True)
atexit.register(report)  # (run() calls the exit handlers before its quick exit)
sys.argv = ["zhmask", "build-corpus", *json.loads(sys.argv[1])]
(getattr(zhmask.cli, "run", None) or zhmask.cli.main)()
"""


def cpu_of(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    """User + sys CPU seconds of ``cmd`` run to completion (it must succeed)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, cwd=str(cwd), stdout=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def env_for(root: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(root)
    env["ZHMASK_CACHE_DIR"] = str(cache)
    return env


def breakdown(tiny: Path, work: Path, runs: int, root: Path = ROOT) -> None:
    env = {**env_for(root, work / "cache"), "OPENBLAS_NUM_THREADS": "1"}  # numpy is imported before run()
    out = work / "bd"
    args = json.dumps([str(tiny), "--masking", "wwm", "--tasks", "mlm", "--out", str(out), "--quiet"])
    cmd = [sys.executable, "-c", _BREAKDOWN, args]
    # cwd: `python -c` puts the working directory first on sys.path, before PYTHONPATH
    subprocess.run(cmd, check=True, env=env, cwd=str(root), stdout=subprocess.DEVNULL)  # warm-up: bytecode, lexicon cache
    per: dict[str, list[float]] = {}
    order: list[str] = []
    for _ in range(runs):
        shutil.rmtree(out, ignore_errors=True)  # (a finished build of the same config is not redone)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = subprocess.run(cmd, check=True, env=env, cwd=str(root), capture_output=True, text=True).stdout
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        steps = json.loads(res.strip().splitlines()[-1])
        total = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        steps[-1][1] = total - sum(sec for _, sec in steps[:-1])
        steps.append(["**whole process**", total])
        for name, sec in steps:
            if name not in per:
                order.append(name)
            per.setdefault(name, []).append(sec)
    med = {k: statistics.median(v) for k, v in per.items()}
    whole = med["**whole process**"]
    print(f"\n{root}:\n\n| part (`--masking wwm --tasks mlm`, {tiny.stat().st_size:,} bytes) "
          f"| CPU-s (median of {runs}) | share |\n|---|---:|---:|")
    for k in order:
        print(f"| {k} | {med[k]:.3f} | {'' if k == '**whole process**' else f'{med[k] / whole:.0%}'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=None, help="text file, one document a line (default: the embedded sample)")
    ap.add_argument("--docs", type=int, default=20, help="documents (lines) to build (default 20)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command; the median is reported (default 5)")
    ap.add_argument("--cold", action="store_true", help="an empty lexicon cache before every build run")
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families (repeatable)")
    ap.add_argument("--no-floors", action="store_true", help="skip the floor rows")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another source checkout (e.g. `git archive main`): its builds run interleaved with these")
    ap.add_argument("--breakdown", action="store_true", help="print where one wwm build's CPU goes, then stop")
    args = ap.parse_args()

    src = args.input or ROOT / "zhmask" / "data" / "pd1998_sample.txt"
    work = Path(tempfile.mkdtemp(prefix="zhmask-startup-"))
    try:
        lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()][: args.docs]
        tiny = work / "tiny.txt"
        tiny.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if args.breakdown:
            for root in [ROOT] + ([args.baseline.resolve()] if args.baseline else []):
                breakdown(tiny, work, args.runs, root)
            return
        env = env_for(ROOT, work / "cache")
        rows: list[tuple[str, list[float], list[float] | None]] = []
        if not args.no_floors:
            blas1 = {**env, "OPENBLAS_NUM_THREADS": "1"}  # as the console script runs a build
            for name, code in FLOORS.items():
                cmd = [sys.executable, "-c", code]
                cpu_of(cmd, blas1)  # warm-up
                rows.append((f"`{name}`", [cpu_of(cmd, blas1) for _ in range(args.runs)], None))
                print(f"{name}: {statistics.median(rows[-1][1]):.3f} CPU-s", flush=True)
        trees = [("after", ROOT)] + ([("before", args.baseline.resolve())] if args.baseline else [])
        for name in args.family or list(FAMILIES):
            times: dict[str, list[float]] = {label: [] for label, _ in trees}
            cmds = {}
            for label, root in trees:
                out = work / f"out-{label}"
                cmds[label] = ([sys.executable, "-m", "zhmask", "build-corpus", str(tiny), *FAMILIES[name],
                                "--out", str(out), "--overwrite", "--quiet"], env_for(root, work / f"cache-{label}"),
                               out, root)
                if not args.cold:
                    cpu_of(*cmds[label][:2], cwd=root)  # warm-up: bytecode and lexicon caches
            for _ in range(args.runs):
                for label, _root in trees:  # interleaved: both see the same load
                    cmd, e, out, root = cmds[label]
                    if args.cold:
                        shutil.rmtree(e["ZHMASK_CACHE_DIR"], ignore_errors=True)
                    shutil.rmtree(out, ignore_errors=True)
                    times[label].append(cpu_of(cmd, e, cwd=root))
            rows.append((f"`build-corpus {' '.join(FAMILIES[name])}`", times["after"], times.get("before")))
            print(f"{name}: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in times.items()) + " CPU-s",
                  flush=True)
        cache = "cold" if args.cold else "warm"
        if args.baseline:
            print(f"\n| command ({args.docs} documents, {cache} lexicon cache) | before: CPU-s (median of {args.runs}) "
                  f"| after | after / before |\n|---|---:|---:|---:|")
            for name, t, b in rows:
                after = statistics.median(t)
                if b is None:
                    print(f"| {name} | | {after:.3f} | |")
                else:
                    print(f"| {name} | {statistics.median(b):.3f} | {after:.3f} | {after / statistics.median(b):.2f} |")
        else:
            print(f"\n| command ({args.docs} documents, {cache} lexicon cache) | CPU-s (median of {args.runs}) "
                  f"| min | max |\n|---|---:|---:|---:|")
            for name, t, _ in rows:
                print(f"| {name} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
