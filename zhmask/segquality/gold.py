"""Gold-standard segmented corpora: the PKU ``word/tag`` form and the space-separated form.

One sentence (paragraph) a line.  Two forms are read:

* ``pku``: ``迈向/v  充满/v  希望/n`` (People's Daily 1998, PKU standard).  Bracketed compounds
  ``[中国/ns  共产党/nt]nt`` are read as their inner words (the PKU standard segments inside a
  compound, so the inner words are the gold *words*) plus one gold *entity* of the bracket's tag
  over the whole compound; inside a bracket the inner tokens' own entity tags are not entities
  (the compound replaces them: ``[中国/ns 共产党/nt]nt`` is one ORG, not a LOC and an ORG).
* ``plain``: ``迈向 充满 希望``: words only, no entities.

``auto`` decides from the first 200 non-empty lines: ``pku`` when at least 95% of their tokens
end in ``/tag``.

Gold entities (``pku`` only): adjacent person tokens (``nr``, ``nrf``, ``nrg``) form one PER
(``江/nr 泽民/nr`` is 江泽民); ``ns`` is LOC; ``nt`` is ORG.  Other tags are no entities.

By default every word goes through zhmask's normaliser, as text does in ``build-corpus``
(full-width digits and letters become half-width, ``１９９８年`` becomes ``1998年``), so that a
segmenter is scored on the text it sees in the pipeline; the normaliser changes no character
count of a PKU word, and a word it would empty is dropped.

Lines that cannot be read in the file's form (an empty word, a token without a tag in a ``pku``
file, an unclosed bracket) are skipped and counted with their line numbers; blank lines are
ignored.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zhmask.errors import ZhmaskError

FORMATS = ("auto", "pku", "plain")
ENTITY_TYPES = ("PER", "LOC", "ORG")
_TAG_TYPES = {"nr": "PER", "nrf": "PER", "nrg": "PER", "ns": "LOC", "nt": "ORG"}
# [?word/tag]?TAG : an optional bracket opening, the word, its tag, an optional bracket closing
_TOKEN = re.compile(r"^(\[?)(.+)/([A-Za-z][A-Za-z0-9]*)(?:\]([A-Za-z][A-Za-z0-9]*))?$")
_TAGGED_HINT = re.compile(r"/[A-Za-z][A-Za-z0-9]*(\][A-Za-z][A-Za-z0-9]*)?$")


@dataclass
class GoldSentence:
    text: str
    words: list[tuple[int, int]]  # character spans of the gold words, in order, covering text
    tags: list[str | None]  # the word's POS tag (pku form) or None
    entities: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, PER|LOC|ORG)
    line: int = 0

    def word_texts(self) -> list[str]:
        return [self.text[s:e] for s, e in self.words]


@dataclass
class GoldCorpus:
    sentences: list[GoldSentence]
    form: str  # "pku" or "plain"
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    path: str = ""

    @property
    def tagged(self) -> bool:
        return self.form == "pku"

    def vocabulary(self) -> set[str]:
        return {w for s in self.sentences for w in s.word_texts()}

    def text_bytes(self) -> int:
        return sum(len(s.text.encode("utf-8")) for s in self.sentences)

    def describe_skipped(self) -> str:
        if not self.skipped:
            return ""
        n, why = self.skipped[0]
        return f"{len(self.skipped)} malformed line(s) skipped (first: line {n}: {why})"


class MalformedLine(ValueError):
    pass


def detect_form(lines: Iterable[str]) -> str:
    total = tagged = 0
    seen = 0
    for line in lines:
        toks = line.split()
        if not toks:
            continue
        total += len(toks)
        tagged += sum(1 for t in toks if _TAGGED_HINT.search(t))
        seen += 1
        if seen >= 200:
            break
    return "pku" if total and tagged >= 0.95 * total else "plain"


def _normalizer(normalize: bool):
    if not normalize:
        return lambda w: w
    from zhmask.steps.normalize import Normalizer

    norm = Normalizer()
    cache: dict[str, str] = {}

    def f(word: str) -> str:
        out = cache.get(word)
        if out is None:
            out = norm(word)
            if len(cache) < 500_000:
                cache[word] = out
        return out

    return f


def parse_line(line: str, form: str, norm=lambda w: w, lineno: int = 0) -> GoldSentence | None:
    """One gold line; None for a blank line; :class:`MalformedLine` when it cannot be read."""
    toks = line.split()
    if not toks:
        return None
    words: list[tuple[int, int]] = []
    tags: list[str | None] = []
    entities: list[tuple[int, int, str]] = []
    parts: list[str] = []
    pos = 0
    if form == "plain":
        for tok in toks:
            w = norm(tok)
            if not w:
                continue
            words.append((pos, pos + len(w)))
            tags.append(None)
            parts.append(w)
            pos += len(w)
    else:
        bracket_start: int | None = None
        person_start: int | None = None  # start of the current run of person tokens
        person_end = 0

        def close_person() -> None:
            nonlocal person_start
            if person_start is not None:
                entities.append((person_start, person_end, "PER"))
                person_start = None

        for tok in toks:
            m = _TOKEN.match(tok)
            if m is None:
                raise MalformedLine(f"token {tok!r} is not word/tag")
            opening, word, tag, closing = m.groups()
            if opening:
                if bracket_start is not None:
                    raise MalformedLine(f"bracket opened inside a bracket at {tok!r}")
                close_person()
                bracket_start = pos
            w = norm(word)
            if w:
                typ = _TAG_TYPES.get(tag) if bracket_start is None else None
                if typ == "PER":
                    if person_start is None:
                        person_start = pos
                    person_end = pos + len(w)
                else:
                    close_person()
                    if typ is not None:
                        entities.append((pos, pos + len(w), typ))
                words.append((pos, pos + len(w)))
                tags.append(tag)
                parts.append(w)
                pos += len(w)
            if closing is not None:
                if bracket_start is None:
                    raise MalformedLine(f"bracket closed without opening at {tok!r}")
                typ = _TAG_TYPES.get(closing)
                if typ is not None and pos > bracket_start:
                    entities.append((bracket_start, pos, typ))
                bracket_start = None
        close_person()
        if bracket_start is not None:
            raise MalformedLine("bracket not closed")
    if not words:
        return None
    entities.sort()
    return GoldSentence("".join(parts), words, tags, entities, lineno)


def read_gold(path: str | Path, form: str = "auto", normalize: bool = True, limit: int | None = None) -> GoldCorpus:
    """Read a gold file; ZhmaskError (one line) when it cannot be read or holds no sentence."""
    if form not in FORMATS:
        raise ZhmaskError(f"unknown gold format {form!r} (expected one of {', '.join(FORMATS)})")
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise ZhmaskError(f"gold file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read gold file {path}: {exc}") from None
    return parse_gold_lines(lines, form, normalize, limit, str(path))


def parse_gold_lines(lines: list[str], form: str = "auto", normalize: bool = True, limit: int | None = None,
                     path: str = "<lines>") -> GoldCorpus:
    if form == "auto":
        form = detect_form(lines)
    norm = _normalizer(normalize)
    sentences: list[GoldSentence] = []
    skipped: list[tuple[int, str]] = []
    for n, line in enumerate(lines, 1):
        if limit is not None and len(sentences) >= limit:
            break
        try:
            s = parse_line(line, form, norm, n)
        except MalformedLine as exc:
            skipped.append((n, str(exc)))
            continue
        if s is not None:
            sentences.append(s)
    if not sentences:
        why = f" ({len(skipped)} malformed line(s), first: line {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ZhmaskError(f"no gold sentence in {path}{why}")
    return GoldCorpus(sentences, form, skipped, path)


def split_holdout(lines: list[str], test_share: float = 0.1) -> tuple[list[str], list[str]]:
    """The documented held-out split: non-blank lines, the first (1 - share) train, the rest test."""
    lines = [ln for ln in lines if ln.strip()]
    cut = len(lines) - int(len(lines) * test_share)
    return lines[:cut], lines[cut:]
