"""The training loop shared by the BERT-family and ELECTRA trainers, top to bottom.

A model family (``trainers.bert``, ``trainers.electra``) supplies a ``torch.nn.Module`` with

* ``forward(batch) -> (loss, {head: loss})``: the training loss of one batch and its parts,
* ``evaluate(batch, acc)``: adds the batch's evaluation counts to the dict ``acc``,
* ``metrics(acc) -> dict``: the evaluation metrics from the summed counts,
* ``save(dir, build)``: a transformers ``save_pretrained`` directory (plus the tokenizer),
* ``load(dir)``: the weights back from such a directory (for ``--resume``),

and :func:`train` does the rest: data (``zhmask.reader``), AdamW, warm-up and decay, gradient
accumulation and clipping, bf16 autocast on CUDA, DDP under ``torchrun``, the progress bar, the
JSONL log, evaluation on the held-out rows, checkpoints and an exact resume.

A family that chooses its own batches (``trainers.ernie2``: one task per batch from a stage plan)
passes ``plan``, an object with

* ``dataset(ds) -> ds``: wraps the training and validation datasets (e.g. to add a ``task_id``),
* ``batch_sampler(ds, cfg, rank, world)``: a batch sampler with ``set_epoch``, ``skip(batches)``
  and ``len`` (batches per epoch) whose batches depend only on (seed, batch number), so resume is exact,
* ``events(step) -> [dict]``: records for the log before optimizer step ``step + 1`` (a stage begins),
* ``describe() -> dict``: saved in ``train_config.json`` under ``plan``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zhmask.errors import ZhmaskError

PRESETS = Path(__file__).parent / "presets"


# ----------------------------------------------------------------------------- configuration
@dataclass
class Config:
    """Every knob of a run. Defaults are compact: a few MB of text in <= 10 minutes on 2 CPU cores."""

    # model (the discriminator's size for electra)
    num_layers: int = 4
    hidden_size: int = 256
    num_heads: int = 4
    intermediate_size: int = 1024
    dropout: float = 0.1
    max_position_embeddings: int = 512
    generator_fraction: float = 0.25   # electra: generator hidden size / discriminator's (1/4..1/2)
    disc_weight: float = 50.0          # electra: loss = generator MLM + disc_weight * discriminator
    gen_flows: str = "word,span"       # ernie_gen: generation flows trained (word; or word,span as in the paper)
    span_weight: float = 1.0           # ernie_gen: loss = word-by-word + span_weight * span-by-span
    gen_noise: str = "auto"            # ernie_gen: shards | dynamic (per epoch) | none | auto (as the build says)
    gen_noise_rate: float = -1.0       # ernie_gen dynamic noise: share of target inputs (< 0: the build's noise_rate)
    # data
    tasks: list = field(default_factory=list)   # tasks to read (empty: every task the trainer uses)
    validation: float = 0.01           # share of documents held out for evaluation
    dynamic_masking: str = "auto"      # auto (static masks; dynamic wwm when the build has none) | none | a strategy
    pad_to_multiple_of: int = 8
    num_workers: int = 0
    batch_size: int = 32
    grad_accum: int = 1
    # optimisation
    lr: float = 5e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    warmup: float = 0.1                # a share of max_steps (< 1) or a number of steps (>= 1)
    decay: str = "linear"              # linear | cosine | constant, down to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0             # 0: no clipping
    max_steps: int = 300               # ~8.5 minutes on 2 CPU cores at the defaults (trainers/README.md)
    # evaluation, checkpoints, logging
    eval_every: int = 100              # 0: only at the end
    eval_batches: int = 20             # cap on validation batches per evaluation (0: all)
    save_every: int = 100              # 0: only at the end
    keep_checkpoints: int = 2          # newest checkpoint-<step> dirs kept (0: all)
    stop_at_step: int = 0              # pause after this step (a checkpoint is written; --resume goes on)
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    threads: int = 0                   # torch CPU threads (0: torch's default)
    trace_rows: bool = False           # each process writes RUN/rows-rank<r>.json: the rows it trained on

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse(name: str, kind: str, value: Any) -> Any:
    """``value`` (a TOML value, or the text of ``--set``) as the field's type."""
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "list":
            if isinstance(value, (list, tuple)):
                return [str(v) for v in value]
            return [v.strip() for v in str(value).split(",") if v.strip()]
        return str(value)
    except (TypeError, ValueError):
        raise ZhmaskError(f"setting {name}: expected {kind}, got {value!r}") from None


def parse_sets(sets) -> dict[str, str]:
    """``--set key=value`` items as a dict (dashes in keys read as underscores)."""
    values: dict[str, str] = {}
    for item in sets:
        if "=" not in item:
            raise ZhmaskError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        values[k.strip().replace("-", "_")] = v.strip()
    return values


def typed(kind, values: dict[str, Any]):
    """The dataclass ``kind`` from ``values`` (TOML values or ``--set`` text), each parsed as its field's type."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ZhmaskError(f"unknown setting {unknown[0]!r}; known: {', '.join(kinds)}")
    return kind(**{k: _parse(k, kinds[k], v) for k, v in values.items()})


def read_toml(name: str | Path, folder: Path, option: str, kind: str) -> tuple[Path, dict[str, Any]]:
    """The TOML file ``name`` (a path, or a ``kind`` named ``<folder>/<name>.toml``) and its data;
    a one-line error naming ``option`` and the known names when it is missing or not TOML."""
    path = Path(name)
    if not path.is_file() and (folder / f"{path.name}.toml").is_file():
        path = folder / f"{path.name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
        raise ZhmaskError(f"{option} {name}: no such file or {kind} ({kind}s: {known})")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZhmaskError(f"{option} {path}: {exc}") from None


def unmasked(cfg: Config, family: str, why: str) -> Config:
    """``cfg`` of a family that takes no masks (gpt, xlnet): ``dynamic_masking`` auto means none,
    a strategy is a one-line error saying ``why``."""
    if cfg.dynamic_masking not in ("auto", "none", ""):
        raise ZhmaskError(f"setting dynamic_masking: {family} {why} and takes no masks "
                          f"(none, not {cfg.dynamic_masking})")
    cfg.dynamic_masking = "none"
    return cfg


def make_config(config_file: str | None = None, sets: list[str] | tuple[str, ...] = (),
                base: dict[str, Any] | None = None) -> Config:
    """``base`` (a saved run's config), then a TOML preset or file, then ``key=value`` overrides."""
    values: dict[str, Any] = dict(base or {})
    if config_file:
        _, data = read_toml(config_file, PRESETS, "--config", "preset")
        values.update(data.get("train", data))
    values.update(parse_sets(sets))
    cfg = typed(Config, values)
    if cfg.decay not in ("linear", "cosine", "constant"):
        raise ZhmaskError(f"setting decay: linear, cosine or constant, got {cfg.decay!r}")
    for k in ("max_steps", "batch_size", "grad_accum", "num_layers", "hidden_size", "num_heads"):
        if getattr(cfg, k) < 1:
            raise ZhmaskError(f"setting {k}: must be at least 1, got {getattr(cfg, k)}")
    if cfg.hidden_size % cfg.num_heads:
        raise ZhmaskError(f"hidden_size {cfg.hidden_size} is not a multiple of num_heads {cfg.num_heads}")
    if not 0.0 <= cfg.validation < 1.0:
        raise ZhmaskError(f"setting validation: a share in [0, 1), got {cfg.validation}")
    return cfg


def lr_at(step: int, cfg: Config) -> float:
    """Multiplier of the peak learning rate after ``step`` optimizer steps: linear warm-up, then decay."""
    warm = int(cfg.warmup * cfg.max_steps) if cfg.warmup < 1 else int(cfg.warmup)
    if step < warm:
        return (step + 1) / (warm + 1)
    if cfg.decay == "constant":
        return 1.0
    frac = min(1.0, (step - warm) / max(1, cfg.max_steps - warm))
    shape = 1.0 - frac if cfg.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


# ----------------------------------------------------------------------------- small helpers
def roc_auc(scores, labels) -> float:
    """Area under the ROC curve by the rank formula (average ranks for ties); nan without both classes."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # tie groups: [start, end) of equal scores get the mean of ranks start+1..end
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def masked_ce(logits, targets):
    """(sum of cross-entropy, count) over rows of ``logits`` [N, C]; a zero that keeps the graph when N = 0."""
    import torch.nn.functional as F

    if targets.numel() == 0:
        return logits.sum() * 0.0, 0
    return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    st = {"torch": torch.get_rng_state(), "python": random.getstate(),
          "numpy": torch.from_numpy(np.random.get_state()[1].astype("int64")),
          "numpy_rest": list(np.random.get_state()[2:])}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(st["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in st["python"]))
    np.random.set_state(("MT19937", st["numpy"].numpy().astype("uint32"), *st["numpy_rest"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    """The batch's tensors on ``device`` (anything else is left out)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if hasattr(v, "to")}


def latest_checkpoint(run: Path) -> Path | None:
    found = [(int(p.name.split("-", 1)[1]), p) for p in run.glob("checkpoint-*")
             if p.name.split("-", 1)[1].isdigit() and (p / "trainer_state.pt").is_file()]
    return max(found)[1] if found else None


class Progress:
    """A rich progress bar on a terminal; a plain line every ``every`` steps otherwise."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.every = max(1, total // 20)
        self._bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("pretrain"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.description}"), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("", total=total, completed=start)

    def update(self, step: int, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, description=text)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            print(f"step {step}/{self.total}  {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# ----------------------------------------------------------------------------- the loop
def train(family: str, make_model: Callable, data: str | Path, out: str | Path, cfg: Config,
          resume: bool = False, quiet: bool = False, usable_tasks: tuple[str, ...] | None = None,
          make_collator: Callable | None = None, plan: Any = None) -> "RunResult":
    """Pretrain ``make_model(cfg, build, tasks)`` on the build in ``data``; the run goes to ``out``.

    ``make_collator(build, cfg)``: a family's own ``collate_fn`` (with ``set_epoch``) instead of the
    reader's :class:`~zhmask.reader.Collator` (e.g. ``trainers.ernie_gen``'s multi-flow batches);
    no dynamic masking then.

    Returns a :class:`RunResult`: the last evaluation's metrics (rank 0; ``{}`` elsewhere) and the model.
    """
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from transformers.utils import logging as hf_logging

    from zhmask.reader import Build, Collator, EpochSampler, ShardDataset

    hf_logging.disable_progress_bar()

    # -- processes and device: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = cfg.device
    if device == "cuda" and ddp:
        device = f"cuda:{local_rank}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ZhmaskError(f"device {cfg.device}: CUDA is not available here (--set device=cpu)")
        torch.cuda.set_device(torch.device(device))
    if ddp and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    master = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext())

    # -- data: training rows in a seeded epoch order, this rank's share; validation rows held out by document
    build = Build(data)
    tasks = cfg.tasks or [t for t in build.tasks if usable_tasks is None or t in usable_tasks]
    if usable_tasks is not None and set(tasks) - set(usable_tasks):
        raise ZhmaskError(f"setting tasks: {family} trains on {', '.join(usable_tasks)}, "
                          f"not {', '.join(sorted(set(tasks) - set(usable_tasks)))}")
    missing = [t for t in tasks if t not in build.tasks]
    if missing or not tasks:
        raise ZhmaskError(f"{data}: no rows of task(s) {', '.join(missing or usable_tasks or ())} "
                          f"(the build has {', '.join(build.tasks) or 'none'})")
    seq = int(build.config.get("max_seq_length", 0))
    if seq > cfg.max_position_embeddings:
        raise ZhmaskError(f"{data}: rows of up to {seq} tokens, more than max_position_embeddings "
                          f"{cfg.max_position_embeddings} (--set max_position_embeddings={seq})")
    masking = cfg.dynamic_masking if make_collator is None else "none"
    if masking == "auto":
        masking = "wwm" if build.config.get("masking", "none") == "none" else "none"
    masker = val_masker = None   # two maskers: the validation masks stay those of epoch 0
    if masking not in ("none", ""):
        from zhmask.masking.dynamic import DynamicMasking

        masker = DynamicMasking.from_build(build.out, masking=masking)
        val_masker = DynamicMasking.from_build(build.out, masking=masking)
    if make_collator is not None:
        collate, val_collate = make_collator(build, cfg), make_collator(build, cfg)
    else:
        collate = Collator(pad_id=build.pad_id, pad_to_multiple_of=cfg.pad_to_multiple_of, masker=masker)
        val_collate = Collator(pad_id=build.pad_id, pad_to_multiple_of=cfg.pad_to_multiple_of, masker=val_masker)
    columns = getattr(collate, "columns", None)   # only what the collator reads is decoded (all for a family's own)
    if columns is not None and plan is not None:
        columns = (*columns, "task")   # a stage plan's dataset gives each row its task id
    train_ds = ShardDataset(build, split="train", validation=cfg.validation, tasks=tasks, columns=columns)
    val_ds = (ShardDataset(build, split="validation", validation=cfg.validation, tasks=tasks, columns=columns)
              if cfg.validation else None)
    if plan is not None:
        train_ds = plan.dataset(train_ds)
        val_ds = plan.dataset(val_ds) if val_ds is not None else None
    if len(train_ds) < world * cfg.batch_size:
        raise ZhmaskError(f"{data}: {len(train_ds)} training rows, fewer than one batch per process "
                          f"({world} x batch_size {cfg.batch_size})")
    val_collate.set_epoch(0)
    sampler = EpochSampler(n=len(train_ds), seed=cfg.seed, epoch=0, rank=rank, world_size=world, shuffle=True)
    batches_per_epoch = len(train_ds) // world // cfg.batch_size   # every rank the same number of batches
    batch_sampler = plan.batch_sampler(train_ds, cfg, rank, world) if plan is not None else None

    seen: list[int] = []

    class Trace(torch.utils.data.Sampler):   # records the row indices handed to the DataLoader
        def __iter__(self):
            for i in sampler:
                seen.append(int(i))
                yield i

        def __len__(self):
            return len(sampler)

    class TraceBatches(torch.utils.data.Sampler):   # the same for a plan's batches (indices or (index, task))
        def __iter__(self):
            for b in batch_sampler:
                seen.extend(int(i[0] if isinstance(i, tuple) else i) for i in b)
                yield b

        def __len__(self):
            return len(batch_sampler)

    def loader(epoch: int, skip_batches: int):
        if batch_sampler is not None:
            batch_sampler.set_epoch(epoch)
            batch_sampler.skip(skip_batches)
            collate.set_epoch(epoch)
            return iter(DataLoader(train_ds, batch_sampler=TraceBatches() if cfg.trace_rows else batch_sampler,
                                   collate_fn=collate, num_workers=cfg.num_workers,   # own generator: the
                                   generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)))   # global RNG stays put
        sampler.set_epoch(epoch)
        collate.set_epoch(epoch)
        sampler.skip(skip_batches * cfg.batch_size)
        return iter(DataLoader(train_ds, batch_size=cfg.batch_size, sampler=Trace() if cfg.trace_rows else sampler,
                               collate_fn=collate,
                               drop_last=True, num_workers=cfg.num_workers,
                               generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)))

    # -- model and optimizer: no weight decay on biases and LayerNorm weights (every 1-d parameter)
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, build, tasks).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-6,
                                  fused=device.startswith("cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg))

    run = Path(out)
    step, epoch, consumed = 0, 0, 0
    if resume:
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise ZhmaskError(f"--resume: no checkpoint-<step>/trainer_state.pt in {run}")
        state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=True)
        model.load(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, consumed = state["step"], state["epoch"], state["batches_consumed"]
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    elif master and latest_checkpoint(run) is not None:
        raise ZhmaskError(f"{run} already holds checkpoints: --resume to continue, or another --out")
    if master:
        run.mkdir(parents=True, exist_ok=True)
        (run / "train_config.json").write_text(json.dumps({"family": family, "data": str(Path(data).resolve()), **cfg.to_dict(),
                                                           "dynamic_masking": masking, "tasks": tasks,
                                                           "world_size": world,
                                                           **({"plan": plan.describe()} if plan is not None else {})},
                                                          indent=1))
    raw = model
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.startswith("cuda") else None)

    log = open(run / "log.jsonl", "a", encoding="utf-8") if master else None

    def write(record: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(record) + "\n")
            log.flush()

    def evaluate() -> dict[str, Any]:
        if val_ds is None or len(val_ds) == 0:
            return {}
        raw.eval()
        acc: dict[str, Any] = {}
        rows = val_ds
        if cfg.eval_batches and len(val_ds) > cfg.eval_batches * cfg.batch_size:   # rows spread over every task
            import numpy as np

            pick = np.linspace(0, len(val_ds) - 1, cfg.eval_batches * cfg.batch_size).round().astype(int)
            rows = torch.utils.data.Subset(val_ds, pick.tolist())
        dl = DataLoader(rows, batch_size=cfg.batch_size, shuffle=False, collate_fn=val_collate)
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)   # eval sampling leaves training RNG alone
        with torch.no_grad(), autocast:
            for batch in dl:
                raw.evaluate(to_device(batch, device), acc, gen)
        raw.train()
        return raw.metrics(acc)

    def save(path: Path) -> None:
        if master:
            raw.save(path, build)
        rngs = [rng_state()]
        if ddp:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if master:
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rngs,
                        "step": step, "epoch": epoch, "batches_consumed": consumed}, path / "trainer_state.pt")
            if cfg.keep_checkpoints:
                old = sorted((int(p.name.split("-")[1]), p) for p in run.glob("checkpoint-*")
                             if p.name.split("-")[1].isdigit())
                for _, p in old[:-cfg.keep_checkpoints]:
                    shutil.rmtree(p, ignore_errors=True)

    # -- the loop: one optimizer step = grad_accum batches
    bar = Progress(cfg.max_steps, step, enabled=master and not quiet)
    if master and resume:
        bar.note(f"{family}: resumed from {latest_checkpoint(run)} (epoch {epoch}, batch {consumed})")
    if master and not resume:
        n_params = sum(p.numel() for p in params)
        bar.note(f"{family}: {n_params / 1e6:.1f}M parameters, {len(train_ds):,} training rows "
                 f"({', '.join(tasks)}; masks {'dynamic ' + masking if masker else 'from the shards'}), "
                 f"{len(val_ds) if val_ds else 0:,} validation rows, {world} process(es) on {device}")
    batches = loader(epoch, consumed)
    stop = min(cfg.max_steps, cfg.stop_at_step or cfg.max_steps)
    metrics: dict[str, Any] = {}
    model.train()
    t0 = time.time()
    while step < stop:
        for record in (plan.events(step) if plan is not None else ()):
            write(record)
            bar.note(" ".join(f"{k} {v}" for k, v in record.items()))
        parts: dict[str, float] = {}
        tokens = 0
        for micro in range(cfg.grad_accum):
            if consumed >= batches_per_epoch:
                epoch, consumed = epoch + 1, 0
                batches = loader(epoch, 0)
            batch = to_device(next(batches), device)
            consumed += 1
            tokens += int(batch["attention_mask"].sum())
            sync = nullcontext() if (not ddp or micro == cfg.grad_accum - 1) else model.no_sync()
            with sync:
                with autocast:
                    loss, heads = model(batch)
                (loss / cfg.grad_accum).backward()
            for k, v in heads.items():
                parts[k] = parts.get(k, 0.0) + float(v) / cfg.grad_accum
        if cfg.grad_clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        else:
            gnorm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        if ddp:   # the log shows the mean over processes and every process's tokens
            totals = torch.tensor([*parts.values(), float(tokens)], dtype=torch.float64, device=device)
            dist.all_reduce(totals)
            parts = {k: float(v) / world for k, v in zip(parts, totals[:-1].tolist())}
            tokens = int(totals[-1])
        dt, t0 = time.time() - t0, time.time()
        tps = tokens / max(dt, 1e-9)
        write({"step": step, "epoch": epoch, **{f"loss_{k}" if k != "loss" else k: round(v, 6) for k, v in parts.items()},
               "lr": lr, "grad_norm": round(gnorm, 6), "tokens_per_s": round(tps, 1)})
        bar.update(step, f"loss {parts.get('loss', 0.0):.3f}  lr {lr:.2e}  {tps:,.0f} tok/s")
        last = step == stop
        if master and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps):
            metrics = evaluate()
            if metrics:
                write({"step": step, "eval": metrics})
                bar.note(f"eval @ {step}: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            t0 = time.time()
        if (cfg.save_every and step % cfg.save_every == 0) or last:
            path = run / f"checkpoint-{step}"
            save(path)
            t0 = time.time()
    if step >= cfg.max_steps and master:
        raw.save(run / "final", build)
        (run / "eval.json").write_text(json.dumps({"step": step, **metrics}, indent=1))
    bar.close()
    if log is not None:
        log.close()
    if cfg.trace_rows:
        checksum = float(sum(p.detach().double().sum() for p in params))
        (run / f"rows-rank{rank}.json").write_text(json.dumps({"rank": rank, "world_size": world, "rows": seen,
                                                               "param_checksum": checksum}))
    if ddp:
        dist.barrier()
    return RunResult(metrics=metrics, model=raw, step=step)


@dataclass
class RunResult:
    metrics: dict[str, Any]       # the last evaluation (rank 0)
    model: Any                    # the trained family module (e.g. ``.model``, ``.discriminator``)
    step: int
