"""A unit's output equals that of its documents run as units of one (issue 16), for every part
that works document by document: the document stages of every registered segmenter, and every
registered task that does not declare ``other_documents`` (NSP's random B, sentence distance's
other document, IR relevance's passages of the unit, GPT rows filled across documents).  Random
values are functions of the document's or example's id, so nothing may depend on the unit."""
from __future__ import annotations

import json

import pytest

from zhmask.config import BuildConfig
from zhmask.labels import TASKS
from zhmask.pipeline import Pipeline
from zhmask.steps.read import RawDoc
from zhmask.steps.segment import SEGMENTERS


def _raws(fixtures, n=40):
    recs = [json.loads(x) for x in (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()[:n]]
    return [RawDoc(f"d{i}", r["text"], title=r.get("title"), meta={"title": r.get("title")}) for i, r in enumerate(recs)]


def _signature(exs):
    return [(e.example_id, e.doc_id, e.task, e.input_ids.tolist(), e.token_type_ids.tolist(), e.word_ids.tolist(),
             int(e.label), [tuple(x) for x in e.entities], sorted((k, repr(v)) for k, v in e.extra.items()))
            for e in exs]


@pytest.mark.parametrize("name", sorted(TASKS.names()))
def test_a_units_examples_are_its_documents_examples(fixtures, name):
    fields = {"source_field": "text", "target_field": "title"} if name == "seq2seq" else {"title_field": "title"}
    cfg = BuildConfig(tasks=[name], masking="none" if TASKS.has(name, "unmasked") else "wwm", **fields).validate()
    pipe = Pipeline(cfg)
    docs = [d for d, _ in pipe.documents(_raws(fixtures)) if d is not None]
    whole = _signature(pipe.examples(docs))
    alone = [x for d in docs for x in _signature(pipe.examples([d]))]
    assert whole, name
    if TASKS.has(name, "other_documents"):
        return  # draws on the unit's other documents, by design (its own tests cover it)
    assert whole == alone, f"{name}: a unit's examples differ from its documents' as units of one"


@pytest.mark.parametrize("segmenter", [s for s in sorted(SEGMENTERS.names()) if not SEGMENTERS.has(s, "needs_model")])
def test_a_units_documents_are_its_documents_alone(fixtures, segmenter):
    pipe = Pipeline(BuildConfig(segmenter=segmenter).validate())
    raws = _raws(fixtures, 25)
    together = pipe.documents(raws)
    for raw, (doc, why) in zip(raws, together):
        one, why1 = pipe.documents([raw])[0]
        assert why == why1
        if doc is None:
            continue
        assert doc.text == one.text
        assert doc.sentences.tolist() == one.sentences.tolist()
        assert (doc.words.starts.tolist(), doc.words.ends.tolist(), list(doc.words.pos)) == \
               (one.words.starts.tolist(), one.words.ends.tolist(), list(one.words.pos))
        assert [(e.start, e.end, e.type) for e in doc.entities] == [(e.start, e.end, e.type) for e in one.entities]
        assert doc.tokens.ids.tolist() == one.tokens.ids.tolist() and doc.tokens.word.tolist() == one.tokens.word.tolist()
