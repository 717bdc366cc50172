"""Similar words from your own corpus, for ``--masking mac --option synonyms='["FILE"]'``.

Usage:
  python scripts/build_similar_words.py corpus.txt [more.txt|.jsonl ...] --out similar.txt \\
      [--vocab-size 5000] [--dim 100] [--window 5] [--topk 5] [--min-sim 0.6] [--text-field text]

MacBERT takes its similar words from word2vec neighbours.  This builds count-based word
vectors offline, with numpy only: the words are cut by rjieba, the ``--vocab-size`` most
frequent all-CJK words of two or more characters are kept, co-occurrences within ``--window``
words are counted, turned into positive PMI (context distribution smoothed by 0.75, Levy et
al. 2015) and reduced to ``--dim`` dimensions by a randomised SVD.  Each word's ``--topk``
nearest neighbours of the *same length* with cosine similarity at least ``--min-sim`` form one
line ``word<TAB>neighbour ...`` (best first), the ranked format of ``dictionaries/synonyms.txt``.  Memory grows
with the square of ``--vocab-size`` (5,000 words: about 200 MB).  Distributional neighbours
are related words, not always synonyms (antonyms and co-hyponyms score high), which is also
true of MacBERT's word2vec neighbours.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def read_texts(paths: list[str], text_field: str):
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                if p.endswith(".jsonl"):
                    try:
                        v = json.loads(line).get(text_field)
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(v, str):
                        yield v
                else:
                    yield line


def is_cjk_word(w: str) -> bool:
    return len(w) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in w)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--topk", type=int, default=5)
    ap.add_argument("--min-sim", type=float, default=0.6)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import rjieba

    docs = [rjieba.cut(t) for t in read_texts(a.inputs, a.text_field)]
    freq = Counter(w for d in docs for w in d if is_cjk_word(w))
    vocab = [w for w, c in freq.most_common(a.vocab_size) if c >= a.min_count]
    V = len(vocab)
    if V < 10:
        print(f"only {V} words occur {a.min_count}+ times; give more text", file=sys.stderr)
        return 2
    index = {w: i for i, w in enumerate(vocab)}
    # one sequence for the whole corpus, documents separated by window -1s
    parts = []
    gap = np.full(a.window, -1, dtype=np.int64)
    for d in docs:
        parts.append(np.asarray([index.get(w, -1) for w in d], dtype=np.int64))
        parts.append(gap)
    seq = np.concatenate(parts)
    counts = np.zeros(V * V, dtype=np.float64)
    for off in range(1, a.window + 1):
        x, y = seq[:-off], seq[off:]
        ok = (x >= 0) & (y >= 0)
        counts += np.bincount(x[ok] * V + y[ok], minlength=V * V)
    C = counts.reshape(V, V)
    C = C + C.T
    del counts
    total = C.sum()
    row = C.sum(1)
    ctx = C.sum(0) ** 0.75
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(C * ctx.sum() / (row[:, None] * ctx[None, :]))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0).astype(np.float32)
    del C, pmi
    rng = np.random.default_rng(a.seed)
    k = min(a.dim, V - 1)
    Q = ppmi @ rng.standard_normal((V, k + 10)).astype(np.float32)
    for _ in range(2):
        Q, _ = np.linalg.qr(ppmi @ (ppmi.T @ Q))
    Q, _ = np.linalg.qr(Q)
    U, S, _ = np.linalg.svd(Q.T @ ppmi, full_matrices=False)
    vec = (Q @ U[:, :k]) * np.sqrt(S[:k])
    vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9
    lengths = np.asarray([len(w) for w in vocab])
    lines = []
    for s in range(0, V, 1000):
        sim = vec[s:s + 1000] @ vec.T
        for i in range(sim.shape[0]):
            w = s + i
            sim[i, w] = -1
            sim[i, lengths != lengths[w]] = -1
            top = np.argsort(-sim[i])[: a.topk]
            top = [int(j) for j in top if sim[i, j] >= a.min_sim]
            if top:
                lines.append(vocab[w] + "\t" + " ".join(vocab[j] for j in top))
    Path(a.out).write_text(
        f"# similar words from word vectors (PPMI-SVD, {V} words, dim {k}, window {a.window}) over "
        f"{len(docs)} documents; scripts/build_similar_words.py\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {a.out}: {len(lines)} groups over {V} words (total co-occurrences {int(total):,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
