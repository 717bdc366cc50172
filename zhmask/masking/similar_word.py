"""``mac``: MacBERT's "MLM as correction" (Cui et al. 2020).

Units are n-grams of words selected exactly as ``ngram`` does (same knobs ``ngram_max`` and
``ngram_probs``).  The fate is drawn once per n-gram from ``--mask-ratios`` read as
similar / random / keep (default 80/10/10): every word of a *similar* n-gram is replaced by a
similar word, every word of a *random* n-gram by a random word, a *keep* n-gram stays as it is.
No [MASK] token is ever used.

Similar words come from ``dictionaries/synonyms.txt`` (built by ``scripts/build_synonyms.py``:
for each word, its HIT Tongyici Cilin ``=`` synonyms of the same length and part of speech,
ranked by co-occurrence similarity, below a threshold left out; for a word without any, its
nearest narrow-window word2vec neighbours of the same length and part of speech, antonym-like
pairs left out, the one that best fills the word's slots (position-aware PPMI) kept)
plus any files given with
``--option synonyms='["my_table.txt"]'``.  A file line is either ``word<TAB>cand1 cand2 ...``
(the word's candidates, best first) or ``w1 w2 w3 ...`` (a group of mutually similar words).
A replacement keeps the word's token count so that labels stay aligned.  What a word of a
*similar* unit becomes, counted in the manifest:

* ``mac_similar_from_lexicon``: one of its candidates, drawn uniformly;
* ``mac_fallback_no_similar_word``: a Chinese word without a candidate of its token count is
  replaced by a random lexicon word of that length (MacBERT's fallback);
  ``mac_fallback_joined_words`` when no lexicon word is that long (random lexicon words joined,
  longest first);
* ``mac_kept_punctuation``: punctuation and symbols stay as they are (predicted, as a kept word);
* ``mac_same_kind_number`` / ``mac_same_kind_latin``: a word with digits or Latin letters gets
  random tokens of the same kind, token by token (a digit piece for a digit piece, a ``##``
  continuation for a continuation); its Chinese characters, if any, stay;
* ``mac_kept_other``: other scripts (kana, emoji ...) stay as they are.

Words of a *random* unit get a random lexicon word when Chinese, and random tokens of the same
kind otherwise (punctuation included): punctuation, numbers and Latin never become Chinese.
``mac_similar_from_lexicon / mac_words_similar`` is the share of similar-word replacements that
really came from the lexicon.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.ngram import NGRAM_OPTIONS, make_ngram_mask, ngram_probs
from zhmask.masking.units import cjk_token_table

SIMILAR, RANDOM, KEEP = 0, 1, 2
OPTIONS = {**NGRAM_OPTIONS, "synonyms": []}


def default_synonyms_path() -> Path:
    from zhmask.paths import dictionaries_dir

    return dictionaries_dir() / "synonyms.txt"


class SimilarLexicon:
    """Similar words keyed by the words' token ids (no string work per example).

    ``ranked[k]``: the candidates a ``word<TAB>candidates`` line gives word ``k``, best first;
    ``groups``: the groups of ``w1 w2 ...`` lines.  :meth:`similar` joins both."""

    def __init__(self, paths: list[Path], tok) -> None:
        from zhmask.lexcache import cached

        # parsed once, then loaded from the lexicon cache (zhmask/lexcache.py): the table holds
        # token ids, so the tokenizer's identity is part of its key
        t = cached("synonyms", {"synonyms": list(paths)}, lambda: _similar_tables(paths, tok), extra=tok.identity,
                   code=("zhmask.steps.tokenize",))
        self.key_to_word: dict[tuple[int, ...], int] = t["key_to_word"]
        self.word_groups: list[list[int]] = t["word_groups"]
        self.groups: list[list[int]] = t["groups"]
        self.ranked: dict[int, list[int]] = t["ranked"]
        self.words: list[tuple[int, ...]] = t["words"]
        self.lengths: np.ndarray = t["lengths"]
        self.by_len: dict[int, np.ndarray] = {L: t[f"by_len:{L}"] for L in t["by_len"]}
        self._similar: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.words)

    def similar(self, k: int) -> np.ndarray:
        """Indices of the words similar to word ``k`` with its token count (cached): its ranked
        candidates in their order, then its group mates in index order."""
        hit = self._similar.get(k)
        if hit is None:
            L = self.lengths[k]
            cand = list(self.ranked.get(k, ()))
            seen = set(cand) | {k}
            cand += sorted({j for g in self.word_groups[k] for j in self.groups[g] if j not in seen})
            hit = self._similar[k] = np.asarray([j for j in cand if self.lengths[j] == L], dtype=np.int64)
        return hit


def _similar_tables(paths: list[Path], tok) -> dict:
    """What :class:`SimilarLexicon` holds, parsed from the files (``by_len:L``: the words of
    ``L`` tokens as a matrix, for each ``L`` of ``by_len``, ascending)."""
    key_to_word: dict[tuple[int, ...], int] = {}
    word_groups: list[list[int]] = []
    groups: list[list[int]] = []
    ranked: dict[int, list[int]] = {}
    words: list[tuple[int, ...]] = []
    bad = {int(x) for x in tok.special_ids.tolist()}

    def word(w: str) -> int | None:
        ids = tuple(tok._char_id(c) for c in w)
        if not ids or any(i < 0 or i in bad for i in ids) or len(ids) != len(w):
            return None
        k = key_to_word.get(ids)
        if k is None:
            k = key_to_word[ids] = len(words)
            words.append(ids)
            word_groups.append([])
        return k

    from zhmask.lexcache import read_lines

    for path in paths:
        for line in read_lines(path, "synonym lexicon"):
            if not line.strip() or line.startswith("#"):
                continue
            if "\t" in line:
                head, _, rest = line.partition("\t")
                k = word(head.strip())
                if k is None:
                    continue
                have = ranked.setdefault(k, [])
                for w in rest.split():
                    j = word(w)
                    if j is not None and j != k and j not in have:
                        have.append(j)
                continue
            members = [k for k in map(word, line.split()) if k is not None]
            if len(set(members)) >= 2:
                g = len(groups)
                groups.append(sorted(set(members)))
                for k in set(members):
                    word_groups[k].append(g)
    lengths = np.asarray([len(w) for w in words], dtype=np.int64)
    t = {"key_to_word": key_to_word, "word_groups": word_groups, "groups": groups, "ranked": ranked,
         "words": words, "lengths": lengths, "by_len": sorted(set(lengths.tolist()))}
    for L in t["by_len"]:
        idx = np.flatnonzero(lengths == L)
        t[f"by_len:{L}"] = np.asarray([words[i] for i in idx], dtype=np.int32).reshape(len(idx), L)
    return t


# token kinds (see token_kinds): a non-Chinese word is replaced token by token within its kind
CJK, DIGIT, DIGIT_CONT, LATIN, LATIN_CONT, PUNCT, OTHER = range(7)


def token_kinds(tok) -> tuple[np.ndarray, list[np.ndarray]]:
    """(``kind[id]``, ``pools[kind]``): each vocabulary token's kind -- a CJK character, digits
    (word start / ``##`` continuation), Latin letters (start / continuation), one punctuation
    mark or symbol, other -- and the replaceable ids of each kind (sorted; the CJK pool without
    ``##`` pieces, which Chinese input never produces)."""
    hit = getattr(tok, "_zhmask_token_kinds", None)
    if hit is not None:
        return hit
    cjk = cjk_token_table(tok)
    kind = np.full(tok.vocab_size, OTHER, dtype=np.int8)
    for i, t in enumerate(tok.id_to_token):
        cont = t.startswith("##") and len(t) > 2
        body = t[2:] if cont else t
        if cjk[i]:
            kind[i] = CJK
        elif body.isascii() and body.isdigit():
            kind[i] = DIGIT_CONT if cont else DIGIT
        elif body.isascii() and body.isalpha():
            kind[i] = LATIN_CONT if cont else LATIN
        elif not cont and len(body) == 1 and not body.isalnum() and not body.isspace():
            kind[i] = PUNCT
    rep = np.asarray(tok.replaceable_ids)
    pools = [np.sort(rep[kind[rep] == k]) for k in range(OTHER + 1)]
    pools[CJK] = np.asarray([i for i in pools[CJK].tolist() if not tok.id_to_token[i].startswith("##")], dtype=rep.dtype)
    tok._zhmask_token_kinds = (kind, pools)
    return kind, pools


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


def replacer(config, ctx):
    """``replace(word, similar, rng, stats)``: the replacement of one word (its token ids) of a
    *similar* (``similar=True``) or *random* unit, drawn from ``rng`` (see the module's text)."""
    lex = lexicon_for(config, ctx)
    kind, pools = token_kinds(ctx.tok)
    cjk_pool = pools[CJK]

    lengths = sorted(lex.by_len)

    def random_word(L: int, rng, stats: Counter) -> np.ndarray:
        pool = lex.by_len.get(L)
        if pool is not None:
            return pool[int(rng.integers(len(pool)))]
        if not lengths:  # an empty lexicon: random characters
            stats["mac_fallback_random_tokens"] += 1
            return cjk_pool[rng.integers(0, len(cjk_pool), size=L)]
        # no lexicon word that long: random lexicon words joined, longest first
        stats["mac_fallback_joined_words"] += 1
        parts, left = [], L
        while left:
            n = max((x for x in lengths if x <= left), default=0)
            if n == 0:
                parts.append(cjk_pool[rng.integers(0, len(cjk_pool), size=left)])
                break
            pool = lex.by_len[n]
            parts.append(pool[int(rng.integers(len(pool)))])
            left -= n
        return np.concatenate(parts)

    def same_kind(word: np.ndarray, kinds: np.ndarray, rng) -> np.ndarray:
        """Each non-CJK token of ``word`` replaced by a random token of its kind (OTHER kept)."""
        out = word.copy()
        for i, k in enumerate(kinds.tolist()):
            if k != CJK and k != OTHER and len(pools[k]):
                out[i] = pools[k][int(rng.integers(len(pools[k])))]
        return out

    def replace(word: np.ndarray, similar: bool, rng, stats: Counter) -> np.ndarray:
        kinds = kind[word]
        if (kinds == CJK).all():
            if similar:
                stats["mac_words_similar"] += 1
                w = lex.key_to_word.get(tuple(word.tolist()))
                syn = lex.similar(w) if w is not None else None
                if syn is not None and len(syn):
                    stats["mac_similar_from_lexicon"] += 1
                    return np.asarray(lex.words[int(syn[int(rng.integers(len(syn)))])], dtype=word.dtype)
                stats["mac_fallback_no_similar_word"] += 1
            else:
                stats["mac_words_random"] += 1
            return random_word(len(word), rng, stats)
        what = ("number" if ((kinds == DIGIT) | (kinds == DIGIT_CONT)).any() else
                "latin" if ((kinds == LATIN) | (kinds == LATIN_CONT)).any() else
                "punctuation" if (kinds == PUNCT).any() else "other")
        if not similar:
            stats["mac_words_random"] += 1
            return same_kind(word, kinds, rng)
        stats["mac_words_similar"] += 1
        if what in ("punctuation", "other"):
            stats[f"mac_kept_{what}"] += 1
            return word
        stats[f"mac_same_kind_{what}"] += 1
        return same_kind(word, kinds, rng)

    return replace


@register("mac", options=OPTIONS, validate=_validate, traits=("whole_word", "uses_segmentation"),
          help="whole-word n-grams replaced by similar words, no [MASK] (MacBERT)")
def make(config, ctx):
    replace = replacer(config, ctx)

    def apply_rows(m, rb, gens, us, ue, stats):
        """The rows with their units' words replaced: one fate per unit (similar / random /
        keep), then each replaced word's draws, units in order, from its row's values."""
        urow, fate, labels = m.fates_rows(rb, gens, us, ue)
        ids = rb.ids
        out = ids.copy()
        w0, w1 = np.searchsorted(rb.ws, us), np.searchsorted(rb.ws, ue)  # each unit's words
        ws, we = rb.ws.tolist(), rb.we.tolist()
        for u in np.flatnonzero(fate != KEEP).tolist():
            similar, rng = bool(fate[u] == SIMILAR), gens[urow[u]]
            for k in range(int(w0[u]), int(w1[u])):
                out[ws[k]:we[k]] = replace(ids[ws[k]:we[k]], similar, rng, stats)
        if m.count_rows(rb, stats, fate, ue - us, names=("similar", "random", "keep")):
            stats["mac_words_keep"] += int((w1 - w0)[fate == KEEP].sum())
        return out, labels

    return make_ngram_mask("mac", config, ctx, ngram_probs("mac", config), apply_rows=apply_rows)


@STRATEGIES.add_check("mac")
def check_mac_row(row: dict, ctx: dict) -> list[str]:
    """MacBERT writes no [MASK]: a masked word becomes a similar or a random word, or stays."""
    from zhmask.masking.checks import masked_arrays

    arrays = masked_arrays(row)
    if arrays is not None and (arrays[0] == ctx.get("mask_id", -1)).any():
        return ["--masking mac: a [MASK] token in the input"]
    return []
