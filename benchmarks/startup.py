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
}
FLOORS = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import numpy, pyarrow": "import numpy, pyarrow",
    "import numpy, pyarrow, rjieba": "import numpy, pyarrow, rjieba",
    "import numpy, pyarrow, rjieba, tokenizers, click": "import numpy, pyarrow, rjieba, tokenizers, click",
}

# --breakdown: one process, the CPU of each step in the order a build takes them
_BREAKDOWN = r"""
import json, sys, time
clock = time.process_time
steps = []
t = clock()
def lap(name):
    global t
    now = clock(); steps.append((name, now - t)); t = now
import numpy; lap("import numpy")
import pyarrow, pyarrow.ipc; lap("import pyarrow (+ ipc)")
import click; lap("import click")
import zhmask.cli, zhmask.api, zhmask.pipeline, zhmask.engines.local; lap("import zhmask (cli, api, pipeline: masking, labels, steps)")
import tokenizers; lap("import tokenizers")
import rjieba; lap("import rjieba (builds jieba's dictionary)")
from zhmask.config import BuildConfig
cfg = BuildConfig.from_dict(json.loads(sys.argv[1]))
if sys.argv[2]:
    cfg = BuildConfig.from_dict({**BuildConfig.from_preset(sys.argv[2]).to_dict(), **json.loads(sys.argv[1])})
lap("config")
try:
    from zhmask.steps.tokenize import shared_tokenizer
except ImportError:  # a checkout before the start-up work: every user made its own tokenizer
    from zhmask.steps.tokenize import WordTokenizer as shared_tokenizer
tok = shared_tokenizer(cfg.vocab, cfg.tokenizer, lowercase=cfg.lowercase); lap("tokenizer (vocab.txt, WordPiece)")
from zhmask.steps.entities import make_entity_detector
make_entity_detector(cfg.entities, lexicons=cfg.lexicons); lap("entity lexicons (from the lexicon cache)")
from zhmask.pipeline import Pipeline
Pipeline(cfg); lap("pipeline")
from zhmask.api import build_corpus
build_corpus(cfg); lap("build")
Pipeline(cfg); lap("again")
# Pipeline() loads the entity lexicons again (the tokenizer is shared, rjieba's dictionary built),
# and build_corpus() makes its own Pipeline, which costs what a further one ("again") costs
raw = dict(steps)
steps = steps[:-3] + [
    ("rest of Pipeline(): segmenter, normaliser, masking strategy and its tables, tasks",
     raw["pipeline"] - raw["entity lexicons (from the lexicon cache)"]),
    ("the build itself: 20 documents, shard, shuffle, manifest, tokenizer files", raw["build"] - raw["again"])]
print(json.dumps(steps))
if hasattr(zhmask.cli, "run"):  # the CLI of this checkout exits without the interpreter's teardown
    import os
    sys.stdout.flush()
    os._exit(0)
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
    env = env_for(root, work / "cache")
    over = json.dumps({"inputs": [str(tiny)], "masking": "wwm", "tasks": ["mlm"], "out": str(work / "bd"),
                       "overwrite": True})
    cmd = [sys.executable, "-c", _BREAKDOWN, over, ""]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)  # warm-up: bytecode, lexicon cache
    per: dict[str, list[float]] = {}
    order: list[str] = []
    total = []
    for _ in range(runs):
        shutil.rmtree(work / "bd", ignore_errors=True)  # (a finished build of the same config is not redone)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        total.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
        for name, sec in json.loads(out.strip().splitlines()[-1]):
            if name not in per:
                order.append(name)
            per.setdefault(name, []).append(sec)
    med = {k: statistics.median(v) for k, v in per.items()}
    whole = statistics.median(total)
    print(f"\n{root}:")
    print(f"\n| step (`--masking wwm --tasks mlm`, {tiny.stat().st_size:,} bytes) | CPU-s (median of {runs}) | share |")
    print("|---|---:|---:|")
    print(f"| interpreter start-up (and teardown where the CLI has it): the process's total minus the steps "
          f"| {whole - sum(med.values()):.3f} | {(whole - sum(med.values())) / whole:.0%} |")
    for k in order:
        print(f"| {k} | {med[k]:.3f} | {med[k] / whole:.0%} |")
    print(f"| **whole process** | **{whole:.3f}** | |")


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
            for name, code in FLOORS.items():
                cmd = [sys.executable, "-c", code]
                cpu_of(cmd, env)  # warm-up
                rows.append((f"`{name}`", [cpu_of(cmd, env) for _ in range(args.runs)], None))
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
