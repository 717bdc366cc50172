"""``mac``: MacBERT's "MLM as correction" (Cui et al. 2020).

Units are n-grams of words selected exactly as ``ngram`` does (same knobs ``ngram_max`` and
``ngram_probs``).  The fate is drawn once per n-gram from ``--mask-ratios`` read as
similar / random / keep (default 80/10/10): every word of a *similar* n-gram is replaced by a
similar word, every word of a *random* n-gram by a random word, a *keep* n-gram stays as it is.
No [MASK] token is ever used.

Similar words come from ``dictionaries/synonyms.txt`` (Tongyici Cilin ``=`` groups and cnsyn,
built by ``scripts/build_synonyms.py``) plus any files given with
``--option synonyms='["my_groups.txt"]'`` (same format: one group of similar words a line).
A replacement keeps the word's token count so that labels stay aligned: a similar word with
the same number of tokens is drawn uniformly; otherwise the word is replaced by a random
lexicon word of that length, counted by reason in the manifest:

* ``mac_fallback_no_same_length_synonym``: the word has similar words, none of its length;
* ``mac_fallback_not_in_lexicon``: the word has no similar word in the lexicon;
* ``mac_fallback_random_tokens``: no lexicon word has that many tokens either, so random
  (non-special) tokens are used.

``mac_similar_from_lexicon / mac_words_similar`` is the share of similar-word replacements that
really came from the synonym lexicon.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.base import MaskResult
from zhmask.masking.ngram import NGRAM_OPTIONS, ngram_probs
from zhmask.masking.units import Masker, count_common, ranges_to_positions, sample_word_ngrams, word_table

SIMILAR, RANDOM, KEEP = 0, 1, 2
OPTIONS = {**NGRAM_OPTIONS, "synonyms": []}


def default_synonyms_path() -> Path:
    from zhmask.paths import dictionaries_dir

    return dictionaries_dir() / "synonyms.txt"


class SimilarLexicon:
    """Groups of similar words, keyed by the words' token ids (no string work per example)."""

    def __init__(self, paths: list[Path], tok) -> None:
        self.key_to_word: dict[tuple[int, ...], int] = {}
        self.word_groups: list[list[int]] = []
        self.groups: list[list[int]] = []
        words: list[tuple[int, ...]] = []
        bad = {int(x) for x in tok.special_ids.tolist()}
        for path in paths:
            try:
                lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ZhmaskError(f"cannot read synonym lexicon {path}: {exc}") from None
            for line in lines:
                if not line.strip() or line.startswith("#"):
                    continue
                members = []
                for w in line.split():
                    ids = tuple(tok._char_id(c) for c in w)
                    if not ids or any(i < 0 or i in bad for i in ids) or len(ids) != len(w):
                        continue
                    k = self.key_to_word.get(ids)
                    if k is None:
                        k = self.key_to_word[ids] = len(words)
                        words.append(ids)
                        self.word_groups.append([])
                    members.append(k)
                if len(set(members)) >= 2:
                    g = len(self.groups)
                    self.groups.append(sorted(set(members)))
                    for k in set(members):
                        self.word_groups[k].append(g)
        self.words = words
        self.lengths = np.asarray([len(w) for w in words], dtype=np.int64)
        self.by_len: dict[int, np.ndarray] = {}
        for L in np.unique(self.lengths).tolist():
            idx = np.flatnonzero(self.lengths == L)
            self.by_len[L] = np.asarray([words[i] for i in idx], dtype=np.int32).reshape(len(idx), L)
        self._similar: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.words)

    def similar(self, k: int) -> np.ndarray:
        """Indices of the words similar to word ``k`` with its token count (sorted, cached)."""
        hit = self._similar.get(k)
        if hit is None:
            L = self.lengths[k]
            cand = sorted({j for g in self.word_groups[k] for j in self.groups[g] if j != k and self.lengths[j] == L})
            hit = self._similar[k] = np.asarray(cand, dtype=np.int64)
        return hit


def lexicon_for(config, ctx) -> SimilarLexicon:
    extra = STRATEGIES.option("mac", config, "synonyms")
    paths = [default_synonyms_path()] + [Path(p) for p in extra]
    key = ("mac_lexicon", tuple(str(p) for p in paths))
    lex = ctx.resources.get(key)
    if lex is None:
        lex = ctx.resources[key] = SimilarLexicon(paths, ctx.tok)
    return lex


def _validate(config) -> None:
    ngram_probs("mac", config)
    extra = STRATEGIES.option("mac", config, "synonyms")
    if not isinstance(extra, (list, tuple)) or not all(isinstance(p, str) for p in extra):
        raise ZhmaskError(f"--option synonyms: expected a list of file paths, got {extra!r}")
    for p in extra:
        if not Path(p).is_file():
            raise ZhmaskError(f"--option synonyms: file not found: {p}")


@register("mac", options=OPTIONS, validate=_validate)
def make(config, ctx):
    m = Masker(config, ctx)
    probs = ngram_probs("mac", config)
    lex = lexicon_for(config, ctx)
    replaceable = m.replaceable

    def random_word(L: int, rng, stats: Counter) -> np.ndarray:
        pool = lex.by_len.get(L)
        if pool is None or len(pool) == 0:
            stats["mac_fallback_random_tokens"] += 1
            return replaceable[rng.integers(0, len(replaceable), size=L)]
        return pool[int(rng.integers(len(pool)))]

    def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
        wt = m.word_table(example, wid, cand)
        sw, nw, _ = sample_word_ngrams(wt, probs, budget, rng, stats)
        order = np.argsort(sw, kind="stable")
        sw, nw = sw[order], nw[order]
        for n, c in zip(*np.unique(nw, return_counts=True)):
            stats[f"ngram_units_n{int(n)}"] += int(c)
        fate = m.fates(len(sw), rng)
        starts, ends = wt.start[sw], wt.end[sw + nw - 1]
        pos = ranges_to_positions(starts, ends)
        labels = np.full(len(ids), -100, dtype=np.int32)
        labels[pos] = ids[pos]
        out = ids.copy()
        for u in np.flatnonzero(fate != KEEP).tolist():
            similar = fate[u] == SIMILAR
            for k in range(int(sw[u]), int(sw[u] + nw[u])):
                s, e = int(wt.start[k]), int(wt.end[k])
                L = e - s
                if similar:
                    stats["mac_words_similar"] += 1
                    w = lex.key_to_word.get(tuple(ids[s:e].tolist()))
                    syn = lex.similar(w) if w is not None else None
                    if syn is not None and len(syn):
                        out[s:e] = lex.words[int(syn[int(rng.integers(len(syn)))])]
                        stats["mac_similar_from_lexicon"] += 1
                        continue
                    stats["mac_fallback_no_same_length_synonym" if w is not None and lex.word_groups[w]
                          else "mac_fallback_not_in_lexicon"] += 1
                else:
                    stats["mac_words_random"] += 1
                out[s:e] = random_word(L, rng, stats)
        stats["mac_words_keep"] += int(nw[fate == KEEP].sum())
        count_common(stats, n_cand, budget, fate, ends - starts, names=("similar", "random", "keep"))
        return MaskResult(out, labels, stats)

    return m.strategy(choose)

