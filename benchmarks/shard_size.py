"""Bytes per token of the shards for each ``--compression``, and what reading them costs.

    python benchmarks/shard_size.py --input pd.txt --out docs/schema.md

For each compression (zstd, lz4, none) the script builds ``--masking wwm --tasks mlm`` (and any
``--build-args``) from ``--input`` in a fresh child process and reports:

* bytes per token: the shard files' size over the tokens in ``input_ids``;
* build CPU seconds (user + system of the child, start-up included);
* reading every row with ``zhmask.reader.ShardDataset`` in order (seconds);
* ``zhmask.data.load``: seconds, the bytes Arrow allocates on the heap (decoded record batches:
  compressed shards are decoded whole, ``datasets`` cannot memory-map them) and the file-backed
  resident memory it adds (memory-mapped shards: page cache the kernel can drop).

People's Daily as plain text: ``sed -E 's#/[a-zA-Z]+##g; s/\\[//g; s/\\][a-z]+//g; s/ //g'``
on ../shared/corpora/pd1998_pos_train.txt (the first 2 MB with ``head -c``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine, write_section  # noqa: E402

COMPRESSIONS = ("zstd", "lz4", "none")

_CHILD = r"""
import json, resource, sys, time
inp, out, comp, extra = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
from zhmask.api import build_corpus
from zhmask.config import BuildConfig

def status():
    d = {}
    for ln in open("/proc/self/status"):
        k, _, v = ln.partition(":")
        if k in ("RssAnon", "RssFile"):
            d[k] = int(v.split()[0]) / 1024
    return d

ru = resource.getrusage(resource.RUSAGE_SELF)
c0 = ru.ru_utime + ru.ru_stime
build_corpus(BuildConfig.from_dict({"inputs": [inp], "masking": "wwm", "tasks": ["mlm"], "compression": comp,
                                    "out": out, **extra}))
ru = resource.getrusage(resource.RUSAGE_SELF)
build_cpu = ru.ru_utime + ru.ru_stime - c0
from zhmask.reader import Build, ShardDataset
b = Build(out)
size = sum(p.stat().st_size for p in b.shards)
ds = ShardDataset(b, split=None, columns=["input_ids"])
t0 = time.perf_counter()
tokens = sum(len(ds[i]["input_ids"]) for i in range(len(ds)))
read_s = time.perf_counter() - t0
del ds
import datasets, zhmask.data  # noqa: F401
import pyarrow as pa
base = status()
alloc = pa.total_allocated_bytes()
t0 = time.perf_counter()
d = zhmask.data.load(out)
n = len(d)
load_s = time.perf_counter() - t0
after = status()
print(json.dumps({"bytes": size, "tokens": tokens, "rows": n, "build_cpu": build_cpu, "read_s": read_s,
                  "load_s": load_s, "heap_mb": (pa.total_allocated_bytes() - alloc) / 1e6,
                  "file_mb": after["RssFile"] - base["RssFile"]}))
"""


def run(inp: str, comp: str, extra: dict, work: Path) -> dict:
    out = work / f"build-{comp}"
    r = subprocess.run([sys.executable, "-c", _CHILD, inp, str(out), comp, json.dumps(extra)],
                       capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if r.returncode != 0:
        raise SystemExit(f"{comp}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="text/JSONL file to build from")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--out", type=Path, help="write the table into this markdown file (section shard-size)")
    a = ap.parse_args()
    extra = {"max_seq_length": a.max_seq_length}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for comp in COMPRESSIONS:
            rows.append((comp, run(a.input, comp, extra, Path(d))))
    mb = Path(a.input).stat().st_size / 1e6
    lines = [f"Input: {Path(a.input).name} ({mb:.1f} MB), `--masking wwm --tasks mlm --max-seq-length "
             f"{a.max_seq_length}`, {rows[0][1]['tokens']:,} tokens in {rows[0][1]['rows']:,} rows. Machine: {machine()}.",
             "",
             "| `--compression` | bytes per token | shards MB | build CPU-s | read every row (s) | `zhmask.data.load` (s) | load: Arrow heap MB | load: mapped MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for comp, r in rows:
        lines.append(f"| {comp} | {r['bytes'] / r['tokens']:.2f} | {r['bytes'] / 1e6:.2f} | {r['build_cpu']:.2f} | "
                     f"{r['read_s']:.2f} | {r['load_s']:.2f} | {r['heap_mb']:.1f} | {r['file_mb']:.1f} |")
    lines += ["", f"Command: `python benchmarks/shard_size.py --input {a.input} --max-seq-length {a.max_seq_length}`"]
    text = "\n".join(lines)
    print(text)
    if a.out:
        write_section(a.out, "shard-size", text)


if __name__ == "__main__":
    main()
