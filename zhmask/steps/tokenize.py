"""Tokenisation aligned to words.

Every token carries its character span and the index of its word, and no token straddles two
words: words whose boundary falls inside one of the tokenizer's pre-tokens (a run of Latin
letters and digits cut in two by a segmenter) are merged first (:meth:`WordTokenizer.align_joined`).

Two paths give the same ids as the tokenizer run on the whole text:

* ``fast`` (a WordPiece ``vocab.txt`` with BERT normalisation, the default): CJK characters and
  punctuation are single-character pre-tokens, looked up in a per-character table; the
  remaining runs (Latin words, numbers, symbols) are WordPiece-encoded once per distinct run
  and cached (Chinese text is Zipfian, so the cache hit rate is high);
* ``exact`` (any ``tokenizer.json``): the tokenizer encodes the whole text with offsets and
  tokens are assigned to words by offset.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from functools import cached_property
from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.record import Tokens, Words
from zhmask.registry import Registry
from zhmask.steps.normalize import is_cjk

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_ALIGN_WORTH = re.compile(r"[^\u3000-\u9fff\s]{2,}")  # a text without such a run has no words to merge


def _is_bert_punct(cp: int) -> bool:
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(chr(cp)).startswith("P")


def single_ranges() -> list[tuple[int, int]]:
    """Code point ranges BERT's pre-tokenizer isolates (not space/punct/CJK/control): computed
    over every code point with this Python's Unicode database (about 0.7 s)."""
    singles: list[tuple[int, int]] = []
    start = prev = None
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        single = ch.isspace() or _is_bert_punct(cp) or is_cjk(cp) or cp in (0, 0xFFFD) or unicodedata.category(ch) in ("Cc", "Cf")
        if single:
            if start is None:
                start = cp
            elif cp != prev + 1:  # type: ignore[operator]
                singles.append((start, prev))  # type: ignore[arg-type]
                start = cp
            prev = cp
    if start is not None:
        singles.append((start, prev))  # type: ignore[arg-type]
    return singles


def _singles() -> list[tuple[int, int]]:
    from zhmask.steps import _pretoken_ranges as pre

    if pre.UNIDATA_VERSION == unicodedata.unidata_version:  # the table generated for this database
        return list(pre.SINGLE_RANGES)
    return single_ranges()


def _build_run_regex() -> re.Pattern[str]:
    """Runs of characters that BERT's pre-tokenizer keeps together (not space/punct/CJK)."""
    singles = _singles()
    cls = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in singles)
    return re.compile(f"[^{cls}]+")


_RUN_RE: re.Pattern[str] | None = None


_RUN_TABLE: np.ndarray | None = None


def run_table() -> np.ndarray:
    """Code point -> whether :func:`run_regex` matches it (bool array over every code point)."""
    global _RUN_TABLE
    if _RUN_TABLE is None:
        t = np.ones(sys.maxunicode + 1, dtype=bool)
        for a, b in _singles():
            t[a:b + 1] = False
        _RUN_TABLE = t
    return _RUN_TABLE


def run_regex() -> re.Pattern[str]:
    global _RUN_RE
    if _RUN_RE is None:
        _RUN_RE = _build_run_regex()
    return _RUN_RE


def load_vocab(path: str | Path) -> dict[str, int]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read vocabulary {path}: {exc}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [ln.rstrip("\r") for ln in lines]
    vocab = dict(zip(lines, range(len(lines))))  # a token listed twice: its last line
    if "" in vocab:  # an empty line is no token, except an empty first line (id 0)
        if lines[0] == "":
            vocab[""] = 0
        else:
            del vocab[""]
    missing = [t for t in SPECIALS if t not in vocab]
    if missing:
        raise ZhmaskError(f"vocabulary {path} lacks the special token(s) {' '.join(missing)}")
    return vocab


_SHARED: dict[str, "WordTokenizer"] = {}


def tokenizer_identity(vocab: str | Path | None = None, tokenizer_json: str | Path | None = None,
                       lowercase: bool = True) -> str:
    """What a tokenizer's output depends on, as a string: its kind, the lowercase setting and the
    sha256 of its file's content (the bundled vocabulary when neither is given).  OSError when
    the file cannot be read."""
    import hashlib

    from zhmask.paths import default_vocab

    src = Path(tokenizer_json) if tokenizer_json else (Path(vocab) if vocab else default_vocab())
    kind = "json" if tokenizer_json else "vocab"
    return f"{kind}:{int(bool(lowercase))}:{hashlib.sha256(src.read_bytes()).hexdigest()}"


def shared_tokenizer(vocab: str | Path | None = None, tokenizer_json: str | Path | None = None,
                     lowercase: bool = True) -> "WordTokenizer":
    """A :class:`WordTokenizer` made once per process for the same vocabulary (by the content of
    its file) and settings: a build's pipeline and the tokenizer files written beside its shards
    share one (the tokenizer only caches lookups, which never change its output)."""
    try:
        key = tokenizer_identity(vocab, tokenizer_json, lowercase)
    except OSError:
        return WordTokenizer(vocab, tokenizer_json, lowercase=lowercase)  # it reports the file in its words
    tok = _SHARED.get(key)
    if tok is None:
        tok = WordTokenizer(vocab, tokenizer_json, lowercase=lowercase)
        if len(_SHARED) >= 2:  # a long-lived process building with many vocabularies keeps the last two
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = tok
    return tok


TOKENIZERS = Registry("tokenizer", traits=("exact",))
"""Tokenizers: a factory ``make(vocab=None, tokenizer=None, lowercase=True) -> WordTokenizer``
(the :class:`BuildConfig` fields of the same names).  Which one a build uses follows from its
files (:func:`zhmask.registry.tokenizer_name`: ``--tokenizer`` names a tokenizer.json, else
WordPiece).  Trait ``exact``: the tokenizer encodes whole texts with offsets (the ``exact``
path) instead of the per-character table of the ``fast`` path."""


def _check_vocab(config) -> None:
    if config.vocab:
        load_vocab(config.vocab)  # one line naming the missing [CLS] [SEP] [MASK] [PAD] [UNK]


def _check_tokenizer_json(config) -> None:
    """A tokenizer.json must parse and hold the five special tokens (checked before any work)."""
    import json

    path = config.tokenizer
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        vocab = data["model"]["vocab"]
        names = set(vocab) if isinstance(vocab, dict) else {v[0] for v in vocab}
        names |= {t.get("content") for t in data.get("added_tokens") or []}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ZhmaskError(f"cannot read tokenizer {path}: {type(exc).__name__}: {exc}") from None
    missing = [t for t in SPECIALS if t not in names]
    if missing:
        raise ZhmaskError(f"tokenizer {path} lacks the special token(s) {' '.join(missing)}")


@TOKENIZERS.register("wordpiece", validate=_check_vocab, fields=("vocab", "lowercase"),
                     help="a WordPiece vocab.txt with BERT's normalisation (default: bert-base-chinese's)")
def _wordpiece(vocab: str | None = None, tokenizer: str | None = None, lowercase: bool = True) -> "WordTokenizer":
    return shared_tokenizer(vocab, None, lowercase=lowercase)


@TOKENIZERS.register("tokenizer_json", validate=_check_tokenizer_json, traits=("exact",), fields=("tokenizer", "lowercase"),
                     help="any tokenizers tokenizer.json (--tokenizer)")
def _tokenizer_json(vocab: str | None = None, tokenizer: str | None = None, lowercase: bool = True) -> "WordTokenizer":
    return shared_tokenizer(vocab, tokenizer, lowercase=lowercase)


def make_tokenizer(config) -> "WordTokenizer":
    """The tokenizer a config selects (:func:`zhmask.registry.tokenizer_name`), through the registry."""
    from zhmask.registry import tokenizer_name

    return TOKENIZERS.entry(tokenizer_name(config)).fn(vocab=config.vocab, tokenizer=config.tokenizer,
                                                       lowercase=config.lowercase)


class WordTokenizer:
    """Tokenizer wrapper that produces word-aligned :class:`Tokens`."""

    def __init__(self, vocab: str | Path | None = None, tokenizer_json: str | Path | None = None,
                 lowercase: bool = True) -> None:
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        self._source = (vocab, tokenizer_json, lowercase)
        if tokenizer_json:
            try:
                self.tk = Tokenizer.from_file(str(tokenizer_json))
            except Exception as exc:
                raise ZhmaskError(f"cannot load tokenizer {tokenizer_json}: {exc}") from None
            self.vocab = self.tk.get_vocab()
            missing = [t for t in SPECIALS if t not in self.vocab]
            if missing:
                raise ZhmaskError(f"tokenizer {tokenizer_json} lacks the special token(s) {' '.join(missing)}")
            self.mode = "exact"
        else:
            from zhmask.paths import default_vocab

            vocab_path = Path(vocab) if vocab else default_vocab()
            self.vocab = load_vocab(vocab_path)
            self.tk = BertWordPieceTokenizer(str(vocab_path), lowercase=lowercase, strip_accents=lowercase,
                                             handle_chinese_chars=True, clean_text=True)._tokenizer
            self.mode = "fast"
        self.vocab_size = max(self.vocab.values()) + 1
        self.id_to_token = [""] * self.vocab_size
        for tok, i in self.vocab.items():
            self.id_to_token[i] = tok
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.vocab[t] for t in SPECIALS)
        self.special_ids = np.array(sorted({self.vocab[t] for t in SPECIALS}), dtype=np.int32)
        self._char_ids: dict[str, int] = {}
        self._run_cache: dict[str, tuple[list[int], list[int], list[int]]] = {}
        # code point -> id of the single-character pre-token (-2: not looked up yet), filled lazily
        self._cp_table = np.full(sys.maxunicode + 1, -2, dtype=np.int32) if self.mode == "fast" else None

    @cached_property
    def identity(self) -> str:
        """:func:`tokenizer_identity` of this tokenizer's file and settings (a cache key for tables
        of its token ids)."""
        return tokenizer_identity(*self._source)

    @cached_property
    def replaceable_ids(self) -> np.ndarray:
        """The ids a random replacement may draw, ascending: no special, [unused*] or empty tokens
        (made on first use: most builds never draw from the whole vocabulary)."""
        bad = set(self.special_ids.tolist())
        # id_to_token is the vocabulary in id order; an id no token has holds "", skipped as empty
        return np.array([i for i, t in enumerate(self.id_to_token) if i not in bad
                         and not (t.startswith("[") and t.endswith("]")) and t.strip()], dtype=np.int32)

    @property
    def _run_re(self) -> re.Pattern[str] | None:
        """The pre-token run regex of the per-text path (compiled on first use; None in exact mode)."""
        return run_regex() if self.mode == "fast" else None

    # ------------------------------------------------------------------ word alignment
    def align_joined(self, joined: str, texts: list[str], doc_starts: np.ndarray, words: Words,
                     runs: tuple | None = None) -> tuple[Words, int]:
        """Merge the words whose boundaries fall inside one pre-token run, in every text of
        ``joined`` (``texts`` joined by ``"\\n"``, starting at
        ``doc_starts``; ``words`` over ``joined``, a separator word between two texts): (words,
        number of merges).  Pre-token runs never contain the separator, so a run and
        the words it overlaps lie in one text.  ``runs``: :meth:`joined_runs` of ``joined``."""
        if runs is None:
            runs = self.joined_runs(joined)
        a, b, _ = runs
        long = (b - a) >= 2
        a, b = a[long], b[long]
        if len(a) == 0:
            return words, 0
        starts, ends = words.starts, words.ends
        i = np.searchsorted(starts, a, side="right") - 1
        j = np.searchsorted(starts, b, side="left")
        hit = (j - i) > 1
        if not hit.any():
            return words, 0
        # only in the texts align() looks at (the others keep their words whatever the runs)
        doc = np.searchsorted(doc_starts, a[hit], side="right") - 1
        worth = {d for d in set(doc.tolist()) if texts[d].isascii() or _ALIGN_WORTH.search(texts[d]) is not None}
        hit[np.flatnonzero(hit)[[d not in worth for d in doc.tolist()]]] = False
        if not hit.any():
            return words, 0
        keep = np.ones(len(starts), dtype=bool)
        new_ends = ends.copy()
        prev = 0
        merged = []
        cut: list[tuple[int, int]] = []
        for i0, j0 in zip(i[hit].tolist(), j[hit].tolist()):
            if i0 < prev:  # overlapping merge ranges, as align() clips them (cannot happen for disjoint runs)
                i0 = prev
            if i0 >= j0:
                raise ValueError("empty merge range")
            new_ends[i0] = ends[j0 - 1]
            keep[i0 + 1:j0] = False
            cut.append((i0 + 1, j0))
            merged.append(i0)
            prev = j0
        pos = list(words.pos)
        for a, b in reversed(cut):  # few: deleting beats rebuilding the list
            del pos[a:b]
        return Words(starts[keep], new_ends[keep], pos), len(merged)

    def joined_runs(self, joined: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The pre-token runs (Latin words, numbers, symbols) of a text, those of
        :func:`run_regex`: (starts, ends, runs), found by a code point table."""
        try:
            cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # a lone surrogate
            spans = [m.span() for m in run_regex().finditer(joined)]
            a = np.array([x for x, _ in spans], dtype=np.int64)
            b = np.array([y for _, y in spans], dtype=np.int64)
        else:
            edge = np.diff(run_table()[cps].view(np.int8), prepend=np.int8(0), append=np.int8(0))
            a = np.flatnonzero(edge == 1)
            b = np.flatnonzero(edge == -1)
        return a, b, [joined[x:y] for x, y in zip(a.tolist(), b.tolist())]

    # ------------------------------------------------------------------ tokens
    def _char_id(self, ch: str) -> int:
        tid = self._char_ids.get(ch)
        if tid is None:
            ids = self.tk.encode(ch, add_special_tokens=False).ids
            tid = ids[0] if ids else -1  # -1: the normaliser removes it
            self._char_ids[ch] = tid
        return tid

    def _run(self, run: str) -> tuple[list[int], list[int], list[int]]:
        hit = self._run_cache.get(run)
        if hit is None:
            enc = self.tk.encode(run, add_special_tokens=False)
            hit = (enc.ids, [o[0] for o in enc.offsets], [o[1] for o in enc.offsets])
            if len(self._run_cache) < 500_000:
                self._run_cache[run] = hit
        return hit

    def _cp_ids(self, cps: np.ndarray) -> np.ndarray:
        """Ids of single-character pre-tokens (CJK, punctuation, spaces) through the code point
        table, in one numpy pass: -1 where there is no token (spaces, removed by the normaliser);
        code points not looked up yet (-2) are looked up first."""
        table = self._cp_table
        tid = table[cps]
        unknown = tid == -2
        if unknown.any():
            for cp in set(cps[unknown].tolist()):  # (np.unique would import numpy.ma: 7 ms of start-up)
                table[cp] = self._char_id(chr(cp))
            tid = table[cps]
        return tid

    def tokenize(self, text: str, words: Words) -> Tokens:
        if self.mode == "exact":
            return self._tokenize_exact(text, words)
        try:
            cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # a lone surrogate
            return self._tokenize_loop(text, words)
        tid = self._cp_ids(cps)
        runs = [(m.start(), m.end(), m.group()) for m in self._run_re.finditer(text)]  # type: ignore[union-attr]
        if not runs:
            pos = np.flatnonzero(tid >= 0)
            return self._finish(tid[pos], pos, pos + 1, words)
        n = len(cps)
        edge = np.zeros(n + 1, dtype=np.int32)
        r_ids: list[int] = []
        r_s: list[int] = []
        r_e: list[int] = []
        r_key: list[int] = []
        for a, b, run in runs:
            edge[a] += 1
            edge[b] -= 1
            ids, st, en = self._run(run)
            r_ids += ids
            r_s += [a + x for x in st]
            r_e += [a + x for x in en]
            r_key += [a] * len(ids)
        inrun = np.cumsum(edge[:n]) > 0
        tid[inrun] = -1
        pos = np.flatnonzero(tid >= 0)
        # a run's tokens keep their order: they sort under the run's start, characters under their own
        order = np.argsort(np.concatenate([pos, np.asarray(r_key, dtype=np.int64)]), kind="stable")
        ids_all = np.concatenate([tid[pos], np.asarray(r_ids, dtype=np.int32)])[order]
        s_all = np.concatenate([pos, np.asarray(r_s, dtype=np.int64)])[order]
        e_all = np.concatenate([pos + 1, np.asarray(r_e, dtype=np.int64)])[order]
        return self._finish(ids_all, s_all, e_all, words)

    def tokenize_joined(self, joined: str, words: Words, runs: tuple | None = None) -> Tokens:
        """:meth:`tokenize` of texts joined by ``"\\n"`` (the fast path; the separator gives no token
        and pre-token runs never contain it), in one pass: tokens with offsets into ``joined`` and
        the index of their word in ``words``.  Raises UnicodeEncodeError on a lone surrogate and
        ValueError in exact mode (tokenise such texts one by one)."""
        if self.mode != "fast":
            raise ValueError("the exact tokenizer encodes each text alone")
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        tid = self._cp_ids(cps)
        if runs is None:
            runs = self.joined_runs(joined)
        ra, rb, texts = runs
        n = len(cps)
        # word index of each character: tokens lie inside words (words cover the text, in order)
        first = np.zeros(n, dtype=np.int32)
        first[words.starts[words.starts < n]] = 1
        word_at = np.cumsum(first, dtype=np.int32) - 1
        if not texts:
            pos = np.flatnonzero(tid >= 0)
            return Tokens(tid[pos], pos, pos + 1, word_at[pos])
        edge = np.zeros(n + 1, dtype=np.int32)
        np.add.at(edge, ra, 1)
        np.add.at(edge, rb, -1)
        r_ids: list[int] = []
        r_s: list[int] = []
        r_e: list[int] = []
        r_n: list[int] = []
        run = self._run
        for text in texts:
            ids, st, en = run(text)
            r_ids += ids
            r_s += st
            r_e += en
            r_n.append(len(ids))
        key = np.repeat(ra, np.asarray(r_n, dtype=np.int64))
        inrun = np.cumsum(edge[:n]) > 0
        tid[inrun] = -1
        pos = np.flatnonzero(tid >= 0)
        order = np.argsort(np.concatenate([pos, key]), kind="stable")
        ids_all = np.concatenate([tid[pos], np.asarray(r_ids, dtype=np.int32)])[order]
        s_all = np.concatenate([pos, key + np.asarray(r_s, dtype=np.int64)])[order]
        e_all = np.concatenate([pos + 1, key + np.asarray(r_e, dtype=np.int64)])[order]
        return Tokens(np.asarray(ids_all, dtype=np.int32), s_all, e_all, word_at[s_all])

    def _tokenize_loop(self, text: str, words: Words) -> Tokens:
        """Character by character: for texts that cannot be viewed as code points (lone surrogates)."""
        ids: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        char_id = self._char_ids

        def singles(a: int, b: int) -> None:  # single-character pre-tokens between runs
            for k in range(a, b):
                ch = text[k]
                if ch == " " or ch == "\n":
                    continue
                tid = char_id.get(ch)
                if tid is None:
                    tid = self._char_id(ch)
                if tid >= 0:
                    ids.append(tid)
                    starts.append(k)
                    ends.append(k + 1)

        pos = 0
        for m in self._run_re.finditer(text):  # type: ignore[union-attr]
            a, b = m.span()
            singles(pos, a)
            r_ids, r_s, r_e = self._run(m.group())
            ids.extend(r_ids)
            starts.extend([a + s for s in r_s])
            ends.extend([a + e for e in r_e])
            pos = b
        singles(pos, len(text))
        return self._finish(ids, starts, ends, words)

    def _tokenize_exact(self, text: str, words: Words) -> Tokens:
        enc = self.tk.encode(text, add_special_tokens=False)
        offs = enc.offsets
        return self._finish(enc.ids, [o[0] for o in offs], [o[1] for o in offs], words)

    def _finish(self, ids, starts, ends, words: Words) -> Tokens:
        s = np.asarray(starts, dtype=np.int32)
        e = np.asarray(ends, dtype=np.int32)
        w = (np.searchsorted(words.starts, s, side="right") - 1).astype(np.int32)
        return Tokens(np.asarray(ids, dtype=np.int32), s, e, w)

    def encode_text(self, text: str) -> list[int]:
        """The tokenizer's own ids for a whole text (no special tokens): the reference."""
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode_tokens(self, ids) -> list[str]:
        return [self.id_to_token[i] for i in ids]
