"""ERNIE 2.0 pretraining (Sun et al. 2020): one shared encoder, a learned task embedding, a head per
task, trained by sequential multi-task learning from a stage plan.

* Encoder: transformers' ``BertModel`` (saved with ``save_pretrained``, so ``AutoModel`` loads it).
  The task embedding (``nn.Embedding(len(TASK_IDS), hidden)``) is added to the word embeddings
  (``inputs_embeds``); BertEmbeddings then adds the position and segment embeddings, as the
  paper's input = token + segment + position + task embedding.
* Heads: the knowledge-masked LM (transformers' ``BertOnlyMLMHead``, tied to the word embeddings)
  on every row (every ernie2 row is masked); a linear head on the pooled ``[CLS]`` for the
  sentence tasks (``next_sentence_label``) and on every token for the word-aware tasks
  (``token_labels``).  Heads and task embedding go to ``ernie2_heads.pt`` beside the encoder.
* Stage plan (a TOML file, ``trainers/plans``): stages in order, each a share of ``max_steps``;
  a stage adds tasks and keeps every earlier one, with per-task sampling weights.  One task is
  drawn per batch (weights proportional), seeded by (seed, stage); the pseudo-task ``mlm`` is a
  batch of any rows, task id 0, trained only on the MLM loss; a batch of task T holds rows of T,
  task id of T, and trains T's head plus the MLM loss on its masked tokens.

    zhmask pretrain ernie2 --data out/ --out run/ [--plan ernie2_stages] [--set key=value ...]
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainers.common import Config, masked_ce
from zhmask.errors import ZhmaskError

PLANS = Path(__file__).parent / "plans"
DEFAULT_PLAN = "ernie2_stages"
SENTENCE_TASKS = ("sentence_reorder", "sentence_distance", "ir_relevance", "discourse_relation")
TOKEN_TASKS = ("capitalization", "token_document_relation")
TASKS = SENTENCE_TASKS + TOKEN_TASKS           # the build's tasks this trainer reads
TASK_IDS = {t: i for i, t in enumerate(("mlm",) + TOKEN_TASKS + SENTENCE_TASKS)}   # task embedding rows
HEADS_FILE = "ernie2_heads.pt"


def num_classes(task: str, build_config: dict[str, Any]) -> int:
    """Classes of ``task``'s label, from the task's own module (and the build's options)."""
    if task == "sentence_reorder":
        from zhmask.labels import sentence_reorder as sr

        return sr.num_classes(int((build_config.get("options") or {}).get("reorder_max_segments",
                                                                         sr.OPTIONS["reorder_max_segments"])))
    import importlib

    return len(importlib.import_module(f"zhmask.labels.{task}").CLASSES)


# ----------------------------------------------------------------------------- the stage plan
@dataclass
class Stage:
    name: str
    first: int                  # first optimizer step (0-based) of the stage
    end: int                    # one past its last
    weights: dict[str, float]   # every active task (earlier ones kept) -> sampling weight


class StagePlan:
    """A stage plan: ``[[stage]]`` tables with ``name``, ``share`` (relative length) and ``tasks``
    (``{task = weight}``: new tasks, or new weights for earlier ones; earlier tasks stay)."""

    def __init__(self, data: dict[str, Any], where: str = "plan") -> None:
        stages = data.get("stage")
        if not isinstance(stages, list) or not stages:
            raise ZhmaskError(f"{where}: no [[stage]] tables")
        unknown = sorted(set(data) - {"stage", "description"})
        if unknown:
            raise ZhmaskError(f"{where}: unknown key {unknown[0]!r} (a plan has [[stage]] tables and a description)")
        self.where, self.description = where, str(data.get("description", ""))
        self.stages: list[dict[str, Any]] = []
        for n, st in enumerate(stages, 1):
            bad = sorted(set(st) - {"name", "share", "tasks"})
            if bad:
                raise ZhmaskError(f"{where}: stage {n}: unknown key {bad[0]!r} (name, share, tasks)")
            tasks = st.get("tasks")
            if not isinstance(tasks, dict) or not tasks:
                raise ZhmaskError(f"{where}: stage {n}: tasks = {{task = weight, ...}} is required")
            for t, w in tasks.items():
                if t not in TASK_IDS:
                    raise ZhmaskError(f"{where}: stage {n}: unknown task {t!r} (known: {', '.join(TASK_IDS)})")
                if not isinstance(w, (int, float)) or isinstance(w, bool) or not w > 0:
                    raise ZhmaskError(f"{where}: stage {n}: weight of {t} must be a number > 0, got {w!r}")
            share = st.get("share", 1)
            if not isinstance(share, (int, float)) or isinstance(share, bool) or not share > 0:
                raise ZhmaskError(f"{where}: stage {n}: share must be a number > 0, got {share!r}")
            self.stages.append({"name": str(st.get("name", f"stage {n}")), "share": float(share),
                                "tasks": {t: float(w) for t, w in tasks.items()}})

    @classmethod
    def load(cls, plan: str | Path | None) -> "StagePlan":
        """A plan by name (``trainers/plans/<name>.toml``) or path; None: the default plan."""
        from trainers.common import read_toml

        path, data = read_toml(plan or DEFAULT_PLAN, PLANS, "--plan", "plan")
        return cls(data, str(path))

    def describe(self) -> dict[str, Any]:
        return {"description": self.description, "stage": self.stages}

    @property
    def tasks(self) -> list[str]:
        """Every task of the plan, in the order it first appears."""
        return list(dict.fromkeys(t for st in self.stages for t in st["tasks"]))

    def schedule(self, max_steps: int) -> list[Stage]:
        """The stages over ``max_steps`` optimizer steps: lengths by share, every earlier task kept."""
        total = sum(st["share"] for st in self.stages)
        out, cum, weights = [], 0.0, {}
        for st in self.stages:
            first = round(cum / total * max_steps)
            cum += st["share"]
            end = round(cum / total * max_steps)
            if end <= first:
                raise ZhmaskError(f"{self.where}: stage {st['name']!r} gets no step of max_steps {max_steps} "
                                  f"({len(self.stages)} stages): more steps, or fewer stages")
            weights = {**weights, **st["tasks"]}
            out.append(Stage(st["name"], first, end, dict(weights)))
        return out


class TaskRows:
    """A dataset whose rows carry ``task_id``: ``ds[i]`` the row's own task (``mlm``, id 0, for a
    task outside the plan), ``ds[(i, task_id)]`` the given one (an ``mlm`` batch).  ``positions``:
    the rows of ``ds`` it shows (default all)."""

    def __init__(self, ds, plan_tasks: list[str], positions: np.ndarray | None = None) -> None:
        self.ds, self.plan_tasks, self.positions = ds, set(plan_tasks), positions

    def __len__(self) -> int:
        return len(self.ds) if self.positions is None else len(self.positions)

    def __getitem__(self, key):
        i, tid = key if isinstance(key, tuple) else (key, None)
        row = self.ds[int(i) if self.positions is None else int(self.positions[i])]
        if tid is None:
            tid = TASK_IDS[row["task"]] if row["task"] in self.plan_tasks else TASK_IDS["mlm"]
        row["task_id"] = int(tid)
        return row


class StageSampler:
    """Batches of one task each: the task of global batch ``g`` (optimizer step ``g // grad_accum``)
    is drawn with the stage's weights; task T's ``c``-th batch on rank ``r`` takes positions
    ``[(c * world + r) * B, ... + B)`` of an endless stream of seeded permutations of T's rows.
    Everything follows from (seed, g), so ``set_epoch(e)`` + ``skip(k)`` resume at ``g = e * len + k``."""

    def __init__(self, positions: dict[str, np.ndarray], stages: list[Stage], batch_size: int, grad_accum: int,
                 seed: int, rank: int, world: int, per_epoch: int) -> None:
        from zhmask.rng import rng_for

        self.positions, self.B, self.seed, self.rank, self.world = positions, batch_size, seed, rank, world
        self.per_epoch, self.g0, self.epoch = max(1, per_epoch), 0, 0
        names = list(positions)
        self.names = names
        draws = []
        for k, st in enumerate(stages):
            ts = list(st.weights)
            p = np.array([st.weights[t] for t in ts], dtype=np.float64)
            pick = rng_for(seed, "ernie2", "stage", k).choice(len(ts), size=(st.end - st.first) * grad_accum, p=p / p.sum())
            draws.append(np.array([names.index(t) for t in ts], dtype=np.int16)[pick])
        self.sequence = np.concatenate(draws)   # the task (index into names) of every batch of the run
        self._perms: dict[tuple[str, int], np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip(self, k: int) -> "StageSampler":
        self.g0 = self.epoch * self.per_epoch + int(k)
        return self

    def __len__(self) -> int:
        return self.per_epoch

    def _rows(self, task: str, c: int) -> list[int]:
        from zhmask.rng import rng_for

        rows = self.positions[task]
        n, out = len(rows), []
        start = (c * self.world + self.rank) * self.B
        for pos in range(start, start + self.B):
            p = pos // n
            perm = self._perms.get((task, p))
            if perm is None:
                self._perms = {k: v for k, v in self._perms.items() if k[0] != task}   # one pass per task kept
                perm = self._perms[(task, p)] = rng_for(self.seed, "ernie2", task, p).permutation(n)
            out.append(int(rows[perm[pos % n]]))
        return out

    def __iter__(self):
        g = self.g0
        counts = np.bincount(self.sequence[:min(g, len(self.sequence))], minlength=len(self.names))
        end = (g // self.per_epoch + 1) * self.per_epoch
        while g < end:
            k = int(self.sequence[min(g, len(self.sequence) - 1)])
            task = self.names[k]
            tid = TASK_IDS[task]
            yield [(i, tid) for i in self._rows(task, int(counts[k]))]
            counts[k] += 1
            g += 1


class Ernie2Plan:
    """The ``plan`` of :func:`trainers.common.train` for ERNIE 2.0 (see its docstring)."""

    def __init__(self, plan: StagePlan, cfg: Config) -> None:
        self.plan, self.cfg = plan, cfg
        self.stages = plan.schedule(cfg.max_steps)
        self.tasks = plan.tasks

    def dataset(self, ds):
        missing = [t for t in self.tasks if t != "mlm" and t not in (ds.tasks or ds.build.tasks)]
        if missing:
            raise ZhmaskError(f"{self.plan.where}: the plan trains {', '.join(missing)}, which the build "
                              f"{ds.build.out} has no rows of (it has {', '.join(ds.build.tasks) or 'none'}; "
                              "zhmask build-corpus --pipeline ernie2, or a plan without them)")
        cap = self.cfg.eval_batches * self.cfg.batch_size
        if ds.split != "validation" or not cap:
            return TaskRows(ds, self.tasks)
        # held-out rows: as many of each task (spread over its rows), so every head is measured
        by_task = ds.task_positions()
        each = -(-cap // max(1, len(by_task)))
        keep = [v[np.linspace(0, len(v) - 1, min(each, len(v))).round().astype(np.int64)] for v in by_task.values()]
        return TaskRows(ds, self.tasks, np.unique(np.concatenate(keep)) if keep else np.zeros(0, np.int64))

    def batch_sampler(self, ds: TaskRows, cfg: Config, rank: int, world: int) -> StageSampler:
        positions = {"mlm": np.arange(len(ds), dtype=np.int64)} if "mlm" in self.tasks else {}
        by_task = ds.ds.task_positions()
        for t in self.tasks:
            if t != "mlm":
                if t not in by_task:
                    raise ZhmaskError(f"{self.plan.where}: no training rows of {t} in the build")
                positions[t] = by_task[t]
        return StageSampler(positions, self.stages, cfg.batch_size, cfg.grad_accum, cfg.seed, rank, world,
                            len(ds) // world // cfg.batch_size)

    def events(self, step: int) -> list[dict[str, Any]]:
        return [{"step": step + 1, "stage": k + 1, "name": st.name, "first_step": st.first + 1, "last_step": st.end,
                 "tasks": st.weights} for k, st in enumerate(self.stages) if st.first == step]

    def describe(self) -> dict[str, Any]:
        return self.plan.describe()

    def make_model(self, cfg: Config, build, tasks: list[str]) -> "Ernie2Pretrainer":
        return Ernie2Pretrainer(cfg, build, [t for t in self.tasks if t != "mlm"])


# ----------------------------------------------------------------------------- the model
class Ernie2Pretrainer(nn.Module):
    """BertModel + task embedding + the MLM head + one head per task (the trainer interface of
    ``trainers.common``)."""

    def __init__(self, cfg: Config, build, tasks: list[str]) -> None:
        super().__init__()
        from transformers import BertModel
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        from trainers.bert import bert_config

        hf = bert_config(cfg, build)
        self.bert = BertModel(hf, add_pooling_layer=True)
        self.mlm = BertOnlyMLMHead(hf)
        # tied as transformers' BertForMaskedLM ties them (_tied_weights_keys): decoder = word embeddings, one bias
        self.mlm.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.mlm.predictions.decoder.bias = self.mlm.predictions.bias
        self.task_embedding = nn.Embedding(len(TASK_IDS), hf.hidden_size)
        nn.init.normal_(self.task_embedding.weight, std=hf.initializer_range)
        self.tasks = list(tasks)
        self.classes = {t: num_classes(t, build.config) for t in self.tasks}
        self.dropout = nn.Dropout(cfg.dropout)
        self.heads = nn.ModuleDict({t: nn.Linear(hf.hidden_size, self.classes[t]) for t in self.tasks})

    def encode(self, input_ids, attention_mask, token_type_ids, task_id):
        """The encoder's output with the task embedding added to the word embeddings."""
        emb = self.bert.embeddings.word_embeddings(input_ids) + self.task_embedding(task_id)[:, None, :]
        return self.bert(inputs_embeds=emb, attention_mask=attention_mask, token_type_ids=token_type_ids)

    def outputs(self, batch: dict[str, torch.Tensor]):
        """(MLM logits at the masked positions, their targets, {task: (logits, targets)}, the pooled
        output) of a batch."""
        out = self.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["task_id"])
        labels = batch["labels"]
        where = labels != -100
        mlm_logits = self.mlm(out.last_hidden_state[where])
        per_task = {}
        for t in self.tasks:
            rows = batch["task_id"] == TASK_IDS[t]
            if not bool(rows.any()):
                continue
            token = t in TOKEN_TASKS   # word-aware: every labelled token; sentence-level: the pooled [CLS]
            y = batch.get("token_labels" if token else "next_sentence_label")
            if y is None:
                continue
            y = y[rows]
            keep = y != -100
            h = (out.last_hidden_state if token else out.pooler_output)[rows][keep]
            per_task[t] = (self.heads[t](self.dropout(h)), y[keep])
        return mlm_logits, labels[where], per_task, out.pooler_output

    def forward(self, batch: dict[str, torch.Tensor]):
        mlm_logits, targets, per_task, pooled = self.outputs(batch)
        s, n = masked_ce(mlm_logits, targets)
        loss = s / max(n, 1)
        heads = {"mlm": loss.detach()}
        for t, (logits, y) in per_task.items():
            s, n = masked_ce(logits, y)
            part = s / max(n, 1)
            heads[t] = part.detach()
            loss = loss + part
        # the pooler and the heads of the tasks not in this batch join the graph with weight 0 (DDP wants
        # every parameter used in every step: an mlm or word-aware batch leaves the pooler unused)
        idle = [pooled.sum()] + [p.sum() for t in self.tasks if t not in per_task for p in self.heads[t].parameters()]
        loss = loss + 0.0 * torch.stack(idle).sum()
        heads["loss"] = loss.detach()
        return loss, heads

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        from trainers.bert import add_mlm_counts

        mlm_logits, targets, per_task, _ = self.outputs(batch)
        add_mlm_counts(acc, mlm_logits, targets)
        for t, (logits, y) in per_task.items():
            acc[f"{t}_n"] = acc.get(f"{t}_n", 0) + int(y.numel())
            acc[f"{t}_correct"] = acc.get(f"{t}_correct", 0) + int((logits.argmax(-1) == y).sum())
            counts = torch.bincount(y, minlength=logits.shape[-1]).tolist()
            prev = acc.get(f"{t}_classes", [0] * len(counts))
            acc[f"{t}_classes"] = [a + b for a, b in zip(prev, counts)]

    def metrics(self, acc: dict[str, Any]) -> dict[str, float]:
        from trainers.bert import mlm_metrics

        out = mlm_metrics(acc)
        for t in self.tasks:
            if acc.get(f"{t}_n"):   # accuracy, and that of always answering the most frequent class
                out[f"{t}_accuracy"] = acc[f"{t}_correct"] / acc[f"{t}_n"]
                out[f"{t}_majority"] = max(acc[f"{t}_classes"]) / acc[f"{t}_n"]
                out[f"{t}_n"] = acc[f"{t}_n"]
        return out

    def head_state(self) -> dict[str, torch.Tensor]:
        """Everything but the encoder (the MLM decoder is the tied word embeddings)."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith("bert.") and k != "mlm.predictions.decoder.weight"}

    def save(self, path: Path, build) -> None:
        path = Path(path)
        self.bert.save_pretrained(str(path))
        build.save_tokenizer(path)
        torch.save({"state": self.head_state(), "task_ids": dict(TASK_IDS), "tasks": self.tasks,
                    "classes": self.classes}, path / HEADS_FILE)

    def load(self, path: Path) -> None:
        from trainers.bert import load_weights

        load_weights(self.bert, Path(path))
        saved = torch.load(Path(path) / HEADS_FILE, map_location="cpu", weights_only=True)
        if saved["tasks"] != self.tasks or saved["task_ids"] != TASK_IDS:
            raise ZhmaskError(f"{path}: heads for {saved['tasks']}, this run has {self.tasks}")
        missing, unexpected = self.load_state_dict(saved["state"], strict=False)
        missing = [k for k in missing if not k.startswith("bert.") and k != "mlm.predictions.decoder.weight"]
        if missing or unexpected:
            raise ZhmaskError(f"{path}: {HEADS_FILE} does not match the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")


def task_embedding(path: str | Path) -> tuple[torch.Tensor, dict[str, int]]:
    """The task embedding of a saved run (``final/`` or ``checkpoint-<step>/``) and the task ids."""
    f = Path(path) / HEADS_FILE
    if not f.is_file():
        raise ZhmaskError(f"{path}: no {HEADS_FILE} (not a zhmask pretrain ernie2 directory)")
    saved = torch.load(f, map_location="cpu", weights_only=True)
    return saved["state"]["task_embedding.weight"], dict(saved["task_ids"])


def resolve_plan(plan: str | None, out: str | Path, resume: bool) -> StagePlan:
    """``--plan``, else on ``--resume`` the plan the run saved, else the default plan."""
    saved = Path(out) / "train_config.json"
    if plan is None and resume and saved.is_file():
        data = json.loads(saved.read_text(encoding="utf-8")).get("plan")
        if data:
            return StagePlan(data, str(saved))
    return StagePlan.load(plan)


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "ernie2", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
