"""Issue 17: characters the vocabulary lacks mapped to their equivalent in it (``--keep-unmapped``
keeps them), and the 80/10/10 random branch drawn from the unit's unigram table (``--random-tokens``).
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import run_cli
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.pipeline import Pipeline
from zhmask.steps.normalize import EQUIVALENTS, Normalizer, vocab_equivalents
from zhmask.steps.read import RawDoc
from zhmask.steps.tokenize import WordTokenizer

TEXT = "他说：“北京的冬天……很冷。”——新华社记者‘小李’报道"


# ---------------------------------------------------------------------- the mapping
def test_equivalents_are_derived_from_the_vocabulary_in_use(tmp_path, tok):
    eq = vocab_equivalents(tok)
    # bert-base-chinese lacks the curly quotes, the em dash and the ellipsis, and has their equivalents
    assert {k: eq[k] for k in "“”‘’—…"} == {"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "…": "..."}
    # it has „ ″ ′ − ﹣ ‥ 〜 itself: they stay
    assert not set("„″′−﹣‥〜") & set(eq) and set(eq) <= set(EQUIVALENTS)
    for ch, rep in eq.items():
        assert tok.encode_text(ch) == [tok.unk_id] and tok.unk_id not in tok.encode_text(rep)
    # a vocabulary with “ ” keeps them; one without '-' cannot map the dashes
    v = tmp_path / "vocab.txt"
    v.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "“", "”", '"', ".", "'", "的"]) + "\n",
                 encoding="utf-8")
    own = vocab_equivalents(WordTokenizer(v))
    assert own == {"‘": "'", "’": "'", "‚": "'", "‛": "'", "„": '"', "‟": '"', "…": "...", "‥": "..", "〝": '"',
                   "〞": '"', "″": '"', "′": "'"}


def test_normalizer_maps_last_and_counts(tok):
    norm = Normalizer(equivalents=vocab_equivalents(tok))
    assert norm(TEXT) == '他说："北京的冬天......很冷。"--新华社记者\'小李\'报道'
    assert norm.mapped == Counter({"“": 1, "”": 1, "…": 2, "—": 2, "‘": 1, "’": 1})
    assert norm("ＡＢ “x” ") == 'AB "x"'  # full-width and spaces first, then the mapping
    norm.mapped.clear()
    assert norm("plain ascii text") == "plain ascii text" and not norm.mapped
    assert Normalizer()(TEXT) == TEXT  # no equivalents: the characters stay


def test_mapped_text_keeps_offsets_words_entities_and_refs_aligned(pipeline):
    """Mapping is part of normalisation: every offset refers to the mapped text, and … becomes
    three characters, three tokens, each with its own span."""
    from zhmask.masking.units import chinese_ref

    doc, why = pipeline.document(RawDoc("d", TEXT))
    assert why is None and doc.text.count(".") == 6 and "…" not in doc.text
    t = doc.tokens
    assert pipeline.tok.unk_id not in t.ids
    assert [pipeline.tok.id_to_token[i] for i in t.ids] == [doc.text[a:b] for a, b in zip(t.starts, t.ends)]
    w = doc.words
    assert (w.starts[t.word] <= t.starts).all() and (t.ends <= w.ends[t.word]).all()
    assert {doc.text[s.start:s.end] for s in doc.entities} >= {"北京", "新华社"}
    ex = next(iter(pipeline.examples([doc])))
    ref = chinese_ref(ex.input_ids, ex.word_ids, pipeline._cjk_table)
    toks = pipeline.tok.decode_tokens(ex.input_ids)
    assert {toks[i] for i in ref.tolist()} <= set(doc.text) - set("\".'-")  # refs continue Chinese words only


def _build(tmp_path, name, *args):
    out = tmp_path / name
    code, _, err = run_cli("build-corpus", str(tmp_path / "in.txt"), "--out", str(out), "--masking", "wwm",
                           "--docs-per-shard", "7", "-q", *args)
    assert code == 0, err
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def test_build_counts_mapped_characters_and_keep_unmapped(tmp_path, sample_lines):
    lines = sample_lines[:30] + [TEXT, "“引号”与‘单引号’……", "——破折号——"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    want = Counter(ch for ln in lines for ch in ln if ch in "“”‘’—…")
    m = _build(tmp_path, "mapped")
    assert m["mapped_chars"] == dict(want) and m["mapped_chars_total"] == sum(want.values())
    assert not set(m["unk_chars"]) & set(want) and m["config"]["keep_unmapped"] is False
    kept = _build(tmp_path, "kept", "--keep-unmapped")
    assert kept["mapped_chars"] == {} and kept["mapped_chars_total"] == 0
    assert set(want) <= set(kept["unk_chars"]) and kept["unk_tokens"] >= m["unk_tokens"] + sum(want.values())
    assert kept["fingerprint"] != m["fingerprint"]
    code, out, _ = run_cli("verify", str(tmp_path / "mapped"))
    assert code == 0, out
    two = _build(tmp_path, "two", "--workers", "2")  # counted per unit: the same for any --workers
    assert two["mapped_chars"] == m["mapped_chars"] and two["shards"] == m["shards"]


# ---------------------------------------------------------------------- random replacements
def _random_rows(docs, random_tokens: str):
    """Rows of a wwm build where every predicted unit gets a random token: (row, original ids)."""
    pipe = Pipeline(BuildConfig(masking="wwm", mask_ratios=(0.0, 1.0, 0.0), random_tokens=random_tokens).validate())
    out = []
    from oracle import example_rows

    for ex in pipe.examples(docs):
        for row in example_rows(pipe, ex, {"masking": {}}):
            out.append((row, np.asarray(ex.input_ids)))
    return pipe, out


@pytest.fixture(scope="module")
def docs(pipeline, sample_lines):
    return [d for d, _ in (pipeline.document(RawDoc(f"s:{i}", t)) for i, t in enumerate(sample_lines[:60]))
            if d is not None]


def test_unit_table_counts_the_units_tokens(pipeline, tok):
    """A hand-checked table: every non-special token of the unit's documents, [UNK] left out."""
    docs = [d for d, _ in pipeline.documents([RawDoc("a", "北京北京，上海。"), RawDoc("b", "北京ABC，☃")])]
    t = pipeline.unit_table(docs)
    names = {tok.id_to_token[i]: c for i, c in zip(t.ids.tolist(), t.counts.tolist())}
    assert names == {"北": 3, "京": 3, "，": 2, "上": 1, "海": 1, "。": 1, "abc": 1}  # ☃ is [UNK]
    assert t.ids.tolist() == sorted(t.ids.tolist()) and t.total == 12


def test_draw_from_tables_by_hand():
    """replacement_bounds + pick_tokens: the v-th token of the table in id order with the
    original's run skipped; the original stays only where the table holds nothing else."""
    from zhmask.masking.unigram import UnitTable, pick_tokens, replacement_bounds

    a = UnitTable(np.array([5, 7, 9], np.int32), np.array([1, 2, 3], np.int64))
    b = UnitTable(np.array([7], np.int32), np.array([4], np.int64))
    which = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    orig = np.array([7, 7, 7, 7, 9, 4, 7, 3])
    d = replacement_bounds([a, b], which, orig)
    assert d.high.tolist() == [4, 4, 4, 4, 3, 6, 0, 4]
    # orig 7 in a (5 x1, 7 x2, 9 x3): 0 -> 5, 1..3 -> 9; orig 9: 0 -> 5, 1..2 -> 7; orig 4: any of a;
    # table b holds only 7: 7 stays; orig 3 (not in b): 7
    v = np.array([0, 1, 2, 3, 2, 5, 0, 3])
    assert pick_tokens(d, v).tolist() == [5, 9, 9, 9, 7, 9, 7, 7]
    assert pick_tokens(d, np.array([0, 0, 0, 0, 1, 2, 0, 0])).tolist() == [5, 5, 5, 5, 7, 7, 7, 7]
    # one table (a build's batches take a shortcut) draws as the same table among others
    one = replacement_bounds([a], np.zeros(6, np.int64), orig[:6])
    assert one.high.tolist() == d.high[:6].tolist() and pick_tokens(one, v[:6]).tolist() == [5, 9, 9, 9, 7, 9]


def test_unigram_random_tokens_come_from_the_unit_table(docs):
    pipe, rows = _random_rows(docs, "unigram")
    tok = pipe.tok
    table = pipe.unit_table(docs)
    in_table = set(table.ids.tolist())
    drawn = in_row = 0
    for row, ids in rows:
        lab = np.asarray(row["labels"])
        pos = np.flatnonzero(lab != -100)
        got = np.asarray(row["input_ids"])[pos]
        assert set(got.tolist()) <= in_table
        rest = set(ids.tolist())
        in_row += sum(t in rest for t in got.tolist())
        drawn += len(pos)
    assert drawn > 500
    assert in_row < 0.8 * drawn  # the unit's tokens, not the row's: many never occur in the row
    # never the token it replaces (drawing the original would read as "keep")
    assert not any((np.asarray(r["input_ids"]) == np.asarray(r["labels"])).any() for r, _ in rows)
    names = [tok.id_to_token[i] for row, _ in rows for i in np.asarray(row["input_ids"])[np.asarray(row["labels"]) != -100]]
    assert not any(n.startswith("[") and n.endswith("]") for n in names)
    assert sum(n.startswith("##") for n in names) < 0.02 * len(names)  # only where the text's Latin has them
    # the draws follow the table: the unit's most frequent token is drawn about as often as it occurs
    top = int(table.ids[np.argmax(table.counts)])
    share = np.mean([i == top for row, _ in rows for i in np.asarray(row["input_ids"])[np.asarray(row["labels"]) != -100]])
    assert abs(share - table.counts.max() / table.total) < 0.02, share
    # row: the old draw from the row's own tokens
    _, rrows = _random_rows(docs, "row")
    for row, ids in rrows:
        got = np.asarray(row["input_ids"])[np.asarray(row["labels"]) != -100]
        assert set(got.tolist()) <= set(ids[~np.isin(ids, tok.special_ids)].tolist())
    # vocab: BERT's draw over the whole vocabulary, continuation pieces and all
    _, vrows = _random_rows(docs, "vocab")
    vnames = [tok.id_to_token[i] for row, _ in vrows
              for i in np.asarray(row["input_ids"])[np.asarray(row["labels"]) != -100]]
    assert sum(n.startswith("##") for n in vnames) > 0.3 * len(vnames)


@pytest.mark.parametrize("random_tokens", ["unigram", "vocab", "row"])
def test_batched_and_dynamic_paths_draw_the_same_random_tokens(docs, random_tokens):
    """The batched path (mask_rows), the per-example path and load-time masking agree, for every table."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.masking.unigram import CurrentUnit
    from zhmask.rng import DrawsBatch, rng_for

    cfg = BuildConfig(masking="wwm", mask_ratios=(0.2, 0.6, 0.2), random_tokens=random_tokens).validate()
    pipe = Pipeline(cfg)
    exs = list(pipe.examples(docs))[:150]
    gb = DrawsBatch()
    gb.prepare([(cfg.seed, ex.example_id, "mask", 0) for ex in exs])
    res = pipe.mask.mask_rows(exs, gb.rows())
    tables = CurrentUnit(None, pipe.unit_table(docs)) if random_tokens == "unigram" else None
    dyn = DynamicMasking("wwm", config=cfg, return_tensors="np", tables=tables)
    ends = np.cumsum(res.lens)
    for ex, b, n in zip(exs, ends.tolist(), res.lens.tolist()):
        one = pipe.mask(ex, rng_for(cfg.seed, ex.example_id, "mask", 0))
        assert one.input_ids.tolist() == res.input_ids[b - n:b].tolist()
        row = {"example_id": ex.example_id, "input_ids": one.input_ids.tolist(), "labels": one.labels.tolist(),
               "word_ids": ex.word_ids.tolist()}
        inp, lab = dyn.mask_row(row, epoch=0)
        assert inp.tolist() == one.input_ids.tolist() and lab.tolist() == one.labels.tolist()
    assert res.stats["tokens_random"] > 100


def _rows(out):
    from zhmask.reader import Build
    from zhmask.view import iter_batches

    return [r for b in iter_batches(Build(out).shards) for r in b.to_pylist()]


def test_unit_tables_in_the_build(tmp_path, sample_lines):
    """The build writes one table per unit (listed, verified), rows name their unit, the shards and
    tables are the same for any --workers and on resume, and load-time masking draws what the
    build drew from them."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.masking.unigram import read_table

    lines = sample_lines[:40]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = _build(tmp_path, "one", "--tasks", "mlm,sop", "--mask-ratios", "0.4,0.4,0.2")
    tables = m["unigram_tables"]
    assert [e["unit"] for e in tables] == list(range(6)) and [e["file"] for e in tables][0] == "unigram/unit-00000.arrow"
    # unit 0 holds the first 7 documents: its table counts their tokens
    pipe = Pipeline(BuildConfig().validate())
    want = pipe.unit_table([d for d, _ in pipe.documents([RawDoc(f"in.txt:{i + 1}", t) for i, t in enumerate(lines[:7])])])
    got = read_table(tmp_path / "one" / tables[0]["file"])
    assert got.ids.tolist() == want.ids.tolist() and got.counts.tolist() == want.counts.tolist()
    assert tables[0]["tokens"] == want.total
    rows = _rows(tmp_path / "one")
    assert {r["unit"] for r in rows} == set(range(6))
    code, out, _ = run_cli("verify", str(tmp_path / "one"))
    assert code == 0, out
    # workers 1 vs 2: the same shards and tables
    two = _build(tmp_path, "two", "--tasks", "mlm,sop", "--mask-ratios", "0.4,0.4,0.2", "--workers", "2")
    assert two["shards"] == m["shards"] and two["unigram_tables"] == tables
    # resume (unshuffled: the units' shards stay): a unit whose table is damaged is redone, alone
    flat = _build(tmp_path, "flat", "--tasks", "mlm,sop", "--mask-ratios", "0.4,0.4,0.2", "--no-shuffle")
    (tmp_path / "flat" / "manifest.json").unlink()
    (tmp_path / "flat" / "unigram" / "unit-00002.arrow").write_bytes(b"damaged")
    shard = tmp_path / "flat" / "data" / "shard-00004.arrow"
    mtime = shard.stat().st_mtime_ns
    resumed = _build(tmp_path, "flat", "--tasks", "mlm,sop", "--mask-ratios", "0.4,0.4,0.2", "--no-shuffle")
    assert resumed == flat and shard.stat().st_mtime_ns == mtime  # unit 4 reused, unit 2 rebuilt the same
    assert resumed["unigram_tables"] == tables
    assert read_table(tmp_path / "flat" / tables[2]["file"]).total == tables[2]["tokens"]  # rewritten
    # static == dynamic, from the build's own tables
    dm = DynamicMasking.from_build(tmp_path / "one", return_tensors="np")
    assert dm.config.random_tokens == "unigram"
    for r, (inp, lab) in zip(rows, dm.mask_batch(rows, epoch=0)):
        assert inp.tolist() == r["input_ids"] and lab.tolist() == r["labels"]
    assert dm.stats["tokens_random"] > 50
    with pytest.raises(ZhmaskError, match="names no unit"):
        dm.mask_row({**rows[0], "unit": None}, epoch=0)
    with pytest.raises(ZhmaskError, match="DynamicMasking.from_build"):
        DynamicMasking("wwm").mask_row(rows[0])


def test_vocab_and_old_builds(tmp_path, sample_lines):
    """--random-tokens vocab writes no tables and draws from the vocabulary; a build made before
    unit tables (manifest without unigram_tables) drew from the row's tokens, and from_build keeps
    that for it."""
    from zhmask.masking.dynamic import DynamicMasking

    (tmp_path / "in.txt").write_text("\n".join(sample_lines[:30]) + "\n", encoding="utf-8")
    v = _build(tmp_path, "vocab", "--random-tokens", "vocab")
    assert "unigram_tables" not in v and not (tmp_path / "vocab" / "unigram").exists()
    dm = DynamicMasking.from_build(tmp_path / "vocab", return_tensors="np")
    rows = _rows(tmp_path / "vocab")
    assert dm.config.random_tokens == "vocab"
    assert all(a.tolist() == r["input_ids"] for r, (a, _) in zip(rows, dm.mask_batch(rows, epoch=0)))
    # an old build: what --random-tokens row draws, with a manifest that says unigram and lists no tables
    _build(tmp_path, "old", "--random-tokens", "row")
    mpath = tmp_path / "old" / "manifest.json"
    old = json.loads(mpath.read_text(encoding="utf-8"))
    old["config"]["random_tokens"] = "unigram"
    mpath.write_text(json.dumps(old), encoding="utf-8")
    dm = DynamicMasking.from_build(tmp_path / "old", return_tensors="np")
    assert dm.config.random_tokens == "row"
    rows = _rows(tmp_path / "old")
    assert all(a.tolist() == r["input_ids"] for r, (a, _) in zip(rows, dm.mask_batch(rows, epoch=0)))
    code, out, err = run_cli("verify", str(tmp_path / "old"))  # the manifest promises tables it lacks
    assert code == 1 and "lists no unigram_tables" in err



def test_options_validated_and_old_builds_keep_vocab_draws(tmp_path):
    with pytest.raises(ZhmaskError, match="--random-tokens: 'corpus' is not one of unigram, vocab, row"):
        BuildConfig(random_tokens="corpus").validate()
    code, _, err = run_cli("build-corpus", "--random-tokens", "nope", "--out", str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    from zhmask.masking.dynamic import DynamicMasking

    cfg = BuildConfig(masking="wwm").to_dict()
    cfg.pop("random_tokens")  # a manifest written before --random-tokens existed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps({"config": cfg}), encoding="utf-8")
    assert DynamicMasking.from_build(tmp_path / "old").config.random_tokens == "vocab"


def test_export_sentence_cuts_tell_opening_from_closing_ascii_quotes(tok):
    """Megatron/TFRecord sentence sequences follow the build's rule for ": 走吧。 | "你去吗？" | 他问。"""
    from zhmask.export._sequences import sentence_cuts, sentence_tables

    ends, term = sentence_tables(tok)
    ids = np.asarray(tok.encode_text('他说："好。"我们走吧。"你去吗？"他问。'), dtype=np.int64)
    cuts = sentence_cuts(ids, ends, term, tok.vocab['"'])
    pieces = ["".join(tok.decode_tokens(ids[a:b].tolist())) for a, b in zip([0] + cuts[:-1], cuts)]
    assert pieces == ['他说："好。"', "我们走吧。", '"你去吗？"', "他问。"]
    assert sentence_cuts(ids, ends, term)[1] == cuts[1] + 1  # without the rule: the opening " joins 走吧。
