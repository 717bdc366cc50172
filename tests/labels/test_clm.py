"""``--tasks clm`` rows, ``zhmask pretrain gpt`` (GPT-2, attention reset at document boundaries),
``zhmask generate`` and fine-tuning a GPT-2 checkpoint.  Tiny models (n_embd 32, 2 layers)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError

ROOT = Path(__file__).resolve().parents[2]
INEWS = ROOT / "tests" / "fixtures" / "inews_150.jsonl"
TINY = ["num_layers=2", "hidden_size=32", "num_heads=2", "intermediate_size=64", "batch_size=4", "lr=3e-3",
        "warmup=0", "threads=1", "validation=0.1", "eval_batches=2", "save_every=0", "max_steps=4",
        "max_position_embeddings=64"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("clm_in") / "inews40.jsonl"
    p.write_text("\n".join(INEWS.read_text(encoding="utf-8").splitlines()[:40]) + "\n", encoding="utf-8")
    return p


def _build(corpus: Path, out: Path, tasks=("clm",), **kw):   # (tests/labels/test_plm.py builds plm rows with it)
    return build_corpus(BuildConfig(inputs=[str(corpus)], out=str(out), tasks=list(tasks), max_seq_length=64,
                                    text_field="text", docs_per_shard=10, **kw))


@pytest.fixture(scope="module")
def build(corpus, tmp_path_factory):
    return _build(corpus, tmp_path_factory.mktemp("clm_build") / "out")


def test_clm_rows_pack_documents_with_bounds_and_verify(build):
    from zhmask.commands.verify import verify_build
    from zhmask.reader import Build, ShardDataset

    assert verify_build(build.out_dir) == []
    b = Build(build.out_dir)
    rows = list(ShardDataset(b, split=None))
    assert rows and {r["task"] for r in rows} == {"clm"}
    lens = np.array([len(r["input_ids"]) for r in rows])
    assert lens.max() <= 64 and np.mean(lens >= 64 - 16) > 0.8      # filled to within a piece of the length
    multi = 0
    for r in rows:
        ids, db, lab = r["input_ids"].astype(np.int64), r["doc_bounds"].astype(np.int64), r["labels"].astype(np.int64)
        assert ids[0] != b.cls_id and b.mask_id not in ids
        assert db[0] == 0 and db[-1] == len(ids) and len(db) - 1 == len(r["segment_sources"])
        assert np.array_equal(np.flatnonzero(ids == b.sep_id), db[1:] - 1)   # one [SEP] closing every part
        assert (lab[db[:-1]] == -100).all()                                  # never predicted across documents
        inner = np.setdiff1d(np.arange(len(ids)), np.concatenate([db[:-1], db[1:] - 1]))
        assert np.array_equal(lab[inner], ids[inner])                        # labels are the inputs
        multi += len(db) > 2
    assert multi > 0   # some rows hold several documents
    # a document split across rows: its [SEP] in the first row is no document end (-100), the last part's is
    ends = {}
    in_order = sorted(rows, key=lambda r: (r["example_id"].rsplit("#clm", 1)[0], int(r["example_id"].rsplit("#clm", 1)[1])))
    for r in in_order:  # (rows are shuffled: back in packing order)
        for src, end in zip(r["segment_sources"], r["doc_bounds"][1:]):
            ends.setdefault(src["doc_id"], []).append(int(r["labels"][end - 1]))
    split = [v for v in ends.values() if len(v) > 1]
    assert split and all(v[-1] == b.sep_id and all(x == -100 for x in v[:-1]) for v in split)


def test_clm_output_is_the_same_for_any_worker_count(corpus, build, tmp_path):
    two = _build(corpus, tmp_path / "w2", workers=2)

    def digest(res):
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in res.shards]
    assert digest(two) == digest(build)


@pytest.mark.parametrize("kw, msg", [({"masking": "wwm"}, "takes no masks"),
                                     ({"dupe_factor": 2}, "identical copies")])
def test_clm_rejects_masks_and_copies(corpus, tmp_path, kw, msg):
    with pytest.raises(ZhmaskError, match=msg):
        _build(corpus, tmp_path / "bad", **kw)


# ----------------------------------------------------------------------------- the model
try:
    import torch
    import transformers  # noqa: F401
except ImportError:  # the data tests above still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch and transformers are not installed")


@needs_torch
def test_document_attention_by_hand():
    from trainers.gpt import document_attention

    doc = torch.tensor([[0, 0, 1, 1, 1, -1]])
    mask, pos = document_attention(doc)
    want = torch.tensor([[1, 0, 0, 0, 0, 0],
                         [1, 1, 0, 0, 0, 0],
                         [0, 0, 1, 0, 0, 0],
                         [0, 0, 1, 1, 0, 0],
                         [0, 0, 1, 1, 1, 0],
                         [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], want)
    assert pos.tolist() == [[0, 1, 0, 1, 2, 0]]


def test_collator_gives_each_token_its_document_part():
    from zhmask.reader import Collator

    rows = [{"input_ids": np.array([5, 6, 2, 7, 2]), "labels": np.array([-100, 6, 2, -100, 2]),
             "doc_bounds": np.array([0, 3, 5])},
            {"input_ids": np.array([8, 9, 2]), "labels": np.array([-100, 9, 2]), "doc_bounds": np.array([0, 3])}]
    out = Collator(pad_id=0, pad_to_multiple_of=None, return_tensors="np")(rows)
    assert out["doc_index"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, -1, -1]]


def _tiny_model(vocab=200):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                      attn_implementation="sdpa")).eval()


def _logits(model, ids, doc):
    from trainers.gpt import document_attention

    mask, pos = document_attention(doc)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits


@needs_torch
def test_a_later_token_never_changes_earlier_predictions():
    model = _tiny_model()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 200, (1, 24), generator=g)
    doc = torch.zeros_like(ids)
    changed = ids.clone()
    changed[0, 15] = (ids[0, 15] + 7) % 200
    a, b = _logits(model, ids, doc), _logits(model, changed, doc)
    assert torch.allclose(a[0, :15], b[0, :15], atol=1e-6)
    assert not torch.allclose(a[0, 15:], b[0, 15:], atol=1e-3)   # the test can fail: later positions move


@needs_torch
def test_a_document_is_predicted_without_the_previous_one():
    model = _tiny_model()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 200, (1, 24), generator=g)
    doc = torch.tensor([[0] * 10 + [1] * 14])            # two documents in one row
    other = ids.clone()
    other[0, :10] = torch.randint(5, 200, (10,), generator=g)   # another previous document
    a, b = _logits(model, ids, doc), _logits(model, other, doc)
    assert torch.allclose(a[0, 10:], b[0, 10:], atol=1e-6)
    # and the second document alone, from position 0, is predicted the same
    alone = _logits(model, ids[:, 10:], torch.zeros((1, 14), dtype=torch.long))
    assert torch.allclose(a[0, 10:], alone[0], atol=1e-5)
    # without the reset (one document) the previous one does leak in: the test can fail
    c, d = _logits(model, ids, torch.zeros_like(doc)), _logits(model, other, torch.zeros_like(doc))
    assert not torch.allclose(c[0, 10:], d[0, 10:], atol=1e-3)


@needs_torch
def test_the_trainer_predicts_what_the_checkpoint_predicts():
    """GPTPretrainer runs the LM head on the predicting positions only: the same logits, at the same
    positions, as the whole model's output shifted by one (what a user of the checkpoint gets)."""
    from types import SimpleNamespace

    from trainers.common import make_config
    from trainers.gpt import GPTPretrainer

    torch.manual_seed(0)
    m = GPTPretrainer(make_config(None, ["num_layers=1", "hidden_size=32", "num_heads=2", "intermediate_size=64"]),
                      SimpleNamespace(vocab_size=200, pad_id=0, sep_id=3), ["clm"]).eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 200, (2, 20), generator=g)
    labels = ids.clone()
    labels[0, 7] = labels[1, 15:] = -100                  # a document start and padding predict nothing
    doc = torch.tensor([[0] * 7 + [1] * 13, [0] * 15 + [-1] * 5])
    batch = {"input_ids": ids, "attention_mask": (doc >= 0).long(), "labels": labels, "doc_index": doc}
    with torch.no_grad():
        lg, y = m.predicted(batch)
    full = _logits(m.model, ids, doc)[:, :-1]
    keep = labels[:, 1:] != -100
    assert lg.shape == (int(keep.sum()), 200) and torch.equal(y, labels[:, 1:][keep])
    assert torch.allclose(lg, full[keep], atol=1e-5)


@pytest.fixture(scope="module")
def run(build, tmp_path_factory):
    from trainers import gpt
    from trainers.common import make_config, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("gpt_run")
    cfg = gpt.check_config(make_config("gpt", TINY))
    res = train("gpt", gpt.make_model, build.out_dir, out, cfg, quiet=True, usable_tasks=gpt.TASKS)
    return out, res


@needs_torch
def test_pretrain_gpt_reports_held_out_perplexity(run):
    import json

    out, res = run
    m = res.metrics
    assert m["clm_tokens"] > 0 and np.isfinite(m["clm_perplexity"])
    assert abs(m["clm_perplexity"] - np.exp(m["clm_loss"])) < 1e-6 * m["clm_perplexity"]
    cfg = json.loads((out / "final" / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["pad_token_id"] is not None
    assert (out / "final" / "vocab.txt").is_file()


@needs_torch
def test_pretrain_gpt_rejects_a_masking_strategy(build, tmp_path):
    code, _, err = run_cli("pretrain", "gpt", "--data", str(build.out_dir), "--out", str(tmp_path / "r"),
                           "--set", "dynamic_masking=wwm")
    assert code == 2 and "takes no masks" in err and "Traceback" not in err


@needs_torch
def test_generate_samples_repeatably_and_fails_in_one_line(run, tmp_path):
    out, _ = run
    args = ["generate", str(out), "--prompt", "中国人民", "--max-new-tokens", "8", "--temperature", "0.9",
            "--top-k", "20", "--top-p", "0.95", "--seed", "3"]
    c1, o1, _ = run_cli(*args)
    c2, o2, _ = run_cli(*args)
    assert c1 == 0 and o1 == o2 and o1.startswith("中国人民") and len(o1.strip()) > len("中国人民")
    code, _, err = run_cli("generate", str(tmp_path / "missing"), "--prompt", "中国")
    assert code == 2 and "no such checkpoint" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("generate", str(out), "--prompt", "中国", "--top-p", "0")
    assert code == 2 and "--top-p" in err


@needs_torch
def test_finetune_takes_a_gpt_checkpoint(run, tmp_path):
    from transformers import GPT2ForSequenceClassification

    from trainers.finetune import finetune, load_classifier, make_finetune_config, model_dir

    out, _ = run
    data = tmp_path / "kw.tsv"
    data.write_text("label\ttext\n" + "".join(f"{i % 2}\t{'很好' if i % 2 else '很差'}，第{i}次。\n" for i in range(40)),
                    encoding="utf-8")
    cfg = make_finetune_config(["threads=1", "batch_size=8", "max_length=32", "max_steps=3", "dev_fraction=0.25"])
    assert isinstance(load_classifier(model_dir(out), 2, cfg), GPT2ForSequenceClassification)
    res = finetune(out, str(data), None, tmp_path / "ft", cfg, quiet=True)
    assert res["steps"] == 3 and 0.0 <= res["accuracy"] <= 1.0


def test_docs_show_the_rendered_clm_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_clm_docs", ROOT / "scripts" / "render_clm_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = (ROOT / "docs" / "autoregressive.md").read_text(encoding="utf-8")
    block = page.split(mod.MARKS[0], 1)[1].split(mod.MARKS[1], 1)[0].strip("\n")
    assert block == mod.render(), "docs/autoregressive.md is stale: python scripts/render_clm_docs.py"
