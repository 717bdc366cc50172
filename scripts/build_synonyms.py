"""Build dictionaries/synonyms.txt, the similar-word table of ``--masking mac``.

Usage: python scripts/build_synonyms.py --shared ../shared [--out dictionaries/synonyms.txt]
       [--min-sim 0.1] [--topk 3] [--window 2] [--contexts 3000] [--min-count 3] [--exact-pos]

MacBERT replaces a word by a similar word (word2vec neighbours).  A neighbour alone is often a
related word, not a near-synonym (antonyms, co-hyponyms), and a pooled synonym list mixes the
senses of a string (的 ~ 鹄 "target").  This table keeps a candidate only when all of these hold:

* same sense: both words are in one HIT Tongyici Cilin (extended) ``=`` group (true synonyms;
  ``#`` related and ``@`` standalone entries are left out; the pooled cnsyn groups are no longer
  used);
* same length in characters (one token each, so labels stay aligned);
* same part of speech: the jieba dictionary tag of each word, compared by its first letter (n, v,
  a, d ...; proper-noun tags exactly; ``--exact-pos`` compares whole tags) (``rjieba.tag`` of the word alone,
  which is the tag rjieba gives the word inside a sentence: jieba tags a dictionary word with its
  dictionary tag; benchmarks/similar_words.py measures the agreement), words jieba splits have none;
* similar in use: cosine similarity of the two words' positive-PMI co-occurrence vectors
  (``--window`` words either side, the ``--contexts`` most frequent words as contexts, context
  distribution smoothed by 0.75) at least ``--min-sim``, computed with numpy on the tune split
  (iNews ``split == "train"`` and People's Daily lines with index % 5 != 4; the held-out lines and
  iNews dev are never read), both words occurring ``--min-count`` times or more there.

Each word's candidates are ranked by that similarity, best first, and the ``--topk`` best are
written as one line ``word<TAB>cand1 cand2 ...``.  Plain text, deterministic, no pickles.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

MAX_CHARS = 6
_CJK = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")


def is_cjk_word(w: str) -> bool:
    return 1 <= len(w) <= MAX_CHARS and _CJK.match(w) is not None


def cilin_groups(path: Path) -> list[list[str]]:
    """The ``=`` groups of Cilin, CJK words of 1..MAX_CHARS characters, in file order."""
    groups = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("="):
            ws = list(dict.fromkeys(w for w in parts[1:] if is_cjk_word(w)))
            if len(ws) >= 2:
                groups.append(ws)
    return groups


def word_pos(words) -> dict[str, str | None]:
    """The jieba dictionary tag of each word alone (None where jieba splits the word)."""
    import rjieba

    out = {}
    for w in words:
        t = rjieba.tag(w)
        out[w] = t[0][1] if len(t) == 1 and t[0][0] == w else None
    return out


def tune_texts(shared: Path):
    """The texts similarity is computed on: iNews train, People's Daily lines with i % 5 != 4."""
    with open(shared / "corpora" / "inews_docs.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            if d.get("split") == "train":
                yield d.get("title") or ""
                yield d.get("text") or ""
    with open(shared / "corpora" / "pd1998_pos_train.txt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i % 5 != 4:
                yield pd_plain(line)


def pd_plain(line: str) -> str:
    """People's Daily ``word/tag  word/tag`` as plain text (``[...]nt`` brackets dropped)."""
    out = []
    for tok in line.split():
        w = tok.rsplit("/", 1)[0].lstrip("[")
        out.append(w)
    return "".join(out)


class Cooccurrence:
    """Positive-PMI co-occurrence vectors of ``targets`` over the ``n_contexts`` most frequent words."""

    def __init__(self, docs: list[list[str]], targets: list[str], n_contexts: int, window: int) -> None:
        freq = Counter(w for d in docs for w in d)
        contexts = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:n_contexts]]
        t_index = {w: i for i, w in enumerate(targets)}
        c_index = {w: i for i, w in enumerate(contexts)}
        C = len(contexts)
        t_parts, c_parts = [], []
        gap = [-1] * window
        for d in docs:
            t_parts.extend([t_index.get(w, -1) for w in d] + gap)
            c_parts.extend([c_index.get(w, -1) for w in d] + gap)
        t = np.asarray(t_parts, dtype=np.int64)
        c = np.asarray(c_parts, dtype=np.int64)
        keys = []
        for off in range(1, window + 1):
            for x, y in ((t[:-off], c[off:]), (t[off:], c[:-off])):
                ok = (x >= 0) & (y >= 0)
                keys.append(x[ok] * C + y[ok])
        key, n = np.unique(np.concatenate(keys), return_counts=True)
        row, col = key // C, key % C
        n = n.astype(np.float64)
        row_sum = np.bincount(row, weights=n, minlength=len(targets))
        ctx = np.bincount(col, weights=n, minlength=C) ** 0.75
        pmi = np.log(n * ctx.sum() / (row_sum[row] * ctx[col]))
        keep = pmi > 0
        self.row, self.col, self.val = row[keep], col[keep], pmi[keep]
        norm = np.sqrt(np.bincount(self.row, weights=self.val ** 2, minlength=len(targets)))
        self.val = self.val / np.maximum(norm[self.row], 1e-12)
        self.bounds = np.searchsorted(self.row, np.arange(len(targets) + 1))
        self.index = t_index

    def cosine(self, a: str, b: str) -> float:
        i, j = self.index[a], self.index[b]
        ca, cb = self.col[self.bounds[i]:self.bounds[i + 1]], self.col[self.bounds[j]:self.bounds[j + 1]]
        _, ia, ib = np.intersect1d(ca, cb, assume_unique=True, return_indices=True)
        return float(self.val[self.bounds[i] + ia] @ self.val[self.bounds[j] + ib])


PROPER = {"nr", "nrt", "nrfg", "ns", "nt", "nz"}


def pos_class(tag: str | None, coarse: bool) -> str | None:
    """The POS compared: the jieba tag, or with ``coarse`` its first letter (n, v, a, d ...), so
    that 管理/vn and 治理/v or 相关/v and 有关/vn count as the same part of speech; proper-noun
    tags (nr, ns, nt, nz ...) stay exact, so a common noun never replaces a name or the reverse."""
    return tag if not coarse or not tag or tag in PROPER else tag[:1]


def build_table(shared: Path, min_sim: float, topk: int, window: int, n_contexts: int, min_count: int,
                coarse: bool = True):
    """(table, why): ``table[word]`` its candidates best first with their similarity; ``why[word]``,
    for a Cilin word without candidates, the first filter that removed them all
    (``no_same_length``, ``pos_mismatch``, ``rare``, ``below_threshold``)."""
    import rjieba

    groups = cilin_groups(shared / "lexicons" / "cilin_extended.txt")
    mates: dict[str, set[str]] = {}
    for g in groups:
        for w in g:
            mates.setdefault(w, set()).update(x for x in g if x != w)
    pos = {w: pos_class(t, coarse) for w, t in word_pos(sorted(mates)).items()}
    docs = [rjieba.cut(t) for t in tune_texts(shared) if t]
    freq = Counter(w for d in docs for w in d)
    targets = sorted(w for w in mates if freq[w] >= min_count and pos[w] is not None)
    co = Cooccurrence(docs, targets, n_contexts, window)
    table: dict[str, list[tuple[str, float]]] = {}
    why: dict[str, str] = {}
    for w in sorted(mates):
        same_len = [m for m in mates[w] if len(m) == len(w)]
        same_pos = [m for m in same_len if pos[w] is not None and pos[m] == pos[w]]
        frequent = [m for m in same_pos if w in co.index and m in co.index]
        scored = sorted(((m, co.cosine(w, m)) for m in frequent), key=lambda ms: (-ms[1], ms[0]))
        good = [(m, s) for m, s in scored if s >= min_sim][:topk]
        if good:
            table[w] = good
        else:
            why[w] = ("no_same_length" if not same_len else "pos_mismatch" if not same_pos
                      else "rare" if not frequent else "below_threshold")
    return table, why, pos


HEADER = ("# similar-word table of zhmask --masking mac: word<TAB>candidates, best first.\n"
          "# built by scripts/build_synonyms.py ({args}) from HIT Tongyici Cilin (extended) '=' groups,\n"
          "# same length and jieba POS, ranked by PPMI co-occurrence cosine on the tune split; see\n"
          "# dictionaries/README.md for sources and licences.\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--shared", required=True, help="the shared folder (lexicons/, corpora/)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "dictionaries" / "synonyms.txt"))
    ap.add_argument("--min-sim", type=float, default=0.1)
    ap.add_argument("--topk", type=int, default=3)
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--contexts", type=int, default=3000)
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--exact-pos", action="store_true", help="compare whole jieba tags (vn != v)")
    a = ap.parse_args(argv)
    table, why, _ = build_table(Path(a.shared), a.min_sim, a.topk, a.window, a.contexts, a.min_count,
                                coarse=not a.exact_pos)
    args = (f"--min-sim {a.min_sim} --topk {a.topk} --window {a.window} --contexts {a.contexts} "
            f"--min-count {a.min_count}" + (" --exact-pos" if a.exact_pos else ""))
    dst = Path(a.out)
    dst.write_text(HEADER.format(args=args) + "".join(f"{w}\t{' '.join(m for m, _ in c)}\n" for w, c in table.items()),
                   encoding="utf-8")
    print(f"wrote {dst}: {len(table):,} words with candidates, {dst.stat().st_size / 1e6:.2f} MB; "
          f"without: {dict(Counter(why.values()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
