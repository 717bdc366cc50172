"""The unit-at-once packing paths (mlm, sop, nsp and zhmask.steps.pack's batched helpers) equal the
example-by-example reference: same chunks, arrays, entities, segment sources, events (and their
order) and ent_cache contents."""
from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from zhmask.config import BuildConfig
from zhmask.pipeline import Pipeline
from zhmask.record import Document, Span, Tokens
from zhmask.steps.read import RawDoc
from zhmask.steps import pack
from oracle import mlm_each, nsp_each, pair_example, sop_each

EACH = {"mlm": mlm_each, "nsp": nsp_each, "sop": sop_each}


def _same(x, y):
    assert (x.doc_id, x.example_id, x.task, x.label) == (y.doc_id, y.example_id, y.task, y.label)
    for f in ("input_ids", "token_type_ids", "word_ids"):
        a, b = getattr(x, f), getattr(y, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), (x.example_id, f)
    assert x.entities == y.entities, x.example_id
    assert x.extra == y.extra, x.example_id
    assert x.labels is None and y.labels is None


def _docs(pipe, texts):
    out = []
    for i, t in enumerate(texts):
        d, _ = pipe.document(RawDoc(f"d{i}", t))
        if d is not None:
            out.append(d)
    return out


EDGE = ["", "a", "。", "好", "中华人民共和国中央人民政府今天成立了。" * 30, "x" * 700,
        "汉字\ufffd和替换字符", "𠀀𠀁 emoji 😀 and ＡＢＣ full width", "一句。" * 80, "李明在北京大学读书。他很好。",
        "Ab" * 200 + "。短。", "第一句话。第二句话！第三句话？第四句话……"]


@pytest.fixture(scope="module", params=[128, 24])
def setup(request, sample_lines, inews_docs):
    cfg = BuildConfig(max_seq_length=request.param, tasks=["mlm", "sop"])
    pipe = Pipeline(cfg)
    texts = sample_lines[:300] + [d["text"] for d in inews_docs[:60]] + EDGE
    return pipe, _docs(pipe, texts)


def _both(mod, docs, ctx):
    ctx.set_unit([d.id for d in docs])
    ctx.ent_cache, ctx.events = {}, Counter()
    ref = list(EACH[mod.__name__.rsplit('.', 1)[-1]](docs, ctx))
    ref_events, ref_cache = ctx.events, ctx.ent_cache
    ctx.set_unit([d.id for d in docs])
    ctx.ent_cache, ctx.events = {}, Counter()
    events = Counter()
    got = mod.unit_examples(docs, ctx, events)
    cache = {k: v for k, v in ctx.ent_cache.items() if isinstance(k, str)}
    return ref, got, ref_events, events, ref_cache, cache


@pytest.mark.parametrize("task", ["mlm", "sop", "nsp"])
def test_unit_examples_equal_per_document(setup, task):
    import importlib

    pipe, docs = setup
    mod = importlib.import_module(f"zhmask.labels.{task}")
    for unit in (docs, docs[:1], docs[-len(EDGE):], []):
        ref, got, ev_ref, ev, c_ref, c = _both(mod, unit, pipe.ctx)
        assert len(ref) == len(got)
        for x, y in zip(ref, got):
            _same(x, y)
        assert list(ev_ref.items()) == list(ev.items())
        assert c_ref == c and list(c_ref) == list(c)
    assert len(ref) or not unit


def test_pair_examples_equal_pair_example(setup):
    """PairExamples (what sentence_distance, ir_relevance, discourse_relation and nsp build with)
    equals pair_example pair by pair: arrays, entities, segment sources, events in their order,
    ent_cache; pairs across documents, long ones truncated, spans that are not contiguous."""
    from zhmask.labels.pairs import PairExamples, Segment

    pipe, docs = setup
    ctx = pipe.ctx
    r = random.Random(5)
    docs = [d for d in docs if len(d.tokens)]
    pairs = []
    for k in range(300):
        segs = []
        for _ in range(2):
            d = r.choice(docs)
            n = len(d.tokens)
            cuts = sorted(r.sample(range(n + 1), 2)) if n > 1 else [0, n]
            ranges = [(cuts[0], cuts[1])]
            if r.random() < 0.3 and cuts[1] - cuts[0] > 2:  # two ranges with a gap
                ranges = [(cuts[0], cuts[0] + 1), (cuts[0] + 2, cuts[1])]
            segs.append(Segment(d, ranges))
        pairs.append((*segs, f"p{k}", k % 3, segs[0].doc.id))
    runs = []
    for batched in (False, True):
        ctx.ent_cache, ctx.events = {}, Counter()
        pe = PairExamples(ctx, "pairs")
        exs = []
        for a, b, example_id, label, doc_id in pairs:
            if batched:
                pe.add(a, b, example_id=example_id, label=label, doc_id=doc_id)
            else:
                exs.append(pair_example(a, b, ctx, task="pairs", example_id=example_id, label=label, doc_id=doc_id))
        runs.append((exs or pe.build(), list(ctx.events.items()), ctx.ent_cache))
    (ref, ev_ref, c_ref), (got, ev, c) = runs
    assert len(ref) == len(got) == len(pairs) and ev_ref == ev and ev_ref and c_ref == c
    for x, y in zip(ref, got):
        _same(x, y)


def test_pipeline_examples_equal_per_document(setup):
    """mlm then sop through Pipeline.examples (the unit's token table shared by both tasks)."""
    from zhmask.labels import mlm, sop

    pipe, docs = setup
    ctx = pipe.ctx
    pipe.ctx.events = Counter()
    got = list(pipe.examples(docs))
    ev = ctx.events
    ctx.events, ctx.ent_cache = Counter(), {}
    ctx.set_unit([d.id for d in docs])
    ref = [ex for each in (mlm_each, sop_each) for ex in each(docs, ctx)]
    assert [t for t, _ in pipe.tasks] == ["mlm", "sop"] and len(got) == len(ref)
    for x, y in zip(ref, got):
        _same(x, y)
    assert list(ctx.events.items()) == list(ev.items())


def test_unit_ranges_equal_sentence_token_ranges(setup):
    pipe, docs = setup
    table = pack.TokenTable(docs)
    for mt in (1, 2, 5, 30, 126, 510):
        ev = Counter()
        ref = [pack.sentence_token_ranges(d, mt, ev) for d in docs]
        ur = pack.UnitRanges(table, mt)
        assert [ur.doc_ranges(i) for i in range(len(docs))] == ref
        assert Counter(e for _, e in ur.events) == ev


def test_pack_ends_equal_pack_ranges():
    r = random.Random(3)
    for _ in range(500):
        n = r.randrange(0, 20)
        lens = [r.randrange(1, 40) for _ in range(n)]
        starts = np.cumsum([0] + lens).tolist()
        ranges = list(zip(starts[:-1], starts[1:]))
        mt, ssp, seed = r.choice([3, 10, 40]), r.choice([0.0, 0.1, 0.9]), r.randrange(1000)
        lens = [min(x, mt) for x in lens]
        starts = np.cumsum([0] + lens).tolist()
        ranges = list(zip(starts[:-1], starts[1:]))
        chunks = pack.pack_ranges(ranges, mt, ssp, np.random.default_rng(seed))
        ends = pack.pack_ends(lens, mt, ssp, np.random.default_rng(seed))
        assert [len(c) for c in chunks] == np.diff([0] + ends).tolist()


def test_unit_entity_spans_equal_per_document(setup):
    pipe, docs = setup
    assert pack.unit_entity_spans(docs) == [pack.entity_token_spans(d) for d in docs]
    # unsorted token starts: the per-document path
    d = docs[0]
    t = d.tokens
    odd = Document("odd", d.text, sentences=d.sentences, entities=d.entities,
                   tokens=Tokens(t.ids, t.starts[::-1].copy(), t.ends, t.word))
    assert pack.unit_entity_spans([odd, d]) == [pack.entity_token_spans(odd), pack.entity_token_spans(d)]


def _random_items(docs, r, n):
    items = []
    for e in range(n):
        segs = []
        for _ in range(r.choice([1, 1, 2, 3])):
            d = r.choice(docs)
            N = len(d.tokens)
            rs = []
            for _ in range(r.choice([0, 1, 1, 2, 4])):
                a = r.randrange(N + 1)
                rs.append((a, r.randrange(a, min(N, a + 40) + 1)))
            if r.random() < 0.5:
                rs.sort()
            segs.append((d, rs))
        items.append((segs, "t", f"e{e}", None if e % 2 else "x", e % 3 - 1))
    return items


def test_build_examples_equal_build_example(setup):
    pipe, docs = setup
    r = random.Random(7)
    for with_cache in (True, False):
        items = _random_items(docs, r, 400)
        c1 = {} if with_cache else None
        c2 = {} if with_cache else None
        ref = [pack.build_example(s, cls_id=1, sep_id=2, task=t, example_id=e, doc_id=di, label=lb, ent_cache=c1)
               for s, t, e, di, lb in items]
        got = pack.build_examples(items, cls_id=1, sep_id=2, ent_cache=c2)
        for x, y in zip(ref, got):
            _same(x, y)
        assert c1 == c2 and (c1 is None or list(c1) == list(c2))


def test_build_examples_entity_cache_edge_cases(setup):
    """Entity lists given in ent_cache: unsorted ones (build_example scans them) are refused,
    lists of another document with the same id are used as build_example uses them."""
    pipe, docs = setup
    d = max(docs, key=lambda x: len(x.tokens))
    n = len(d.tokens)
    segs = [(d, [(0, n // 2), (n // 2, n)])]
    cache = {d.id: [(3, 5, "PER"), (1, 2, "LOC")]}
    with pytest.raises(ValueError):
        pack.build_examples([(segs, "t", "e", None, -100)], cls_id=1, sep_id=2, ent_cache=dict(cache))
    cache = {d.id: [(-3, 1, "Y"), (1, 2, "LOC"), (1, 1, "E"), (3, 5, "PER"), (n - 1, n + 3, "ORG"), (n + 2, n + 4, "X")]}
    ref = pack.build_example(segs, cls_id=1, sep_id=2, task="t", example_id="e", ent_cache=dict(cache))
    got = pack.build_examples([(segs, "t", "e", None, -100)], cls_id=1, sep_id=2, ent_cache=dict(cache))[0]
    _same(ref, got)
    # a range past the document's end: refused (the caller falls back to build_example)
    with pytest.raises(ValueError):
        pack.build_examples([([(d, [(0, n + 1)])], "t", "e", None, -100)], cls_id=1, sep_id=2)


def test_one_token_and_empty_segments(setup):
    pipe, docs = setup
    d = docs[0]
    items = [([(d, [(0, 1)])], "t", "a", None, -1), ([(d, []), (d, [(0, 0)])], "t", "b", None, 1),
             ([(d, [(2, 3), (0, 1)]), (docs[1], [(0, 1)])], "t", "c", "z", 0)]
    ref = [pack.build_example(s, cls_id=101, sep_id=102, task=t, example_id=e, doc_id=di, label=lb, ent_cache={})
           for s, t, e, di, lb in items]
    got = pack.build_examples(items, cls_id=101, sep_id=102, ent_cache={})
    for x, y in zip(ref, got):
        _same(x, y)


def test_a_task_crash_is_narrowed_to_its_document(setup, monkeypatch):
    """No per-document fallback: when the unit-at-once path raises, the unit is bisected down to
    the document that raises alone, and the crash names it."""
    from zhmask.labels import mlm, nsp, sop
    from zhmask.pipeline import DocumentCrash

    pipe, docs = setup
    ctx = pipe.ctx
    victim = docs[len(docs) // 3].id
    for mod in (mlm, sop, nsp):
        real = mod.unit_examples

        def boom(part, c, events, real=real):
            if any(d.id == victim for d in part):
                raise RuntimeError("boom")
            return real(part, c, events)

        monkeypatch.setattr(mod, "unit_examples", boom)
        ctx.set_unit([d.id for d in docs])
        with pytest.raises(DocumentCrash, match=f"task {mod.__name__.rsplit('.', 1)[-1]} crashed on document "
                                                f"{victim}: RuntimeError: boom"):
            list(mod.generate(docs, ctx))
        monkeypatch.undo()


def test_unsorted_document_entities(setup):
    """Entities not sorted by start (a plugin's hand-made document; the pipeline sorts what a
    detector returns): the unit-level packing refuses them, naming the document."""
    from zhmask.labels import mlm
    from zhmask.pipeline import DocumentCrash

    pipe, docs = setup
    d = next(x for x in docs if len(x.entities) >= 2)
    odd = Document(d.id + "-odd", d.text, sentences=d.sentences, words=d.words,
                   entities=list(reversed(d.entities)) + [Span(0, 0, "EMPTY")], tokens=d.tokens)
    unit = [odd] + docs[:20]
    ctx = pipe.ctx
    ctx.set_unit([x.id for x in unit])
    ctx.ent_cache, ctx.events = {}, Counter()
    with pytest.raises(DocumentCrash, match=f"task mlm crashed on document {odd.id}: ValueError: entities not sorted"):
        list(mlm.generate(unit, ctx))


