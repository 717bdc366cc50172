"""Masking strategies measured on the 400 real People's Daily paragraphs of the bundled sample.

Every figure is computed from the rows (input_ids, labels, word_ids) the pipeline writes, not
from the strategy's own counters, except where a quantity is not visible in a row (the length
in words of an n-gram unit that touches another, the similar/random split of ``mac``); there
the counters are cross-checked against the rows.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from oracle import example_rows

from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.pipeline import Pipeline
from zhmask.steps.read import RawDoc

WHOLE_WORD = ("wwm", "ngram", "mac", "knowledge", "span")
ALL = ("char",) + WHOLE_WORD


@pytest.fixture(scope="module")
def docs(sample_lines):
    base = Pipeline(BuildConfig())
    out = []
    for i, text in enumerate(sample_lines):
        doc, _ = base.document(RawDoc(f"pd:{i}", text))
        if doc is not None:
            out.append(doc)
    assert len(out) >= 390
    return out


_BUILT: dict = {}


def build(docs, masking: str, **kw):
    """(pipeline, examples, rows, masking stats) for one configuration (cached)."""
    key = (masking, tuple(sorted((k, repr(v)) for k, v in kw.items())))
    if key not in _BUILT:
        cfg = BuildConfig(masking=masking, **kw).validate()
        pipe = Pipeline(cfg)
        exs = list(pipe.examples(docs))
        stats = {"masking": {}}
        rows = [r for ex in exs for r in example_rows(pipe, ex, stats)]
        _BUILT[key] = (pipe, exs, rows, stats["masking"])
    return _BUILT[key]


def candidates(pipe, ex):
    ids = np.asarray(ex.input_ids)
    return (np.asarray(ex.word_ids) >= 0) & ~np.isin(ids, pipe.tok.special_ids)


def word_fates(pipe, ex, row):
    """Per predicted word: (its predicted tokens, the set of their fates: 'mask', 'random', 'keep')."""
    orig, inp, lab, wid = (np.asarray(x) for x in (ex.input_ids, row["input_ids"], row["labels"], ex.word_ids))
    out = []
    for w in np.unique(wid[(lab != -100) & (wid >= 0)]):
        pos = np.flatnonzero((wid == w) & (lab != -100))
        f = set()
        for p in pos:
            if inp[p] == pipe.tok.mask_id:
                f.add("mask")
            elif inp[p] == orig[p]:
                f.add("keep")
            else:
                f.add("random")
        out.append((len(pos), f))
    return out


@pytest.mark.parametrize("masking", ALL)
def test_predicted_fraction_is_15_percent_of_candidates(docs, masking):
    pipe, exs, rows, stats = build(docs, masking)
    assert len(exs) > 700
    pred = sum(int((np.asarray(r["labels"]) != -100).sum()) for r in rows)
    cand = sum(int(candidates(pipe, ex).sum()) for ex in exs)
    assert abs(pred / cand - 0.15) <= 0.015, (masking, pred / cand)
    assert stats["predicted_tokens"] == pred and stats["candidate_tokens"] == cand
    for ex, r in zip(exs, rows):
        lab = np.asarray(r["labels"])
        has = lab != -100
        assert (lab[has] == np.asarray(ex.input_ids)[has]).all()  # the original ids
        assert not (has & ~candidates(pipe, ex)).any()  # never a special token
        assert has.sum() <= pipe.config.max_predictions_per_seq
        changed = np.asarray(r["input_ids"]) != np.asarray(ex.input_ids)
        assert not (changed & ~has).any()
        replaced = np.asarray(r["input_ids"])[changed & (np.asarray(r["input_ids"]) != pipe.tok.mask_id)]
        assert not np.isin(replaced, list(_bracketed(pipe))).any(), (masking, replaced)  # no [UNK]/[unused*]/...


def _bracketed(pipe) -> set[int]:
    """Ids of every bracketed vocabulary entry: the special tokens and the [unused*] slots."""
    if not hasattr(pipe, "_bracketed"):
        vocab = pipe.tok.vocab
        pipe._bracketed = {i for t, i in vocab.items() if t.startswith("[") and t.endswith("]")}
        assert len(pipe._bracketed) > 100  # bert-base-chinese: 5 specials and 99 [unused] slots at least
    return pipe._bracketed


@pytest.mark.parametrize("masking", ("char", "wwm", "ngram", "knowledge", "span"))
def test_80_10_10_per_unit_measured_in_rows(docs, masking):
    """The fate of every predicted token / word read from the rows (a unit's words share its fate,
    drawn independently of the unit's size, so the shares over words are the shares over units)."""
    pipe, exs, rows, stats = build(docs, masking)
    c = Counter()
    for ex, r in zip(exs, rows):
        if masking == "char":  # the unit is a token
            orig, inp, lab = (np.asarray(x) for x in (ex.input_ids, r["input_ids"], r["labels"]))
            p = lab != -100
            c["mask"] += int((inp[p] == pipe.tok.mask_id).sum())
            c["keep"] += int((inp[p] == orig[p]).sum())
            c["random"] += int(((inp[p] != orig[p]) & (inp[p] != pipe.tok.mask_id)).sum())
            continue
        for _, f in word_fates(pipe, ex, r):
            if len(f) == 1:
                c[next(iter(f))] += 1
    n = sum(c.values())
    assert n > 2000
    for name, want in (("mask", 0.8), ("random", 0.1), ("keep", 0.1)):
        assert abs(c[name] / n - want) <= 0.03, (masking, dict(c))


@pytest.mark.parametrize("ratios", [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 0.5)])
def test_mask_ratios_change_the_fates_in_the_rows(docs, ratios):
    pipe, exs, rows, _ = build(docs, "wwm", mask_ratios=ratios)
    c = Counter()
    for ex, r in zip(exs, rows):
        for _, f in word_fates(pipe, ex, r):
            c.update(f)
    n = sum(c.values())
    assert n > 2000
    for name, want in zip(("mask", "random", "keep"), ratios):
        assert abs(c[name] / n - want) <= 0.03, (ratios, dict(c))


@pytest.mark.parametrize("masking", ("wwm", "ngram", "knowledge", "span"))
def test_80_10_10_per_unit_counted(docs, masking):
    _, _, _, stats = build(docs, masking)
    n = stats["units"]
    assert n > 1500
    for name, want in (("mask", 0.8), ("random", 0.1), ("keep", 0.1)):
        assert abs(stats.get(f"units_{name}", 0) / n - want) <= 0.03, (masking, stats)


def test_mac_similar_random_keep_per_unit(docs):
    pipe, exs, rows, stats = build(docs, "mac")
    n = stats["units"]
    for name, want in (("similar", 0.8), ("random", 0.1), ("keep", 0.1)):
        assert abs(stats.get(f"units_{name}", 0) / n - want) <= 0.03, stats
    # keep units are visible in the rows: a predicted word left unchanged (so are the punctuation
    # marks of similar units, which mac keeps)
    kept = sum(1 for ex, r in zip(exs, rows) for _, f in word_fates(pipe, ex, r) if f == {"keep"})
    words = sum(len(word_fates(pipe, ex, r)) for ex, r in zip(exs, rows))
    counted = stats["mac_words_keep"] + stats.get("mac_kept_punctuation", 0) + stats.get("mac_kept_other", 0)
    assert stats.get("mac_kept_punctuation", 0) > 0
    assert abs(kept / words - counted / words) <= 0.005


@pytest.mark.parametrize("masking", ("char", "wwm", "ngram", "knowledge", "span"))
def test_one_fate_per_unit_inside_multi_token_words(docs, masking):
    """A per-token 80/10/10 would mix fates inside a third of the two-token words.  (``mac`` is
    left out: a similar word may share a character with the word it replaces.)"""
    pipe, exs, rows, _ = build(docs, masking)
    multi = mixed = 0
    for ex, r in zip(exs, rows):
        for n_tok, f in word_fates(pipe, ex, r):
            if n_tok >= 2:
                multi += 1
                mixed += len(f) > 1
    if masking == "char":  # the unit is a token: words are cut and fates mix (the contrast)
        assert mixed > 0
        return
    assert multi > 500
    assert not any("mask" in f for ex, r in zip(exs, rows) for _, f in word_fates(pipe, ex, r) if len(f) > 1)
    assert mixed <= multi * 0.001, (masking, mixed, multi)  # a random token may equal the original


@pytest.mark.parametrize("masking", WHOLE_WORD)
def test_predicted_words_are_predicted_whole(docs, masking):
    pipe, exs, rows, _ = build(docs, masking)
    partial = words = 0
    for ex, r in zip(exs, rows):
        lab, wid = np.asarray(r["labels"]) != -100, np.asarray(ex.word_ids)
        for w in np.unique(wid[lab & (wid >= 0)]):
            words += 1
            partial += not lab[wid == w].all()
    assert words > 3000 and partial == 0


def test_char_masking_cuts_words(docs):
    """The contrast: token-level masking predicts parts of words."""
    pipe, exs, rows, _ = build(docs, "char")
    partial = 0
    for ex, r in zip(exs, rows):
        lab, wid = np.asarray(r["labels"]) != -100, np.asarray(ex.word_ids)
        partial += sum(not lab[wid == w].all() for w in np.unique(wid[lab & (wid >= 0)]))
    assert partial > 1000


@pytest.mark.parametrize("masking", ("ngram", "mac"))
def test_ngram_lengths_follow_0_4_0_3_0_2_0_1(docs, masking):
    _, _, rows, stats = build(docs, masking)
    counts = np.array([stats.get(f"ngram_units_n{n}", 0) for n in range(1, 5)], dtype=float)
    assert counts.sum() == stats["units"] > 2000
    share = counts / counts.sum()
    assert np.abs(share - [0.4, 0.3, 0.2, 0.1]).max() <= 0.03, share
    # cross-check with the rows: labelled runs of words are unions of units, never fewer words
    words_pred = sum(len(np.unique(np.asarray(r["word_ids"])[np.asarray(r["labels"]) != -100])) for r in rows)
    assert words_pred == int((counts * np.arange(1, 5)).sum())


def test_ngram_knobs(docs):
    _, _, _, stats = build(docs, "ngram", options={"ngram_max": 2, "ngram_probs": [0.5, 0.5]})
    share = stats["ngram_units_n1"] / stats["units"]
    assert "ngram_units_n3" not in stats and abs(share - 0.5) <= 0.04
    with pytest.raises(ZhmaskError):
        BuildConfig(masking="ngram", options={"ngram_max": 4, "ngram_probs": [0.5, 0.5]}).validate()
    with pytest.raises(ZhmaskError):
        BuildConfig(masking="ngram", options={"ngram_probs": [0, 1, 0, 0]}).validate()


def test_span_lengths_are_geometric_in_words(docs):
    _, _, _, stats = build(docs, "span", max_seq_length=512, max_predictions_per_seq=76)
    counts = np.array([stats.get(f"span_units_n{n}", 0) for n in range(1, 11)], dtype=float)
    assert counts.sum() == stats["units"] and "span_units_n11" not in stats
    mean = (counts * np.arange(1, 11)).sum() / counts.sum()
    # SpanBERT's clipped Geo(0.2) has mean 3.8 words; short paragraphs cannot host long spans
    assert 2.6 <= mean <= 3.9, mean
    assert (np.diff(counts[:6]) < 0).all()  # decreasing like a geometric law


def test_mac_uses_no_mask_and_reports_lexicon_share(docs):
    pipe, exs, rows, stats = build(docs, "mac")
    assert not any((np.asarray(r["input_ids"]) == pipe.tok.mask_id).any() for r in rows)
    share = stats["mac_similar_from_lexicon"] / stats["mac_words_similar"]
    other = {k: v for k, v in stats.items() if k.startswith(("mac_fallback_", "mac_kept_", "mac_same_kind_"))}
    print(f"mac: {share:.1%} of similar-unit words replaced from the similar-word table; others {other}")
    assert 0.3 <= share < 1.0
    # every word of a similar unit is counted once, under one outcome
    assert (stats["mac_similar_from_lexicon"] + sum(v for k, v in other.items()
                                                   if k not in ("mac_fallback_random_tokens", "mac_fallback_joined_words"))
            == stats["mac_words_similar"])
    # a replaced word keeps its token count and is a real word of the lexicon or a similar word
    from zhmask.masking.similar_word import lexicon_for

    lex = lexicon_for(pipe.config, pipe.ctx)
    replaced = same_group = 0
    for ex, r in zip(exs, rows):
        inp, orig, wid = np.asarray(r["input_ids"]), np.asarray(ex.input_ids), np.asarray(ex.word_ids)
        for w in np.unique(wid[(inp != orig) & (wid >= 0)]):
            pos = np.flatnonzero(wid == w)
            a, b = lex.key_to_word.get(tuple(orig[pos].tolist())), lex.key_to_word.get(tuple(inp[pos].tolist()))
            replaced += 1
            if a is not None and b is not None and b in lex.similar(a).tolist():
                same_group += 1
    assert same_group / replaced > 0.3


def test_knowledge_masks_entities_at_the_rate_of_words(docs):
    """ERNIE 1.0: entities and phrases are units like words, masked at the same rate (about
    masked_lm_prob of them), not most of them."""
    pipe, exs, rows, stats = build(docs, "knowledge")
    levels = {lv: stats.get(f"knowledge_units_{lv}", 0) for lv in ("entity", "phrase", "word", "char")}
    assert sum(levels.values()) == stats["units"] and levels["char"] == 0
    entity_rate = levels["entity"] / stats["knowledge_entity_units_available"]
    word_rate = levels["word"] / stats["knowledge_word_units_available"]
    print(f"knowledge: {entity_rate:.1%} of entity units and {word_rate:.1%} of word units predicted ({levels})")
    assert 0.08 < entity_rate < 0.25 and 0.08 < word_rate < 0.25
    assert 0.6 < entity_rate / word_rate < 1.5
    # every predicted entity unit is predicted whole: count entities fully labelled
    full = sum(1 for ex, r in zip(exs, rows) for s, e, t in ex.entities
               if (np.asarray(r["labels"])[s:e] != -100).all())
    assert full >= levels["entity"] + levels["phrase"]


def test_knowledge_level_weights_favour_a_level(docs):
    """A level's weight multiplies each of its units' chance: entity 4 masks entities about four
    times as often as words; an entity-only table predicts entities and nothing else."""
    _, _, _, stats = build(docs, "knowledge", options={"knowledge_levels": {"entity": 4, "word": 1}})
    entity_rate = stats["knowledge_units_entity"] / stats["knowledge_entity_units_available"]
    word_rate = stats["knowledge_units_word"] / stats["knowledge_word_units_available"]
    assert entity_rate > 2 * word_rate
    _, _, _, stats = build(docs, "knowledge", options={"knowledge_levels": {"entity": 1}})
    assert stats["knowledge_units_entity"] == stats["units"] > 0


def test_knowledge_char_level_alone_is_ernie_basic_stage(docs):
    _, _, _, stats = build(docs, "knowledge", options={"knowledge_levels": {"char": 1}})
    assert stats["knowledge_units_char"] == stats["units"] == stats["predicted_tokens"]
    with pytest.raises(ZhmaskError):
        BuildConfig(masking="knowledge", options={"knowledge_levels": {"entities": 1}}).validate()


@pytest.mark.parametrize("masking", ALL)
def test_same_seed_same_masks_other_seed_other_masks(docs, masking):
    pipe, exs, rows, _ = build(docs, masking)
    sub = docs[:60]
    table = pipe.unit_table(docs)  # the unit's random-token table is that of all its documents
    again = Pipeline(BuildConfig(masking=masking).validate())
    rows2 = [r for ex in again.examples(sub, table=table) for r in example_rows(again, ex, {"masking": {}})]
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])
               for a, b in zip(rows, rows2))
    other = Pipeline(BuildConfig(masking=masking, seed=7).validate())
    rows3 = [r for ex in other.examples(sub, table=table) for r in example_rows(other, ex, {"masking": {}})]
    differ = sum(not np.array_equal(a["labels"], b["labels"]) for a, b in zip(rows2, rows3))
    assert differ > 0.8 * len(rows3)


def test_dupe_factor_gives_differently_masked_copies(docs):
    pipe, exs, rows, _ = build(docs, "wwm", dupe_factor=3)
    assert len(rows) == 3 * len(exs)
    distinct = 0
    for i, ex in enumerate(exs):
        copies = rows[3 * i:3 * i + 3]
        assert [c["example_id"] for c in copies] == [f"{ex.example_id}@{k}" for k in range(3)]
        keys = {tuple(np.flatnonzero(np.asarray(c["labels"]) != -100)) for c in copies}
        distinct += len(keys) == 3
    assert distinct > 0.9 * len(exs)


@pytest.mark.parametrize("masking", ALL)
def test_static_and_dynamic_paths_agree(docs, masking):
    """The k-th --dupe-factor copy equals the dynamic mask at epoch k, from an unmasked row or
    from the masked row itself (original ids restored from labels)."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.masking.unigram import CurrentUnit
    from oracle import rows_to_batch

    sub = docs[:40]
    static = Pipeline(BuildConfig(masking=masking, dupe_factor=2).validate())
    plain = Pipeline(BuildConfig(masking="none").validate())
    dyn = DynamicMasking(masking, config=BuildConfig(), return_tensors="np",
                         tables=CurrentUnit(None, static.unit_table(sub)))  # the table the unit drew from
    n = 0
    for ex in static.examples(sub):
        unmasked = rows_to_batch(list(example_rows(plain, ex, {"masking": {}}))).to_pylist()[0]
        copies = rows_to_batch(list(example_rows(static, ex, {"masking": {}}))).to_pylist()
        for k, c in enumerate(copies):
            for src in (unmasked, {**c, "example_id": ex.example_id}):
                inp, lab = dyn.mask_row(src, epoch=k)
                assert inp.tolist() == c["input_ids"] and lab.tolist() == c["labels"]
            n += 1
    assert n > 100


def test_generation_rows_are_left_alone(docs):
    from zhmask.masking import STRATEGIES
    from zhmask.record import Example

    pipe, exs, _, _ = build(docs, "wwm")
    ex = exs[0]
    gen = Example(ex.doc_id, ex.example_id, "ernie_gen", ex.input_ids, ex.token_type_ids, ex.word_ids,
                  extra={"source_ids": ex.input_ids[:3]})
    res = STRATEGIES["wwm"](pipe.config, pipe.ctx)(gen, np.random.default_rng(0))
    assert (res.labels == -100).all() and res.stats["not_masked_generation_layout"] == 1


# ---------------------------------------------------------------------- chinese_ref
def test_cjk_token_table_marks_single_ideographs_with_or_without_hashes(pipeline):
    """The table computed from the vocabulary's code points at once equals its definition token
    by token, on the bundled vocabulary and on odd tokens (bare ``##``, ``#``, extension B,
    compatibility ideographs, two characters, an empty token)."""
    from types import SimpleNamespace

    from zhmask.masking.units import cjk_token_table
    from zhmask.steps.normalize import is_cjk

    def definition(tokens):
        out = []
        for s in tokens:
            s = s[2:] if s.startswith("##") else s
            out.append(len(s) == 1 and is_cjk(ord(s)))
        return out

    odd = ["[PAD]", "", "#", "##", "###", "中", "##中", "#中", "中文", "##中文", "\U00020000", "##\uf900", "a", "##a", "。", "##。"]
    got = cjk_token_table(SimpleNamespace(id_to_token=odd)).tolist()
    assert got == definition(odd) == [False] * 5 + [True, True, False, False, False, True, True] + [False] * 4
    tok = pipeline.tok
    assert cjk_token_table(tok).tolist() == definition(tok.id_to_token)


def test_chinese_ref_golden(pipeline):
    """run_chinese_ref.py marks every character of a multi-character Chinese word but the first."""
    from zhmask.masking.units import chinese_ref, cjk_token_table
    from zhmask.steps.pack import build_example

    tok = pipeline.tok
    doc, _ = pipeline.document(RawDoc("g", "北京大学的学生在2024年参加了NLP比赛。"))
    ex = build_example([(doc, [(0, len(doc.tokens))])], cls_id=tok.cls_id, sep_id=tok.sep_id, task="mlm",
                       example_id="g#0")
    toks = tok.decode_tokens(ex.input_ids.tolist())
    ref = chinese_ref(ex.input_ids, ex.word_ids, cjk_token_table(tok)).tolist()
    words = {}
    for i, w in enumerate(ex.word_ids.tolist()):
        if w >= 0:
            words.setdefault(w, []).append(i)
    expect = []
    for pos in words.values():
        if len(pos) > 1 and all(len(toks[p]) == 1 and "\u4e00" <= toks[p] <= "\u9fff" for p in pos):
            expect += pos[1:]
    assert ref == sorted(expect)
    marked = {toks[p] for p in ref}
    assert {"京", "大", "学"} <= marked  # 北京大学 (one word or two, never the first character)
    assert "北" not in marked and "的" not in marked
    assert not any(t.isascii() for t in marked)  # 2024 / nlp are not Chinese words


def test_chinese_ref_in_every_row(docs):
    pipe, exs, rows, _ = build(docs, "wwm")
    total = 0
    for ex, r in zip(exs, rows):
        ref = np.asarray(r["chinese_ref"])
        wid = np.asarray(ex.word_ids)
        assert ((wid[ref] >= 0) & (wid[ref] == wid[ref - 1])).all()
        total += len(ref)
    # about 40% of the tokens of Chinese news continue a word
    ntok = sum(int((np.asarray(ex.word_ids) >= 0).sum()) for ex in exs)
    assert 0.25 < total / ntok < 0.6


def test_build_fills_manifest_and_verify_passes(tmp_path, sample_lines):
    from zhmask.api import build_corpus
    from zhmask.commands.verify import verify_build

    src = tmp_path / "in.txt"
    src.write_text("\n".join(sample_lines[:80]) + "\n", encoding="utf-8")
    for masking in ("mac", "knowledge"):
        out = tmp_path / masking
        res = build_corpus(BuildConfig(inputs=[str(src)], masking=masking, out=str(out), dupe_factor=2))
        m = res.manifest["masking"]
        assert m["examples"] == res.manifest["examples_written"]
        if masking == "mac":
            assert m["mac_similar_from_lexicon"] > 0 and any(k.startswith("mac_fallback_") for k in m)
        else:
            assert m["knowledge_units_entity"] > 0 and m["knowledge_units_phrase"] > 0
        assert verify_build(out) == []


def test_verify_catches_a_partly_predicted_word(docs):
    from zhmask.commands.verify import row_context
    from zhmask.masking.checks import check_masked_row
    from oracle import rows_to_batch

    pipe, exs, rows, _ = build(docs, "wwm")
    ctx = row_context(pipe.config.to_dict())
    for ex, r in zip(exs, rows):
        wid = np.asarray(ex.word_ids)
        lab = np.asarray(r["labels"]).copy()
        multi = [w for w in np.unique(wid[(lab != -100) & (wid >= 0)]) if (wid == w).sum() > 1]
        if multi:
            row = rows_to_batch([r]).to_pylist()[0]
            assert check_masked_row(row, ctx) == []
            lab[np.flatnonzero(wid == multi[0])[0]] = -100
            row["labels"] = lab.tolist()
            assert any("partly predicted" in p for p in check_masked_row(row, ctx))
            return
    pytest.fail("no multi-token predicted word")


def test_verify_catches_a_replacement_by_a_special_or_unused_token(docs):
    from zhmask.commands.verify import row_context
    from zhmask.masking.checks import check_masked_row
    from oracle import rows_to_batch

    pipe, exs, rows, _ = build(docs, "char")
    ctx = row_context(pipe.config.to_dict())
    unused = pipe.tok.vocab["[unused1]"]
    for r in rows:
        ids, lab = np.asarray(r["input_ids"]).copy(), np.asarray(r["labels"])
        pos = np.flatnonzero(lab != -100)
        if len(pos):
            row = rows_to_batch([r]).to_pylist()[0]
            assert check_masked_row(row, ctx) == []
            for bad_id in (unused, pipe.tok.unk_id):
                ids[pos[0]] = bad_id
                row["input_ids"] = ids.tolist()
                assert any("special or [unused]" in p for p in check_masked_row(row, ctx)), bad_id
            return
    pytest.fail("no predicted token")
