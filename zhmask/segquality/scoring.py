"""Scores: word precision/recall/F1 over character spans, OOV recall, entity P/R/F1, speed.

A predicted word is correct when its character span ``[start, end)`` equals a gold word's span
(the usual definition: both of its boundaries are right and no boundary lies inside it).
Whitespace words a segmenter emits are not counted (gold text has none).

OOV recall: the share of gold words *not in a vocabulary* (the training corpus's words, or a
word list) whose spans the segmenter found.

Entities: a predicted PER/LOC/ORG span is correct when start, end and type equal a gold one's.

Speed: MB of UTF-8 text per second of ``Segmenter.segment`` calls alone (words and POS tags,
what ``build-corpus`` runs), after one warm-up call; entity detection is not timed. With
``speed_repeats`` the fastest of several passes counts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from zhmask.segquality.gold import ENTITY_TYPES, GoldCorpus


@dataclass
class PRF:
    tp: int = 0
    gold: int = 0
    pred: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.pred if self.pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, gold: set, pred: set) -> None:
        self.tp += len(gold & pred)
        self.gold += len(gold)
        self.pred += len(pred)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.tp, "gold": self.gold, "pred": self.pred}


def prf(gold: set, pred: set) -> PRF:
    out = PRF()
    out.add(gold, pred)
    return out


@dataclass
class EvalResult:
    backend: str
    words: PRF = field(default_factory=PRF)
    oov_gold: int = 0
    oov_found: int = 0
    oov_known: bool = False  # whether a vocabulary was given
    entities: dict[str, PRF] = field(default_factory=lambda: {t: PRF() for t in ENTITY_TYPES})
    entity_scored: bool = False
    sentences: int = 0
    chars: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def oov_recall(self) -> float | None:
        if not self.oov_known or not self.oov_gold:
            return None
        return self.oov_found / self.oov_gold

    @property
    def entities_all(self) -> PRF:
        out = PRF()
        for p in self.entities.values():
            out.tp += p.tp
            out.gold += p.gold
            out.pred += p.pred
        return out

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "backend": self.backend,
            "sentences": self.sentences,
            "chars": self.chars,
            "words": self.words.to_dict(),
            "oov_words": self.oov_gold if self.oov_known else None,
            "oov_recall": None if self.oov_recall is None else round(self.oov_recall, 4),
            "mb": round(self.bytes / 1e6, 3),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 3),
        }
        if self.entity_scored:
            d["entities"] = {t: p.to_dict() for t, p in self.entities.items()}
            d["entities"]["ALL"] = self.entities_all.to_dict()
        return d


def evaluate(corpus: GoldCorpus, segmenter, detector=None, vocabulary: set[str] | None = None,
             name: str | None = None, speed_repeats: int = 1) -> EvalResult:
    """Score one segmenter (and optionally an entity detector) on a gold corpus.

    ``speed_repeats`` > 1 times further passes of segmentation alone over the corpus and keeps
    the fastest (steadier MB/s on a shared machine).
    """
    res = EvalResult(name or getattr(segmenter, "name", "?"))
    res.oov_known = vocabulary is not None
    res.entity_scored = detector is not None and corpus.tagged
    perf = time.perf_counter
    if corpus.sentences:
        segmenter.segment(corpus.sentences[0].text)  # warm-up: lazy dictionary loading and the like
    for s in corpus.sentences:
        text = s.text
        t0 = perf()
        words = segmenter.segment(text)
        res.seconds += perf() - t0
        res.sentences += 1
        res.chars += len(text)
        res.bytes += len(text.encode("utf-8"))
        pred = {(a, b) for a, b in zip(words.starts.tolist(), words.ends.tolist()) if not text[a:b].isspace()}
        gold = set(s.words)
        res.words.add(gold, pred)
        if vocabulary is not None:
            for a, b in s.words:
                if text[a:b] not in vocabulary:
                    res.oov_gold += 1
                    res.oov_found += (a, b) in pred
        if res.entity_scored:
            spans = detector.detect(text, words)
            for typ in ENTITY_TYPES:
                res.entities[typ].add({(a, b) for a, b, t in s.entities if t == typ},
                                      {(sp.start, sp.end) for sp in spans if sp.type == typ})
    texts = [s.text for s in corpus.sentences]
    for _ in range(speed_repeats - 1):
        t0 = perf()
        for text in texts:
            segmenter.segment(text)
        res.seconds = min(res.seconds, perf() - t0)
    return res


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_table(results: list[EvalResult], markdown: bool = False) -> str:
    """One row per backend: word P/R/F1, OOV recall, MB/s; entity P/R/F1 per type when scored."""
    scored = any(r.entity_scored for r in results)
    head = ["backend", "word P", "word R", "word F1", "OOV R", "MB/s"]
    if scored:
        for t in (*ENTITY_TYPES, "ALL"):
            head += [f"{t} P", f"{t} R", f"{t} F1"]
    rows = []
    for r in results:
        row = [r.backend, _pct(r.words.precision), _pct(r.words.recall), _pct(r.words.f1), _pct(r.oov_recall),
               f"{r.mb_per_s:.2f}"]
        if scored:
            for t in (*ENTITY_TYPES, "ALL"):
                p = r.entities_all if t == "ALL" else r.entities[t]
                row += [_pct(p.precision), _pct(p.recall), _pct(p.f1)] if r.entity_scored else ["-"] * 3
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(head)] + [fmt(row) for row in rows])
