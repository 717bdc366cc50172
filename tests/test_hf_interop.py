"""zhmask shards in the Hugging Face stack with default settings: the build's own tokenizer
loads with ``AutoTokenizer`` / ``BertTokenizerFast`` and decodes the shards, transformers'
``Trainer`` (``remove_unused_columns`` left on) trains on them with transformers' collators and
the package's, and ``DynamicMasking`` as a ``datasets`` transform keeps every column it does not
change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.record import SENTENCE_LABEL

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


def _build(tmp: Path, fixtures: Path, **kw) -> Path:
    cfg = BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], title_field="title", max_seq_length=64,
                      out=str(tmp), **kw)
    build_corpus(cfg)
    return tmp


@pytest.fixture(scope="module")
def builds(tmp_path_factory, fixtures) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"wwm": _build(root / "wwm", fixtures, tasks=["mlm"], masking="wwm"),
            "nsp": _build(root / "nsp", fixtures, tasks=["nsp"], masking="char"),
            "none": _build(root / "none", fixtures, tasks=["mlm"], masking="none")}


def _dataset(out: Path):
    from zhmask.data import load

    return load(out)


def _train(model, ds, collator, tmp_path) -> float:
    args = transformers.TrainingArguments(str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4,
                                          report_to=[], use_cpu=True, save_strategy="no", seed=0)
    out = transformers.Trainer(model=model, args=args, train_dataset=ds, data_collator=collator).train()
    return float(out.training_loss)


def _tiny(cls, tok):
    torch.manual_seed(0)
    return cls(transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))


@pytest.mark.parametrize("cls_name", ["AutoTokenizer", "BertTokenizerFast"])
def test_the_builds_tokenizer_loads_and_decodes_the_shards(builds, cls_name):
    out = builds["wwm"]
    tok = getattr(transformers, cls_name).from_pretrained(str(out))
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id) == (101, 102, 0, 103)
    assert tok.model_max_length == 64
    checked = 0
    for row in _dataset(out).select(range(40)):
        ids, lab = np.asarray(row["input_ids"]), np.asarray(row["labels"])
        original = np.where(lab != -100, lab, ids).tolist()  # the static masks undone
        if tok.unk_token_id in original:  # [UNK] does not decode back to its character
            continue
        # decode then encode again is the identity on the build's ids: same vocabulary,
        # normalisation, WordPiece continuation and [CLS]/[SEP] template
        assert tok(tok.decode(original, skip_special_tokens=True))["input_ids"] == original
        checked += 1
    assert checked >= 20


def test_trainer_with_transformers_collator_on_static_masks(builds, tmp_path):
    tok = transformers.AutoTokenizer.from_pretrained(str(builds["wwm"]))
    ds = _dataset(builds["wwm"])
    loss = _train(_tiny(transformers.BertForMaskedLM, tok), ds,
                  transformers.DataCollatorForTokenClassification(tok), tmp_path)  # pads labels with -100
    assert np.isfinite(loss) and loss > 0


def test_trainer_masks_at_training_time_on_a_build_without_masks(builds, tmp_path):
    """RoBERTa-style: no static masks in the build, transformers' collator masks each batch."""
    tok = transformers.AutoTokenizer.from_pretrained(str(builds["none"]))
    ds = _dataset(builds["none"])
    assert "labels" not in ds.column_names
    loss = _train(_tiny(transformers.BertForMaskedLM, tok), ds, transformers.DataCollatorForLanguageModeling(tok),
                  tmp_path)
    assert np.isfinite(loss) and loss > 0


def test_trainer_with_the_package_collator_and_nsp(builds, tmp_path):
    """BertForPreTraining takes the shards' next_sentence_label by name: Trainer keeps the column
    (remove_unused_columns), the collator pads, and the loss has both heads (with either missing,
    BertForPreTraining returns no loss and Trainer stops)."""
    from zhmask.reader import Collator

    tok = transformers.AutoTokenizer.from_pretrained(str(builds["nsp"]))
    ds = _dataset(builds["nsp"])
    assert SENTENCE_LABEL == "next_sentence_label" and "label" not in ds.column_names
    assert set(ds[SENTENCE_LABEL]) == {0, 1}
    seen = []

    class Seeing(Collator):
        def __call__(self, rows):
            out = super().__call__(rows)
            seen.append(sorted(out))
            return out

    loss = _train(_tiny(transformers.BertForPreTraining, tok), ds, Seeing(tok.pad_token_id), tmp_path)
    assert np.isfinite(loss) and loss > 0
    assert seen and all(SENTENCE_LABEL in keys and "attention_mask" in keys for keys in seen)


def test_dynamic_masking_as_a_transform_keeps_the_other_columns(builds):
    from zhmask.masking.dynamic import DynamicMasking

    ds = _dataset(builds["nsp"])
    masker = DynamicMasking.from_build(builds["nsp"], masking="wwm")
    ds.set_transform(masker)
    rows = ds[:4]
    assert set(rows) == set(ds.column_names)
    plain = _dataset(builds["nsp"])[:4]
    assert rows[SENTENCE_LABEL] == plain[SENTENCE_LABEL] and rows["token_type_ids"] == plain["token_type_ids"]
    assert rows["input_ids"] != plain["input_ids"]  # masked afresh (whole words instead of characters)
