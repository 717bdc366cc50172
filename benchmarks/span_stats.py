"""Realised span lengths of ``span`` masking against SpanBERT's target, on held-out People's Daily.

Reads ``corpora/pd1998_pos_train.txt`` under ``--shared`` (one paragraph a line, ``word/tag``),
keeps the held-out lines (0-based index % 5 == 4; nothing in zhmask is tuned on them), strips
the tags and joins ``--lines-per-doc`` consecutive held-out lines into one document (a paragraph
alone is far shorter than 512 tokens), builds ``span`` rows at each ``--lengths`` with the real
pipeline, and prints, per length: spans, mean length in words, the share of 1-word spans, the
share of spans whose predicted words touch another span's (they merge in ``labels``), the
total-variation distance to the target, and the same figures of the target (Geo(p) on
1..span_max, renormalised).  Span lengths are read from the rows: ``span_bounds`` where the
build stores it, else the strategy's per-length counters (``span_units_n*``).

    PYTHONPATH=$PWD python benchmarks/span_stats.py --shared ../shared
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zhmask.config import BuildConfig  # noqa: E402
from zhmask.masking.span import span_probs  # noqa: E402
from zhmask.pipeline import MASK_BATCH, Pipeline  # noqa: E402
from zhmask.rng import DrawsBatch  # noqa: E402
from zhmask.steps.read import RawDoc  # noqa: E402
from zhmask.write.arrays import blocks_to_batch  # noqa: E402


def held_out_docs(path: Path, lines_per_doc: int, limit: int | None) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    held = []
    for i, ln in enumerate(lines):
        if i % 5 == 4 and ln.strip():
            held.append("".join(w.rsplit("/", 1)[0] for w in ln.split()))
    if limit:
        held = held[:limit]
    return [(f"pd-heldout:{k}", "\n".join(held[k:k + lines_per_doc])) for k in range(0, len(held), lines_per_doc)]


def span_words(row) -> list[int]:
    """Lengths in words of the spans of one row, from ``span_bounds`` (offsets into the predicted
    tokens) and ``word_ids``."""
    lab = np.asarray(row["labels"])
    wid = np.asarray(row["word_ids"])
    pos = np.flatnonzero(lab != -100)
    sb = np.asarray(row["span_bounds"])
    return [len(np.unique(wid[pos[a:b]])) for a, b in zip(sb[:-1], sb[1:])]


def merged_runs(row) -> int:
    """Maximal runs of predicted tokens (spans that touch count once)."""
    has = np.asarray(row["labels"]) != -100
    if not has.any():
        return 0
    d = np.diff(has.astype(np.int8))
    return int((d == 1).sum() + int(has[0]))


def measure(raw: list[tuple[str, str]], length: int, max_pred: int, seed: int) -> dict:
    cfg = BuildConfig(masking="span", max_seq_length=length, max_predictions_per_seq=max_pred, seed=seed).validate()
    pipe = Pipeline(cfg)
    docs = [d for d in (pipe.document(RawDoc(i, t))[0] for i, t in raw) if d is not None]
    stats = {"masking": {}}
    counts: dict[int, int] = {}
    runs = 0
    rows = 0
    tokens = 0
    from_bounds = True
    exs = list(pipe.examples(docs))
    for i in range(0, len(exs), MASK_BATCH):  # the rows as the build writes them
        for row in blocks_to_batch(pipe.mask_batch(exs[i:i + MASK_BATCH], DrawsBatch(), stats)).to_pylist():
            rows += 1
            tokens += len(row["input_ids"])
            runs += merged_runs(row)
            if row.get("span_bounds") is None:
                from_bounds = False
                continue
            for n in span_words(row):
                counts[n] = counts.get(n, 0) + 1
    st = stats["masking"]
    if not from_bounds:
        counts = {int(k.rsplit("n", 1)[1]): v for k, v in st.items() if k.startswith("span_units_n")}
    n_max = max(max(counts), 10)
    c = np.array([counts.get(n, 0) for n in range(1, n_max + 1)], dtype=float)
    units = int(c.sum())
    target = np.zeros(n_max)
    p = span_probs(cfg)
    target[:len(p)] = p
    real = c / units
    lens = np.arange(1, n_max + 1)
    return {
        "max_seq_length": length, "max_predictions_per_seq": max_pred, "rows": rows,
        "mean_row_tokens": round(tokens / rows, 1), "spans": units,
        "predicted_share": round(st.get("predicted_tokens", 0) / max(1, st.get("candidate_tokens", 0)), 4),
        "mean_words": round(float((real * lens).sum()), 3), "target_mean_words": round(float((target * lens).sum()), 3),
        "one_word_share": round(float(real[0]), 4), "target_one_word_share": round(float(target[0]), 4),
        "touching_share": round((units - runs) / units, 4),
        "tv_distance": round(0.5 * float(np.abs(real - target).sum()), 4),
        "lengths_from": "span_bounds" if from_bounds else "span_units counters",
        "distribution": [round(float(x), 4) for x in real],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", required=True, help="the shared directory (holds corpora/pd1998_pos_train.txt)")
    ap.add_argument("--lengths", default="512:76,128:20", help="max_seq_length:max_predictions_per_seq pairs")
    ap.add_argument("--lines-per-doc", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None, help="at most this many held-out lines")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    raw = held_out_docs(Path(args.shared) / "corpora" / "pd1998_pos_train.txt", args.lines_per_doc, args.limit)
    for spec in args.lengths.split(","):
        length, mp = (int(x) for x in spec.split(":"))
        print(json.dumps(measure(raw, length, mp, args.seed), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
