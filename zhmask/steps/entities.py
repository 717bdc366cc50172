"""Entity and phrase detection: typed spans over whole words.

Types: PER, LOC, ORG, MISC (proper nouns), IDIOM, PHRASE.

``lexicon`` backend (default) combines two sources:

* the segmenter's POS tags: nr/nrt/nrfg -> PER (adjacent person tokens form one name, as in
  江/nr 泽民/nr), ns -> LOC, nt -> ORG, nz -> MISC, i -> IDIOM, l -> PHRASE;
* matching against the lexicons in ``dictionaries/`` (``word freq TYPE``): every span that
  starts and ends on word boundaries and is a lexicon entry.

Overlaps are resolved longest first, then leftmost; the result is sorted and non-overlapping.
The ``spacy`` backend runs any installed spaCy pipeline with an ``ner`` (or entity_ruler)
component and snaps its entities outwards to word boundaries.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.record import Span, Words

TYPES = ("PER", "LOC", "ORG", "MISC", "IDIOM", "PHRASE")
POS_TYPES = {"nr": "PER", "nrt": "PER", "nrfg": "PER", "ns": "LOC", "nt": "ORG", "nz": "MISC",
             "i": "IDIOM", "l": "PHRASE"}
SPACY_TYPES = {"PERSON": "PER", "PER": "PER", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "ORG": "ORG"}


def load_lexicons(paths: list[Path]) -> dict[str, str]:
    """word -> type from files of ``word [freq] TYPE`` lines; later files win."""
    out: dict[str, str] = {}
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ZhmaskError(f"cannot read lexicon {path}: {exc}") from None
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                typ = parts[-1].upper()
                if typ in TYPES and len(parts[0]) >= 2:
                    out[parts[0]] = typ
    return out


def default_lexicon_paths(names: list[str] | None = None) -> list[Path]:
    from zhmask.paths import dictionaries_dir

    d = dictionaries_dir()
    if names is None:
        return sorted(p for p in d.glob("*.txt") if p.stem in ("loc", "org", "misc", "idiom", "phrase", "per"))
    out = []
    for n in names:
        p = Path(n)
        if not p.exists():
            p = d / f"{n}.txt"
        if not p.exists():
            raise ZhmaskError(f"lexicon not found: {n}")
        out.append(p)
    return out


def resolve(cands: list[tuple[int, int, str]]) -> list[Span]:
    """Non-overlapping spans, longest first then leftmost, returned sorted by start."""
    cands.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    out: list[Span] = []
    if any(e <= s for s, e, _ in cands):  # empty spans (never from the detectors here): pairwise test
        taken: list[tuple[int, int]] = []
        for s, e, t in cands:
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            out.append(Span(s, e, t))
    else:  # a span is free when none of its characters is taken yet: one C-level find per candidate
        occ = bytearray(max((e for _, e, _ in cands), default=0))
        for s, e, t in cands:
            if occ.find(1, s, e) >= 0:
                continue
            occ[s:e] = b"\x01" * (e - s)
            out.append(Span(s, e, t))
    out.sort(key=lambda sp: sp.start)
    return out


class LexiconEntities:
    name = "lexicon"

    def __init__(self, lexicon_paths: list[Path] | None = None, use_pos: bool = True) -> None:
        self.use_pos = use_pos
        self._lex = load_lexicons(lexicon_paths if lexicon_paths is not None else default_lexicon_paths())
        # a lexicon match must start and end on word boundaries, so it is found by walking from each
        # boundary over the following ones while the text read so far is a prefix of an entry: the
        # same matches as Aho-Corasick over every character followed by the boundary filter, in
        # about half the time (a handful of set lookups per word)
        self._prefixes = {w[:k] for w in self._lex for k in range(1, len(w))}
        self._maxlen = max(map(len, self._lex), default=0)
        self._empty = len(self._lex) == 0

    def detect(self, text: str, words: Words) -> list[Span]:
        cands: list[tuple[int, int, str]] = []
        if self.use_pos:
            pos = words.pos
            types = POS_TYPES
            typed = [i for i, p in enumerate(pos) if p in types]  # one C-speed pass; the loop below visits only these
            if typed:
                starts = words.starts.tolist()
                ends = words.ends.tolist()
                k, m = 0, len(typed)
                while k < m:
                    i = typed[k]
                    typ = types[pos[i]]
                    j = i + 1
                    k += 1
                    if typ == "PER":  # adjacent person tokens form one name
                        while k < m and typed[k] == j and types[pos[j]] == "PER":
                            j += 1
                            k += 1
                    s, e = starts[i], ends[j - 1]
                    if e - s >= 2 or typ == "PER" and j - i > 1:
                        cands.append((s, e, typ))
        if not self._empty and len(words):
            st, en = words.starts, words.ends
            if st[0] == 0 and en[-1] == len(text) and np.array_equal(st[1:], en[:-1]):
                bounds = st.tolist() + [len(text)]  # the words cover the text: the usual case
            else:
                bounds = sorted(set(st.tolist()) | set(en.tolist()))
            lex, pref, maxlen = self._lex, self._prefixes, self._maxlen
            nb = len(bounds)
            for i in range(nb - 1):
                s = bounds[i]
                for j in range(i + 1, nb):
                    e = bounds[j]
                    if e - s > maxlen:
                        break
                    sub = text[s:e]
                    typ = lex.get(sub)
                    if typ is not None:
                        cands.append((s, e, typ))
                    if sub not in pref:
                        break
        return resolve(cands) if cands else []

    def detect_joined(self, joined: str, words: Words, strs: list[str] | None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """:meth:`detect` of texts joined by ``"\\n"`` at once: ``words`` cover ``joined`` (one
        separator word between two texts), ``strs`` are their strings (None: sliced here).
        Returns the spans' starts, ends and types, sorted by start: per text, :meth:`detect`'s.

        No candidate crosses a separator (it is never tagged and no entry contains it), so the
        candidates are those of each text; and overlap resolution never compares two texts'
        candidates, so resolving them all in :func:`resolve`'s order (longest, leftmost; on the
        same span, POS before lexicon) leaves each text's own result."""
        starts, ends = words.starts, words.ends
        n = len(starts)
        if strs is None:
            strs = [joined[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        c_s: list[np.ndarray] = []
        c_e: list[np.ndarray] = []
        c_t: list[str] = []
        if self.use_pos and n:
            pos = words.pos
            types = POS_TYPES
            typed = np.flatnonzero(np.fromiter(map(types.__contains__, pos), dtype=bool, count=n)).tolist()
            if typed:
                st = starts.tolist()
                en = ends.tolist()
                ps: list[int] = []
                pe: list[int] = []
                k, m = 0, len(typed)
                while k < m:  # as detect()
                    i = typed[k]
                    typ = types[pos[i]]
                    j = i + 1
                    k += 1
                    if typ == "PER":
                        while k < m and typed[k] == j and types[pos[j]] == "PER":
                            j += 1
                            k += 1
                    s, e = st[i], en[j - 1]
                    if e - s >= 2 or typ == "PER" and j - i > 1:
                        ps.append(s)
                        pe.append(e)
                        c_t.append(typ)
                c_s.append(np.asarray(ps, dtype=np.int64))
                c_e.append(np.asarray(pe, dtype=np.int64))
        if not self._empty and n:
            # the lexicon walk of detect(), level by level: the spans of k + 1 words that extend a
            # span of k words which is a proper prefix of an entry
            lex, pref = self._lex, self._prefixes
            w = np.empty(n, dtype=object)
            w[:] = strs
            idx = np.arange(n)
            cur = w
            k = 0
            while len(idx):
                got = list(map(lex.get, cur))
                hit = np.flatnonzero(np.fromiter(map(bool, got), dtype=bool, count=len(got)))
                if len(hit):
                    first = idx[hit]
                    c_s.append(starts[first])
                    c_e.append(ends[first + k])
                    c_t += [got[h] for h in hit.tolist()]
                more = np.fromiter(map(pref.__contains__, cur), dtype=bool, count=len(cur))
                more &= idx + k + 1 < n
                idx = idx[more]
                cur = cur[more] + w[idx + k + 1]
                k += 1
        if not c_t:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
        cs = np.concatenate(c_s)
        ce = np.concatenate(c_e)
        return resolve_arrays(cs, ce, c_t)


def resolve_arrays(cs: np.ndarray, ce: np.ndarray, types: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`resolve` of candidates given as arrays (starts, ends, types in candidate order):
    the kept spans' starts, ends and types sorted by start.  Non-empty spans only."""
    if (ce <= cs).any():
        raise ValueError("empty candidate span")
    order = np.lexsort((cs, cs - ce))  # longest first, then leftmost; ties keep candidate order
    occ = bytearray(int(ce.max()))
    keep: list[int] = []
    find = occ.find
    for o, s, e in zip(order.tolist(), cs[order].tolist(), ce[order].tolist()):
        if find(1, s, e) >= 0:
            continue
        occ[s:e] = b"\x01" * (e - s)
        keep.append(o)
    kept = np.asarray(keep, dtype=np.int64)
    kept = kept[np.argsort(cs[kept], kind="stable")]
    return cs[kept], ce[kept], [types[o] for o in kept.tolist()]


class SpacyEntities:
    name = "spacy"

    def __init__(self, model: str) -> None:
        try:
            import spacy
        except ImportError:
            raise ZhmaskError("the spacy entity backend needs spaCy: pip install 'zhmask[spacy]'") from None
        try:
            self.nlp = spacy.load(model)
        except Exception as exc:
            raise ZhmaskError(f"cannot load spaCy pipeline {model!r}: {exc}") from None
        if not any(n in self.nlp.pipe_names for n in ("ner", "entity_ruler")):
            raise ZhmaskError(f"spaCy pipeline {model!r} has no ner or entity_ruler component")

    @classmethod
    def from_nlp(cls, nlp) -> "SpacyEntities":
        obj = cls.__new__(cls)
        obj.nlp = nlp
        return obj

    def detect(self, text: str, words: Words) -> list[Span]:
        doc = self.nlp(text)
        if len(words) == 0:
            return []
        cands = []
        for ent in doc.ents:
            s, e = ent.start_char, ent.end_char
            i = int(np.searchsorted(words.starts, s, side="right")) - 1
            j = int(np.searchsorted(words.starts, e, side="left"))
            s, e = int(words.starts[max(i, 0)]), int(words.ends[max(j - 1, 0)])
            if e > s:
                cands.append((s, e, SPACY_TYPES.get(ent.label_, "MISC")))
        return resolve(cands)


class NoEntities:
    name = "none"

    def detect(self, text: str, words: Words) -> list[Span]:
        return []

    def detect_joined(self, joined: str, words: Words, strs: list[str] | None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []


def make_entity_detector(name: str, *, spacy_model: str | None = None, lexicons: list[str] | None = None):
    if name == "lexicon":
        return LexiconEntities(default_lexicon_paths(lexicons))
    if name == "spacy":
        return SpacyEntities(spacy_model or "")
    return NoEntities()
