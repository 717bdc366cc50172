"""CPU time to read every training row of a build through ``ShardDataset``, with every column
against only the columns a trainer's collator declares (``Collator.columns``, with its masker's).

    python benchmarks/reader_columns.py out/          # any build, e.g. one of --pipeline ernie2

Prints a markdown table: columns decoded, rows, CPU seconds (median of 3 passes) and microseconds
per row.
"""
from __future__ import annotations

import argparse
import time

from zhmask.masking.dynamic import DynamicMasking
from zhmask.reader import Build, Collator, ShardDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", help="a build's output directory")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    b = Build(args.build)
    print("| rows read for | columns | rows | CPU s | us per row |\n|---|---:|---:|---:|---:|")
    for name, coll in (("every column", None),
                       ("`Collator()`", Collator(pad_id=b.pad_id)),
                       ("`Collator(masker=wwm)`", Collator(pad_id=b.pad_id, masker=DynamicMasking.from_build(b.out, masking="wwm"))),
                       ("`Collator(masker=knowledge)`",
                        Collator(pad_id=b.pad_id, masker=DynamicMasking.from_build(b.out, masking="knowledge")))):
        ds = ShardDataset(b, split="train", columns=coll.columns if coll else None)
        times = []
        for _ in range(args.passes):
            t = time.process_time()
            for i in range(len(ds)):
                ds[i]
            times.append(time.process_time() - t)
        med = sorted(times)[len(times) // 2]
        print(f"| {name} | {len(ds.columns)} | {len(ds)} | {med:.2f} | {1e6 * med / max(len(ds), 1):.0f} |")


if __name__ == "__main__":
    main()
