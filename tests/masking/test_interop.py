"""zhmask shards consumed by transformers, datasets and PyTorch.

* transformers 5 has no ``DataCollatorForWholeWordMask`` any more; its whole-word masking is
  ``DataCollatorForLanguageModeling(whole_word_mask=True)``, which finds words from
  ``offset_mapping``.  ``zhmask.masking.dynamic.whole_word_features`` turns a row's
  ``chinese_ref`` (or ``word_ids``) into such offsets, and the collator then masks zhmask's
  words whole.
* ``DynamicMasking`` works as a ``DataLoader`` collate_fn and as a ``datasets.map`` function,
  and pickles (DataLoader workers, datasets fingerprints).
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from zhmask.config import BuildConfig  # noqa: E402


@pytest.fixture(scope="module")
def build(tmp_path_factory, sample_lines):
    from zhmask.api import build_corpus

    tmp = tmp_path_factory.mktemp("interop")
    src = tmp / "pd.txt"
    src.write_text("\n".join(sample_lines) + "\n", encoding="utf-8")
    out = {}
    for masking in ("none", "wwm"):
        cfg = BuildConfig(inputs=[str(src)], masking=masking, out=str(tmp / masking), docs_per_shard=200)
        out[masking] = build_corpus(cfg).out_dir
    return out


def load(out_dir):
    files = sorted((out_dir / "data").glob("shard-*.arrow"))
    assert len(files) == 2
    return datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from zhmask.steps.tokenize import WordTokenizer

    wt = WordTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=wt.tk, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                   cls_token="[CLS]", mask_token="[MASK]")


def groups(wid_or_ref_row, boundaries):
    """Token groups (lists of positions) the collator must treat as one word."""
    ids = wid_or_ref_row["input_ids"]
    wid = np.asarray(wid_or_ref_row["word_ids"])
    cont = np.zeros(len(ids), dtype=bool)
    if boundaries == "chinese_ref":
        cont[np.asarray(wid_or_ref_row["chinese_ref"], dtype=np.int64)] = True
    else:
        cont[1:] = (wid[1:] == wid[:-1]) & (wid[1:] >= 0)
    out, cur = [], []
    for i in range(len(ids)):
        if wid[i] < 0:
            continue
        if not cont[i] and cur:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


@pytest.mark.parametrize("boundaries", ("chinese_ref", "word_ids"))
def test_transformers_whole_word_collator_consumes_zhmask_shards(build, hf_tokenizer, boundaries):
    from transformers import DataCollatorForLanguageModeling

    from zhmask.masking.dynamic import whole_word_features

    ds = load(build["wwm"])  # a masked build: original ids come back from labels
    assert len(ds) > 700 and all(r is not None for r in ds["chinese_ref"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random replacement is not supported with whole word masking"
        coll = DataCollatorForLanguageModeling(hf_tokenizer, whole_word_mask=True, mlm_probability=0.15, seed=0,
                                               return_tensors="np")
    rows = ds.select(range(256)).to_list()
    labelled = tokens = partial = words_hit = 0
    for i in range(0, len(rows), 32):
        chunk = rows[i:i + 32]
        batch = coll(whole_word_features(chunk, boundaries))
        for r, lab, inp in zip(chunk, batch["labels"], batch["input_ids"]):
            n = len(r["input_ids"])
            orig = np.where(np.asarray(r["labels"]) != -100, r["labels"], r["input_ids"])
            has = lab[:n] != -100
            assert not has[np.asarray(r["word_ids"]) < 0].any() and (lab[n:] == -100).all()
            assert (lab[:n][has] == orig[has]).all()
            for g in groups(r, boundaries):
                if has[g].any():
                    words_hit += 1
                    partial += not has[g].all()
            labelled += int(has.sum())
            tokens += int((np.asarray(r["word_ids"]) >= 0).sum())
    assert partial == 0 and words_hit > 500
    assert 0.10 < labelled / tokens < 0.35  # 15% of words, more of the tokens


def test_chinese_ref_groups_are_zhmask_words(build):
    ds = load(build["none"])
    for r in ds.select(range(300)):
        wid = np.asarray(r["word_ids"])
        for g in groups(r, "chinese_ref"):
            assert len(set(wid[g].tolist())) == 1  # never across two zhmask words


def test_plain_mlm_collator_consumes_unmasked_shards(build, hf_tokenizer):
    from transformers import DataCollatorForLanguageModeling

    ds = load(build["none"])
    rows = ds.select(range(64)).to_list()
    feats = [{"input_ids": r["input_ids"],
              "special_tokens_mask": [int(w < 0) for w in r["word_ids"]]} for r in rows]
    batch = DataCollatorForLanguageModeling(hf_tokenizer, mlm_probability=0.15, seed=0)(feats)
    assert batch["input_ids"].shape[0] == 64 and (batch["labels"] != -100).any()


def test_dynamic_masking_as_collate_fn_and_map(build):
    from torch.utils.data import DataLoader

    from zhmask.masking.dynamic import DynamicMasking

    ds = load(build["none"]).select(range(96))
    masker = DynamicMasking.from_build(build["none"], masking="wwm")
    masker = pickle.loads(pickle.dumps(masker))  # what DataLoader workers receive
    seen = []
    for epoch in range(2):
        masker.set_epoch(epoch)
        batches = list(DataLoader(ds, batch_size=32, collate_fn=masker))
        assert len(batches) == 3
        b = batches[0]
        assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
        assert b["input_ids"].dtype == torch.int64 and b["input_ids"].shape == b["labels"].shape
        first = ds[0]
        inp, lab = masker.mask_row(first)
        n = len(first["input_ids"])
        assert b["input_ids"][0, :n].tolist() == inp.tolist() and b["labels"][0, :n].tolist() == lab.tolist()
        assert (b["labels"][0, n:] == -100).all()
        seen.append(lab.tolist())
    assert seen[0] != seen[1]  # a new mask each epoch
    mapped = ds.map(masker.for_epoch(1), batched=True, batch_size=40, keep_in_memory=True)
    for r_in, r_out in zip(ds.select(range(50)), mapped.select(range(50))):
        inp, lab = masker.mask_row(r_in, epoch=1)
        assert r_out["input_ids"] == inp.tolist() and r_out["labels"] == lab.tolist()
    one = ds.map(masker.for_epoch(1), keep_in_memory=True)  # unbatched
    assert one[3]["labels"] == mapped[3]["labels"]


def test_dynamic_masking_of_a_static_build_matches_its_rows(build):
    """The shards of --masking wwm are the dynamic masks of epoch 0 (same seed, same function)."""
    from zhmask.masking.dynamic import DynamicMasking

    static = load(build["wwm"])
    plain = load(build["none"])
    masker = DynamicMasking.from_build(build["wwm"])
    assert masker.masking == "wwm"
    for a, b in zip(static.select(range(200)), plain.select(range(200))):
        assert a["example_id"] == b["example_id"]
        inp, lab = masker.mask_row(b, epoch=0)
        assert inp.tolist() == a["input_ids"] and lab.tolist() == a["labels"]


def test_dynamic_masking_names_a_row_it_cannot_mask(build):
    """No silent per-row path: a row the batched path refuses is named in one line."""
    from zhmask.errors import ZhmaskError
    from zhmask.masking.dynamic import DynamicMasking

    rows = [dict(r) for r in load(build["none"]).select(range(8))]
    rows[5]["word_ids"] = rows[5]["word_ids"][:-1]  # one word id short of the ids
    masker = DynamicMasking.from_build(build["none"], masking="wwm", return_tensors="np")
    assert len(masker.mask_batch(rows[:5])) == 5
    with pytest.raises(ZhmaskError, match=f"masking wwm failed on row {rows[5]['example_id']}: ValueError"):
        masker.mask_batch(rows)
