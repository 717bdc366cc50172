"""How far lexical matching gets on ``ir_relevance`` rows (issue 17): a BM25 threshold baseline.

The task should not be solvable by string matching.  This script builds ``ir_relevance`` rows
with the library (``zhmask build-corpus --tasks ir_relevance``, default settings: 128 tokens,
4 query keywords, 1,000 documents a unit) from the iNews ``train`` split and, separately, from
its ``dev`` split, and reads the rows back from the shards.  For each row it scores the query
against the passage the row shows, with two lexical scores:

* ``bm25``: Okapi BM25 (k1 = 1.2, b = 0.75) of the query words in the passage, the passage's
  words being the build's own (the row's ``word_ids``), IDF and mean length from the train rows'
  passages;
* ``overlap``: the share of query words that occur in the passage text.

Two thresholds cut the score into three bands, and each band predicts one class (every
assignment of the classes to the bands is tried); thresholds and assignment are fitted on the
train rows and the accuracy is reported on the dev rows, with the confusion matrix.  Chance is
1/3 (the classes are balanced).

    python benchmarks/ir_baseline.py --shared ../shared

Run it with ``PYTHONPATH`` at a checkout of main for the figure before the change.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

K1, B = 1.2, 0.75


def build_rows(shared: Path, split: str, work: Path) -> tuple[list[tuple[list[str], list[str], int]], dict]:
    """(query words, passage words, label) of every ir_relevance row built from ``split``."""
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.reader import Build, ShardDataset
    from zhmask.record import SENTENCE_LABEL

    src = shared / "corpora" / "inews_docs.jsonl"
    part = work / f"inews_{split}.jsonl"
    with src.open(encoding="utf-8") as f, part.open("w", encoding="utf-8") as g:
        for line in f:
            if json.loads(line)["split"] == split:
                g.write(line)
    out = work / f"out_{split}"
    res = build_corpus(BuildConfig(inputs=[str(part)], text_field="text", title_field="title",
                                   tasks=["ir_relevance"], out=str(out)).validate())
    build = Build(out)
    tok = build.tokenizer
    ds = ShardDataset(build, split=None, tasks=["ir_relevance"], columns=["input_ids", "word_ids", SENTENCE_LABEL])
    rows = []
    for r in ds:
        ids, wids = r["input_ids"].tolist(), r["word_ids"].tolist()
        segs: list[list[str]] = [[], []]
        k, prev = 0, None
        for t, w in zip(ids[1:], wids[1:]):
            if w == -1:  # [SEP]
                k += 1
                prev = None
                if k == 2:
                    break
                continue
            piece = tok.id_to_token[t]
            piece = piece[2:] if piece.startswith("##") else piece
            if w == prev:
                segs[k][-1] += piece
            else:
                segs[k].append(piece)
            prev = w
        rows.append((segs[0], segs[1], int(r[SENTENCE_LABEL])))
    return rows, res.manifest.get("events", {})


class Scorer:
    """BM25 and overlap of a query against a passage, statistics from the fitting rows."""

    def __init__(self, passages: list[list[str]]) -> None:
        self.n = len(passages)
        self.df = Counter(w for p in passages for w in set(p))
        self.avgdl = float(np.mean([len(p) for p in passages])) if passages else 1.0

    def bm25(self, query: list[str], passage: list[str]) -> float:
        tf = Counter(passage)
        dl = len(passage)
        s = 0.0
        for q in query:
            if tf[q]:
                idf = math.log(1.0 + (self.n - self.df[q] + 0.5) / (self.df[q] + 0.5))
                s += idf * tf[q] * (K1 + 1) / (tf[q] + K1 * (1 - B + B * dl / self.avgdl))
        return s

    @staticmethod
    def overlap(query: list[str], passage: list[str]) -> float:
        text = "".join(passage)
        return sum(q in text for q in query) / len(query) if query else 0.0


def fit(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, tuple[int, int, int]]:
    """Thresholds lo <= hi and the classes of the bands (< lo, [lo, hi), >= hi) with the best
    accuracy on (scores, labels)."""
    cand = np.unique(np.quantile(scores, np.linspace(0, 1, 201)))
    cand = np.concatenate([cand, [np.inf]])
    below = {c: np.searchsorted(np.sort(scores[labels == c]), cand, side="left") for c in range(3)}
    total = {c: int((labels == c).sum()) for c in range(3)}
    best = (-1, 0.0, 0.0, (0, 1, 2))
    for order in itertools.permutations(range(3)):
        lo_c, mid_c, hi_c = order
        # acc[i, j] for lo = cand[i], hi = cand[j], i <= j
        acc = (below[lo_c][:, None] + (below[mid_c][None, :] - below[mid_c][:, None])
               + (total[hi_c] - below[hi_c][None, :]))
        acc = np.where(np.triu(np.ones_like(acc, dtype=bool)), acc, -1)
        i, j = np.unravel_index(int(np.argmax(acc)), acc.shape)
        if acc[i, j] > best[0]:
            best = (int(acc[i, j]), float(cand[i]), float(cand[j]), order)
    return best[1], best[2], best[3]


def predict(scores: np.ndarray, lo: float, hi: float, order: tuple[int, int, int]) -> np.ndarray:
    return np.where(scores < lo, order[0], np.where(scores < hi, order[1], order[2]))


def report(train, dev) -> str:
    scorer = Scorer([p for _, p, _ in train])
    y_tr = np.array([y for _, _, y in train])
    y_dev = np.array([y for _, _, y in dev])
    lines = [f"rows: train {len(train)} ({dict(sorted(Counter(y_tr.tolist()).items()))}), "
             f"dev {len(dev)} ({dict(sorted(Counter(y_dev.tolist()).items()))})", ""]
    for name, fn in (("bm25", scorer.bm25), ("overlap", scorer.overlap)):
        s_tr = np.array([fn(q, p) for q, p, _ in train])
        s_dev = np.array([fn(q, p) for q, p, _ in dev])
        lo, hi, order = fit(s_tr, y_tr)
        pred = predict(s_dev, lo, hi, order)
        acc = float((pred == y_dev).mean()) if len(dev) else float("nan")
        mean = ", ".join(f"class {c} {s_dev[y_dev == c].mean():.2f}" for c in range(3))
        lines.append(f"**{name}**: dev accuracy {acc:.3f} (train {float((predict(s_tr, lo, hi, order) == y_tr).mean()):.3f}); "
                     f"bands < {lo:.3f} -> {order[0]}, < {hi:.3f} -> {order[1]}, else {order[2]}; mean dev score: {mean}")
        lines.append("")
        lines.append("| gold \\ predicted | 0 | 1 | 2 | recall |")
        lines.append("|---|---|---|---|---|")
        for c in range(3):
            row = [int(((y_dev == c) & (pred == p)).sum()) for p in range(3)]
            rec = row[c] / max(1, sum(row))
            lines.append(f"| {c} | {row[0]} | {row[1]} | {row[2]} | {rec:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", required=True, type=Path, help="the shared/ folder (corpora/inews_docs.jsonl)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ir_baseline_") as tmp:
        work = Path(tmp)
        train, ev_tr = build_rows(args.shared, "train", work)
        dev, ev_dev = build_rows(args.shared, "dev", work)
    print(report(train, dev))
    ev = {k: ev_tr.get(k, 0) + ev_dev.get(k, 0) for k in sorted(set(ev_tr) | set(ev_dev)) if k.startswith("ir_")}
    print(f"events (train + dev): {ev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
