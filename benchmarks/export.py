"""Time and memory of ``zhmask export`` in every format, on builds of growing size.

    python benchmarks/export.py --build big/ --build big3/ --out docs/export.md

Each (build, format) runs in a fresh child process: ``zhmask.export.export`` in-process with a
thread sampling ``/proc/self/status`` every 20 ms.  Reported: exported rows, seconds, rows per
second, output MB, the peak of anonymous resident memory above the process's baseline after its
imports (what the export itself holds: it must not grow with the build) and the peak of
file-backed resident memory (memory-mapped shards and files, page cache the kernel can drop).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine, write_section  # noqa: E402

FORMATS = ("hf", "parquet", "jsonl", "megatron", "tfrecord", "paddle")

_CHILD = r"""
import json, sys, threading, time
build, fmt, out = sys.argv[1:4]

def status():
    d = {}
    for ln in open("/proc/self/status"):
        k, _, v = ln.partition(":")
        if k in ("RssAnon", "RssFile"):
            d[k] = int(v.split()[0]) // 1024
    return d

from zhmask.export import ExportOptions, export, writer_class
from zhmask.reader import Build
b = Build(build)
writer_class(fmt)  # the format's imports (datasets, tfrecord -> torch) count in the baseline
if fmt == "tfrecord":
    import tfrecord  # noqa: F401
b.tokenizer
base = status()
peak = dict(base)
done = False
def sample():
    while not done:
        for k, v in status().items():
            peak[k] = max(peak[k], v)
        time.sleep(0.02)
t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
r = export(b, fmt, out, ExportOptions())
secs = time.perf_counter() - t0
done = True
t.join()
print(json.dumps({"rows": sum(r.rows.values()), "build_rows": b.rows, "seconds": secs, "bytes": r.bytes,
                  "anon": peak["RssAnon"] - base["RssAnon"], "file": peak["RssFile"]}))
"""


def run(build: Path, fmt: str, tmp: Path) -> dict:
    out = tmp / f"{build.name}-{fmt}"
    p = subprocess.run([sys.executable, "-W", "ignore", "-c", _CHILD, str(build), fmt, str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    shutil.rmtree(out, ignore_errors=True)
    if p.returncode:
        raise SystemExit(f"{fmt} on {build}: {p.stderr.strip().splitlines()[-1]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="append", required=True, help="A build directory; repeatable.")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--out", default=None, help="Markdown file whose export-bench section is rewritten.")
    a = ap.parse_args(argv)
    lines = [f"Machine: {machine()}.", "",
             "| build rows | build MB | format | rows exported | seconds | rows/s | output MB | peak anon MB (+) | peak file-backed MB |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for build in map(Path, a.build):
            mb = sum(p.stat().st_size for p in build.rglob("*") if p.is_file()) / 1e6
            for fmt in a.formats.split(","):
                r = run(build, fmt, Path(tmp))
                lines.append(f"| {r['build_rows']:,} | {mb:.0f} | {fmt} | {r['rows']:,} | {r['seconds']:.1f} | "
                             f"{r['rows'] / r['seconds']:,.0f} | {r['bytes'] / 1e6:.1f} | {r['anon']} | {r['file']} |")
                print(lines[-1], flush=True)
    body = "\n".join(lines)
    if a.out:
        write_section(Path(a.out), "export-bench", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
