"""Build dictionaries/synonyms.txt, the similar-word table of ``--masking mac``.

Usage: python scripts/build_synonyms.py --shared ../shared [--out dictionaries/synonyms.txt]
       [--reasons-out FILE] [--min-sim 0.1] [--topk 3] [--window 2] [--contexts 3000]
       [--min-count 3] [--exact-pos] [--w2v-min-sim 0.6] [--w2v-min-count 5] [--w2v-window 2]
       [--w2v-topk 1] [--rank-window 2] [--rank-contexts 10000] [--no-embeddings]

MacBERT replaces a word by a similar word (word2vec neighbours through the Synonyms toolkit).
A pooled synonym list mixes the senses of a string (的 ~ 鹄 "target"), and a neighbour alone is
often a related word, not a near-synonym, so the table has two tiers, the first preferred:

1. Cilin: a candidate is kept when all of these hold
   * same sense: both words are in one HIT Tongyici Cilin (extended) ``=`` group (true
     synonyms; ``#`` related and ``@`` standalone entries are left out);
   * same length in characters (one token each, so labels stay aligned);
   * same part of speech: the jieba dictionary tag of each word, compared by its first letter
     (n, v, a, d ...; proper-noun tags exactly; ``--exact-pos`` compares whole tags)
     (``rjieba.tag`` of the word alone, which is the tag rjieba gives the word inside a
     sentence; benchmarks/similar_words.py measures the agreement), words jieba splits have none;
   * similar in use: cosine similarity of the two words' positive-PMI co-occurrence vectors
     (``--window`` words either side, the ``--contexts`` most frequent words as contexts,
     context distribution smoothed by 0.75) at least ``--min-sim``, both words occurring
     ``--min-count`` times or more in the tune split;
   ranked by that similarity.
2. word2vec (for words of the tune split without a tier-1 candidate; ``--no-embeddings`` skips
   it): gensim skip-gram vectors trained on the tune split (100 dimensions, a narrow window of
   ``--w2v-window`` words, 5 epochs, words seen ``--w2v-min-count`` times or more); a word's
   nearest words of its own length and POS class (proper-noun tags exactly, so a name is replaced
   by a name of the same kind), cosine at least ``--w2v-min-sim``, leaving out antonym-like pairs
   that Cilin files under one small category in different ``=`` groups (买/卖, 今天/明天, 男/女);
   re-ranked by how well the neighbour fills the word's *slots* (cosine of position-aware PPMI
   vectors: the ``--rank-contexts`` most frequent words at each offset up to ``--rank-window``),
   the ``--w2v-topk`` best kept.  Narrow and position-aware contexts give substitutable words
   (民警 -> 警方 before 特警, 表示 -> 指出); a window of 5 gave topical ones (记者 -> 快报).

The tune split is iNews ``split == "train"`` and People's Daily lines with index % 5 != 4;
the held-out lines and iNews dev are never read.  Each word's ``--topk`` best candidates are
written as one line ``word<TAB>cand1 cand2 ...``.  Plain text, no pickles; deterministic for
a given machine (one gensim worker, fixed seed and hash).  gensim is needed only here
(``pip install 'zhmask[tables]'``).
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
    """Positive-PMI co-occurrence vectors of ``targets`` over the ``n_contexts`` most frequent words.

    With ``positional``, a context is a word *at an offset* (``-window .. -1, 1 .. window``: 的 one
    word to the left and 的 one word to the right are two contexts), so two words are similar when
    they fill the same slots, i.e. when one can stand in for the other (Levy & Goldberg 2014:
    narrow and position-aware contexts give functional, not topical, similarity)."""

    def __init__(self, docs: list[list[str]], targets: list[str], n_contexts: int, window: int,
                 positional: bool = False) -> None:
        freq = Counter(w for d in docs for w in d)
        contexts = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:n_contexts]]
        t_index = {w: i for i, w in enumerate(targets)}
        c_index = {w: i for i, w in enumerate(contexts)}
        C = len(contexts)
        slots = 2 * window if positional else 1
        t_parts, c_parts = [], []
        gap = [-1] * window
        for d in docs:
            t_parts.extend([t_index.get(w, -1) for w in d] + gap)
            c_parts.extend([c_index.get(w, -1) for w in d] + gap)
        t = np.asarray(t_parts, dtype=np.int64)
        c = np.asarray(c_parts, dtype=np.int64)
        keys = []
        for off in range(1, window + 1):
            for side, (x, y) in enumerate(((t[:-off], c[off:]), (t[off:], c[:-off]))):
                ok = (x >= 0) & (y >= 0)
                slot = (2 * (off - 1) + side) if positional else 0
                keys.append(x[ok] * (C * slots) + slot * C + y[ok])
        key, n = np.unique(np.concatenate(keys), return_counts=True)
        row, col = key // (C * slots), key % (C * slots)
        n = n.astype(np.float64)
        row_sum = np.bincount(row, weights=n, minlength=len(targets))
        ctx = np.bincount(col, weights=n, minlength=C * slots) ** 0.75
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


W2V_MIN_SIM = 0.6
PROPER = {"nr", "nrt", "nrfg", "ns", "nt", "nz"}


def pos_class(tag: str | None, coarse: bool) -> str | None:
    """The POS compared: the jieba tag, or with ``coarse`` its first letter (n, v, a, d ...), so
    that 管理/vn and 治理/v or 相关/v and 有关/vn count as the same part of speech; proper-noun
    tags (nr, ns, nt, nz ...) stay exact, so a common noun never replaces a name or the reverse."""
    return tag if not coarse or not tag or tag in PROPER else tag[:1]


def cilin_codes(path: Path) -> dict[str, set[str]]:
    """Each word's Cilin ``=`` group codes (``He03A01=`` -> ``He03A01``)."""
    codes: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("="):
            for w in parts[1:]:
                codes.setdefault(w, set()).add(parts[0][:-1])
    return codes


def antonym_like(a: str, b: str, codes: dict[str, set[str]]) -> bool:
    """Cilin knows both words, never puts them in one ``=`` group, but files them under one
    small category (the code's first 4 characters): 买/卖 (He03A01, He03B01), 今天/明天 (Ca23A03,
    Ca23A04), 男/女, 东/西: antonyms and co-hyponyms, which word vectors place close together."""
    ca, cb = codes.get(a), codes.get(b)
    if not ca or not cb or ca & cb:
        return False
    return bool({c[:4] for c in ca} & {c[:4] for c in cb})


def word2vec(docs: list[list[str]], dim: int, window: int, min_count: int, epochs: int):
    """gensim skip-gram vectors of the tune split; one worker and a fixed seed and hash so that
    the same input gives the same vectors (gensim is only needed to build the table)."""
    import zlib

    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise SystemExit("the embedding tier needs gensim: pip install 'zhmask[tables]' (or --no-embeddings)")
    return Word2Vec(docs, vector_size=dim, window=window, min_count=min_count, sg=1, negative=5,
                    epochs=epochs, workers=1, seed=1, hashfxn=lambda s: zlib.crc32(s.encode("utf-8"))).wv


def nearest(keys: list[str], vectors: np.ndarray, words: list[str], topn: int,
            chunk: int = 1024) -> dict[str, list[tuple[str, float]]]:
    """The ``topn`` nearest neighbours by cosine of each of ``words`` among the CJK vocabulary
    words of its own length (itself left out), best first, ties by vocabulary order: gensim's
    ``most_similar`` restricted to one length (a one-character word's nearest words are mostly
    longer ones, which a replacement cannot use) and batched through one matrix product.
    ``keys[i]`` is the word of row ``vectors[i]``."""
    vec = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = {k: i for i, k in enumerate(keys)}
    out = {}
    by_len: dict[int, list[str]] = {}
    for w in words:
        by_len.setdefault(len(w), []).append(w)
    for L, ws in sorted(by_len.items()):
        pool = np.asarray([i for i, k in enumerate(keys) if len(k) == L and is_cjk_word(k)])
        where = {int(j): n for n, j in enumerate(pool.tolist())}
        n_top = min(topn, len(pool) - 1)
        if n_top < 1:
            continue
        for i in range(0, len(ws), chunk):
            part = ws[i:i + chunk]
            rows = np.asarray([index[w] for w in part])
            sim = vec[rows] @ vec[pool].T
            sim[np.arange(len(rows)), [where[int(r)] for r in rows]] = -np.inf
            top = np.argpartition(-sim, n_top - 1, axis=1)[:, :n_top]
            for w, r, t in zip(part, sim, top):
                t = t[np.lexsort((t, -r[t]))]
                out[w] = [(keys[pool[j]], float(r[j])) for j in t.tolist()]
    return out


def rank_neighbours(w: str, neighbours, pos: dict, codes: dict[str, set[str]], slots: Cooccurrence,
                    min_sim: float, topk: int) -> tuple[list, list]:
    """(passing, kept): the word vectors' ``neighbours`` of ``w`` (``(word, cosine)``) of its POS
    class and not :func:`antonym_like`; of those with cosine at least ``min_sim``, the ``topk``
    that best fill ``w``'s slots (``slots``: position-aware :class:`Cooccurrence`), ties by cosine
    and then by the word."""
    passing = [(m, s) for m, s in neighbours if pos.get(m) == pos[w] and not antonym_like(w, m, codes)]
    kept = sorted(((m, s) for m, s in passing if s >= min_sim),
                  key=lambda ms: (-slots.cosine(w, ms[0]), -ms[1], ms[0]))[:topk]
    return passing, kept


def build_table(shared: Path, min_sim: float, topk: int, window: int, n_contexts: int, min_count: int,
                coarse: bool = True, w2v_min_sim: float | None = None, w2v_min_count: int = 5,
                w2v_dim: int = 100, w2v_window: int = 2, w2v_epochs: int = 5, w2v_topn: int = 30,
                w2v_topk: int = 1, rank_window: int = 2, rank_contexts: int = 10000):
    """(table, why, pos): ``table[word]`` its candidates best first with their similarity;
    ``why[word]``, for a word without candidates, the first filter that removed them all.

    Tier 1 (Cilin): ``=`` group mates of the same length and POS class, PPMI cosine at least
    ``min_sim`` (``why``: ``no_same_length``, ``pos_mismatch``, ``rare``, ``below_threshold``).
    Tier 2 (``w2v_min_sim`` not None): a word of the tune split (``w2v_min_count`` times or more)
    without tier-1 candidates gets its nearest word2vec neighbours (of the ``w2v_topn`` nearest)
    among the CJK words of its length, of the same POS class (proper nouns: the same tag), cosine at
    least ``w2v_min_sim``, not :func:`antonym_like`, ranked by the cosine of their position-aware
    PPMI vectors (:class:`Cooccurrence`, ``rank_window``, ``rank_contexts``), then by the vectors'
    cosine, the ``w2v_topk`` best kept (``why`` for words still without:
    ``w2v_no_pos`` jieba splits the word, ``w2v_rare`` too rare for vectors, ``w2v_no_neighbour``
    no neighbour passes; words in neither tier: ``no_cilin_entry``)."""
    import rjieba

    lex = shared / "lexicons" / "cilin_extended.txt"
    groups = cilin_groups(lex)
    mates: dict[str, set[str]] = {}
    for g in groups:
        for w in g:
            mates.setdefault(w, set()).update(x for x in g if x != w)
    docs = [rjieba.cut(t) for t in tune_texts(shared) if t]
    freq = Counter(w for d in docs for w in d)
    vocab = sorted(w for w, c in freq.items() if c >= w2v_min_count and is_cjk_word(w)) if w2v_min_sim is not None else []
    pos = {w: pos_class(t, coarse) for w, t in word_pos(sorted(set(mates) | set(vocab))).items()}
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
    if w2v_min_sim is None:
        return table, why, pos
    wv = word2vec(docs, w2v_dim, w2v_window, w2v_min_count, w2v_epochs)
    slots = Cooccurrence(docs, vocab, rank_contexts, rank_window, positional=True)
    codes = cilin_codes(lex)
    neighbours = nearest(wv.index_to_key, wv.vectors, [w for w in sorted(set(why) | set(freq)) if w not in table and w in wv.key_to_index
                              and is_cjk_word(w)], w2v_topn)
    for w in sorted(set(why) | {w for w in freq if is_cjk_word(w) and w not in table}):
        if w in table:
            continue
        if pos.get(w) is None and w in pos:
            why[w] = "w2v_no_pos"
            continue
        if w not in wv.key_to_index or w not in pos:
            why.setdefault(w, "w2v_rare")
            continue
        passing, good = rank_neighbours(w, neighbours.get(w, ()), pos, codes, slots, w2v_min_sim, w2v_topk)
        if good:
            table[w] = good
            why.pop(w, None)
        else:
            why[w] = "w2v_below_threshold" if passing else "w2v_no_neighbour"
    return dict(sorted(table.items())), why, pos


HEADER = ("# similar-word table of zhmask --masking mac: word<TAB>candidates, best first.\n"
          "# built by scripts/build_synonyms.py ({args}): HIT Tongyici Cilin (extended) '=' synonyms\n"
          "# of the same length and jieba POS ranked by PPMI cosine, else narrow-window word2vec neighbours of\n"
          "# the same length and POS ranked by position-aware PPMI cosine (tune split); see docs/masking.md\n"
          "# and dictionaries/README.md (sources, licences).\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--shared", required=True, help="the shared folder (lexicons/, corpora/)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "dictionaries" / "synonyms.txt"))
    ap.add_argument("--reasons-out", default=None,
                    help="also write word<TAB>reason for words without candidates (benchmarks/similar_words.py --reasons)")
    ap.add_argument("--min-sim", type=float, default=0.1)
    ap.add_argument("--topk", type=int, default=3)
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--contexts", type=int, default=3000)
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--exact-pos", action="store_true", help="compare whole jieba tags (vn != v)")
    ap.add_argument("--w2v-min-sim", type=float, default=W2V_MIN_SIM,
                    help="word2vec tier: least cosine of a neighbour (needs gensim)")
    ap.add_argument("--w2v-min-count", type=int, default=5, help="word2vec tier: least count of a word")
    ap.add_argument("--w2v-window", type=int, default=2, help="word2vec tier: skip-gram window (narrow: substitutes)")
    ap.add_argument("--w2v-topk", type=int, default=1, help="word2vec tier: neighbours kept per word")
    ap.add_argument("--rank-window", type=int, default=2,
                    help="word2vec tier: offsets either side of the position-aware PPMI vectors that rank neighbours")
    ap.add_argument("--rank-contexts", type=int, default=10000,
                    help="word2vec tier: most frequent words used as contexts at each offset")
    ap.add_argument("--no-embeddings", action="store_true", help="Cilin tier only (no gensim)")
    a = ap.parse_args(argv)
    for name in ("topk", "window", "contexts", "w2v_window", "w2v_topk", "rank_window", "rank_contexts"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    w2v = None if a.no_embeddings else a.w2v_min_sim
    table, why, _ = build_table(Path(a.shared), a.min_sim, a.topk, a.window, a.contexts, a.min_count,
                                coarse=not a.exact_pos, w2v_min_sim=w2v, w2v_min_count=a.w2v_min_count,
                                w2v_window=a.w2v_window, w2v_topk=a.w2v_topk, rank_window=a.rank_window,
                                rank_contexts=a.rank_contexts)
    args = (f"--min-sim {a.min_sim} --topk {a.topk} --window {a.window} --contexts {a.contexts} "
            f"--min-count {a.min_count}" + (" --exact-pos" if a.exact_pos else "")
            + (" --no-embeddings" if w2v is None else
               f" --w2v-min-sim {w2v} --w2v-min-count {a.w2v_min_count} --w2v-window {a.w2v_window}"
               f" --w2v-topk {a.w2v_topk} --rank-window {a.rank_window} --rank-contexts {a.rank_contexts}"))
    dst = Path(a.out)
    dst.write_text(HEADER.format(args=args) + "".join(f"{w}\t{' '.join(m for m, _ in c)}\n" for w, c in table.items()),
                   encoding="utf-8")
    if a.reasons_out:
        Path(a.reasons_out).write_text("".join(f"{w}\t{r}\n" for w, r in sorted(why.items())), encoding="utf-8")
    print(f"wrote {dst}: {len(table):,} words with candidates, {dst.stat().st_size / 1e6:.2f} MB; "
          f"without: {dict(Counter(why.values()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
