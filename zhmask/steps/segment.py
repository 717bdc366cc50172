"""Word segmentation backends behind one interface.

``Segmenter.segment(text) -> Words``: words with character offsets and POS tags that cover the
text exactly (whitespace runs are words too, tagged ``x``).  Backends:

* ``rjieba`` (default): jieba's algorithm and dictionary in Rust;
* ``jieba``: the pure-Python reference; with the same HMM setting the two give the same words;
* ``pkuseg``: spacy-pkuseg with a model directory the user trained (``zhmask train-segmenter``);
* ``char``: no segmentation: every CJK character is a word, other runs stay whole.

User dictionaries use jieba's ``word [freq] [tag]`` format.
"""
from __future__ import annotations

import re
from operator import itemgetter
from pathlib import Path
from typing import Protocol

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.record import Words
from zhmask.registry import Registry


class Segmenter(Protocol):
    name: str

    def segment(self, text: str) -> Words: ...


def read_user_dict(path: str | Path) -> list[tuple[str, int | None, str | None]]:
    """Entries of a jieba-format dictionary: ``word [freq] [tag]`` one a line."""
    out: list[tuple[str, int | None, str | None]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read user dictionary {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        word = parts[0]
        freq: int | None = None
        tag: str | None = None
        if len(parts) >= 2:
            if parts[1].isdigit():
                freq = int(parts[1])
                tag = parts[2] if len(parts) >= 3 else None
            else:
                tag = parts[1]
        out.append((word, freq, tag))
    return out


def _from_pieces(pieces: list[tuple[str, str]]) -> Words:
    lens = np.fromiter((len(w) for w, _ in pieces), dtype=np.int32, count=len(pieces))
    ends = np.cumsum(lens, dtype=np.int32)
    starts = ends - lens
    return Words(starts, ends, [t for _, t in pieces])


class RJiebaSegmenter:
    name = "rjieba"

    def __init__(self, user_dicts: list[str] = (), hmm: bool = False) -> None:
        import rjieba

        self.hmm = hmm
        entries = [e for path in user_dicts for e in read_user_dict(path)]
        # without user words the instance rjieba built at import serves (never modified here):
        # a second dictionary costs 0.1 s of every process's start-up
        default = getattr(rjieba, "_DEFAULT_JIEBA", None)
        self._jb = default if default is not None and not entries else rjieba.Jieba()
        for word, freq, tag in entries:
            self._jb.add_word(word, freq, tag)
        self._retag: dict[str, str] = {}
        if any(tag for _, _, tag in entries):
            self._apply_user_tags(entries)

    def _apply_user_tags(self, entries: list[tuple[str, int | None, str | None]]) -> None:
        """rjieba's add_word keeps the tag of a word it already knows (jieba's Python add_word
        replaces it). Where a user tag is lost, rebuild the dictionary with the user's entries
        tagged from the start (jieba's dict.txt, the one rjieba embeds, minus those words, then
        the user's entries); without jieba's file, re-tag each such word after cutting."""
        import rjieba

        tags = {w: t for w, _, t in entries if t}
        lost = {w: t for w, t in tags.items() if self._jb.tag(w, False) != [(w, t)]}
        if not lost:
            return
        try:
            import jieba

            base = Path(jieba.__file__).parent / "dict.txt"
            jb = rjieba.Jieba.empty()
            with open(base, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] not in tags:
                        jb.add_word(parts[0], int(parts[1]), parts[2] if len(parts) >= 3 else None)
        except (ImportError, OSError, ValueError):
            self._retag = lost
            return
        for word, freq, tag in entries:
            jb.add_word(word, freq, tag)
        self._jb = jb

    def segment(self, text: str) -> Words:
        pieces = self._jb.tag(text, self.hmm)
        if self._retag:
            get = self._retag.get
            pieces = [(w, get(w, t)) for w, t in pieces]
        return _from_pieces(pieces)

    def segment_joined(self, joined: str) -> Words:
        """The words of texts joined by ``"\\n"``, with int64 offsets into ``joined``.

        jieba cuts its input into blocks at characters outside its word alphabet and a
        whitespace character is always a word of its own, so the words are those of each text
        cut alone, with the separators between them (see :func:`segment_joined`)."""
        pieces = self._jb.tag(joined, self.hmm)
        pos = list(map(itemgetter(1), pieces))
        if self._retag:
            pos = list(map(self._retag.get, map(itemgetter(0), pieces), pos))
        return _joined_words(map(len, map(itemgetter(0), pieces)), pos)


def _joined_words(lens, pos: list[str]) -> Words:
    """Words of the given lengths (an iterable), one after the other from 0."""
    lens = np.fromiter(lens, dtype=np.int64, count=len(pos))
    ends = np.cumsum(lens)
    return Words(ends - lens, ends, pos)


class JiebaSegmenter:
    name = "jieba"

    def __init__(self, user_dicts: list[str] = (), hmm: bool = False) -> None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        self._tok = jieba.Tokenizer()
        self._pos = jieba.posseg.POSTokenizer(self._tok)
        self.hmm = hmm
        for path in user_dicts:
            for word, freq, tag in read_user_dict(path):
                self._tok.add_word(word, freq, tag)
                if tag:
                    self._pos.word_tag_tab[word] = tag

    def segment(self, text: str) -> Words:
        pieces = [(p.word, p.flag) for p in self._pos.cut(text, HMM=self.hmm)]
        return _from_pieces(pieces)


def check_pkuseg_model(model_dir: str) -> None:
    """A spacy-pkuseg model directory zhmask loads: ``features.msgpack`` and ``weights.npz``.

    spacy-pkuseg falls back to unpickling ``features.pkl`` when ``features.msgpack`` is missing;
    zhmask never unpickles a user-supplied file, so such a directory is refused."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ZhmaskError(f"--segmenter-model {model_dir}: not a directory (train one with `zhmask train-segmenter`)")
    if not (d / "features.msgpack").is_file() or not (d / "weights.npz").is_file():
        pkl = " (it has a pickled features.pkl, which zhmask does not load)" if (d / "features.pkl").exists() else ""
        raise ZhmaskError(f"--segmenter-model {model_dir}: needs features.msgpack and weights.npz{pkl}; "
                          "train one with `zhmask train-segmenter`")


class PkusegSegmenter:
    name = "pkuseg"

    def __init__(self, model_dir: str, user_dicts: list[str] = ()) -> None:
        try:
            import spacy_pkuseg
        except ImportError:
            raise ZhmaskError("the pkuseg segmenter needs spacy-pkuseg: pip install 'zhmask[pkuseg]'") from None
        check_pkuseg_model(model_dir)
        # a frequency of 0 removes a word in jieba's format: not a word to force on pkuseg
        words = [w for path in user_dicts for w, f, _ in read_user_dict(path) if f != 0]
        try:
            # user_dict=None: no merging of words after the model with spacy-pkuseg's generic
            # dictionary (default.pkl), which undoes the standard a model was trained to (PKU
            # word F1 0.958 without it, 0.940 with it); the user's words are still forced.
            self._seg = spacy_pkuseg.pkuseg(model_name=str(model_dir), user_dict=None)
            if words:
                self._seg.preprocesser = spacy_pkuseg.Preprocesser(words)
        except Exception as exc:
            raise ZhmaskError(f"cannot load pkuseg model from {model_dir}: {exc}") from None
        self._tagged = False

    def segment(self, text: str) -> Words:
        # pkuseg drops whitespace; cut each non-space run and keep the spaces as words.
        pieces: list[tuple[str, str]] = []
        for m in re.finditer(r"\S+|\s+", text):
            chunk = m.group()
            if chunk.isspace():
                pieces.append((chunk, "x"))
            else:
                cut = self._seg.cut(chunk)
                if "".join(cut) != chunk:  # defensive: never lose characters
                    cut = [chunk]
                pieces += [(w, "x") for w in cut]
        return _from_pieces(pieces)


_CHAR_RUN = re.compile(r"\s+|[A-Za-z0-9]+|.", re.S)


class CharSegmenter:
    """No segmentation: CJK characters one a word, ASCII letter/digit runs and spaces whole."""

    name = "char"

    def segment(self, text: str) -> Words:
        return _from_pieces([(m.group(), "x") for m in _CHAR_RUN.finditer(text)])

    def segment_joined(self, joined: str) -> Words:
        strs = _CHAR_RUN.findall(joined)  # the separator, a lone space between non-spaces, is a run alone
        return _joined_words(map(len, strs), ["x"] * len(strs))


SEGMENTERS = Registry("segmenter", traits=("pos_tags", "words", "needs_model"))
"""Segmenters, selected with ``--segmenter NAME``: a factory ``make(user_dicts=(), hmm=False,
model=None) -> Segmenter`` (the :class:`BuildConfig` fields ``user_dict``, ``hmm``,
``segmenter_model``; each reads those its entry's ``fields`` name).  Traits: ``pos_tags`` (its
words carry part-of-speech tags, which the lexicon entity detector reads), ``words`` (it finds
multi-character words; without, whole-word masking masks characters), ``needs_model`` (it
needs ``--segmenter-model``)."""


def _check_model(config) -> None:
    if not config.segmenter_model:
        raise ZhmaskError(f"--segmenter {config.segmenter} needs --segmenter-model DIR "
                          "(train one with `zhmask train-segmenter`)")
    check_pkuseg_model(config.segmenter_model)


@SEGMENTERS.register("rjieba", traits=("pos_tags", "words"), fields=("user_dict", "hmm"),
                     help="jieba's algorithm and dictionary in Rust (default)")
def _rjieba(user_dicts: list[str] = (), hmm: bool = False, model: str | None = None) -> Segmenter:
    return RJiebaSegmenter(user_dicts, hmm)


@SEGMENTERS.register("jieba", traits=("pos_tags", "words"), fields=("user_dict", "hmm"),
                     help="the pure-Python jieba (the same words as rjieba)")
def _jieba(user_dicts: list[str] = (), hmm: bool = False, model: str | None = None) -> Segmenter:
    return JiebaSegmenter(user_dicts, hmm)


@SEGMENTERS.register("pkuseg", validate=_check_model, traits=("words", "needs_model"),
                     fields=("segmenter_model", "user_dict"),
                     help="spacy-pkuseg with a model you trained (--segmenter-model)")
def _pkuseg(user_dicts: list[str] = (), hmm: bool = False, model: str | None = None) -> Segmenter:
    if not model:
        raise ZhmaskError("--segmenter pkuseg needs --segmenter-model DIR")
    return PkusegSegmenter(model, user_dicts)


@SEGMENTERS.register("char", help="no segmentation: every CJK character a word")
def _char(user_dicts: list[str] = (), hmm: bool = False, model: str | None = None) -> Segmenter:
    return CharSegmenter()


def make_segmenter(name: str, *, user_dicts: list[str] = (), hmm: bool = False, model: str | None = None) -> Segmenter:
    """The segmenter registered as ``name`` (one line naming the known ones otherwise)."""
    return SEGMENTERS.entry(name).fn(user_dicts=user_dicts, hmm=hmm, model=model)


JOIN = "\n"  # what the batched stages join a unit's texts with: a word, a sentence end, no token


def joinable(text: str) -> bool:
    """Whether ``text`` can be cut inside a joined unit (see :func:`segment_joined`): not empty,
    neither beginning nor ending with whitespace (which the separator could join)."""
    return bool(text) and not text[0].isspace() and not text[-1].isspace()


class NotJoinable(Exception):
    """The words of joined texts do not split into each text's words: cut them one by one."""


def segment_joined(segmenter: Segmenter, joined: str, texts: list[str], doc_starts: np.ndarray
                   ) -> tuple[Words, np.ndarray]:
    """The words of ``joined`` (``texts`` joined by :data:`JOIN`, each :func:`joinable`) as
    ``segmenter.segment`` cuts each text alone, with one separator word between two texts:
    (words with int64 offsets into ``joined``, index of each text's first word).  Segmenters with a ``segment_joined`` method cut the joined text at once; the others
    text by text.  Raises :class:`NotJoinable` when the words do not cover the texts exactly or a
    text's words would reach past it (then cut the texts alone)."""
    n = len(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    doc_ends = doc_starts + lens
    joined_cut = getattr(segmenter, "segment_joined", None)
    if joined_cut is not None and type(segmenter) in (RJiebaSegmenter, CharSegmenter):
        words = joined_cut(joined)  # slices of the text, one after the other: the lengths tell
        if len(words) == 0 or int(words.ends[-1]) != len(joined):
            raise NotJoinable("the words do not cover the text")
    else:
        st: list[np.ndarray] = []
        en: list[np.ndarray] = []
        pos: list[str] = []
        sep = np.zeros(1, dtype=np.int64)
        for k, text in enumerate(texts):
            w = segmenter.segment(text)
            off = doc_starts[k]
            if k:
                st.append(sep + (off - 1))
                en.append(sep + off)
                pos.append("x")
            st.append(w.starts.astype(np.int64) + off)
            en.append(w.ends.astype(np.int64) + off)
            pos += w.pos
        words = Words(np.concatenate(st), np.concatenate(en), pos)
        s_, e_ = words.starts, words.ends
        if len(s_) == 0 or s_[0] != 0 or e_[-1] != len(joined) or not np.array_equal(s_[1:], e_[:-1]):
            raise NotJoinable("the words do not cover the texts")
    starts, ends = words.starts, words.ends
    first = np.searchsorted(starts, doc_starts)
    if (first >= len(starts)).any() or not np.array_equal(starts[first], doc_starts):
        raise NotJoinable("a text does not begin a word")
    sep_at = np.searchsorted(starts, doc_ends[:-1])
    if (sep_at >= len(starts)).any() or not (np.array_equal(starts[sep_at], doc_ends[:-1])
                                            and np.array_equal(ends[sep_at], doc_starts[1:])):
        raise NotJoinable("a separator is not a word of its own")
    return words, first


def split_at_sentences_joined(words: Words, bounds: np.ndarray) -> tuple[Words, int]:
    """Cut any word that crosses a sentence start of joined texts: ``bounds`` are the sentence
    starts inside the texts (not a text's own start).  Returns (words, number of cuts)."""
    starts, ends = words.starts, words.ends
    idx = np.searchsorted(starts, bounds, side="left")
    crossed = (idx > 0) & (ends[np.maximum(idx - 1, 0)] > bounds)
    if not crossed.any():
        return words, 0
    cb = bounds[crossed]
    new_starts = np.sort(np.concatenate([starts, cb]))
    new_ends = np.sort(np.concatenate([ends, cb]))
    owner = np.searchsorted(starts, new_starts, side="right") - 1
    pos = words.pos
    new_pos = [pos[o] for o in owner.tolist()]
    return Words(new_starts, new_ends, new_pos), int(len(cb))
