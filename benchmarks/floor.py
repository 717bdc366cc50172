"""What a segmentation-aware pipeline in Python cannot avoid paying, per MB of Chinese text.

    python benchmarks/floor.py --corpus ../shared/corpora/pd1998_pos_train.txt --mb 5

Times, on the same text as benchmarks/throughput.py (units of 1,000 documents joined by a
newline, as zhmask runs them), what any such pipeline in Python pays on top of rjieba itself
(rows (a) and (a') of benchmarks/throughput.py), each alone: one Python pass over rjieba's
words (taking their lengths), one dictionary lookup per word, and per example the key that
randomness as a function of (seed, example id, stage, index) requires, with a few values from it.  See docs/performance.md for how they
compare with the budget the throughput targets leave.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import lines_of, prepare_corpus  # noqa: E402  (the same corpus preparation)


def cpu(fn, repeat: int = 3) -> float:
    best = []
    for _ in range(repeat):
        c = time.process_time()
        fn()
        best.append(time.process_time() - c)
    return sorted(best)[len(best) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--mb", type=float, default=5.0)
    ap.add_argument("--examples-per-mb", type=float, default=7233,
                    help="examples a build writes per MB (7,233: --tasks mlm,sop on People's Daily)")
    args = ap.parse_args()
    import tempfile

    import rjieba

    from zhmask.rng import DrawsBatch, random_rows, rng_for

    work = Path(tempfile.mkdtemp(prefix="zhmask-floor-"))
    corpus = prepare_corpus(args.corpus, args.mb, work / "corpus.txt")
    mb = corpus.stat().st_size / 1e6
    lines = lines_of(corpus)
    units = ["\n".join(lines[i:i + 1000]) for i in range(0, len(lines), 1000)]
    jb = rjieba.Jieba()
    tagged = [jb.tag(u, False) for u in units]
    words = [[w for w, _ in t] for t in tagged]
    n_words = sum(map(len, words))
    vocab: dict[str, int] = {}
    for ws in words:
        for w in ws:
            vocab.setdefault(w, len(vocab))
    n_ex = int(args.examples_per_mb * mb)

    def batched(keys: list[tuple]) -> None:
        gb = DrawsBatch()
        for i in range(0, len(keys), 256):  # as a build's mask batches: keys hashed, 8 values each
            gb.prepare(keys[i:i + 256])
            rows = gb.rows()
            random_rows(rows, [8] * len(rows))

    keys = [(12345, f"doc-{i}#mlm{i % 3}", "mask", 0) for i in range(n_ex)]
    import gc

    gc.collect()
    gc.freeze()  # the million word tuples held here would make every collection traverse them
    rows = [
        ("one pass over the words: their lengths", cpu(lambda: [np.fromiter(map(len, ws), np.int32, len(ws)) for ws in words])),
        ("one dictionary lookup per word", cpu(lambda: [list(map(vocab.__getitem__, ws)) for ws in words])),
        ("a key per example and 8 values from it, one example at a time (`rng_for`)",
         cpu(lambda: [rng_for(*k).random(8) for k in keys])),
        ("a key per example, hashed per batch of 256, and 8 values each as one array (`DrawsBatch`, `random_rows`)",
         cpu(lambda: batched(keys))),
    ]
    print(f"{mb:.2f} MB, {n_words} words ({n_words / mb:,.0f} per MB), {n_ex} examples ({args.examples_per_mb:,.0f} per MB)")
    print("| operation | CPU s per MB |\n|---|---:|")
    for name, secs in rows:
        print(f"| {name} | {secs / mb:.4f} |")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
