"""What the driver does when workers read their own input (issue 16): planning vs reading.

    python benchmarks/workers_read.py --shared ../shared --mb 40 --before ../main

Input: the held-out People's Daily paragraphs (``corpora/pd1998_pos_train.txt``, lines whose
0-based index % 5 == 4; tags removed: plain Chinese, one paragraph a line), repeated up to
``--mb`` MB.  Nothing is tuned on it.

1. Driver CPU seconds, in this process (best of ``--repeat``):
   - *read* (what the driver did before): every document decoded by the reader
     (``zhmask.steps.read.read_file``) and grouped into units of ``--docs-per-shard``, then the
     file read again for its sha256 (the manifest's checksum);
   - *plan* (what it does now): :func:`zhmask.steps.plan.plan_units`, the units' descriptors.
2. ``zhmask build-corpus FILE --workers N --masking wwm`` in a fresh process, with this checkout
   and (``--before``) with another one: wall seconds, the driver process's CPU seconds, all
   processes' CPU seconds, and whether both wrote the same shards (sha256).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine  # noqa: E402

_TAG = re.compile(r"/[a-zA-Z]+\b")

# the CLI in this process; prints wall seconds, this (driver) process's CPU and its children's
_RUN = r"""
import resource, sys, time
t0 = time.perf_counter()
from zhmask.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - t0, me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime)
"""


def make_input(shared: Path, mb: float, dest: Path) -> tuple[int, int]:
    """Held-out paragraphs repeated to ``mb`` MB; (distinct paragraphs, bytes written)."""
    lines = (shared / "corpora" / "pd1998_pos_train.txt").read_text(encoding="utf-8").splitlines()
    held = []
    for i, line in enumerate(lines):
        if i % 5 == 4:
            text = re.sub(r"\[|\]", "", re.sub(r" +", "", _TAG.sub("", line)))
            if text.strip():
                held.append(text)
    block = ("\n".join(held) + "\n").encode("utf-8")
    target = int(mb * 1_000_000)
    with open(dest, "wb") as fh:
        written = 0
        while written < target:
            fh.write(block)
            written += len(block)
    return len(held), written


def driver_cpu(path: Path, docs_per_shard: int, repeat: int) -> dict[str, float]:
    from zhmask.api import _inputs
    from zhmask.config import BuildConfig
    from zhmask.steps.plan import plan_units
    from zhmask.steps.read import read_file

    cfg = BuildConfig(inputs=[str(path)], docs_per_shard=docs_per_shard)
    files = _inputs(cfg)[0]

    def read() -> int:
        units, buf = 0, []
        for raw in read_file(files[0], fmt="auto", doc_sep="line", text_field="text", title_field=None,
                             on_decode_error="replace"):
            buf.append(raw)
            if len(buf) >= docs_per_shard:
                units, buf = units + 1, []
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return units + bool(buf)

    def plan() -> int:
        return sum(1 for _ in plan_units(cfg, files, []))

    out = {}
    for name, fn in (("read", read), ("plan", plan)):
        best = float("inf")
        for _ in range(repeat):
            t = time.process_time()
            n = fn()
            best = min(best, time.process_time() - t)
        out[name], out[f"{name}_units"] = best, n
    return out


def build(root: Path, path: Path, out: Path, workers: int) -> tuple[float, float, float, list[str]]:
    if out.exists():
        shutil.rmtree(out)
    args = ["build-corpus", str(path), "--masking", "wwm", "--workers", str(workers), "--out", str(out), "-q"]
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run([sys.executable, "-c", _RUN, *args], env=env, cwd=str(root), capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"build with {root} failed: {res.stderr[-2000:]}")
    wall, me, kids = map(float, res.stdout.split()[-3:])
    shards = [s["sha256"] for s in json.loads((out / "manifest.json").read_text())["shards"]]
    return wall, me, me + kids, shards


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True, help="the shared material (corpora/pd1998_pos_train.txt)")
    ap.add_argument("--mb", type=float, default=40.0)
    ap.add_argument("--docs-per-shard", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", type=Path, help="another checkout to build with (e.g. ../main before issue 16)")
    ap.add_argument("--no-build", action="store_true", help="only the driver's CPU time")
    a = ap.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pd_heldout.txt"
        distinct, size = make_input(a.shared, a.mb, src)
        print(f"input: {size / 1e6:.1f} MB ({distinct:,} distinct held-out paragraphs, repeated)")
        d = driver_cpu(src, a.docs_per_shard, a.repeat)
        print(f"driver CPU s, best of {a.repeat}: read+sha256 {d['read']:.2f} ({size / 1e6 / d['read']:.0f} MB/s, "
              f"{d['read_units']:.0f} units); plan {d['plan']:.3f} ({size / 1e6 / d['plan']:.0f} MB/s, "
              f"{d['plan_units']:.0f} units): {d['read'] / d['plan']:.0f}x less")
        if a.no_build:
            return
        runs = [("after", ROOT)] + ([("before", a.before.resolve())] if a.before else [])
        shards = {}
        for name, root in runs:
            wall, me, total, shards[name] = build(root, src, Path(tmp) / f"out-{name}", a.workers)
            print(f"build --workers {a.workers} ({name}, {root}): {wall:.1f} s wall, driver {me:.2f} CPU s, "
                  f"all processes {total:.1f} CPU s, {len(shards[name])} shards")
        if a.before:
            print("same shards before and after:", shards["before"] == shards["after"])


if __name__ == "__main__":
    main()
