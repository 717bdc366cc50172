"""The batched masking and column writing of a mask batch give exactly what the per-example path
(``Pipeline.rows`` -> ``ShardWriter.write``) gives: same rows, same statistics, same shard bytes.
For the strategies with one batched implementation, an example alone is a batch of one: these
tests then check that a row's mask does not depend on its batch, and
``test_one_implementation_equals_the_per_example_oracle`` checks it against tests/oracle.py."""
from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pyarrow.ipc as ipc
import pytest
from oracle import example_rows

from zhmask.config import BuildConfig
from zhmask.pipeline import Pipeline
from zhmask.record import Example
from zhmask.rng import DrawsBatch
from zhmask.steps.read import RawDoc

BATCHED = ("wwm", "ngram", "span", "char", "knowledge", "mac")
PER_EXAMPLE = ("none",)
ODD_TEXTS = [
    "iPhone12很好用 hello world 😀😀 Café", "ＣＰＵ温度达到８０℃，GPU也很热！", "𠀀𠀁是扩展B区的汉字",
    "中华人民共和国全国人民代表大会常务委员会委员长会议在北京举行。" * 3, "好", "。", "a", "\u0000\u0001控制字符\ufeff",
    "supercalifragilisticexpialidocious" * 4 + "很长的英文单词", "１２３４５６７８９０" * 20,
]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def docs(pipeline, sample_lines, inews_docs):
    out = []
    texts = sample_lines[:160] + [d["text"] for d in inews_docs[:40]] + ODD_TEXTS
    for i, t in enumerate(texts):
        doc, _ = pipeline.document(RawDoc(f"d:{i}", t))
        if doc is not None:
            out.append(doc)
    return out


def odd_examples(tok) -> list[Example]:
    cls, sep, unk, mask = int(tok.cls_id), int(tok.sep_id), int(tok.unk_id), int(tok.mask_id)

    def ex(i, ids, wid, **kw):
        return Example(f"odd:{i}", f"odd:{i}#x", "mlm", np.asarray(ids, np.int32), np.zeros(len(ids), np.int8),
                       np.asarray(wid, np.int32), **kw)

    long_word = list(range(800, 840))
    return [
        ex(0, [], []),
        ex(1, [800], [0]),
        ex(2, [cls, sep], [-1, -1]),
        ex(3, [cls, 800, sep], [-1, 0, -1]),
        ex(4, [cls, 800, unk, 801, sep], [-1, 0, 0, 1, -1]),  # a word with a special token: never a unit
        ex(5, [cls] + long_word + [sep, 900, 901, sep], [-1] + [0] * 40 + [-1, 1, 1, -1]),  # over any budget
        ex(6, [800, 801, 802, 803], [0, 0, 1, 1]),  # no special token at all
        ex(7, [cls, 800, mask, 801, sep], [-1, 0, 1, 2, -1], label=1),
        ex(8, [cls] + list(range(1000, 1120)) + [sep], [-1] + list(range(120)) + [-1],
           entities=[(1, 3, "PER"), (4, 6, "IDIOM"), (10, 14, "LOC")]),
        ex(9, [cls, 800, 801, sep], [-1, 0, 0, -1], extra={"source_ids": np.asarray([800], np.int32),
                                                            "target_ids": np.asarray([801], np.int32)}),
        ex(10, [cls, 800, 801, sep], [-1, 0, 0, -1], extra={"token_labels": np.asarray([-100, 1, 2, -100], np.int32)}),
        ex(11, [cls, 800, 801, sep], [-1, 0, 1, -1], extra={"chinese_ref": np.asarray([2], np.int32)}),
        ex(12, [cls, 800, 801, 802, sep, 803, sep], [-1, 0, 1, 1, -1, 2, -1],
           extra={"segment_sources": [{"doc_id": "odd:12", "start": 0, "end": 3}, ("odd:12", 3, 4)]}),
    ]


def examples(pipe: Pipeline, docs) -> list[Example]:
    return list(pipe.examples(docs)) + odd_examples(pipe.tok)


def per_example(pipe: Pipeline, batch: list[Example]):
    """Rows and masking statistics of tests/oracle.py's per-example writer (``example_rows``)."""
    rngs = DrawsBatch()
    rngs.prepare(pipe.mask_keys(batch))
    refs = pipe.chinese_refs(batch)
    stats = {"masking": {}}
    n = pipe.config.dupe_factor
    rows = [r for i, ex in enumerate(batch) for r in example_rows(pipe, ex, stats, rngs, i * n, refs[i])]
    return rows, stats["masking"]


def batched(pipe: Pipeline, batch: list[Example]):
    """masked_block, with chinese_ref computed over the batch; checked against the block it gives
    with the refs of chinese_refs()."""
    rngs = DrawsBatch()
    rngs.prepare(pipe.mask_keys(batch))
    got = pipe.masked_block(batch, rngs)
    again = pipe.masked_block(batch, rngs, pipe.chinese_refs(batch))
    assert (got is None) == (again is None)
    if got is not None:
        from zhmask.write.arrays import blocks_to_batch

        assert ipc_bytes([blocks_to_batch([got[0]])]) == ipc_bytes([blocks_to_batch([again[0]])])
        assert got[1] == again[1]
    return got


def ipc_bytes(batches) -> bytes:
    from zhmask.schema import SCHEMA

    sink = io.BytesIO()
    with ipc.new_stream(sink, SCHEMA) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue()


def assert_block_equals_rows(block, rows):
    from oracle import rows_to_batch

    from zhmask.write.arrays import blocks_to_batch

    a, b = blocks_to_batch([block]), rows_to_batch(rows)
    assert a.to_pylist() == b.to_pylist()
    assert ipc_bytes([a]) == ipc_bytes([b])


# ---------------------------------------------------------------------- masking
@pytest.mark.parametrize("dupe", [1, 2])
@pytest.mark.parametrize("masking", BATCHED + PER_EXAMPLE)
def test_batched_masking_equals_per_example(docs, masking, dupe):
    pipe = Pipeline(BuildConfig(masking=masking, dupe_factor=dupe).validate())
    exs = examples(pipe, docs)
    assert len(exs) > 300
    odd = odd_examples(pipe.tok)
    for batch in (exs[:256], exs[256:], odd, odd[:1], odd[1:2], odd[2:3], exs[:1], odd[:9] + exs[:20]):
        rows, want = per_example(pipe, batch)
        got = batched(pipe, batch)
        assert got is not None
        block, stats = got
        assert len(block) == len(rows)
        assert_block_equals_rows(block, rows)
        assert {k: int(v) for k, v in stats.items()} == want
    if masking != "none":
        assert any(r for r in per_example(pipe, exs[:256])[0] if (np.asarray(r["labels"]) != -100).any())


@pytest.mark.parametrize("masking", BATCHED)
def test_batched_masking_with_other_ratios_and_budgets(docs, masking):
    for kw in ({"mask_ratios": (0.0, 1.0, 0.0)}, {"mask_ratios": (0.5, 0.0, 0.5), "masked_lm_prob": 0.4},
               {"max_predictions_per_seq": 3}, {"masked_lm_prob": 0.0}, {"seed": 2**63 + 5}):
        pipe = Pipeline(BuildConfig(masking=masking, **kw).validate())
        batch = examples(pipe, docs[:60])
        rows, want = per_example(pipe, batch)
        block, stats = batched(pipe, batch)
        assert_block_equals_rows(block, rows)
        assert dict(stats) == want


def test_ngram_knobs_batched(docs):
    for opts in ({"ngram_max": 1, "ngram_probs": [1.0]}, {"ngram_max": 6, "ngram_probs": [1, 1, 1, 1, 1, 40]},
                 {"ngram_max": 3, "ngram_probs": [0.01, 0.0, 0.99]}):
        pipe = Pipeline(BuildConfig(masking="ngram", options=opts).validate())
        batch = examples(pipe, docs[:80])
        rows, want = per_example(pipe, batch)
        block, stats = batched(pipe, batch)
        assert_block_equals_rows(block, rows)
        assert dict(stats) == want


@pytest.mark.parametrize("masking", BATCHED)
def test_one_implementation_equals_the_per_example_oracle(docs, masking):
    """The batched implementation of wwm, ngram, span and char, on examples alone and in a batch,
    equals the plain per-example decision (tests/oracle.py) with the same keys."""
    from oracle import reference_mask

    from zhmask.rng import rng_for

    cfg = BuildConfig(masking=masking).validate()
    pipe = Pipeline(cfg)
    ref = reference_mask(cfg, pipe.ctx)
    exs = examples(pipe, docs)[:300] + odd_examples(pipe.tok)
    keys = [(cfg.seed, ex.example_id, "mask", 0) for ex in exs]
    batch = pipe.mask.mask_rows(exs, [rng_for(*k) for k in keys])
    stats: Counter = Counter()
    predicted = 0
    for i, (ex, k) in enumerate(zip(exs, keys)):
        want = ref(ex, rng_for(*k))
        alone = pipe.mask(ex, rng_for(*k))
        a, b = int(batch.lens[:i].sum()), int(batch.lens[:i + 1].sum())
        for got in (alone.input_ids, batch.input_ids[a:b]):
            assert got.tolist() == want.input_ids.tolist(), ex.example_id
        assert alone.labels.tolist() == batch.labels[a:b].tolist() == want.labels.tolist(), ex.example_id
        assert {k: int(v) for k, v in alone.stats.items() if v} == {k: int(v) for k, v in want.stats.items() if v}
        stats.update(want.stats)
        predicted += int((want.labels != -100).sum())
    assert {k: int(v) for k, v in batch.stats.items() if v} == {k: int(v) for k, v in stats.items() if v}
    assert predicted > 1000


@pytest.mark.parametrize("options,dupe", [
    ({"knowledge_levels": {"entity": 2, "phrase": 1, "word": 1, "char": 1}}, 1),  # characters inside the units
    ({"knowledge_levels": {"entity": 1}}, 1),
    ({"knowledge_levels": {"char": 1}, "masked_lm_prob": 0.3}, 1),
    ({"knowledge_stages": [{"char": 1}, {"phrase": 1, "word": 1}, {"entity": 1, "word": 0.5}]}, 3),
])
def test_knowledge_levels_and_stages_equal_the_per_example_oracle(docs, options, dupe):
    """knowledge's batched path, for each level mix and for staged copies (each row's copy picks
    its stage), equals the per-example original (tests/oracle.py), counters included."""
    from oracle import reference_mask

    from zhmask.masking.base import call_mask
    from zhmask.rng import rng_for

    opts = dict(options)
    extra = {"masked_lm_prob": opts.pop("masked_lm_prob")} if "masked_lm_prob" in opts else {}
    cfg = BuildConfig(masking="knowledge", dupe_factor=dupe, options=opts, **extra).validate()
    pipe = Pipeline(cfg)
    ref = reference_mask(cfg, pipe.ctx)
    exs = examples(pipe, docs)[:200] + odd_examples(pipe.tok)
    assert sum(len(ex.entities) for ex in exs) > 100
    rows = [(ex, k) for ex in exs for k in range(dupe)]
    keys = [(cfg.seed, ex.example_id, "mask", k) for ex, k in rows]
    batch = pipe.mask.mask_rows([ex for ex, _ in rows], [rng_for(*k) for k in keys], [k for _, k in rows])
    stats: Counter = Counter()
    for i, ((ex, k), key) in enumerate(zip(rows, keys)):
        want = call_mask(ref, ex, rng_for(*key), k)
        alone = call_mask(pipe.mask, ex, rng_for(*key), k)
        a, b = int(batch.lens[:i].sum()), int(batch.lens[:i + 1].sum())
        assert alone.input_ids.tolist() == batch.input_ids[a:b].tolist() == want.input_ids.tolist(), ex.example_id
        assert alone.labels.tolist() == batch.labels[a:b].tolist() == want.labels.tolist(), ex.example_id
        stats.update(want.stats)
    assert dict(batch.stats) == dict(stats)
    assert stats["predicted_tokens"] > 300 and stats["knowledge_units_entity"] + stats["knowledge_units_char"] > 100
    if dupe > 1:
        assert all(stats[f"knowledge_stage{s}_rows"] == len(exs) for s in range(3))


@pytest.mark.parametrize("masking", BATCHED + PER_EXAMPLE)
def test_batched_path_presence(masking):
    pipe = Pipeline(BuildConfig(masking=masking).validate())
    assert hasattr(pipe.mask, "mask_rows") == (masking in BATCHED)


def test_ids_outside_the_vocabulary_are_named_not_clipped(docs, pipeline):
    """A row with an id outside the vocabulary (a plugin task's bug, or a build of another
    vocabulary) stops the unit naming the example, with or without a batched path: clipping or
    casting it would mask the wrong tokens."""
    from zhmask.pipeline import DocumentCrash

    for masking in ("wwm", "mac"):
        pipe = Pipeline(BuildConfig(masking=masking).validate())
        exs = examples(pipe, docs[:8])
        V = pipe.tok.vocab_size
        for bad in (V, V + 7, 2**40, -3):
            odd = Example("o", "o#1", "mlm", np.array([101, 800, bad, 801, 102], np.int64), np.zeros(5, np.int8),
                          np.array([-1, 0, 0, 1, -1], np.int32))
            batch = exs[:5] + [odd] + exs[5:]
            with pytest.raises(DocumentCrash, match=f"crashed on example o#1 \\(document o\\): ValueError: token id {bad} "
                               f"outside the vocabulary"):
                pipe.mask_batch(batch, DrawsBatch(), {"masking": {}})
        assert pipe.mask_batch(exs, DrawsBatch(), {"masking": {}})  # the others alone are fine


@pytest.mark.parametrize("dupe", [1, 2])
def test_a_tasks_own_base_column_replaces_it_in_its_rows(docs, dupe):
    """A task that sets a base column itself (clm's labels) has it written in its rows, in the
    batch as in the per-example writer; the other rows keep theirs."""
    pipe = Pipeline(BuildConfig(masking="wwm", dupe_factor=dupe).validate())
    exs = examples(pipe, docs[:5])
    exs[2].extra["labels"] = np.zeros(len(exs[2].input_ids), np.int32)
    exs[3].extra["token_type_ids"] = np.ones(len(exs[3].input_ids), np.int8)
    exs[4].extra["task"] = "mine"
    exs[5].extra["entities"] = [(0, 1, "PER")]
    rows, want = per_example(pipe, exs)
    block, stats = batched(pipe, exs)
    assert_block_equals_rows(block, rows)
    assert {k: int(v) for k, v in stats.items()} == want
    got = {r["example_id"]: r for r in rows}
    assert got[exs[2].example_id + ("@1" if dupe > 1 else "")]["labels"].tolist() == [0] * len(exs[2].input_ids)
    assert any((np.asarray(r["labels"]) != -100).any() for r in rows[:2 * dupe])


def test_many_tasks_batched(inews_docs):
    """Rows with extra columns (segment_sources, token_labels, span_bounds, ERNIE-GEN) in one batch."""
    tasks = ["mlm", "nsp", "sop", "sentence_reorder", "sentence_distance", "discourse_relation",
             "token_document_relation", "capitalization", "ernie_gen"]
    from zhmask.labels import TASKS

    tasks = [t for t in tasks if t in TASKS]
    for masking in ("wwm", "ngram", "span"):  # span: its span_bounds beside the tasks' own
        pipe = Pipeline(BuildConfig(masking=masking, tasks=tasks).validate())
        docs = [d for d in (pipe.document(RawDoc(f"n:{i}", x["text"]))[0] for i, x in enumerate(inews_docs[:60]))
                if d is not None]
        exs = list(pipe.examples(docs))
        keys = {k for ex in exs for k in ex.extra}
        assert {"segment_sources", "source_ids"} <= keys
        for i in range(0, len(exs), 256):
            rows, want = per_example(pipe, exs[i:i + 256])
            block, stats = batched(pipe, exs[i:i + 256])
            assert_block_equals_rows(block, rows)
            assert dict(stats) == want


# ---------------------------------------------------------------------- the parts
def _reference_sample_word_ngrams(wt, probs, budget, rng, stats, prefix="ngram"):
    """sample_word_ngrams as it was before the batched path (kept as the oracle)."""
    W = len(wt)
    if W == 0 or budget <= 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    ctok = [0]
    for x in wt.ntok.tolist():
        ctok.append(ctok[-1] + x)
    cbreak = [0] * W
    for k, jn in enumerate(wt.joined.tolist(), 1):
        cbreak[k] = cbreak[k - 1] + (not jn)
    free = wt.ok.tolist()
    cum = np.cumsum(probs)
    N = len(probs)
    r = budget
    out_s, out_n, out_t = [], [], []
    draws = rng.random((4 * budget + 8, 2))
    ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
    us = draws[:, 1].tolist()
    di = 0
    static = {}
    dead = [False] * (N + 1)
    dead[0] = True
    live = (probs > 0).tolist()
    while r > 0 and any(live[k] and not dead[k + 1] for k in range(N)):
        if di >= len(ns):
            draws = rng.random((len(ns), 2))
            ns = np.minimum(np.searchsorted(cum, draws[:, 0], side="right") + 1, N).tolist()
            us = draws[:, 1].tolist()
            di = 0
        n, u = ns[di], us[di]
        di += 1
        if n > W or dead[n]:
            for k in range(n, N + 1):
                dead[k] = True
            stats[f"{prefix}_skipped_n{n}"] += 1
            continue
        st_n = static.get(n)
        if st_n is None:
            st_n = static[n] = ([ctok[a + n] - ctok[a] for a in range(W - n + 1)],
                                [cbreak[a + n - 1] == cbreak[a] for a in range(W - n + 1)])
        tok_n, joined_n = st_n
        run = 0
        fr = [0] * W
        for k in range(W):
            run = run + 1 if free[k] else 0
            fr[k] = run
        places = [a for a in range(W - n + 1) if fr[a + n - 1] >= n and joined_n[a] and tok_n[a] <= r]
        if not places:
            stats[f"{prefix}_skipped_n{n}"] += 1
            for k in range(n, N + 1):
                dead[k] = True
            continue
        exact = [a for a in places if tok_n[a] == r]
        if exact:
            places = exact
        st = places[min(int(u * len(places)), len(places) - 1)]
        for k in range(st, st + n):
            free[k] = False
        t = ctok[st + n] - ctok[st]
        r -= t
        out_s.append(st)
        out_n.append(n)
        out_t.append(t)
    return (np.asarray(out_s, dtype=np.int64), np.asarray(out_n, dtype=np.int64), np.asarray(out_t, dtype=np.int64))


def _random_tables(seed: int, count: int):
    from oracle import word_table

    g = np.random.default_rng(seed)
    for _ in range(count):
        n = int(g.integers(0, 60))
        wid = np.repeat(np.arange(n), g.integers(1, 5, size=n))[: int(g.integers(0, 4 * n + 1))]
        wid = wid.astype(np.int64)
        if len(wid):
            wid[g.random(len(wid)) < 0.05] = -1  # separators
        cand = (wid >= 0) & (g.random(len(wid)) > 0.03)  # a few words with a special token
        yield word_table(wid, cand), wid, cand


def test_sample_word_ngrams_equals_the_reference(docs, pipeline):
    from oracle import sample_word_ngrams, word_table

    from zhmask.masking.units import Masker, geometric_probs

    m = Masker(BuildConfig(), pipeline.ctx)
    tables = [wt for wt, _, _ in _random_tables(7, 400)]
    for ex in list(pipeline.examples(docs[:60])) + odd_examples(pipeline.tok):
        wid = np.asarray(ex.word_ids, dtype=np.int64)
        tables.append(word_table(wid, (wid >= 0) & ~m.special_table[np.asarray(ex.input_ids)]))
    prob_sets = [np.array([0.4, 0.3, 0.2, 0.1]), np.array([1.0]), geometric_probs(0.2, 10),
                 np.array([0.01, 0.0, 0.99]), np.array([0.02, 0.98])]
    n = 0
    for i, wt in enumerate(tables):
        for j, probs in enumerate(prob_sets):
            for budget in (0, 1, 3, 19, 60):
                s1, s2 = Counter(), Counter()
                a = sample_word_ngrams(wt, probs, budget, np.random.default_rng(1000 * i + j), s1)
                b = _reference_sample_word_ngrams(wt, probs, budget, np.random.default_rng(1000 * i + j), s2)
                for x, y in zip(a, b):
                    assert x.tolist() == y.tolist()
                assert s1 == s2
                n += len(a[0])
    assert n > 1000


def test_take_rows_equals_take_in_order(pipeline):
    from oracle import take_in_order

    from zhmask.masking.units import Masker, RowBatch

    m = Masker(BuildConfig(), pipeline.ctx)
    g = np.random.default_rng(3)
    for trial in range(60):
        rows = int(g.integers(1, 40))
        counts = g.integers(0, 30, size=rows) * (g.random(rows) > 0.1)
        lengths = g.integers(1, int(g.integers(2, 9)), size=int(counts.sum()))
        budget = g.integers(-1, 25, size=rows)
        rb = RowBatch([], np.zeros(rows, np.int64), None, None, None, None, None, None)
        rb.budget = budget
        taken, skipped = m.take_rows(rb, counts, lengths)
        off = 0
        for i, c in enumerate(counts.tolist()):
            want, sk = take_in_order(lengths[off:off + c], int(budget[i]))
            assert np.flatnonzero(taken[off:off + c]).tolist() == want.tolist()
            assert skipped[i] == sk
            off += c


def test_generators_equal_rng_for():
    from zhmask.rng import rng_for

    keys = [(2**63 + 1, f"doc:{i}#mlm{i % 3}", "mask", i % 2) for i in range(30)]
    gb = DrawsBatch()
    gb.prepare(keys)
    gens = gb.rows()
    assert len({id(g) for g in gens}) == len(keys)
    for g in gens:  # interleaved: every generator keeps its own state
        g.random(2)
    for key, g in zip(keys, gens):
        r = rng_for(*key)
        r.random(2)
        assert g.permutation(9).tolist() == r.permutation(9).tolist()
        assert g.integers(0, 21128, size=5).tolist() == r.integers(0, 21128, size=5).tolist()
    assert gb.get(3).random(2).tolist() == rng_for(*keys[3]).random(2).tolist()


# ---------------------------------------------------------------------- writer
def _rows_for_writer(docs, pipeline) -> list[dict]:
    pipe = Pipeline(BuildConfig(masking="wwm").validate())
    rows, _ = per_example(pipe, examples(pipe, docs[:40]))
    more = [dict(rows[0], chinese_ref=None, entities=None), dict(rows[1], token_labels=[1, -100], label=3),
            dict(rows[2], segment_sources=[("x", 1, 2)], input_ids=[], labels=[], word_ids=[], token_type_ids=[]),
            dict(rows[3], entities=[(0, 1, "PER"), (2, 5, "LOC")], source_ids=np.arange(3, dtype=np.int64))]
    return rows + more


def test_blocks_to_batch_equals_rows_to_batch(docs, pipeline):
    from oracle import rows_to_batch

    from zhmask.write.arrays import blocks_to_batch, rows_to_block

    rows = _rows_for_writer(docs, pipeline)
    for parts in ([rows], [rows[:1], rows[1:3], rows[3:]], [rows[-4:], rows[:5]], [rows[:1]],
                  [rows[:7], [], rows[7:9]]):
        flat = [r for p in parts for r in p]
        a = blocks_to_batch([rows_to_block(p) for p in parts])
        b = rows_to_batch(flat)
        assert a.to_pylist() == b.to_pylist()
        assert ipc_bytes([a]) == ipc_bytes([b])
    # a column null in every row, and one null in some rows only
    nulls = [dict(r, chinese_ref=None) for r in rows[:5]]
    some = [dict(r, token_labels=[1] if i % 2 else None) for i, r in enumerate(rows[:6])]
    for rs in (nulls, some):
        assert ipc_bytes([blocks_to_batch([rows_to_block(rs[:2]), rows_to_block(rs[2:])])]) == ipc_bytes([rows_to_batch(rs)])


def test_shard_writer_gives_the_same_file_for_any_block_sizes(tmp_path, docs, pipeline, monkeypatch):
    import zhmask.write.shards as shards
    from zhmask.schema import SCHEMA
    from zhmask.write.arrays import rows_to_block

    monkeypatch.setattr(shards, "BATCH_ROWS", 16)
    rows = _rows_for_writer(docs, pipeline)
    rows = (rows * (1 + 100 // len(rows)))[:100]
    with shards.ShardWriter(tmp_path / "a.arrow", SCHEMA) as w:
        for r in rows:
            w.write_block(rows_to_block([r]))
    g = np.random.default_rng(5)
    for trial in range(6):
        with shards.ShardWriter(tmp_path / "b.arrow", SCHEMA) as w:
            i = 0
            while i < len(rows):
                k = int(g.choice([0, 1, 3, 15, 16, 17, 40]))
                w.write_block(rows_to_block(rows[i:i + k]))
                i += k
        assert (tmp_path / "b.arrow").read_bytes() == (tmp_path / "a.arrow").read_bytes()
        assert w.rows == len(rows)


# ---------------------------------------------------------------------- the build
@pytest.mark.parametrize("masking", ["wwm", "ngram", "char", "knowledge"])
def test_run_unit_equals_rows_written_one_by_one(tmp_path, sample_lines, masking):
    """A unit's shard and statistics with the batched path equal those of the per-example path."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.masking.unigram import BuildTables

    cfg = BuildConfig(masking=masking, dupe_factor=2, tasks=["mlm", "sop"]).validate()
    raws = [RawDoc(f"p:{i}", t) for i, t in enumerate(sample_lines[:300])]
    fast = Pipeline(cfg)
    a = fast.run_unit(0, raws, tmp_path / "a")
    slow = Pipeline(cfg)

    def one_by_one(exs, rngs, refs=None):  # the rows of tests/oracle.py's per-example writer
        from oracle import example_rows

        from zhmask.write.arrays import rows_to_block

        stats = {"masking": {}}
        rows = [r for i, ex in enumerate(exs) for r in example_rows(slow, ex, stats, rngs, i * cfg.dupe_factor)]
        return rows_to_block(rows), stats["masking"]

    slow.masked_block = one_by_one
    b = slow.run_unit(0, raws, tmp_path / "b")
    assert a["masking"] == b["masking"] and a["masking"]["examples"] > 500
    assert a["shard"]["sha256"] == b["shard"]["sha256"]
    table = ipc.open_stream(tmp_path / "a" / a["shard"]["file"]).read_all()
    # dynamic masking at epoch k = the k-th static copy
    # (the unit's unigram table from the file the unit wrote, as from_build reads it)
    dyn = DynamicMasking(masking, config=cfg, return_tensors="np",
                         tables=BuildTables(tmp_path / "a", [{"unit": 0, "file": a["unigram"]["file"]}]))
    assert a["unigram"] == b["unigram"] and a["unigram"]["tokens"] > 10_000
    for row in table.slice(0, 200).to_pylist():
        base, k = row["example_id"].rsplit("@", 1)
        inp, lab = dyn.mask_row({**row, "example_id": base}, epoch=int(k))
        assert inp.tolist() == row["input_ids"] and lab.tolist() == row["labels"]


def test_a_masking_crash_is_narrowed_to_its_example_never_hidden(tmp_path, sample_lines):
    """No silent per-example path: a batch that raises is bisected down to the example that
    raises alone, and the unit fails naming it."""
    from zhmask.pipeline import DocumentCrash

    cfg = BuildConfig(masking="wwm").validate()
    raws = [RawDoc(f"p:{i}", t) for i, t in enumerate(sample_lines[:20])]
    broken = Pipeline(cfg)
    real = broken.mask.mask_rows
    victim = {}

    def boom(exs, gens, copies=None):
        if victim.setdefault("id", exs[len(exs) // 2].example_id) in {ex.example_id for ex in exs}:
            raise RuntimeError("cannot mask this one")
        return real(exs, gens, copies)

    broken.mask.mask_rows = boom
    with pytest.raises(DocumentCrash, match="masking wwm crashed on example (\\S+) .*RuntimeError: cannot mask this one") as exc:
        broken.run_unit(0, raws, tmp_path / "broken")
    assert f"example {victim['id']} " in str(exc.value)

    always = Pipeline(cfg)
    always.mask.mask_rows = lambda exs, gens, copies=None: (_ for _ in ()).throw(RuntimeError("broken for all"))
    with pytest.raises(DocumentCrash, match="crashed on example p:0#mlm0"):  # the first example fails alone
        always.run_unit(0, raws, tmp_path / "always")

    bad = Pipeline(cfg)
    real = bad.examples

    def examples(docs, *unit_table):
        for i, ex in enumerate(real(docs, *unit_table)):
            if i == 3:  # word ids that do not match the ids: the batch falls back, the example is named
                ex.word_ids = ex.word_ids[:-1]
            yield ex

    bad.examples = examples
    with pytest.raises(DocumentCrash, match=r"masking wwm crashed on example \S+ \(document p:"):
        bad.run_unit(0, raws, tmp_path / "bad")
