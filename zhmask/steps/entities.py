"""Entity and phrase detection: typed spans over whole words.

Types: PER, LOC, ORG, MISC (proper nouns), IDIOM, PHRASE.

``lexicon`` backend (default) combines two sources:

* the segmenter's POS tags: nr/nrt/nrfg -> PER (adjacent person tokens form one name, as in
  江/nr 泽民/nr), ns -> LOC, nt -> ORG, nz -> MISC, i -> IDIOM, l -> PHRASE;
* Aho-Corasick matching against the lexicons in ``dictionaries/`` (``word freq TYPE``),
  keeping only matches that start and end on word boundaries.

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
    taken: list[tuple[int, int]] = []
    out: list[Span] = []
    for s, e, t in cands:
        if any(s < te and ts < e for ts, te in taken):
            continue
        taken.append((s, e))
        out.append(Span(s, e, t))
    out.sort(key=lambda sp: sp.start)
    return out


class LexiconEntities:
    name = "lexicon"

    def __init__(self, lexicon_paths: list[Path] | None = None, use_pos: bool = True) -> None:
        import ahocorasick

        self.use_pos = use_pos
        lex = load_lexicons(lexicon_paths if lexicon_paths is not None else default_lexicon_paths())
        self._ac = ahocorasick.Automaton()
        for word, typ in lex.items():
            self._ac.add_word(word, (len(word), typ))
        self._empty = len(lex) == 0
        if not self._empty:
            self._ac.make_automaton()

    def detect(self, text: str, words: Words) -> list[Span]:
        cands: list[tuple[int, int, str]] = []
        if self.use_pos:
            pos = words.pos
            starts = words.starts.tolist()
            ends = words.ends.tolist()
            i, n = 0, len(pos)
            while i < n:
                typ = POS_TYPES.get(pos[i])
                if typ is None:
                    i += 1
                    continue
                j = i + 1
                if typ == "PER":
                    while j < n and POS_TYPES.get(pos[j]) == "PER":
                        j += 1
                s, e = starts[i], ends[j - 1]
                if e - s >= 2 or typ == "PER" and j - i > 1:
                    cands.append((s, e, typ))
                i = j
        if not self._empty:
            bset = np.zeros(len(text) + 1, dtype=bool)
            bset[words.starts] = True
            bset[words.ends] = True
            for end_idx, (length, typ) in self._ac.iter(text):
                e = end_idx + 1
                s = e - length
                if bset[s] and bset[e]:
                    cands.append((s, e, typ))
        return resolve(cands) if cands else []


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


def make_entity_detector(name: str, *, spacy_model: str | None = None, lexicons: list[str] | None = None):
    if name == "lexicon":
        return LexiconEntities(default_lexicon_paths(lexicons))
    if name == "spacy":
        return SpacyEntities(spacy_model or "")
    return NoEntities()
