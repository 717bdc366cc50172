"""``--tasks plm`` rows (XLNet factorisation orders), ``xlnet_inputs`` (perm_mask, target_mapping),
``zhmask pretrain xlnet`` and fine-tuning an XLNet checkpoint.  Tiny models (d_model 32, 2 layers)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_cli
from tests.test_properties import SETTINGS, TEXT
from tests.labels.test_clm import _build as clm_build
from tests.labels.test_clm import corpus  # noqa: F401  (the fixture: 40 iNews records)
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.labels.plm import check_plm, factorisation_order, perm_mask, predicted_positions, xlnet_inputs

ROOT = Path(__file__).resolve().parents[2]
TINY = ["num_layers=2", "hidden_size=32", "num_heads=2", "intermediate_size=64", "batch_size=4", "lr=3e-3",
        "warmup=0", "threads=1", "validation=0.1", "eval_batches=2", "save_every=0", "max_steps=3"]


def _build(corpus: Path, out: Path, **kw):
    return clm_build(corpus, out, tasks=["plm"], **kw)


@pytest.fixture(scope="module")
def build(corpus, tmp_path_factory):
    return _build(corpus, tmp_path_factory.mktemp("plm_build") / "out")


def _rows(res):
    from zhmask.reader import Build, ShardDataset

    return list(ShardDataset(Build(res.out_dir), split=None))


def _runs_whole(order: np.ndarray, word_ids: np.ndarray) -> bool:
    """Every word's positions form one run of the order, in position order."""
    order, wid = np.asarray(order), np.asarray(word_ids)
    for w in np.unique(wid[wid >= 0]):
        pos = np.flatnonzero(wid == w)
        at = np.flatnonzero(np.isin(order, pos))
        if not (np.array_equal(order[at], pos) and at[-1] - at[0] == len(pos) - 1):
            return False
    return True


# ----------------------------------------------------------------------------- the rows
def test_plm_rows_keep_words_whole_and_verify(build):
    from zhmask.commands.verify import verify_build

    assert verify_build(build.out_dir) == []
    rows = _rows(build)
    assert rows and {r["task"] for r in rows} == {"plm"}
    for r in rows:
        ids, wid = r["input_ids"].astype(np.int64), r["word_ids"].astype(np.int64)
        order, p = r["perm_order"].astype(np.int64), r["num_predict"]
        n, m = len(ids), int((wid >= 0).sum())
        assert sorted(order.tolist()) == list(range(n)) and set(order[:2].tolist()) == {0, n - 1}
        assert _runs_whole(order, wid)
        assert (r["labels"] == -100).all()   # nothing n x n or derived is stored: the targets are the inputs
        pred = predicted_positions(order, p)
        # predicted: whole words, at least the last sixth, and no word fewer would do
        assert set(np.unique(wid[pred])) == {w for w in np.unique(wid[pred]) if (wid == w).sum() == (wid[pred] == w).sum()}
        first = wid[order[n - p]]
        assert p >= math.ceil(m / 6) and p - (wid == first).sum() < math.ceil(m / 6)
    assert len({tuple(r["perm_order"][2:6]) for r in rows}) > len(rows) // 2   # orders differ between rows


def test_token_units_predict_exactly_the_last_sixth_and_split_words(corpus, tmp_path):
    rows = _rows(_build(corpus, tmp_path / "tok", plm_units="token"))
    split = 0
    for r in rows:
        m = int((r["word_ids"] >= 0).sum())
        assert r["num_predict"] == math.ceil(m / 6)
        split += not _runs_whole(r["perm_order"], r["word_ids"])
    assert split > len(rows) // 2   # XLNet's original order does cut words


def test_plm_output_is_the_same_for_any_worker_count(corpus, build, tmp_path):
    two = _build(corpus, tmp_path / "w2", workers=2)

    def digest(res):
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in res.shards]
    assert digest(two) == digest(build)


@pytest.mark.parametrize("kw, msg", [({"masking": "wwm"}, "takes no masks"),
                                     ({"dupe_factor": 2}, "identical copies"),
                                     ({"options": {"plm_k": 0}}, "plm_k"),
                                     ({"plm_units": "char"}, "--plm-units")])
def test_plm_rejects_bad_settings(corpus, tmp_path, kw, msg):
    with pytest.raises(ZhmaskError, match=msg):
        _build(corpus, tmp_path / "bad", **kw)


def test_plm_units_on_the_command_line_is_one_line(corpus, tmp_path):
    code, _, err = run_cli("build-corpus", str(corpus), "--text-field", "text", "--tasks", "plm",
                           "--plm-units", "chars", "--out", str(tmp_path / "o"))
    assert code == 2 and "--plm-units" in err and "Traceback" not in err


def test_the_row_check_catches_split_words_and_wrong_counts(build):
    from zhmask.commands.verify import row_context

    b = build
    from zhmask.reader import Build

    ctx = row_context(Build(b.out_dir).config)
    row = next(r for r in _rows(b) if len(np.unique(r["word_ids"][r["word_ids"] >= 0])) < (r["word_ids"] >= 0).sum())
    row = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}
    assert check_plm(row, ctx) == []
    wid = np.array(row["word_ids"])
    order = row["perm_order"]
    long_word = next(w for w in np.unique(wid[wid >= 0]) if (wid == w).sum() > 1)
    a = order.index(int(np.flatnonzero(wid == long_word)[0]))
    swapped = order[:a] + [order[a + 1], order[a]] + order[a + 2:]
    assert any("split or out of order" in e for e in check_plm(row | {"perm_order": swapped}, ctx))
    assert any("num_predict" in e for e in check_plm(row | {"num_predict": row["num_predict"] + 1}, ctx))
    assert any("[CLS]/[SEP]" in e for e in check_plm(row | {"perm_order": order[1:2] + order[:1] + order[2:]}, ctx)
               + check_plm(row | {"perm_order": order[2:3] + order[1:2] + order[0:1] + order[3:]}, ctx))
    assert any("permutation" in e for e in check_plm(row | {"perm_order": order[:-1] + order[:1]}, ctx))


@given(st.lists(st.integers(1, 5), min_size=1, max_size=40), st.integers(0, 2 ** 32 - 1), st.integers(1, 8))
@SETTINGS
def test_word_units_are_never_split_for_any_words(sizes, seed, k):
    wid = np.concatenate([[-1], np.repeat(np.arange(len(sizes)), sizes), [-1]])
    order, p = factorisation_order(wid, np.random.default_rng(seed), k, whole_words=True)
    assert _runs_whole(order, wid)
    m = len(wid) - 2
    pred_words = wid[order[len(order) - p:]]
    assert p >= math.ceil(m / k) and all((wid == w).sum() == (pred_words == w).sum() for w in set(pred_words))


_PIPE = {}


@given(TEXT)
@SETTINGS
def test_the_word_aware_order_never_splits_a_segmented_word_on_arbitrary_text(text):
    from zhmask.labels.plm import unit_examples
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    if "pipe" not in _PIPE:
        _PIPE["pipe"] = Pipeline(BuildConfig(tasks=["plm"], max_seq_length=32))
    pipe = _PIPE["pipe"]
    doc, _ = pipe.document(RawDoc("d", text))
    if doc is None:
        return
    pipe.ctx.ent_cache = {}
    pipe.ctx.set_unit([doc.id])
    from collections import Counter

    for ex in unit_examples([doc], pipe.ctx, Counter()):
        assert _runs_whole(ex.extra["perm_order"], ex.word_ids)
        assert ex.extra["num_predict"] >= 1


# ----------------------------------------------------------------------------- perm_mask, target_mapping
def test_perm_mask_and_target_mapping_cell_by_cell():
    # row 0: [CLS] a b c [SEP], order [CLS] [SEP] b c a, the last 3 predicted (b, c, a: ranks 2, 3, 4)
    # row 1: [CLS] d [SEP] (padded to 5), order [CLS] [SEP] d, d predicted
    rows = [{"input_ids": np.array([101, 5, 6, 7, 102]), "perm_order": np.array([0, 4, 2, 3, 1]), "num_predict": 3},
            {"input_ids": np.array([101, 8, 102]), "perm_order": np.array([0, 2, 1]), "num_predict": 1}]
    out = xlnet_inputs(rows, pad_id=0, return_tensors="np")
    # 1 = query (row) may not attend to key (column)
    want0 = [[0, 1, 1, 1, 0],    # [CLS]: context, sees no predicted token
             [0, 1, 0, 0, 0],    # a (last in the order): sees b and c, not itself
             [0, 1, 1, 1, 0],    # b (first predicted): sees context only
             [0, 1, 0, 1, 0],    # c: sees b
             [0, 1, 1, 1, 0]]    # [SEP]: context
    want1 = [[0, 1, 0, 1, 1],
             [0, 1, 0, 1, 1],
             [0, 1, 0, 1, 1],
             [1, 1, 1, 1, 1],    # padding attends to nothing and is attended to by nobody
             [1, 1, 1, 1, 1]]
    assert out["perm_mask"].dtype == np.float32
    assert out["perm_mask"].tolist() == [want0, want1]
    assert out["target_mapping"].tolist() == [[[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]],
                                              [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]]
    assert out["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    assert out["input_ids"].tolist() == [[101, 5, 6, 7, 102], [101, 8, 102, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert perm_mask(np.array([0, 4, 2, 3, 1]), 3).tolist() == want0


def test_xlnet_inputs_refuses_rows_without_an_order():
    with pytest.raises(ZhmaskError, match="not a --tasks plm row"):
        xlnet_inputs([{"example_id": "x#mlm0", "input_ids": np.array([101, 5, 102])}], pad_id=0)


# ----------------------------------------------------------------------------- the model
try:
    import torch
    import transformers  # noqa: F401
except ImportError:  # the data tests above still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch and transformers are not installed")


@needs_torch
def test_a_later_token_in_the_order_never_changes_earlier_predictions():
    from transformers import XLNetConfig, XLNetLMHeadModel

    torch.manual_seed(0)
    model = XLNetLMHeadModel(XLNetConfig(vocab_size=200, d_model=32, n_layer=2, n_head=2, d_inner=64,
                                         use_mems_eval=False)).eval()
    n = 16
    g = np.random.default_rng(3)
    ids = np.concatenate([[101], g.integers(5, 100, n - 2), [102]])
    order = np.concatenate([[0, n - 1], 1 + g.permutation(n - 2)])
    p = 8
    targets = order[n - p:]                       # in the order: targets[0] first ... targets[-1] last

    def preds(x):
        b = xlnet_inputs([{"input_ids": x, "perm_order": order, "num_predict": p}], pad_id=0)
        with torch.no_grad():
            lg = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], perm_mask=b["perm_mask"],
                       target_mapping=b["target_mapping"], use_mems=False).logits[0]
        pos = predicted_positions(order, p).tolist()
        return {t: lg[pos.index(t)] for t in targets.tolist()}

    base = preds(ids)
    j = int(targets[4])                           # the fifth predicted token in the order
    changed = ids.copy()
    changed[j] = (ids[j] + 7) % 200
    after = preds(changed)
    for t in targets[:5].tolist():                # earlier ones, and j itself (its query stream never sees it)
        assert torch.allclose(base[t], after[t], atol=1e-6)
    assert any(not torch.allclose(base[t], after[t], atol=1e-4) for t in targets[5:].tolist())  # later ones see it
    ctx = ids.copy()
    c = int(order[3])                             # a context token: every prediction sees it
    ctx[c] = (ids[c] + 7) % 200
    moved = preds(ctx)
    assert all(not torch.allclose(base[t], moved[t], atol=1e-4) for t in targets.tolist())


@pytest.fixture(scope="module")
def run(build, tmp_path_factory):
    from trainers import xlnet
    from trainers.common import make_config, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("xlnet_run")
    cfg = xlnet.check_config(make_config("xlnet", TINY))
    res = train("xlnet", xlnet.make_model, build.out_dir, out, cfg, quiet=True, usable_tasks=xlnet.TASKS,
                make_collator=xlnet.make_collator)
    return out, res


@needs_torch
def test_pretrain_xlnet_reports_held_out_perplexity(run):
    import json

    out, res = run
    m = res.metrics
    assert m["plm_tokens"] > 0 and np.isfinite(m["plm_perplexity"])
    assert abs(m["plm_perplexity"] - np.exp(m["plm_loss"])) < 1e-6 * m["plm_perplexity"]
    cfg = json.loads((out / "final" / "config.json").read_text())
    assert cfg["model_type"] == "xlnet" and cfg["summary_type"] == "first"
    assert (out / "final" / "vocab.txt").is_file()


@needs_torch
def test_pretrain_xlnet_rejects_a_masking_strategy(build, tmp_path):
    code, _, err = run_cli("pretrain", "xlnet", "--data", str(build.out_dir), "--out", str(tmp_path / "r"),
                           "--set", "dynamic_masking=wwm")
    assert code == 2 and "takes no masks" in err and "Traceback" not in err


@needs_torch
def test_finetune_takes_an_xlnet_checkpoint(run, tmp_path):
    from transformers import XLNetForSequenceClassification

    from trainers.finetune import finetune, load_classifier, make_finetune_config, model_dir

    out, _ = run
    data = tmp_path / "kw.tsv"
    data.write_text("label\ttext\n" + "".join(f"{i % 2}\t{'很好' if i % 2 else '很差'}，第{i}次。\n" for i in range(40)),
                    encoding="utf-8")
    cfg = make_finetune_config(["threads=1", "batch_size=8", "max_length=32", "max_steps=3", "dev_fraction=0.25"])
    model = load_classifier(model_dir(out), 2, cfg).eval()
    assert isinstance(model, XLNetForSequenceClassification)
    # the [CLS] at position 0 classifies: right padding does not change a row's logits
    ids = torch.tensor([[101, 1962, 1391, 102]])
    padded = torch.tensor([[101, 1962, 1391, 102, 0, 0]])
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        b = model(input_ids=padded, attention_mask=(padded != 0).long()).logits
    assert torch.allclose(a, b, atol=1e-5)
    res = finetune(out, str(data), None, tmp_path / "ft", cfg, quiet=True)
    assert res["steps"] == 3 and 0.0 <= res["accuracy"] <= 1.0


def test_docs_show_the_rendered_plm_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_plm_docs", ROOT / "scripts" / "render_plm_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = (ROOT / "docs" / "autoregressive.md").read_text(encoding="utf-8")
    block = page.split(mod.MARKS[0], 1)[1].split(mod.MARKS[1], 1)[0].strip("\n")
    assert block == mod.render(), "docs/autoregressive.md is stale: python scripts/render_plm_docs.py"
