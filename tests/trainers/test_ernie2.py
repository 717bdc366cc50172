"""ERNIE 2.0 pretraining (trainers/ernie2.py): the stage plan is followed (the log shows each
stage's tasks, and no batch trains a task before its stage), the batch order resumes exactly, the
checkpoint loads in transformers (AutoModel gives the encoder: the trainer's hidden states, with
and without the task embedding), per-task evaluation, and one-line errors for bad plans.

A tiny model (2 layers, hidden 32) on an ernie2 build of the first documents of
tests/fixtures/inews_150.jsonl (64 tokens a row)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import FIXTURES, run_cli  # noqa: E402

TINY = ["num_layers=2", "hidden_size=32", "num_heads=2", "intermediate_size=64", "batch_size=8", "lr=2e-3",
        "warmup=2", "threads=1", "validation=0.1", "eval_batches=2", "eval_every=0", "save_every=0",
        "max_position_embeddings=64"]
PLAN = """description = "test plan"
[[stage]]
name = "one"
share = 1
tasks = { mlm = 1.0 }
[[stage]]
name = "two"
share = 1
tasks = { token_document_relation = 1.0, sentence_distance = 2.0 }
[[stage]]
name = "three"
share = 2
tasks = { ir_relevance = 6.0, mlm = 0.5 }
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("ernie2")
    lines = (FIXTURES / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    (d / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = BuildConfig.from_preset("ernie2", inputs=[str(d / "in.jsonl")], text_field="text", title_field="title",
                                  max_seq_length=64, out=str(d / "out"), overwrite=True)
    return build_corpus(cfg).out_dir


@pytest.fixture(scope="module")
def trained(build, tmp_path_factory):
    """One run of the test plan: 12 steps, a stage of 3, one of 3 and one of 6."""
    from trainers.common import make_config, train
    from trainers.ernie2 import TASKS, Ernie2Plan, StagePlan

    d = tmp_path_factory.mktemp("ernie2-run")
    (d / "plan.toml").write_text(PLAN, encoding="utf-8")
    cfg = make_config(None, [*TINY, "max_steps=12"])
    plan = Ernie2Plan(StagePlan.load(d / "plan.toml"), cfg)
    res = train("ernie2", plan.make_model, build, d / "run", cfg, quiet=True, usable_tasks=TASKS, plan=plan)
    return d / "run", res


def log(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def test_stage_plan_followed(trained):
    run, _ = trained
    recs = log(run)
    stages = [r for r in recs if "stage" in r]
    assert [(s["name"], s["first_step"], s["last_step"]) for s in stages] == [("one", 1, 3), ("two", 4, 6),
                                                                              ("three", 7, 12)]
    # every stage keeps the earlier tasks (with their weights, unless the stage sets a new one)
    assert stages[0]["tasks"] == {"mlm": 1.0}
    assert stages[1]["tasks"] == {"mlm": 1.0, "token_document_relation": 1.0, "sentence_distance": 2.0}
    assert stages[2]["tasks"] == {"mlm": 0.5, "token_document_relation": 1.0, "sentence_distance": 2.0,
                                  "ir_relevance": 6.0}
    heads = ("token_document_relation", "sentence_distance", "ir_relevance")
    trained_on: dict[str, set] = {}
    for r in recs:
        if "loss" not in r:
            continue
        st = next(s for s in stages if s["first_step"] <= r["step"] <= s["last_step"])
        tasks = {t for t in heads if f"loss_{t}" in r}
        assert len(tasks) <= 1, r                      # one task per batch
        assert tasks <= set(st["tasks"]), (r, st)      # never a task before its stage
        assert "loss_mlm" in r                         # every batch is masked
        trained_on.setdefault(st["name"], set()).update(tasks or {"mlm"})
    assert trained_on["one"] == {"mlm"}
    assert trained_on["two"] - {"mlm"}                 # the stage's new tasks are trained
    assert "ir_relevance" in trained_on["three"] and trained_on["three"] & {"token_document_relation",
                                                                             "sentence_distance"}
    saved = json.loads((run / "train_config.json").read_text())
    assert [s["name"] for s in saved["plan"]["stage"]] == ["one", "two", "three"]


def test_per_task_evaluation(trained):
    _, res = trained
    m = res.metrics
    for t in ("token_document_relation", "sentence_distance", "ir_relevance"):
        assert m[f"{t}_n"] > 0 and 0.0 <= m[f"{t}_accuracy"] <= 1.0 and 0.0 < m[f"{t}_majority"] <= 1.0
    assert "sentence_reorder_accuracy" not in m          # not in the plan: no head
    assert 0.0 <= m["mlm_accuracy"] <= 1.0 and m["mlm_tokens"] > 0


def test_checkpoint_loads_in_transformers(trained, build):
    from transformers import AutoModel

    from trainers.ernie2 import TASK_IDS, task_embedding
    from zhmask.reader import Build, Collator, ShardDataset

    run, res = trained
    model = res.model.eval()
    hf = AutoModel.from_pretrained(str(run / "final")).eval()
    rows = ShardDataset(Build(build), split="validation", validation=0.1)
    batch = Collator(pad_id=Build(build).pad_id)([rows[i] for i in range(4)])
    with torch.no_grad():
        args = dict(attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
        # the encoder alone
        ours = model.bert(input_ids=batch["input_ids"], **args).last_hidden_state
        theirs = hf(input_ids=batch["input_ids"], **args).last_hidden_state
        assert torch.allclose(ours, theirs, atol=1e-5)
        # with a task embedding: the saved one added to the word embeddings gives the trainer's states
        emb, ids = task_embedding(run / "final")
        assert ids == TASK_IDS
        tid = torch.full((4,), TASK_IDS["sentence_distance"])
        ours = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], tid).last_hidden_state
        inputs = hf.embeddings.word_embeddings(batch["input_ids"]) + emb[tid][:, None, :]
        theirs = hf(inputs_embeds=inputs, **args).last_hidden_state
        assert torch.allclose(ours, theirs, atol=1e-5)
        assert not torch.allclose(ours, model.bert(input_ids=batch["input_ids"], **args).last_hidden_state)
    # and the trainer loads its own directory back (heads included)
    from trainers.common import make_config
    from trainers.ernie2 import Ernie2Pretrainer

    again = Ernie2Pretrainer(make_config(None, TINY), Build(build), model.tasks)
    again.load(run / "final")
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_sampler_resumes_and_splits_ranks():
    from trainers.ernie2 import StagePlan, StageSampler

    plan = StagePlan({"stage": [{"tasks": {"mlm": 1}}, {"tasks": {"ir_relevance": 3}}]})
    stages = plan.schedule(20)
    pos = {"mlm": np.arange(50), "ir_relevance": np.arange(50, 61)}

    def batches(rank=0, epoch=0, skip=0, world=1):
        s = StageSampler(pos, stages, 4, 1, 7, rank, world, per_epoch=6)
        s.set_epoch(epoch)
        s.skip(skip)
        return list(s)

    whole = [b for e in range(3) for b in batches(epoch=e)]
    assert batches(epoch=1, skip=2) == whole[8:12]         # resume inside an epoch
    assert all(t == 0 for b in whole[:10] for _, t in b)   # stage 1: mlm (task id 0) only
    assert {i for b in whole[:10] for i, _ in b} <= set(range(50))
    r0, r1 = batches(rank=0, world=2), batches(rank=1, world=2)
    for a, b in zip(r0, r1):                              # ranks: the same task, other rows
        assert {t for _, t in a} == {t for _, t in b} and not {i for i, _ in a} & {i for i, _ in b}


@pytest.mark.parametrize("plan,message", [
    ("[[stage]]\ntasks = { mlm = 1.0, nsp = 1.0 }\n", "unknown task 'nsp'"),
    ("[[stage]]\ntasks = { mlm = 0 }\n", "must be a number > 0"),
    ("[[stage]]\nshare = 1\n", "tasks = {task = weight, ...} is required"),
    ("stages = 1\n", "no [[stage]] tables"),
    ("[[stage]]\ntasks = { mlm = 1 }\n[[stage]]\nshare = 0.01\ntasks = { ir_relevance = 1 }\n", "gets no step"),
])
def test_bad_plans_are_one_line_errors(build, tmp_path, plan, message):
    (tmp_path / "plan.toml").write_text(plan, encoding="utf-8")
    code, out, err = run_cli("pretrain", "ernie2", "--data", str(build), "--out", str(tmp_path / "run"),
                             "--plan", str(tmp_path / "plan.toml"), "-q", *[f"--set={s}" for s in TINY],
                             "--set=max_steps=4")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_plan_needs_its_tasks_in_the_build(tmp_path):
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    lines = (FIXTURES / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = build_corpus(BuildConfig(inputs=[str(tmp_path / "in.jsonl")], max_seq_length=64, masking="knowledge",
                                   tasks=["sentence_distance"], out=str(tmp_path / "out"))).out_dir
    code, _, err = run_cli("pretrain", "ernie2", "--data", str(out), "--out", str(tmp_path / "run"), "-q",
                           *[f"--set={s}" for s in TINY], "--set=max_steps=4")   # the default plan
    assert code == 2 and "the plan trains" in err and "capitalization" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("pretrain", "bert", "--data", str(out), "--out", str(tmp_path / "run"), "--plan", "x")
    assert code == 2 and "--plan is for ernie2" in err


def test_resume_equals_uninterrupted(build, tmp_path):
    from trainers.common import make_config, train
    from trainers.ernie2 import TASKS, Ernie2Plan, StagePlan, resolve_plan

    def go(out, *sets, resume=False):
        cfg = make_config(None, [*TINY, "max_steps=6", *sets])
        plan = Ernie2Plan(resolve_plan(None if resume else "ernie2_stages", out, resume), cfg)
        train("ernie2", plan.make_model, build, out, cfg, resume=resume, quiet=True, usable_tasks=TASKS, plan=plan)

    go(tmp_path / "a")
    go(tmp_path / "b", "stop_at_step=3")
    go(tmp_path / "b", resume=True)   # the plan comes back from train_config.json
    a, b = ([r for r in log(tmp_path / x) if "loss" in r] for x in ("a", "b"))
    assert [r["step"] for r in b] == list(range(1, 7))
    for x, y in zip(a, b):
        assert set(x) == set(y)        # the same task at every step
        assert abs(x["loss"] - y["loss"]) < 1e-5, (x, y)
    assert [r for r in log(tmp_path / "a") if "stage" in r] == [r for r in log(tmp_path / "b") if "stage" in r]


def test_finetune_starts_from_the_encoder(trained, tmp_path):
    """zhmask finetune takes an ernie2 final/ directory: the classifier's encoder is the pretrained one."""
    from trainers.finetune import finetune, load_classifier, make_finetune_config

    run, res = trained
    cfg = make_finetune_config(["max_steps=2", "batch_size=8", "max_length=64", "threads=1", "title_field=title",
                                "dev_fraction=0.3"])
    out = finetune(run / "final", str(FIXTURES / "inews_150.jsonl"), None, tmp_path / "ft", cfg, quiet=True)
    assert out["steps"] == 2 and 0.0 <= out["accuracy"] <= 1.0
    clf = load_classifier(run / "final", 3, cfg)
    for k, v in res.model.bert.state_dict().items():
        assert torch.equal(clf.bert.state_dict()[k], v), k


def test_every_parameter_gets_a_gradient_from_any_batch(build):
    """What DDP needs (it has no find_unused_parameters): an mlm, word-aware or sentence batch
    reaches every parameter, the idle heads and the pooler with weight 0."""
    from trainers.common import make_config
    from trainers.ernie2 import TASK_IDS, TASKS, Ernie2Pretrainer, TaskRows
    from zhmask.reader import Build, Collator, ShardDataset

    b = Build(build)
    model = Ernie2Pretrainer(make_config(None, TINY), b, list(TASKS))
    ds = ShardDataset(b, split="train", validation=0.1)
    rows, pos = TaskRows(ds, ["mlm", *TASKS]), ds.task_positions()
    collate = Collator(pad_id=b.pad_id)
    for task in ("mlm", "token_document_relation", "sentence_distance"):
        idx = pos["sentence_distance" if task == "mlm" else task][:4]
        model.zero_grad(set_to_none=True)
        loss, heads = model(collate([rows[(int(i), TASK_IDS[task])] for i in idx]))
        loss.backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == [], task
        assert set(heads) == {"mlm", "loss"} | ({task} - {"mlm"})
