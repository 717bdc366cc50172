"""Entity quality of a build configuration against gold tags, and the share of entity units a
knowledge-masking build predicts.

* :func:`score_entities`: the gold sentences' plain texts go through the build's own document
  stages (:meth:`zhmask.pipeline.Pipeline.documents`: normalise, sentences, segment, entities,
  as ``build-corpus`` runs them); each predicted PER/LOC/ORG span counts as correct when its
  character offsets and type equal a gold entity's (exact match).  A predicted span that
  overlaps no gold entity of any kind (PER/LOC/ORG, nor an ``nz`` word) is also counted as
  "no entity at all".
* :func:`masked_entity_share`: over the rows of a finished build, the share of entity units
  (``entities`` column, types PER/LOC/ORG/MISC) whose tokens are predicted (labels != -100),
  beside the share of all candidate tokens predicted; read through :mod:`zhmask.reader`, one
  record batch at a time.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zhmask.segquality.gold import ENTITY_TYPES, GoldCorpus
from zhmask.segquality.scoring import PRF

KNOWLEDGE_ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")


@dataclass
class EntityScores:
    per_type: dict[str, PRF] = field(default_factory=lambda: {t: PRF() for t in ENTITY_TYPES})
    no_entity: Counter = field(default_factory=Counter)  # per type: predicted spans touching no gold entity
    sentences: int = 0
    skipped: int = 0  # sentences whose text the pipeline changed (offsets would not compare)
    errors: dict[str, Counter] = field(default_factory=dict)  # per type: the most frequent false strings

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {t: {**p.to_dict(), "no_entity": self.no_entity[t]} for t, p in self.per_type.items()}
        d["sentences"] = self.sentences
        d["skipped"] = self.skipped
        return d


def gold_documents(gold: GoldCorpus, pipeline, batch: int = 500):
    """(gold sentence, document) of every gold sentence, its plain text run through
    ``pipeline``'s document stages ``batch`` sentences at a time; the document is None where the
    pipeline rejected the text or changed it (offsets would not compare)."""
    from zhmask.steps.read import RawDoc

    sents = gold.sentences
    for a in range(0, len(sents), batch):
        part = sents[a:a + batch]
        raws = [RawDoc(f"gold:{s.line}", s.text) for s in part]
        for s, (doc, _) in zip(part, pipeline.documents(raws)):
            yield s, doc if doc is not None and doc.text == s.text else None


def score_entities(gold: GoldCorpus, pipeline, batch: int = 500, keep_errors: int = 0) -> EntityScores:
    """PER/LOC/ORG precision and recall of ``pipeline``'s entities on ``gold`` (exact spans)."""
    res = EntityScores()
    if keep_errors:
        res.errors = {t: Counter() for t in ENTITY_TYPES}
    for s, doc in gold_documents(gold, pipeline, batch):
        if doc is None:
            res.skipped += 1
            continue
        res.sentences += 1
        # any gold name-like span (PER/LOC/ORG or an nz word): a prediction touching none is no entity at all
        anyname = [(x, y) for x, y, _ in s.entities]
        anyname += [(x, y) for (x, y), t in zip(s.words, s.tags) if t == "nz"]
        touched = np.zeros(len(s.text) + 1, dtype=np.int64)
        for x, y in anyname:
            touched[x + 1:y + 1] = 1
        ctouched = np.cumsum(touched)
        for typ in ENTITY_TYPES:
            g = {(x, y) for x, y, t in s.entities if t == typ}
            p = {(sp.start, sp.end) for sp in doc.entities if sp.type == typ}
            res.per_type[typ].add(g, p)
            for x, y in p:
                if ctouched[y] == ctouched[x]:
                    res.no_entity[typ] += 1
            if keep_errors:
                for x, y in p - g:
                    res.errors[typ][s.text[x:y]] += 1
    return res


def masked_entity_share(out: str | Path) -> dict[str, Any]:
    """Entity units of a build and how many of them its labels predict (see the module doc)."""
    from zhmask.reader import Build, open_shard

    b = Build(out)
    units = Counter()
    masked = Counter()
    cand = predicted = 0
    for path in b.shards:
        with open_shard(path) as reader:
            for rb in reader:
                labels = rb.column("labels")
                lab_off = labels.offsets.to_numpy()
                lab = labels.values.to_numpy(zero_copy_only=False)
                wid = rb.column("word_ids").values.to_numpy(zero_copy_only=False)
                predicted += int((lab != -100).sum())
                cand += int((wid >= 0).sum())
                ents = rb.column("entities")
                e_off = ents.offsets.to_numpy()
                flat = ents.values
                es = flat.field("start").to_numpy(zero_copy_only=False)
                ee = flat.field("end").to_numpy(zero_copy_only=False)
                et = flat.field("type").to_pylist()
                row = np.repeat(np.arange(len(rb)), np.diff(e_off))
                base = lab_off[row]
                pred = np.concatenate([[0], np.cumsum(lab != -100)])
                for k in range(len(es)):
                    t = et[k]
                    if t not in KNOWLEDGE_ENTITY_TYPES:
                        continue
                    units[t] += 1
                    a, z = base[k] + es[k], base[k] + ee[k]
                    masked[t] += bool(pred[z] - pred[a] > 0)
    total = sum(units.values())
    return {
        "entity_units": total,
        "entity_units_masked": sum(masked.values()),
        "share_masked": round(sum(masked.values()) / total, 4) if total else 0.0,
        "per_type": {t: {"units": units[t], "masked": masked[t],
                         "share": round(masked[t] / units[t], 4) if units[t] else 0.0}
                     for t in KNOWLEDGE_ENTITY_TYPES},
        "predicted_token_share": round(predicted / cand, 4) if cand else 0.0,
        "masked_lm_prob": b.config.get("masked_lm_prob"),
    }
