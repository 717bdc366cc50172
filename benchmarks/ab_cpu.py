"""CPU seconds of a whole ``zhmask build-corpus`` run from two checkouts, A/B in alternating runs.

    python benchmarks/ab_cpu.py --shared ../shared --before /work/main --after . --pairs 3

Inputs, held out (nothing was tuned on them): the People's Daily paragraphs whose 0-based line
index % 5 == 4 (tags removed, one paragraph a line), and the iNews documents of ``split == "dev"``
with their titles (JSONL, up to ``--inews-mb`` MB; titles are what ``ir_relevance`` draws its
queries from).  Each run is a fresh process, ``python -m zhmask.cli build-corpus INPUT --pipeline
PRESET --out DIR`` with ``PYTHONPATH`` set to the checkout and DIR removed first; its CPU time is
the child's user + system time (``resource.getrusage(RUSAGE_CHILDREN)``).  One untimed run per
checkout first (lexicon caches), then ``--pairs`` pairs, the order flipped every pair so that a
change of load on a shared machine hits both sides.  The shards of both checkouts must be
byte-identical (the script says so, or fails).  Prints every run, and per input the median of
the per-pair ratios after / before with their range.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def held_out_inputs(shared: Path, work: Path, inews_mb: float) -> dict[str, list[str]]:
    """name -> the extra build-corpus arguments of each held-out input (written under ``work``)."""
    sys.path.insert(0, str(ROOT))
    from zhmask.segquality.gold import parse_line

    pd = work / "pd_heldout.txt"
    with open(shared / "corpora" / "pd1998_pos_train.txt", encoding="utf-8") as f, open(pd, "w", encoding="utf-8") as w:
        for i, line in enumerate(f):
            s = parse_line(line, "pku") if i % 5 == 4 else None
            if s is not None and s.text.strip():
                w.write(s.text + "\n")
    inews = work / "inews_dev.jsonl"
    size = 0
    with open(shared / "corpora" / "inews_docs.jsonl", encoding="utf-8") as f, open(inews, "w", encoding="utf-8") as w:
        for line in f:
            r = json.loads(line)
            if r.get("split") != "dev" or size >= inews_mb * 1e6:
                continue
            out = json.dumps({"id": r["id"], "title": r.get("title") or "", "text": r.get("text") or ""},
                             ensure_ascii=False) + "\n"
            w.write(out)
            size += len(out.encode("utf-8"))
    return {f"pd_heldout ({pd.stat().st_size / 1e6:.2f} MB)": [str(pd)],
            f"inews_dev ({inews.stat().st_size / 1e6:.2f} MB)": [str(inews), "--text-field", "text",
                                                                 "--title-field", "title"]}


def run(checkout: Path, args: list[str], out: Path, preset: str) -> tuple[float, str]:
    """(CPU seconds, sha256 over the shards) of one build."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "zhmask.cli", "build-corpus", *args, "--pipeline", preset, "--out", str(out)],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    h = hashlib.sha256()
    for p in sorted(out.rglob("*.arrow")):
        h.update(p.relative_to(out).as_posix().encode() + p.read_bytes())
    return cpu, h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True, help="folder holding corpora/")
    ap.add_argument("--before", type=Path, required=True, help="checkout A (e.g. /work/main)")
    ap.add_argument("--after", type=Path, default=ROOT, help="checkout B (default: this one)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--preset", default="ernie2")
    ap.add_argument("--inews-mb", type=float, default=1.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab_cpu_") as tmp:
        work = Path(tmp)
        sides = {"before": a.before.resolve(), "after": a.after.resolve()}
        for name, args in held_out_inputs(a.shared, work, a.inews_mb).items():
            digests = {side: run(path, args, work / "out", a.preset)[1] for side, path in sides.items()}  # warm-up
            if digests["before"] != digests["after"]:
                sys.exit(f"{name}: the two checkouts' shards differ")
            cpu: dict[str, list[float]] = {"before": [], "after": []}
            for k in range(a.pairs):
                for side in (("before", "after") if k % 2 == 0 else ("after", "before")):
                    c, d = run(sides[side], args, work / "out", a.preset)
                    if d != digests[side]:
                        sys.exit(f"{name}: {side} gave different shards in two runs")
                    cpu[side].append(c)
                    print(f"{name} pair {k + 1} {side}: {c:.2f} CPU-s", flush=True)
            ratios = [y / x for x, y in zip(cpu["before"], cpu["after"])]
            print(f"{name}: before {statistics.median(cpu['before']):.2f} CPU-s, after "
                  f"{statistics.median(cpu['after']):.2f} (medians); after/before median {statistics.median(ratios):.3f}, "
                  f"range {min(ratios):.3f}-{max(ratios):.3f} over {a.pairs} pairs; shards identical", flush=True)


if __name__ == "__main__":
    main()
