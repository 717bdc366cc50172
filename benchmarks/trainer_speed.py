"""Tokens per second of ``zhmask pretrain bert`` against transformers' ``Trainer``, side by side.

Same model (``BertForMaskedLM``, the trainer's default size unless told otherwise), the same shards,
the same batch size, the same reader and collator (``zhmask.reader.ShardDataset`` + ``Collator``,
static masks), the same optimizer settings; alternated A/B for ``--rounds`` rounds in one run, each
run starting from a fresh model. A run's speed is the median of its per-step tokens/s after the
first ``--skip`` steps (tokens = non-padding tokens of the batch; time = wall time of the step,
data loading included).

    python benchmarks/trainer_speed.py                         # builds the bundled sample (128 tokens a row)
    python benchmarks/trainer_speed.py --data out/ --steps 40 --rounds 3 --out docs/trainers.md

Needs the bench extra (``pip install -e '.[bench]'``: transformers' Trainer needs accelerate).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _report import machine, write_section  # noqa: E402


def model_sets(args) -> list[str]:
    return [f"num_layers={args.layers}", f"hidden_size={args.hidden}", f"num_heads={args.heads}",
            f"intermediate_size={4 * args.hidden}", f"batch_size={args.batch}", f"max_steps={args.steps}",
            "eval_every=0", "save_every=0", "validation=0.01", f"threads={args.threads}", "seed=0",
            "dynamic_masking=none", "dropout=0.1"]


def run_zhmask(data: Path, work: Path, args, k: int) -> float:
    """The real trainer (``trainers.common.train``): median tokens/s from its log."""
    from trainers import bert
    from trainers.common import make_config, train

    out = work / f"zhmask-{k}"
    train("bert", bert.make_model, data, out, make_config(None, model_sets(args)), quiet=True, usable_tasks=bert.TASKS)
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    tps = [r["tokens_per_s"] for r in recs if "eval" not in r][args.skip:]
    return statistics.median(tps)


def run_hf(data: Path, work: Path, args, k: int) -> float:
    """transformers' Trainer on BertForMaskedLM with the same data, collator and optimizer settings."""
    import torch
    from transformers import BertForMaskedLM, Trainer, TrainerCallback, TrainingArguments

    from trainers.bert import bert_config
    from trainers.common import make_config
    from zhmask.reader import Build, Collator, ShardDataset

    cfg = make_config(None, model_sets(args))
    torch.set_num_threads(args.threads)
    build = Build(data)
    ds = ShardDataset(build, split="train", validation=cfg.validation, tasks=["mlm"])
    coll = Collator(pad_id=build.pad_id, pad_to_multiple_of=cfg.pad_to_multiple_of)
    tokens: list[int] = []

    def collate(rows):
        b = coll(rows)
        tokens.append(int(b["attention_mask"].sum()))
        return b

    torch.manual_seed(cfg.seed)
    model = BertForMaskedLM(bert_config(cfg, build))
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **kw):
            marks.append(time.perf_counter())

    targs = TrainingArguments(output_dir=str(work / f"hf-{k}"), per_device_train_batch_size=cfg.batch_size,
                              max_steps=cfg.max_steps, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
                              adam_beta1=cfg.beta1, adam_beta2=cfg.beta2, adam_epsilon=1e-6,
                              warmup_steps=int(cfg.warmup * cfg.max_steps), lr_scheduler_type="linear",
                              max_grad_norm=cfg.grad_clip, logging_strategy="no", save_strategy="no",
                              eval_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
                              remove_unused_columns=False, disable_tqdm=True, seed=cfg.seed, dataloader_drop_last=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=collate, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    steps = [start] + marks
    # the DataLoader may prefetch one batch ahead: step i used batch i
    tps = [tokens[i] / (steps[i + 1] - steps[i]) for i in range(len(marks))][args.skip:]
    return statistics.median(tps)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a build (default: the bundled sample built with --masking wwm, 128 tokens)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=3, help="first steps left out of the median (warm-up)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="a Markdown file to write the table into (between <!-- speed:begin/end -->)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="zhmask-speed-"))
    data = Path(args.data) if args.data else None
    if data is None:
        from zhmask.api import build_corpus
        from zhmask.config import BuildConfig

        data = Path(build_corpus(BuildConfig(out=str(work / "build"), masking="wwm", max_seq_length=128)).out_dir)
    a, b, host = [], [], machine()
    for k in range(args.rounds):
        a.append(run_zhmask(data, work, args, k))
        b.append(run_hf(data, work, args, k))
        print(f"round {k + 1}: zhmask {a[-1]:,.0f} tok/s, transformers Trainer {b[-1]:,.0f} tok/s", flush=True)
    ma, mb = statistics.median(a), statistics.median(b)
    import torch
    import transformers

    cmd = "python benchmarks/trainer_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join([
        f"`{cmd.strip()}`, {time.strftime('%Y-%m-%d')}, {host}, {args.threads} threads, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; BertForMaskedLM {args.layers} layers, hidden {args.hidden}, "
        f"batch {args.batch}, {args.steps} steps a run, median tokens/s of each run after {args.skip} steps, "
        f"{args.rounds} alternated rounds:",
        "",
        "| trainer | tokens/s (median of runs) | runs | ratio |",
        "|---|---:|---|---:|",
        f"| `zhmask pretrain bert` | {ma:,.0f} | {', '.join(f'{x:,.0f}' for x in a)} | {ma / mb:.2f}x |",
        f"| transformers `Trainer` | {mb:,.0f} | {', '.join(f'{x:,.0f}' for x in b)} | 1.00x |",
    ])
    print(table)
    if args.out:
        write_section(Path(args.out), "speed", table)
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
