"""The pretraining trainers (trainers/): loss falls, resume is exact, DDP with two gloo processes,
saved checkpoints load in transformers with identical logits, and the CLI's user errors.

Tiny models (2 layers, hidden 32-64) on tiny builds of the bundled sample (64 tokens a row)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from zhmask.api import build_corpus  # noqa: E402
from zhmask.config import BuildConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["num_layers=2", "hidden_size=64", "num_heads=2", "intermediate_size=128", "batch_size=16",
        "lr=2e-3", "warmup=2", "threads=1", "validation=0.05", "eval_batches=4", "save_every=0"]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trainers")
    out = {}
    for name, masking, tasks in (("mlm", "char", ["mlm"]), ("sop", "char", ["mlm", "sop"]), ("none", "none", ["mlm"])):
        res = build_corpus(BuildConfig(out=str(root / name), max_seq_length=64, masking=masking, tasks=tasks))
        out[name] = res.out_dir
    return out


def run(family, data, out, *sets, resume=False):
    from trainers.common import make_config, train

    if family == "bert":
        from trainers.bert import TASKS, make_model
    else:
        from trainers.electra import TASKS, make_model
    cfg = make_config(None, [*TINY, *sets])
    return train(family, make_model, data, out, cfg, resume=resume, quiet=True, usable_tasks=TASKS)


def losses(run_dir, key="loss"):
    recs = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in recs if "eval" not in r}


def falls(curve, by=0.3):
    v = [curve[k] for k in sorted(curve)]
    return sum(v[-5:]) / 5 < sum(v[:5]) / 5 - by


@pytest.mark.parametrize("family,data", [("bert", "mlm"), ("bert", "sop"), ("bert", "none"), ("electra", "mlm")])
def test_loss_falls(builds, tmp_path, family, data):
    res = run(family, builds[data], tmp_path / "run", "max_steps=30", "eval_every=0")
    key = "loss_generator" if family == "electra" else "loss_mlm"
    assert falls(losses(tmp_path / "run", key))
    if family == "electra":
        assert falls(losses(tmp_path / "run", "loss_discriminator"), by=0.1)
        assert 0.5 < res.metrics["replaced_auc"] <= 1.0
        assert 0.0 <= res.metrics["replaced_accuracy"] <= 1.0
    else:
        assert 0.0 <= res.metrics["mlm_accuracy"] <= 1.0 and res.metrics["mlm_perplexity"] > 1.0
    if data == "sop":
        assert len(losses(tmp_path / "run", "loss_sentence")) == 30
        assert "sentence_accuracy" in res.metrics
    assert (tmp_path / "run" / "checkpoint-30" / "trainer_state.pt").is_file()
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["dynamic_masking"] == ("wwm" if data == "none" else "none")   # no static masks: dynamic wwm


def test_discriminator_spots_random_replacements(builds, tmp_path):
    """With replacements drawn uniformly from 7,000 characters instead of the generator's softmax
    (an easy task: most are rare in any context), the discriminator must find them within 40
    steps: catches a discriminator that sees the original input, or labels misaligned with the
    replaced positions; the generator-driven run above only shows a loss that falls."""
    from trainers import electra
    from trainers.common import make_config, train

    class UniformReplacements(electra.ElectraPretrainer):
        def generate(self, batch, gen=None):
            logits, targets, _, _ = super().generate(batch, gen)
            ids, labels = batch["input_ids"], batch["labels"]
            where = labels != -100
            g = torch.Generator().manual_seed(int(ids.sum()))
            fake = ids.clone()
            fake[where] = torch.randint(1000, 8000, (int(where.sum()),), generator=g)
            replaced = (fake != torch.where(where, labels, ids)) & batch["attention_mask"].bool()
            return logits, targets, fake, replaced

    cfg = make_config(None, [*TINY, "max_steps=40", "eval_every=0"])
    res = train("electra", UniformReplacements, builds["mlm"], tmp_path / "u", cfg, quiet=True,
                usable_tasks=electra.TASKS)
    assert res.metrics["replaced_auc"] > 0.9, res.metrics


@pytest.mark.parametrize("family,extra", [("bert", ["grad_accum=2", "validation=0.9"]),   # ~10 batches an epoch:
                                          ("electra", [])])                              # resume crosses epochs
def test_resume_equals_uninterrupted(builds, tmp_path, family, extra):
    n = 5
    run(family, builds["sop"], tmp_path / "a", f"max_steps={2 * n}", "eval_every=3", *extra)
    run(family, builds["sop"], tmp_path / "b", f"max_steps={2 * n}", "eval_every=3", f"stop_at_step={n}", *extra)
    assert not (tmp_path / "b" / "final").exists() and (tmp_path / "b" / f"checkpoint-{n}").is_dir()
    run(family, builds["sop"], tmp_path / "b", f"max_steps={2 * n}", "eval_every=3", *extra, resume=True)
    if extra:
        assert len({r for r in losses(tmp_path / "a", "epoch").values()}) >= 2
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(b) == list(range(1, 2 * n + 1))
    for step in range(n + 1, 2 * n + 1):
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    ga, gb = losses(tmp_path / "a", "grad_norm"), losses(tmp_path / "b", "grad_norm")
    assert gb[2 * n] == pytest.approx(ga[2 * n], abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes(builds, tmp_path):
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        args = [sys.executable, "-m", "trainers.bert", "--data", str(builds["mlm"]), "--out", str(tmp_path / "run"),
                "-q", "--set", "max_steps=6", "--set", "eval_every=0", "--set", "trace_rows=true", "--set", "device=cpu"]
        for s in TINY:
            args += ["--set", s]
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    r0, r1 = (json.loads((tmp_path / "run" / f"rows-rank{r}.json").read_text()) for r in (0, 1))
    assert len(r0["rows"]) == len(r1["rows"]) == 6 * 16
    assert not set(r0["rows"]) & set(r1["rows"])            # disjoint shares of the epoch
    assert r0["param_checksum"] == r1["param_checksum"]      # the replicas stayed in sync
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert len(losses(tmp_path / "run")) == 6                # only rank 0 logs


def _ids(tok):
    enc = tok(["人民日报社论指出，改革开放是强国之路。", "今天天气很好"], padding=True, return_tensors="pt")
    return enc


def test_checkpoints_load_in_transformers(builds, tmp_path):
    from transformers import (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer,
                              BertForPreTraining, ElectraForMaskedLM, ElectraForPreTraining)

    # bert with an SOP head: BertForPreTraining
    res = run("bert", builds["sop"], tmp_path / "b", "max_steps=3", "eval_every=0")
    final = tmp_path / "b" / "final"
    tok = AutoTokenizer.from_pretrained(final)
    enc = _ids(tok)
    m = res.model.model.eval()
    with torch.no_grad():
        ref = m(**enc)
        assert torch.allclose(BertForPreTraining.from_pretrained(final)(**enc).prediction_logits,
                              ref.prediction_logits, atol=1e-5)
        assert torch.allclose(AutoModelForMaskedLM.from_pretrained(final).eval()(**enc).logits,
                              ref.prediction_logits, atol=1e-5)
        assert torch.allclose(AutoModel.from_pretrained(final).eval()(**enc).last_hidden_state,
                              m.bert(**enc).last_hidden_state, atol=1e-5)
    clf = AutoModelForSequenceClassification.from_pretrained(final, num_labels=3)
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, m.bert.embeddings.word_embeddings.weight)
    # the checkpoint of the last step is the same model
    with torch.no_grad():
        assert torch.allclose(AutoModelForMaskedLM.from_pretrained(tmp_path / "b" / "checkpoint-3").eval()(**enc).logits,
                              ref.prediction_logits, atol=1e-5)

    # bert mlm only: BertForMaskedLM
    res = run("bert", builds["mlm"], tmp_path / "m", "max_steps=2", "eval_every=0")
    final = tmp_path / "m" / "final"
    assert json.loads((final / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    with torch.no_grad():
        assert torch.allclose(AutoModelForMaskedLM.from_pretrained(final).eval()(**enc).logits,
                              res.model.model.eval()(**enc).logits, atol=1e-5)
    AutoModelForSequenceClassification.from_pretrained(final, num_labels=2)

    # electra: discriminator and generator, generator embeddings shared with the discriminator's
    res = run("electra", builds["mlm"], tmp_path / "e", "max_steps=3", "eval_every=0")
    g, d = res.model.generator.eval(), res.model.discriminator.eval()
    assert g.electra.embeddings is d.electra.embeddings
    assert g.generator_lm_head.weight is d.electra.embeddings.word_embeddings.weight
    assert g.config.hidden_size == 16 and g.config.embedding_size == d.config.hidden_size == 64
    final = tmp_path / "e" / "final"
    AutoTokenizer.from_pretrained(final / "discriminator")
    with torch.no_grad():
        assert torch.allclose(ElectraForPreTraining.from_pretrained(final / "discriminator").eval()(**enc).logits,
                              d(**enc).logits, atol=1e-5)
        assert torch.allclose(AutoModel.from_pretrained(final / "discriminator").eval()(**enc).last_hidden_state,
                              d.electra(**enc).last_hidden_state, atol=1e-5)
        assert torch.allclose(ElectraForMaskedLM.from_pretrained(final / "generator").eval()(**enc).logits,
                              g(**enc).logits, atol=1e-5)
    AutoModelForSequenceClassification.from_pretrained(final / "discriminator", num_labels=2)


def test_saved_tokenizer_reads_chinese(builds, tmp_path):
    # every saved model dir carries the build's vocabulary (Build.save_tokenizer): AutoTokenizer tokenises as the build
    from transformers import AutoTokenizer

    run("bert", builds["mlm"], tmp_path / "b", "max_steps=1", "eval_every=0", "validation=0")
    tok = AutoTokenizer.from_pretrained(tmp_path / "b" / "final")
    assert len(tok) == 21128
    assert tok("人民日报")["input_ids"] == [tok.cls_token_id, *tok.convert_tokens_to_ids(list("人民日报")), tok.sep_token_id]
    assert tok.unk_token_id not in tok("人民日报")["input_ids"]


def test_roc_auc_rank_formula():
    from trainers.common import roc_auc

    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.5)    # ties count half
    assert roc_auc([3, 2, 1], [1, 1, 0]) == 1.0


def test_config_presets_and_schedule():
    from trainers.common import PRESETS, Config, lr_at, make_config

    for p in sorted(PRESETS.glob("*.toml")):
        cfg = make_config(p.stem)
        assert "zhmask build-corpus --pipeline" in p.read_text(), p
        assert isinstance(cfg, Config)
    assert make_config("roberta").dynamic_masking == "wwm"
    cfg = make_config(None, ["max_steps=100", "warmup=0.1", "decay=cosine", "tasks=mlm,sop", "trace_rows=yes"])
    assert cfg.tasks == ["mlm", "sop"] and cfg.trace_rows is True
    assert lr_at(0, cfg) < lr_at(9, cfg) <= 1.0 and lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) < 0.01


def test_cli_user_errors(builds, tmp_path, capsys):
    from zhmask.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "bert", "--data", str(builds["mlm"]), "--out", str(tmp_path / "r"), "--set", "nonsense=1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nonsense" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "bert", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "bert", "--data", str(builds["mlm"]), "--out", str(tmp_path / "r"), "--set", "lr=fast"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "electra", "--data", str(builds["mlm"]), "--out", str(tmp_path / "r"), "--resume"])
    assert exc.value.code == 2
    for bad in ("tasks=sop", "tasks=ernie_gen"):   # not in the build; not a task bert trains on
        with pytest.raises(SystemExit) as exc:
            main(["pretrain", "bert", "--data", str(builds["mlm"]), "--out", str(tmp_path / "r"), "--set", bad])
        assert exc.value.code == 2
