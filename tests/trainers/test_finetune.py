"""zhmask finetune: classification on top of a checkpoint, the from-scratch control, metrics, bad input.

A tiny BERT is pretrained on the bundled sample for a few steps (seconds); the fine-tuning data
are made here from the iNews fixture and from hand-written sentences."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from zhmask.api import build_corpus  # noqa: E402
from zhmask.config import BuildConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "inews_150.jsonl"
TINY = ["num_layers=2", "hidden_size=64", "num_heads=2", "intermediate_size=128", "batch_size=16",
        "lr=2e-3", "warmup=2", "threads=1", "validation=0.05", "eval_batches=2", "save_every=0", "max_steps=4"]
FT = ["threads=1", "batch_size=16", "max_length=64"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A bert run's final/ and an electra run directory, pretrained for a few steps."""
    from trainers import bert, electra
    from trainers.common import make_config, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("finetune")
    data = build_corpus(BuildConfig(out=str(root / "build"), max_seq_length=64, masking="wwm", tasks=["mlm"])).out_dir
    train("bert", bert.make_model, data, root / "bert", make_config(None, TINY), quiet=True, usable_tasks=bert.TASKS)
    train("electra", electra.make_model, data, root / "electra", make_config(None, TINY), quiet=True,
          usable_tasks=electra.TASKS)
    return {"bert": root / "bert" / "final", "electra": root / "electra"}


def zhmask(*args):
    return subprocess.run([sys.executable, "-m", "zhmask", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def keyword_tsv(path: Path, n: int = 240) -> Path:
    """A task a classifier must learn: the label is whether the review says 好 or 差."""
    fillers = ["这个手机", "那本书的内容", "酒店的服务", "快递的速度", "电影的剧情", "餐厅的味道"]
    lines = ["label\ttext"]
    for i in range(n):
        good = i % 2 == 0
        lines.append(f"{int(good)}\t{fillers[i % len(fillers)]}{'很好' if good else '很差'}，第{i}次买。")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_finetune_learns_a_task_and_reports_metrics(checkpoints, tmp_path):
    from trainers.finetune import finetune, make_finetune_config

    data = keyword_tsv(tmp_path / "kw.tsv")
    res = finetune(checkpoints["bert"], str(data), None, tmp_path / "ft", make_finetune_config(
        [*FT, "epochs=4", "lr=2e-3", "dev_fraction=0.25"]), quiet=True)
    saved = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert saved["accuracy"] == res["accuracy"] and saved["labels"] == ["0", "1"]
    assert res["train_examples"] + res["dev_examples"] == 240 and res["dev_examples"] > 20
    assert res["accuracy"] >= 0.9 and res["macro_f1"] >= 0.9       # the keyword decides: learnable
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3, 4]


def test_jsonl_with_title_and_splits_and_electra_discriminator(checkpoints, tmp_path):
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    both = tmp_path / "news.jsonl"
    rows[0]["title"] = "一个比最大长度还长的标题" * 10   # a title longer than max_length: both sides are cut
    both.write_text("".join(json.dumps({**r, "split": "dev" if i % 4 == 0 else "train"}, ensure_ascii=False) + "\n"
                            for i, r in enumerate(rows)), encoding="utf-8")
    out = tmp_path / "ft"
    p = zhmask("finetune", checkpoints["electra"], "--train", both, "--dev", both, "--out", out, "-q",
               *[f"--set={s}" for s in [*FT, "max_steps=3", "train_split=train", "dev_split=dev", "title_field=title"]])
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["train_examples"] == 112 and res["dev_examples"] == 38 and res["steps"] == 3
    assert 0.0 <= res["accuracy"] <= 1.0 and 0.0 <= res["macro_f1"] <= 1.0
    full = json.loads((out / "results.json").read_text())
    assert full["model_dir"].endswith("discriminator") and full["labels"] == ["0", "1", "2"]


def test_from_scratch_is_the_same_architecture_with_random_weights(checkpoints):
    from transformers import AutoModel

    from trainers.finetune import load_classifier, make_finetune_config

    cfg = make_finetune_config([])
    pre = load_classifier(checkpoints["bert"], 3, cfg)
    scratch = load_classifier(checkpoints["bert"], 3, cfg, from_scratch=True)
    base = AutoModel.from_pretrained(str(checkpoints["bert"]))
    emb = base.embeddings.word_embeddings.weight
    assert torch.equal(pre.bert.embeddings.word_embeddings.weight, emb)
    assert scratch.bert.embeddings.word_embeddings.weight.shape == emb.shape
    assert not torch.allclose(scratch.bert.embeddings.word_embeddings.weight, emb)
    assert sum(p.numel() for p in pre.parameters()) == sum(p.numel() for p in scratch.parameters())


def test_macro_f1_by_hand():
    from trainers.finetune import macro_f1

    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 2, fn 1 -> 4/7; class 2: tp 0, fp 0, fn 1 -> 0
    pred = [0, 0, 1, 1, 1, 1]
    gold = [0, 1, 1, 1, 0, 2]
    assert macro_f1(pred, gold, 3) == pytest.approx((0.5 + 4 / 7 + 0.0) / 3)
    assert macro_f1([1, 1], [1, 1], 3) == 1.0           # classes absent from both sides are left out


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("make,args,msg", [
    (lambda d: d / "missing.tsv", [], "no such file"),
    (lambda d: write(d / "one.tsv", "".join(f"1\t好{i}\n" for i in range(40))), [], "at least 2"),
    (lambda d: write(d / "bad.tsv", "no tab here\n"), [], "label<TAB>text"),
    (lambda d: FIXTURE, ["--set", "label_field=stars"], "no field 'stars'"),
    (lambda d: FIXTURE, ["--set", "epochs=zero"], "expected int"),
    (lambda d: FIXTURE, ["--set", "colour=red"], "unknown setting"),
    (lambda d: FIXTURE, ["--set", "max_length=4096"], "is more than the checkpoint's"),
])
def test_bad_input_is_one_line_exit_2(checkpoints, tmp_path, make, args, msg):
    p = zhmask("finetune", checkpoints["bert"], "--train", make(tmp_path), "--out", tmp_path / "o", *args)
    assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_unknown_dev_label_and_not_a_checkpoint(checkpoints, tmp_path):
    train = keyword_tsv(tmp_path / "t.tsv", 20)
    dev = tmp_path / "d.tsv"
    dev.write_text("7\t不知道\n", encoding="utf-8")
    p = zhmask("finetune", checkpoints["bert"], "--train", train, "--dev", dev, "--out", tmp_path / "o")
    assert p.returncode == 2 and "dev labels not seen in training: 7" in p.stderr
    p = zhmask("finetune", tmp_path, "--train", train, "--out", tmp_path / "o")
    assert p.returncode == 2 and "not a transformers checkpoint" in p.stderr
