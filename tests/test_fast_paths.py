"""The fast paths of the hot loop give exactly what the plain versions give."""
from __future__ import annotations

import numpy as np
import pytest

from zhmask.steps.read import RawDoc


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**32 - 1, 2**32, 2**63, 2**64 - 1])
def test_generator_batch_draws_equal_rng_for(seed):
    from zhmask.rng import DrawsBatch, rng_for

    keys = [(seed, f"doc:{i}#mlm{i % 3}", "mask", i % 2) for i in range(40)]
    gb = DrawsBatch()
    gb.prepare(keys)
    for i, key in enumerate(keys):
        g, r = gb.get(i), rng_for(*key)
        assert g.random(3).tolist() == r.random(3).tolist()
        assert g.permutation(17).tolist() == r.permutation(17).tolist()
        assert g.integers(0, 21128, size=5).tolist() == r.integers(0, 21128, size=5).tolist()


def test_lexicon_matches_equal_every_boundary_pair(pipeline, sample_lines):
    """Lexicon candidates = every span between two word boundaries that is a lexicon entry."""
    from zhmask.steps.entities import resolve

    det = pipeline.entities
    for i, line in enumerate(sample_lines[:120]):
        doc, _ = pipeline.document(RawDoc(str(i), line))
        bounds = sorted(set(doc.words.starts.tolist()) | set(doc.words.ends.tolist()))
        lex = [(s, e, det._lex[doc.text[s:e]]) for a, s in enumerate(bounds) for e in bounds[a + 1:]
               if doc.text[s:e] in det._lex]
        pos_only = type(det).__new__(type(det))
        pos_only.__dict__.update(det.__dict__, _empty=True)
        pos_cands = [(sp.start, sp.end, sp.type) for sp in pos_only.detect(doc.text, doc.words)]
        # candidates from POS first (they win ties), then lexicon matches, as detect() orders them
        want = resolve([(s, e, t) for s, e, t in pos_cands] + lex)
        assert det.detect(doc.text, doc.words) == want


def test_vectorised_tokenize_equals_character_loop(pipeline, sample_lines, inews_docs):
    tok = pipeline.tok
    texts = sample_lines[:100] + [d["text"] for d in inews_docs[:40]] + [
        "iPhone12很好用 hello world 😀😀 Café", "ＣＰＵ温度达到８０℃，GPU也很热！", "𠀀𠀁是扩展B区的汉字"]
    for i, t in enumerate(texts):
        doc, _ = pipeline.document(RawDoc(str(i), t))
        a = tok.tokenize(doc.text, doc.words)
        b = tok._tokenize_loop(doc.text, doc.words)
        for x, y in ((a.ids, b.ids), (a.starts, b.starts), (a.ends, b.ends), (a.word, b.word)):
            assert np.array_equal(x, y)


def test_chinese_ref_batch_equals_per_example(pipeline, sample_lines, inews_docs):
    from oracle import chinese_ref as one

    from zhmask.masking.units import chinese_ref, chinese_ref_batch

    table = pipeline._cjk_table
    docs = [pipeline.document(RawDoc(str(i), t))[0] for i, t in
            enumerate(sample_lines[:150] + [d["text"] for d in inews_docs[:30]] + ["iPhone12很好用 hello 2024年"])]
    exs = list(pipeline.examples([d for d in docs if d is not None]))
    ids = [ex.input_ids for ex in exs]
    wid = [ex.word_ids for ex in exs]
    # odd rows: empty, one token, no special token first, one word id in two places, Latin words,
    # ids outside the table (the plain version clips them)
    cjk = int(np.flatnonzero(table)[0])
    odd_ids = [np.zeros(0, np.int32), np.array([cjk], np.int32), np.array([cjk, cjk, cjk, 100], np.int32),
               np.array([cjk, cjk, 101, cjk, cjk], np.int32), np.array([cjk, 5000, 5000, cjk], np.int32)]
    odd_wid = [np.zeros(0, np.int32), np.array([0], np.int32), np.array([0, 0, 1, 1], np.int32),
               np.array([3, 3, -1, 3, 3], np.int32), np.array([-1, 0, 0, 0], np.int32)]
    for rows_ids, rows_wid in ((ids, wid), (odd_ids + ids[:50], odd_wid + wid[:50]), (ids[:1], wid[:1]), ([], []),
                               (ids[:5] + [np.array([cjk, len(table) + 7], np.int32)],
                                wid[:5] + [np.array([0, 0], np.int32)])):
        want = [one(a, b, table) for a, b in zip(rows_ids, rows_wid)]
        got = chinese_ref_batch(rows_ids, rows_wid, table)
        assert len(got) == len(want)
        for g, w, a, b in zip(got, want, rows_ids, rows_wid):
            assert g.dtype == np.int32 and g.tolist() == w.tolist() == chinese_ref(a, b, table).tolist()
    assert sum(len(chinese_ref(a, b, table)) for a, b in zip(ids, wid)) > 1000  # the rows do have refs


def test_row_batch_words_equal_each_rows_own(pipeline, sample_lines, inews_docs):
    """The word tables of a batch's concatenation, cut per row, equal each row's own (words never
    run across two rows, nor across a special token)."""
    from oracle import word_table

    from zhmask.config import BuildConfig
    from zhmask.masking.units import Masker
    from zhmask.record import Example

    m = Masker(BuildConfig(), pipeline.ctx)
    docs = [pipeline.document(RawDoc(str(i), t))[0] for i, t in
            enumerate(sample_lines[:120] + [d["text"] for d in inews_docs[:20]] + ["iPhone12很好用 hello 2024年"])]
    exs = list(pipeline.examples([d for d in docs if d is not None]))

    def odd(ids, wid):
        return Example("d", "d#x", "mlm", np.asarray(ids, np.int32), np.zeros(len(ids), np.int8), np.asarray(wid, np.int32))

    unk = int(pipeline.tok.unk_id)
    cls, sep = int(pipeline.tok.cls_id), int(pipeline.tok.sep_id)
    odds = [odd([], []), odd([800], [0]), odd([800, 801, 802, 803], [0, 0, 1, 1]), odd([cls, 800, sep, 801, 802], [-1, 0, -1, 0, 0]),
            odd([800, unk, 801, 802], [0, 0, 1, 2]), odd([cls, 800, cls, 801, sep], [-1, 0, 0, 1, -1]), odd([800, 900], [5, 5])]
    words = 0
    for batch in (exs, odds + exs[:40] + odds, exs[:1], odds[:1]):
        rb = m.row_batch(batch)
        for i, ex in enumerate(batch):
            a, b, w0, wn = int(rb.starts[i]), int(rb.ends[i]), int(rb.w0[i]), int(rb.wn[i])
            wid = np.asarray(ex.word_ids, dtype=np.int64)
            cand = (wid >= 0) & ~m.special_table[np.asarray(ex.input_ids)]
            assert rb.cand[a:b].tolist() == cand.tolist()
            want = word_table(wid, cand)
            assert (rb.ws[w0:w0 + wn] - a).tolist() == want.start.tolist()
            assert (rb.we[w0:w0 + wn] - a).tolist() == want.end.tolist()
            assert rb.ok[w0:w0 + wn].tolist() == want.ok.tolist()
            assert rb.joined[w0:w0 + max(wn - 1, 0)].tolist() == want.joined.tolist()
            words += wn
    assert words > 5000
    # ids outside the vocabulary or word ids short of the ids: an error, never a clip or a cast
    for bad, msg in (([800, 10 ** 6], "token id 1000000 outside the vocabulary"), ([800, -1], "outside the vocabulary")):
        with pytest.raises(ValueError, match=msg):
            m.row_batch([odd(bad, [0, 0])] + exs[:3])
    with pytest.raises(ValueError, match="input_ids and word_ids of different lengths"):
        m.row_batch([odd([800, 801], [0])] + exs[:3])


def test_context_rng_prefetched_equals_rng_for():
    from zhmask.config import BuildConfig
    from zhmask.pipeline import TaskContext
    from zhmask.rng import rng_for

    for seed in (0, 12345, 2**63):
        ctx = TaskContext(BuildConfig(seed=seed), None)
        ids = [f"doc:{i}" for i in range(30)] + ["doc:3"]
        ctx.set_unit(ids)
        keys = [(d, st) for st in ("pack", "sop_split") for d in ids] + [("doc:5", "ir", 7), ("doc:6", "ir", 7),
                                                                           ("doc:5#x", "pack"), ("doc:1", "pack"), ("doc:2", "e", [1])]
        for key in keys:
            a, b = ctx.rng(*key), rng_for(seed, *key)
            assert a.random(3).tolist() == b.random(3).tolist()
            assert a.permutation(11).tolist() == b.permutation(11).tolist()
            assert a.integers(0, 21128, size=4).tolist() == b.integers(0, 21128, size=4).tolist()


def test_stable_seeds_equal_stable_seed():
    from zhmask.rng import stable_seed, stable_seeds

    keys = [(12345, f"doc-{i}", "mask", k) for i in range(50) for k in range(3)]
    keys += [(7, "中文#mlm0", "sop_split"), (7, "a\x1fb", None, 1.5), ("only",), (0, ""), (-3, "x", "", "")]
    assert stable_seeds(keys) == [stable_seed(*k) for k in keys]
    assert stable_seeds([]) == []


def test_fewer_collections_restores_the_thresholds():
    import gc

    from zhmask.pipeline import fewer_collections

    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= 50_000
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError):
        with fewer_collections():
            raise RuntimeError("a unit that fails")
    assert gc.get_threshold() == before


def test_a_unit_leaves_no_reference_cycles(tmp_path, fixtures):
    """The batched stages keep a unit's documents in tables; a reference cycle among them would
    keep every unit's documents until a full collection, which a build makes rare
    (fewer_collections): peak memory then grows with the input."""
    import gc

    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline
    from zhmask.record import Document, Example
    from zhmask.steps.read import InputFile, read_file

    path = fixtures / "inews_150.jsonl"
    cfg = BuildConfig(inputs=[str(path)], tasks=["mlm", "sop", "nsp"], masking="wwm", title_field="title",
                      out=str(tmp_path / "o"))
    pipe = Pipeline(cfg)
    raws = list(read_file(InputFile(path, path.name), fmt="auto", doc_sep="line", text_field="text",
                          title_field="title", on_decode_error="replace"))
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        pipe.run_unit(0, raws[:75], tmp_path / "o")  # the second unit lets go of the first one's tables
        pipe.run_unit(1, raws[75:], tmp_path / "o")
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        leaked = [type(o).__name__ for o in gc.garbage if isinstance(o, (Document, Example, np.ndarray))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    assert not leaked, f"{len(leaked)} objects in reference cycles, e.g. {leaked[:5]}"
