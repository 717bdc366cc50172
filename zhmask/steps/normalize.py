"""Normalisation: one function from raw text to the text every later offset refers to.

* full-width ASCII (U+FF01..U+FF5E) to half-width, ideographic space to space, except the
  marks Chinese writes full-width by convention (，！？：；（）), which are kept;
* Unicode NFC (canonical composition), except that CJK compatibility ideographs, which NFC
  would replace by their unified twins, are kept; circled numbers and the like are left as
  they are (unlike NFKC);
* zero-width characters (U+200B..U+200D, U+2060, U+FEFF) and U+00AD removed;
* control characters removed; every whitespace character (U+2028, U+2029, U+0085, vertical
  tab, form feed, tab, NBSP ...) becomes a plain space and runs collapse to one; ``\\n`` is
  kept only when ``keep_newlines`` (blank-line separated documents, one sentence a line);
* optional traditional to simplified conversion with OpenCC (``--t2s``);
* last, characters the vocabulary lacks that have a standard equivalent in it become that
  equivalent (curly quotes to ASCII quotes, dashes to ``-``, ``…`` to ``...``:
  :data:`EQUIVALENTS`), only where the character would be ``[UNK]`` and its equivalent would not
  (:func:`vocab_equivalents`; ``--keep-unmapped`` turns it off).  Being part of normalisation,
  every later offset (sentences, words, entities, tokens, ``chinese_ref``) refers to the mapped
  text, so ``…`` becoming three characters needs no offset repair.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

# Chinese text writes these marks full-width by convention; they keep that form (the
# bert-base-chinese vocabulary has both) so that sentence and clause structure stays visible.
KEEP_FULLWIDTH = "，！？：；（）"
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F) if chr(cp) not in KEEP_FULLWIDTH}
_FULLWIDTH[0x3000] = 0x20
_ZERO_WIDTH = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)}
_WS_CHARS = "\t\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f"
_TABLE = dict(_FULLWIDTH)
_TABLE.update(_ZERO_WIDTH)
for ch in _WS_CHARS:
    _TABLE[ord(ch)] = 0x20
# C0/C1 controls other than \n and the whitespace above are removed.
for cp in list(range(0x00, 0x20)) + [0x7F] + list(range(0x80, 0xA0)):
    if cp not in _TABLE and cp != 0x0A:
        _TABLE[cp] = None


def _class(cps) -> str:
    """A regex character class of code points, as ranges."""
    cps = sorted(cps)
    out, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        a, b = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        out.append(a if i == j else f"{a}-{b}")
        i = j + 1
    return "[" + "".join(out) + "]"


# the characters _TABLE changes: a text without any is its own translation (str.translate
# looks every character up in the table, which costs more than this search)
_TO_TRANSLATE = re.compile(_class(_TABLE))


_SPACES = re.compile(r" {2,}")
_SPACE_NL = re.compile(r" *\n[ \n]*")
_NON_ASCII = re.compile(r"[^\x20-\x7e]")


_COMPAT_CJK = re.compile("([\uf900-\ufaff\U0002f800-\U0002fa1f])")


def _nfc_keep_cjk(text: str) -> str:
    """NFC, except that CJK compatibility ideographs (which NFC would replace) stay as written."""
    if _COMPAT_CJK.search(text) is None:
        return unicodedata.normalize("NFC", text)
    parts = _COMPAT_CJK.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFC", p) for i, p in enumerate(parts))


# Typographic characters and their standard equivalents (docs/pipeline.md has the table).  A
# character is mapped only when the vocabulary in use lacks it and holds its equivalent
# (vocab_equivalents): with bert-base-chinese's vocabulary “ ” ‟ ‘ ’ ‚ ‛ — – ― ‒ ‐ ‑ … are
# mapped (they would be [UNK]), while „ 〝 〞 ″ ′ − ﹣ ‥ 〜 are in it and stay.
EQUIVALENTS: dict[str, str] = {
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u301d": '"', "\u301e": '"', "\u2033": '"',  # “ ” „ ‟ 〝 〞 ″
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",  # ‘ ’ ‚ ‛ ′
    "\u2014": "-", "\u2013": "-", "\u2015": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-",  # — – ― ‒ ‐ ‑
    "\u2212": "-", "\ufe63": "-",  # − ﹣
    "\u2026": "...", "\u2025": "..",  # … ‥
    "\u301c": "~",  # 〜
}


def vocab_equivalents(tok: Any) -> dict[str, str]:
    """The part of :data:`EQUIVALENTS` that helps with ``tok`` (a WordTokenizer): characters the
    tokenizer turns into ``[UNK]`` whose equivalent it encodes without ``[UNK]``."""
    unk = int(tok.unk_id)
    out = {}
    for ch, eq in EQUIVALENTS.items():
        if tok.encode_text(ch) == [unk]:
            ids = tok.encode_text(eq)
            if ids and unk not in ids:
                out[ch] = eq
    return out


class Normalizer:
    """``Normalizer(t2s, equivalents)(text)``: the normalised text.  ``equivalents`` (from
    :func:`vocab_equivalents`) are applied last; ``mapped`` counts the characters they replaced
    in every text normalised since it was last cleared."""

    def __init__(self, t2s: bool = False, equivalents: dict[str, str] | None = None) -> None:
        self._cc = None
        if t2s:
            import opencc

            self._cc = opencc.OpenCC("t2s")
        self.mapped: Counter = Counter()
        self._eq = {ord(k): v for k, v in (equivalents or {}).items()}
        self._eq_re = re.compile(_class(self._eq)) if self._eq else None

    def __call__(self, text: str, keep_newlines: bool = False) -> str:
        if _NON_ASCII.search(text) is not None:
            if _TO_TRANSLATE.search(text) is not None:
                text = text.translate(_TABLE)
            if not unicodedata.is_normalized("NFC", text):
                text = _nfc_keep_cjk(text)
        elif "\t" in text or "\r" in text:
            text = text.translate(_TABLE)
        if not keep_newlines and "\n" in text:
            text = text.replace("\n", " ")
        if "  " in text:
            text = _SPACES.sub(" ", text)
        if keep_newlines and "\n" in text:
            text = _SPACE_NL.sub("\n", text)
        text = text.strip()
        if self._cc is not None and text:
            text = self._cc.convert(text)
        if self._eq_re is not None and not text.isascii() and self._eq_re.search(text) is not None:
            self.mapped.update(self._eq_re.findall(text))
            text = text.translate(self._eq)
        return text


def normalize(text: str, t2s: bool = False, keep_newlines: bool = False) -> str:
    """Convenience wrapper; build a :class:`Normalizer` once for many texts."""
    return Normalizer(t2s)(text, keep_newlines)


def cjk_ratio(text: str) -> float:
    """Share of non-space characters that are CJK ideographs."""
    import numpy as np

    chars = text.replace(" ", "").replace("\n", "")
    if not chars:
        return 0.0
    return int(cjk_mask(np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)).sum()) / len(chars)


# CJK ideographs as BERT's tokenizer isolates them (basic block and extensions), inclusive ranges
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(cp: int) -> bool:
    """Whether code point ``cp`` is a CJK ideograph (:data:`CJK_RANGES`)."""
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def cjk_mask(cps):
    """:func:`is_cjk` of every code point of a numpy array, as a bool array."""
    import numpy as np

    out = np.zeros(len(cps), dtype=bool)
    for lo, hi in CJK_RANGES:
        out |= (cps >= lo) & (cps <= hi)
    return out
